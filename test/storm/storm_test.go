// Package storm_test floods one Rocket.Chat incoming webhook through a whole
// herald (apptest: config, embedded JetStream, dispatcher, sink) and checks
// that the hook's rate limit is never hit while nothing is lost: under
// backlog the notifications for the channel go out merged into digests.
//
// Rocket.Chat's default limit is 10 posts per 60s per hook. The test keeps
// the count and shortens the window to 2s, configured identically on both
// sides (the sink's webhook_rate and the fake's WithRateLimit), since the
// queue's embedded NATS server cannot run inside a synctest bubble.
package storm_test

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app/apptest"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

const (
	total  = 200
	groups = 40
	// limit per window is the hook's rate limit, on both sides.
	limit  = 10
	window = 2 * time.Second
	// waitLimit bounds the wait for the storm to drain: a deadline for a
	// hung test, not a speed assertion.
	waitLimit = 2 * time.Minute
)

// titleRE finds the notifications a message carries, by their titles.
var titleRE = regexp.MustCompile(`storm-\d{3}`)

func TestStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole herald")
	}
	tests := []struct {
		name     string
		dispatch string
	}{
		// The window (2s) is shorter than the quick retry budget (5s):
		// notifications park for the next digest like a quick retry.
		{"waits within the quick retry budget", ""},
		// Waits of up to 2s exceed a 500ms budget: the webhook, the last
		// (only) sink of the chain, holds them for the next digest
		// instead of each being retried later on its own.
		{"held by the last sink beyond the quick retry budget", "dispatch: {quick_retry_budget: 500ms}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { storm(t, tt.dispatch) })
	}
}

func storm(t *testing.T, dispatch string) {
	srv := rocketchattest.NewServer(rocketchattest.WithRateLimit(limit, window))
	t.Cleanup(srv.Close)
	hook := srv.AddHook("alerts")
	h := apptest.Start(t, fmt.Sprintf(`
auth:
  clients: [{name: storm, token: tok-storm-test}]
%ssinks:
  - name: rocketchat
    rocketchat:
      mode: webhook
      webhook_url: %s
      webhook_rate: {count: %d, per: %s}
routes:
  - name: default
    chain: [rocketchat]
`, dispatch, srv.URL+hook, limit, window), apptest.Options{
		Logger: slog.New(slog.NewTextHandler(testutil.LogWriter(t, ""), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})

	// Publish quickly, each group's notifications in order (one publisher
	// per group), 8 publishers at once.
	ids := make([]string, total)
	var wg sync.WaitGroup
	c := h.Client()
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < total; i += 8 {
				res, err := c.Publish(context.Background(), connect.NewRequest(&heraldv1.PublishRequest{Notification: &heraldv1.Notification{
					Source:         "storm",
					Severity:       heraldv1.Severity_SEVERITY_WARNING,
					Title:          title(i),
					GroupKey:       group(i),
					IdempotencyKey: title(i),
				}}))
				if err != nil {
					t.Errorf("publish %d: %v", i, err)
					return
				}
				ids[i] = res.Msg.GetId()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	start := time.Now()

	// Wait until every title arrived (or the deadline passed).
	deadline := time.Now().Add(waitLimit)
	for {
		seen := map[string]bool{}
		for _, m := range srv.Messages("alerts") {
			for _, id := range titleRE.FindAllString(m.Text, -1) {
				seen[id] = true
			}
		}
		if len(seen) == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s the hook received %d of %d notifications", waitLimit, len(seen), total)
		}
		time.Sleep(50 * time.Millisecond)
	}
	drained := time.Since(start)
	// Every notification's record says delivered.
	for i, id := range ids {
		rec := h.WaitDelivered(t, id, heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, 30*time.Second)
		if by := rec.GetDelivery().GetDeliveredBy(); by != "rocketchat" {
			t.Errorf("%s delivered by %q", title(i), by)
		}
	}

	// Nothing lost, nothing twice, each group in publish order, nothing
	// cut from a digest; the hook's rate limit was never hit: no 429, and
	// after the last request of a full window none before that window's
	// reset.
	res := rocketchattest.CheckStorm(t, srv, "alerts", total, groups)
	posts, msgs, digests := res.Posts, srv.Messages("alerts"), res.Digests
	if len(posts) != len(msgs) {
		t.Errorf("%d webhook requests for %d messages", len(posts), len(msgs))
	}
	if len(posts) >= total {
		t.Errorf("%d requests for %d notifications: nothing was merged", len(posts), total)
	}
	// Nothing waited in line for a redelivery: the lane held them.
	if n := counter(t, h, "herald_dispatch_outcomes_total", "action", "retry"); n != 0 {
		t.Errorf("%v notifications were retried later instead of joining a digest", n)
	}
	t.Logf("%d notifications in %d webhook requests (%d digests, %d plain) with a limit of %d per %s; drained %s after publishing",
		total, len(posts), digests, len(posts)-digests, limit, window, drained.Round(100*time.Millisecond))
}

// counter reads the counter name{label=value} from herald's registry.
func counter(t *testing.T, h *apptest.Herald, name, label, value string) float64 {
	t.Helper()
	fams, err := h.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func title(i int) string { return rocketchattest.StormTitle(i) }
func group(i int) string { return fmt.Sprintf("g%02d", i%groups) }
