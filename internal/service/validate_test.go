package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/gen/herald/v1/heraldv1connect"
	"github.com/herald-notify/herald/internal/store"
	"github.com/herald-notify/herald/internal/store/storetest"
)

func validNotification() *heraldv1.Notification {
	return &heraldv1.Notification{
		Source: "t", Title: "x", Severity: heraldv1.Severity_SEVERITY_INFO,
		Alerts: []*heraldv1.Alert{
			{Status: heraldv1.Status_STATUS_FIRING},
			{Status: heraldv1.Status_STATUS_RESOLVED},
		},
	}
}

// TestPublishValidationErrors checks that each refusal names its field
// and, for an enum, what it takes: an unset severity is "required", and a
// number the enum does not define is an unknown value, never "required".
func TestPublishValidationErrors(t *testing.T) {
	const severities = "want one of SEVERITY_CRITICAL, SEVERITY_WARNING, SEVERITY_INFO"
	cases := []struct {
		name string
		edit func(n *heraldv1.Notification)
		want []string // each in the error, in this order
	}{
		{"valid", func(*heraldv1.Notification) {}, nil},
		{"no severity", func(n *heraldv1.Notification) { n.Severity = 0 },
			[]string{"notification.severity: required, " + severities}},
		{"unknown severity", func(n *heraldv1.Notification) { n.Severity = 77 },
			[]string{"notification.severity: unknown value 77, " + severities}},
		{"unknown status", func(n *heraldv1.Notification) { n.Status = 9 },
			[]string{"notification.status: unknown value 9, want one of STATUS_FIRING, STATUS_RESOLVED"}},
		{"alert without status", func(n *heraldv1.Notification) { n.Alerts[1].Status = 0 },
			[]string{"notification.alerts[1].status: required, want one of STATUS_FIRING, STATUS_RESOLVED"}},
		{"alert of unknown status", func(n *heraldv1.Notification) { n.Alerts[1].Status = 3 },
			[]string{"notification.alerts[1].status: unknown value 3, want one of STATUS_FIRING, STATUS_RESOLVED"}},
		{"annotation value", func(n *heraldv1.Notification) {
			n.Alerts[1].Annotations = map[string]string{"description": strings.Repeat("d", MaxLabelValueBytes+1), "summary": "ok"}
		}, []string{"notification.alerts[1].annotations.description: value of 8193 bytes, at most 8192"}},
		{"odd label names", func(n *heraldv1.Notification) {
			n.Labels = map[string]string{"a b": strings.Repeat("v", MaxLabelValueBytes+1), strings.Repeat("n", MaxLabelNameBytes+1): "v", "": "v"}
		}, []string{
			"notification.labels: empty name",
			`notification.labels["a b"]: value of 8193 bytes`,
			`notification.labels["` + strings.Repeat("n", 64) + `"…]: name of 257 bytes, at most 256`,
		}},
		{"many bad entries", func(n *heraldv1.Notification) {
			n.Annotations = map[string]string{}
			for i := range 5 {
				n.Annotations[fmt.Sprintf("k%d", i)] = strings.Repeat("v", MaxLabelValueBytes+1)
			}
		}, []string{"notification.annotations.k0:", "notification.annotations.k2:", "notification.annotations: 2 more entries over the limits"}},
		{"text", func(n *heraldv1.Notification) { n.Text = strings.Repeat("t", MaxTextBytes+1) },
			[]string{"notification.text: 65537 bytes, at most 65536"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Map order must not change the message: ask a few times.
			var first string
			for range 5 {
				n := validNotification()
				tc.edit(n)
				_, err := New(storetest.NewMemory(), Options{}).Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{Notification: n}))
				if tc.want == nil {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					return
				}
				if connect.CodeOf(err) != connect.CodeInvalidArgument {
					t.Fatalf("error %v, want InvalidArgument", err)
				}
				msg := err.(*connect.Error).Message()
				if first == "" {
					first = msg
				} else if msg != first {
					t.Fatalf("message changed between calls:\n%s\n%s", first, msg)
				}
				rest := msg
				for _, w := range tc.want {
					i := strings.Index(rest, w)
					if i < 0 {
						t.Fatalf("error %q lacks %q (in this order)", msg, w)
					}
					rest = rest[i+len(w):]
				}
				if strings.Contains(msg, ": required") && !strings.Contains(tc.name, "no ") && !strings.Contains(tc.name, "without") {
					t.Errorf("a value that is set is reported as required: %q", msg)
				}
			}
		})
	}
}

// TestListRejectsUnknownEnums: a filter the enum does not define is
// InvalidArgument naming the field, not a filter that matches nothing or
// everything.
func TestListRejectsUnknownEnums(t *testing.T) {
	cases := []struct {
		req  *heraldv1.ListNotificationsRequest
		want string // "" for accepted
	}{
		{&heraldv1.ListNotificationsRequest{}, ""},
		{&heraldv1.ListNotificationsRequest{State: heraldv1.DeliveryState_DELIVERY_STATE_LOST, Severity: heraldv1.Severity_SEVERITY_INFO}, ""},
		{&heraldv1.ListNotificationsRequest{State: 77}, "state: unknown value 77, want one of DELIVERY_STATE_PENDING, DELIVERY_STATE_RETRYING, DELIVERY_STATE_DELIVERED, DELIVERY_STATE_FAILED, DELIVERY_STATE_DEAD_LETTERED, DELIVERY_STATE_LOST"},
		{&heraldv1.ListNotificationsRequest{Severity: 4}, "severity: unknown value 4, want one of SEVERITY_CRITICAL, SEVERITY_WARNING, SEVERITY_INFO"},
	}
	for _, tc := range cases {
		_, err := New(storetest.NewMemory(), Options{}).ListNotifications(t.Context(), connect.NewRequest(tc.req))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v refused: %v", tc.req, err)
		case tc.want != "" && (connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want InvalidArgument with %q", tc.req, err, tc.want)
		}
	}
}

