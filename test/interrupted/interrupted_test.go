// Package interrupted_test runs a whole herald against the strict
// Rocket.Chat fake through a delivery cut short after the chat server took
// the message: the post times out on herald's side yet exists, and the
// lookup that the retry starts with first fails. The notification must end
// as exactly one message with its record DELIVERED, never as a dead letter.
package interrupted_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app/apptest"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

func TestInterruptedDeliveryEndsDelivered(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole herald")
	}
	srv := rocketchattest.NewServer(rocketchattest.WithRooms("alerts"))
	t.Cleanup(srv.Close)
	// The post is stored, but its answer comes after herald gave up on
	// it; the lookup of the retry then answers 404 (a proxy, a server
	// that answers a missing message so), and only the next one succeeds.
	srv.Inject(rocketchattest.Fault{Endpoint: "chat.sendMessage", Times: 1, Delay: 3 * time.Second, AfterHandling: true})
	srv.Inject(rocketchattest.Fault{Endpoint: "chat.getMessage", Times: 1, Status: http.StatusNotFound, Body: "404 page not found",
		Header: http.Header{"Content-Type": {"text/plain"}}})
	h := apptest.Start(t, fmt.Sprintf(`
auth:
  clients: [{name: t, token: interrupted-token}]
dispatch:
  quick_retries: 3
  quick_backoff: 100ms
  quick_retry_budget: 5s
  attempt_timeout: 1s
sinks:
  - name: rocketchat
    rocketchat: {url: %s, mode: rest, user_id: %s, token: %q, channel: "#alerts", timeout: 1s}
routes: [{name: default, chain: [rocketchat]}]
`, srv.URL, srv.UserID(), srv.Token()), apptest.Options{
		Logger: slog.New(slog.NewTextHandler(testutil.LogWriter(t, ""), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	res, err := h.Client().Publish(context.Background(), connect.NewRequest(&heraldv1.PublishRequest{Notification: &heraldv1.Notification{
		Source: "test", Severity: heraldv1.Severity_SEVERITY_CRITICAL, Title: "Interrupted", Text: "posted, answer lost",
	}}))
	if err != nil {
		t.Fatal(err)
	}
	got := h.WaitDelivered(t, res.Msg.GetId(), heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, 30*time.Second)
	if n := len(srv.Messages("alerts")); n != 1 {
		t.Errorf("%d messages in the room, want exactly one", n)
	}
	sd := got.GetDelivery().GetSinks()
	if len(sd) != 1 || sd[0].GetAttempts() < 2 {
		t.Errorf("delivery %v: want the interrupted attempt and at least one more", got.GetDelivery())
	}
	if n := srv.Count("chat.getMessage"); n < 2 {
		t.Errorf("%d lookups: the retry's first one failed, so a second must have found the message", n)
	}
}

// TestReleasedAtShutdownIsHandedOutAtStart: herald stops while a post is
// under way (the chat server has not answered yet), so the delivery is
// released, not acknowledged. The next herald on the same data dir must
// deliver it as soon as it starts, not after queue.ack_wait (10 minutes
// here, longer than the test's deadline), and exactly once.
func TestReleasedAtShutdownIsHandedOutAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole herald twice")
	}
	srv := rocketchattest.NewServer(rocketchattest.WithRooms("alerts"))
	t.Cleanup(srv.Close)
	// The first post is held before the server handles it: the shutdown
	// cuts it short and the message never exists.
	srv.Inject(rocketchattest.Fault{Endpoint: "chat.sendMessage", Times: 1, Delay: time.Minute})
	cfg := fmt.Sprintf(`
auth:
  clients: [{name: t, token: released-token}]
queue: {ack_wait: 10m}
dispatch: {attempt_timeout: 2m}
sinks:
  - name: rocketchat
    rocketchat: {url: %s, mode: rest, user_id: %s, token: %q, channel: "#alerts", timeout: 2m}
routes: [{name: default, chain: [rocketchat]}]
`, srv.URL, srv.UserID(), srv.Token())
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(testutil.LogWriter(t, ""), &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := apptest.Start(t, cfg, apptest.Options{DataDir: dir, Logger: logger})
	res, err := h.Client().Publish(context.Background(), connect.NewRequest(&heraldv1.PublishRequest{Notification: &heraldv1.Notification{
		Source: "test", Severity: heraldv1.Severity_SEVERITY_CRITICAL, Title: "Released", Text: "cut short by a shutdown",
	}}))
	if err != nil {
		t.Fatal(err)
	}
	// The delivery holds its in-flight slot from just before the post.
	deadline := time.Now().Add(30 * time.Second)
	for inFlight(t, h) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the post never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	h.Stop()
	if n := len(srv.Messages("alerts")); n != 0 {
		t.Fatalf("%d messages after the cut-short post, want none", n)
	}

	h2 := apptest.Start(t, cfg, apptest.Options{DataDir: dir, Logger: logger})
	// Far less than ack_wait: a notification waiting for ack_wait fails
	// here.
	h2.WaitDelivered(t, res.Msg.GetId(), heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, time.Minute)
	if n := len(srv.Messages("alerts")); n != 1 {
		t.Errorf("%d messages in the room, want exactly one", n)
	}
}

func inFlight(t *testing.T, h *apptest.Herald) float64 {
	mfs, err := h.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "herald_dispatch_attempts_in_flight" {
			for _, m := range mf.GetMetric() {
				if m.GetGauge().GetValue() > 0 {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}
