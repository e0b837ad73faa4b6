package email

import (
	"bytes"
	"net/mail"
	"testing"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
)

// TestPreviewIsWhatSendSends: Preview returns, byte for byte, the message
// Send hands the SMTP server, for a group's first email (to the sink's
// recipients), a reply in its thread and one to a route's recipients.
func TestPreviewIsWhatSendSends(t *testing.T) {
	srv := startFake(t)
	s := fakeSink(t, srv, nil)
	first := firing()
	rec, err := s.Send(t.Context(), first, sinks.Target{Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		n    *heraldv1.Notification
		to   sinks.Target
	}{
		{"first", first, sinks.Target{Attempt: 1}},
		{"reply", resolved(), sinks.Target{Attempt: 1, Parent: rec.Parent}},
		{"route recipients", firing(), sinks.Target{Attempt: 1, Channel: "db@example.com, Ops <ops@example.com>", FallbackFrom: "rocketchat", FallbackReason: "rocketchat: down"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if i > 0 {
				if _, err := s.Send(t.Context(), tt.n, tt.to); err != nil {
					t.Fatal(err)
				}
			}
			msgs := srv.Messages()
			if len(msgs) != i+1 {
				t.Fatalf("%d messages, want %d", len(msgs), i+1)
			}
			sent := msgs[i].Data
			m, err := mail.ReadMessage(bytes.NewReader(sent))
			if err != nil {
				t.Fatal(err)
			}
			date, err := m.Header.Date()
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Preview(t.Context(), tt.n, tt.to, date)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, sent) {
				t.Errorf("Preview differs from what Send sent\n--- preview ---\n%s\n--- sent ---\n%s", got, sent)
			}
		})
	}
}

func TestPreviewRefusesABadRouteChannel(t *testing.T) {
	s := fakeSink(t, startFake(t), nil)
	if _, err := s.Preview(t.Context(), firing(), sinks.Target{Channel: "not an address"}, time.Time{}); err == nil || sinks.Classify(err) != sinks.ClassPermanent {
		t.Errorf("Preview to a bad address list = %v, want a permanent error as Send gives", err)
	}
}