// TestJSONUnknownEnumNames sends JSON as API callers write it to a handler
// built with HandlerOptions: an enum name the API does not define is
// refused naming the field and the names it knows (Connect's own codec
// drops it, and the caller heard "required" or got an unfiltered list),
// while unknown fields are still ignored for newer clients.
func TestJSONUnknownEnumNames(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle(heraldv1connect.NewNotificationServiceHandler(New(storetest.NewMemory(), Options{}), HandlerOptions()...))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	const publish, list = heraldv1connect.NotificationServicePublishProcedure, heraldv1connect.NotificationServiceListNotificationsProcedure
	cases := []struct {
		name      string
		procedure string
		ctype     string
		body      string
		want      string // in the invalid_argument message; "" for 200
	}{
		{"known names", publish, "", `{"notification":{"source":"t","title":"x","severity":"SEVERITY_WARNING","status":"STATUS_RESOLVED"}}`, ""},
		{"unknown field", publish, "", `{"notification":{"source":"t","title":"x","severity":"SEVERITY_INFO","colour":"red"},"extra":{"severity":"NOPE"}}`, ""},
		{"unknown severity", publish, "", `{"notification":{"source":"t","title":"x","severity":"SEVERITY_URGENT"}}`,
			`notification.severity: unknown value "SEVERITY_URGENT", want one of SEVERITY_CRITICAL, SEVERITY_WARNING, SEVERITY_INFO`},
		{"lower-case severity", publish, "application/json; charset=utf-8", `{"notification":{"source":"t","title":"x","severity":"critical"}}`,
			`notification.severity: unknown value "critical"`},
		{"alert status as Alertmanager writes it", publish, "", `{"notification":{"source":"t","title":"x","severity":"SEVERITY_INFO","alerts":[{"status":"STATUS_FIRING"},{"status":"resolved"}]}}`,
			`notification.alerts[1].status: unknown value "resolved", want one of STATUS_FIRING, STATUS_RESOLVED`},
		{"numeric severity", publish, "", `{"notification":{"source":"t","title":"x","severity":77}}`,
			`notification.severity: unknown value 77`},
		{"unknown state", list, "", `{"state":"DELIVERY_STATE_NOPE"}`, `state: unknown value "DELIVERY_STATE_NOPE", want one of DELIVERY_STATE_PENDING`},
		{"numeric state", list, "", `{"state":77}`, `state: unknown value 77`},
		{"known state", list, "", `{"state":"DELIVERY_STATE_PENDING","pageSize":3}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctype := tc.ctype
			if ctype == "" {
				ctype = "application/json"
			}
			res, err := http.Post(srv.URL+tc.procedure, ctype, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if tc.want == "" {
				if res.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %s", res.StatusCode, b)
				}
				return
			}
			var e struct{ Code, Message string }
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("status %d, body %s: %v", res.StatusCode, b, err)
			}
			if res.StatusCode != http.StatusBadRequest || e.Code != "invalid_argument" || !strings.Contains(e.Message, tc.want) {
				t.Errorf("status %d, %s %q; want invalid_argument with %q", res.StatusCode, e.Code, e.Message, tc.want)
			}
			if strings.Contains(e.Message, "required") {
				t.Errorf("a value that was sent is reported as required: %q", e.Message)
			}
		})
	}
}

// TestTooLargeIsRecognisable: a store's "too large" reaches a caller, in
// process and over Connect, as InvalidArgument that IsTooLarge recognises
// (the shim then sends a smaller notification); other InvalidArguments are
// not mistaken for it.
func TestTooLargeIsRecognisable(t *testing.T) {
	tooLarge := New(errStore{err: fmt.Errorf("queue: 9 MiB: %w", store.ErrTooLarge)}, Options{})
	mux := http.NewServeMux()
	mux.Handle(heraldv1connect.NewNotificationServiceHandler(tooLarge))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	remote := heraldv1connect.NewNotificationServiceClient(srv.Client(), srv.URL)

	req := func() *connect.Request[heraldv1.PublishRequest] {
		return connect.NewRequest(&heraldv1.PublishRequest{Notification: validNotification()})
	}
	_, inProcess := tooLarge.Publish(t.Context(), req())
	_, overConnect := remote.Publish(t.Context(), req())
	for name, err := range map[string]error{"in process": inProcess, "over Connect": overConnect} {
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !IsTooLarge(err) {
			t.Errorf("%s: %v (IsTooLarge %v), want a recognisable InvalidArgument", name, err, IsTooLarge(err))
		}
	}
	_, invalid := New(storetest.NewMemory(), Options{}).Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{}))
	for _, err := range []error{invalid, errors.New("plain"), connect.NewError(connect.CodeInvalidArgument, errors.New("too large"))} {
		if IsTooLarge(err) {
			t.Errorf("IsTooLarge(%v) = true", err)
		}
	}
}
