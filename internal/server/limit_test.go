package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/gen/herald/v1/heraldv1connect"
	"github.com/herald-notify/herald/internal/server"
)

// heldService holds every Publish until released, and says so on entered
// while that has room.
type heldService struct {
	heraldv1connect.NotificationServiceHandler
	entered chan struct{}
	release chan struct{}
}

func (s *heldService) Publish(ctx context.Context, req *connect.Request[heraldv1.PublishRequest]) (*connect.Response[heraldv1.PublishResponse], error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	return s.NotificationServiceHandler.Publish(ctx, req)
}

// TestInFlightBound fills the in-flight bound with held publishes: the
// next publish, in every protocol, and the next webhook are answered 503 /
// Unavailable with Retry-After (so Alertmanager and clients retry), soon
// rather than when a slot frees; reads are not bounded. Once the held
// publishes finish, both go through again.
func TestInFlightBound(t *testing.T) {
	const bound = 2
	held := &heldService{entered: make(chan struct{}, bound), release: make(chan struct{})}
	h := startWith(t, func(s heraldv1connect.NotificationServiceHandler) heraldv1connect.NotificationServiceHandler {
		held.NotificationServiceHandler = s
		return held
	}, func(o *server.Options) {
		o.MaxInFlight = bound
		o.InFlightWait = 50 * time.Millisecond
	})
	errs := make(chan error, bound)
	for i := range bound {
		go func() {
			n := valid()
			n.IdempotencyKey = fmt.Sprint("held-", i)
			_, err := client(h, token).Publish(context.Background(), connect.NewRequest(&heraldv1.PublishRequest{Notification: n}))
			errs <- err
		}()
		<-held.entered
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, p := range protocols {
		_, err := client(h, token, p.opts...).Publish(ctx, connect.NewRequest(&heraldv1.PublishRequest{Notification: valid()}))
		var ce *connect.Error
		if !errors.As(err, &ce) || ce.Code() != connect.CodeUnavailable {
			t.Errorf("%s: Publish beyond the bound = %v, want Unavailable", p.name, err)
			continue
		}
		if got := ce.Meta().Get("Retry-After"); got != "1" {
			t.Errorf("%s: Retry-After %q, want 1", p.name, got)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+server.WebhookPath, strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "1" {
		t.Errorf("webhook beyond the bound: HTTP %d, Retry-After %q; want 503 with 1", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if _, err := client(h, token).ListNotifications(ctx, connect.NewRequest(&heraldv1.ListNotificationsRequest{})); err != nil {
		t.Errorf("ListNotifications while publishes fill the bound: %v", err)
	}
	shed := h.counter(t, "herald_http_requests_shed_total", "api") + h.counter(t, "herald_http_requests_shed_total", "webhook")
	if want := float64(len(protocols) + 1); shed != want {
		t.Errorf("herald_http_requests_shed_total = %v, want %v", shed, want)
	}

	close(held.release)
	for range bound {
		if err := <-errs; err != nil {
			t.Errorf("held Publish: %v", err)
		}
	}
	if _, err := client(h, token).Publish(ctx, connect.NewRequest(&heraldv1.PublishRequest{Notification: valid()})); err != nil {
		t.Errorf("Publish after the held ones finished: %v", err)
	}
	if code := postWebhook(t, h); code != http.StatusOK {
		t.Errorf("webhook after the held publishes finished: HTTP %d", code)
	}
}

func postWebhook(t *testing.T, h *harness) int {
	req, _ := http.NewRequest(http.MethodPost, h.url+server.WebhookPath, strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// counter reads the counter name{handler} from the harness's registry.
func (h *harness) counter(t *testing.T, name, handler string) float64 {
	t.Helper()
	mfs, err := h.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "handler" && l.GetValue() == handler {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// putLarge stores n notifications of about size bytes each, oldest first,
// straight into the store (the API would refuse them as too large for one
// request; a webhook's alert list can make them so).
func putLarge(t *testing.T, h *harness, n, size int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		nt := valid()
		nt.Id = fmt.Sprintf("n%04d", i)
		nt.ReceivedAt = timestamppb.Now()
		nt.Text = strings.Repeat("x", size)
		id, _, err := h.store.Put(t.Context(), nt)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// TestListPagesBounded: a page holds at most 100 notifications and about
// MaxAnswerBytes, with a token for the rest; paging through returns every
// notification once. A notification larger than the bound alone still comes
// back, one to a page.
func TestListPagesBounded(t *testing.T) {
	const maxBytes = 1 << 20
	tests := []struct {
		name     string
		n, size  int
		maxItems int
	}{
		{"many small", 150, 100, 100},
		{"large", 40, 100 << 10, maxBytes / (100 << 10)},
		{"larger than the bound", 3, maxBytes + 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startWith(t, nil, func(o *server.Options) { o.MaxAnswerBytes = maxBytes })
			ids := putLarge(t, h, tt.n, tt.size)
			for _, p := range []string{"notifications", "dead letters"} {
				if p == "dead letters" {
					for _, id := range ids {
						h.store.SetDelivery(id, &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED})
					}
				}
				seen := map[string]bool{}
				pages, tok := 0, ""
				for {
					items, next, size := listPage(t, h, p, tok)
					pages++
					if len(items) > tt.maxItems || (len(items) > 1 && size > maxBytes) {
						t.Errorf("%s page %d: %d notifications, %d bytes; want at most %d and %d bytes", p, pages, len(items), size, tt.maxItems, maxBytes)
					}
					for _, it := range items {
						id := it.GetNotification().GetId()
						if seen[id] {
							t.Errorf("%s: %s on two pages", p, id)
						}
						seen[id] = true
					}
					if tok = next; tok == "" {
						break
					}
					if pages > tt.n {
						t.Fatalf("%s: more pages than notifications", p)
					}
				}
				if len(seen) != tt.n {
					t.Errorf("%s: paging returned %d of %d notifications", p, len(seen), tt.n)
				}
			}
		})
	}
}

func listPage(t *testing.T, h *harness, what, tok string) ([]*heraldv1.NotificationSummary, string, int) {
	t.Helper()
	c := client(h, token, connect.WithGRPC())
	if what == "notifications" {
		res, err := c.ListNotifications(t.Context(), connect.NewRequest(&heraldv1.ListNotificationsRequest{PageSize: 500, PageToken: tok}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetNotifications(), res.Msg.GetNextPageToken(), proto.Size(res.Msg)
	}
	res, err := c.ListDeadLetters(t.Context(), connect.NewRequest(&heraldv1.ListDeadLettersRequest{PageSize: 500, PageToken: tok}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg.GetNotifications(), res.Msg.GetNextPageToken(), proto.Size(res.Msg)
}

// TestRefusedRequestLogsBoundedPath: a 60 KB path refused for missing
// credentials is logged clipped.
func TestRefusedRequestLogsBoundedPath(t *testing.T) {
	h := start(t, nil)
	path := "/" + heraldv1connect.NotificationServiceName + "/" + strings.Repeat("A", 60<<10)
	res, err := http.Post(h.url+path, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("HTTP %d, want 401", res.StatusCode)
	}
	var line string
	for l := range strings.Lines(h.log.String()) {
		if strings.Contains(l, "request refused") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no log line for the refused request:\n%s", h.log.String())
	}
	if len(line) > 1024 || !strings.Contains(line, fmt.Sprintf("…(%d bytes)", len(path))) {
		t.Errorf("log line of %d bytes, want at most 1 KiB with the path clipped: %.300s", len(line), line)
	}
}
