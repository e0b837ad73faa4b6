// Package fanout_test runs a whole herald whose routes fan notifications
// out (continue: true) to two chains, one of them broken, and checks that
// the healthy chain delivers at once, each chain keeps every group's order,
// and nothing is delivered twice or lost once the broken chain recovers.
package fanout_test

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app/apptest"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

const (
	apiToken = "fanout-api-token"
	groups   = 12
	steps    = 4
	// hang bounds waits for what must happen eventually: a guard against
	// a hung test, not a statement about speed.
	hang = 60 * time.Second
)

var markRE = regexp.MustCompile(`fo(\d{2})s(\d)`)

func mark(g, s int) string { return fmt.Sprintf("fo%02ds%d", g, s) }

func TestFanoutWithOneChainBroken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole herald")
	}
	broken := rocketchattest.NewServer(rocketchattest.WithRooms("pages"))
	t.Cleanup(broken.Close)
	broken.SetDown(true)
	healthy := rocketchattest.NewServer(rocketchattest.WithRooms("alerts"))
	t.Cleanup(healthy.Close)

	// Every critical notification goes to the pager chain (continue) and
	// to the chat chain. The broken chain's backoff (10 s) is the
	// yardstick: the healthy chain must not wait for it.
	h := apptest.Start(t, fmt.Sprintf(`
auth:
  clients: [{name: fanout, token: %s}]
dispatch:
  quick_retries: 1
  quick_backoff: 100ms
  quick_retry_budget: 1s
  attempt_timeout: 2s
  backoff_initial: 10s
  backoff_max: 10s
  breaker: {failures: 3, open_for: 500ms}
sinks:
  - name: pager
    rocketchat: {url: %s, mode: rest, user_id: %s, token: %q, channel: "#pages"}
  - name: chat
    rocketchat: {url: %s, mode: rest, user_id: %s, token: %q, channel: "#alerts"}
routes:
  - name: page
    matchers: ['severity="critical"']
    chain: [pager]
    continue: true
  - name: critical
    matchers: ['severity="critical"']
    chain: [chat]
  - name: default
    chain: [chat]
`, apiToken, broken.URL, broken.UserID(), broken.Token(), healthy.URL, healthy.UserID(), healthy.Token()),
		apptest.Options{Logger: slog.New(slog.NewTextHandler(testutil.LogWriter(t, ""), &slog.HandlerOptions{Level: slog.LevelWarn}))})

	c := h.Client(connect.WithInterceptors())
	ids := map[string]string{}
	start := time.Now()
	for s := range steps {
		for g := range groups {
			res, err := c.Publish(context.Background(), connect.NewRequest(&heraldv1.PublishRequest{Notification: &heraldv1.Notification{
				Source:         "fanout-test",
				Severity:       heraldv1.Severity_SEVERITY_CRITICAL,
				Title:          "Fanout " + mark(g, s),
				Text:           mark(g, s),
				GroupKey:       fmt.Sprintf("group-%02d", g),
				IdempotencyKey: mark(g, s),
			}}))
			if err != nil {
				t.Fatalf("publish %s: %v", mark(g, s), err)
			}
			if res.Msg.GetDuplicate() {
				t.Fatalf("publish %s: duplicate", mark(g, s))
			}
			ids[mark(g, s)] = res.Msg.GetId()
		}
	}

	// The healthy chain gets every notification while the broken one is
	// still waiting out its first backoff.
	testutil.Eventually(t, hang, "every notification in the healthy chain", func() bool { return len(marks(healthy, "alerts")) == groups*steps })
	healthyDone := time.Since(start)
	if len(broken.Requests()) == 0 {
		t.Fatal("the broken chain was never tried: the test did not break it")
	}
	if healthyDone >= 10*time.Second {
		t.Errorf("the healthy chain took %v, as long as the broken chain's backoff (10s): it waited for it", healthyDone)
	}
	// The API's id is the first copy's, which the first matching route
	// (page) delivers; the chat copy is stored with that id and "-1".
	for m, id := range ids {
		got, err := c.GetNotification(context.Background(), connect.NewRequest(&heraldv1.GetNotificationRequest{Id: id + "-1"}))
		if err != nil {
			t.Fatalf("%s: the chat copy %s-1: %v", m, id, err)
		}
		if n := got.Msg.GetNotification(); n.GetRoute() != "critical" || n.GetFanoutOf() != id ||
			strings.Join(n.GetFanoutRoutes(), ",") != "page,critical" {
			t.Errorf("%s: copy route %q fanout_of %q fanout_routes %v, want critical, %s and [page critical]",
				m, n.GetRoute(), n.GetFanoutOf(), n.GetFanoutRoutes(), id)
		}
		if got.Msg.GetDelivery().GetState() != heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED {
			t.Errorf("%s: chat copy %v", m, got.Msg.GetDelivery().GetState())
		}
	}

	// The broken chain recovers and catches up.
	broken.SetDown(false)
	testutil.Eventually(t, hang, "every notification in the recovered chain", func() bool { return len(marks(broken, "pages")) == groups*steps })
	for m, id := range ids {
		h.WaitDelivered(t, id, heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, hang)
		_ = m
	}

	for name, srv := range map[string]struct {
		s    *rocketchattest.Server
		room string
	}{"chat": {healthy, "alerts"}, "pager": {broken, "pages"}} {
		got := marks(srv.s, srv.room)
		count := map[string]int{}
		order := map[int][]int{}
		for _, m := range got {
			count[m.s]++
			order[m.g] = append(order[m.g], m.step)
		}
		for g := range groups {
			for s := range steps {
				if n := count[mark(g, s)]; n != 1 {
					t.Errorf("%s: %s delivered %d times, want once", name, mark(g, s), n)
				}
			}
			if !slices.IsSorted(order[g]) {
				t.Errorf("%s: group %d arrived in the order %v", name, g, order[g])
			}
		}
	}
	t.Logf("healthy chain done %v after the first publish; the broken one after it came back", healthyDone.Round(time.Millisecond))
}

type found struct {
	s       string
	g, step int
}

// marks are the notifications a room received, in the order it received
// them: top-level messages, as first posted (the group's message is edited
// as the group changes), and thread replies alike.
func marks(s *rocketchattest.Server, room string) []found {
	var out []found
	for _, m := range s.Messages(room) {
		text := m.Text
		if len(m.Edits) > 0 {
			text = m.Edits[0]
		}
		if f := markRE.FindStringSubmatch(text); f != nil {
			var g, st int
			fmt.Sscanf(f[1], "%d", &g)
			fmt.Sscanf(f[2], "%d", &st)
			out = append(out, found{s: f[0], g: g, step: st})
		}
	}
	return out
}
