package shim

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/gen/herald/v1/heraldv1connect"
)

// Both the in-process service and a Connect client of a remote herald can
// stand behind the shim.
var (
	_ Publisher = heraldv1connect.NotificationServiceHandler(nil)
	_ Publisher = heraldv1connect.NotificationServiceClient(nil)
)

// remoteService serves Publish from a fakePublisher over real Connect.
type remoteService struct {
	heraldv1connect.UnimplementedNotificationServiceHandler
	pub *fakePublisher
}

func (s remoteService) Publish(ctx context.Context, req *connect.Request[heraldv1.PublishRequest]) (*connect.Response[heraldv1.PublishResponse], error) {
	return s.pub.Publish(ctx, req)
}

// TestHandlerInFrontOfRemoteHerald runs the shim against a remote herald
// through the generated Connect client: error codes survive the wire and map
// to the same HTTP answers, and a herald that cannot be reached is a 503.
func TestHandlerInFrontOfRemoteHerald(t *testing.T) {
	body := mustRead(t, "../../deploy/examples/firing.json")
	cases := []struct {
		name   string
		err    error
		status int
	}{
		{"stored", nil, http.StatusOK},
		{"storage unavailable", connect.NewError(connect.CodeUnavailable, errors.New("storage unavailable")), http.StatusServiceUnavailable},
		{"invalid", connect.NewError(connect.CodeInvalidArgument, errors.New("bad")), http.StatusBadRequest},
		{"unauthenticated", connect.NewError(connect.CodeUnauthenticated, errors.New("token")), http.StatusServiceUnavailable},
		{"plain error in the service", errors.New("boom"), http.StatusServiceUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pub := &fakePublisher{err: tc.err}
			mux := http.NewServeMux()
			mux.Handle(heraldv1connect.NewNotificationServiceHandler(remoteService{pub: pub}))
			srv := httptest.NewServer(mux)
			defer srv.Close()
			client := heraldv1connect.NewNotificationServiceClient(srv.Client(), srv.URL)

			rec := post(t, NewHandler(client, Options{}), body)
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			want := 0
			if tc.err == nil {
				want = 1
			}
			if len(pub.stored) != want {
				t.Errorf("remote stored %d, want %d", len(pub.stored), want)
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		client := heraldv1connect.NewNotificationServiceClient(http.DefaultClient, url)
		if rec := post(t, NewHandler(client, Options{}), body); rec.Code != http.StatusServiceUnavailable {
			t.Errorf("unreachable herald answered %d, want 503", rec.Code)
		}
	})
}
