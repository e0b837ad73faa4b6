package dispatch

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/rocketchat"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

// TestWebhookStorm is the 429 storm at Rocket.Chat's real pace, in fake
// time: the real webhook sink against the fake Rocket.Chat (reached in
// process) with the default limit of 10 posts per 60s per hook, and 200
// notifications for one channel handed to the dispatcher the way the queue
// does (16 partitions, each in order, Retry waited out and redelivered).
// Every notification arrives exactly once, each group in order, no request
// is refused or sent before the hook's reset, and none waits for a
// redelivery.
func TestWebhookStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := rocketchattest.NewUnstarted() // 10 per 60s
		hook := srv.AddHook("alerts")
		rc, err := rocketchat.New("rocketchat", rocketchat.Config{
			Mode:       rocketchat.ModeWebhook,
			WebhookURL: secret.String("http://rocketchat.test" + hook),
		}, sinks.Deps{Transport: srv.Transport()})
		if err != nil {
			t.Fatal(err)
		}
		d, err := New(Options{
			Router: chainRouter{{Sink: "rocketchat"}},
			Sinks:  map[string]sinks.Sink{"rocketchat": rc},
			State:  NewMemoryState(),
			Config: testConfig(),
		})
		if err != nil {
			t.Fatal(err)
		}
		const total, groups, partitions = 200, 40, 16
		parts := make([][]*fakeMsg, partitions)
		for i := range total {
			g := i % groups
			parts[g%partitions] = append(parts[g%partitions], &fakeMsg{n: &heraldv1.Notification{
				Id:         fmt.Sprintf("n%03d", i),
				GroupKey:   fmt.Sprintf("g%02d", g),
				Title:      rocketchattest.StormTitle(i),
				Severity:   heraldv1.Severity_SEVERITY_WARNING,
				Status:     heraldv1.Status_STATUS_FIRING,
				ReceivedAt: timestamppb.Now(),
			}})
		}
		start := time.Now()
		var retries atomic.Int64
		var wg sync.WaitGroup
		for _, part := range parts {
			wg.Go(func() {
				for _, m := range part {
					for m.delivered = 1; ; m.delivered++ {
						out := d.Handle(t.Context(), m)
						if out.Action == delivery.Ack {
							break
						}
						if out.Action != delivery.Retry {
							t.Errorf("%s: %+v", m.n.GetId(), out)
							return
						}
						retries.Add(1)
						time.Sleep(out.Delay)
					}
				}
			})
		}
		wg.Wait()
		took := time.Since(start)

		res := rocketchattest.CheckStorm(t, srv, "alerts", total, groups)
		posts := res.Posts
		if n := retries.Load(); n != 0 {
			t.Errorf("%d redeliveries: notifications waited in line instead of joining a digest", n)
		}
		if len(posts) >= total/2 {
			t.Errorf("%d posts for %d notifications", len(posts), total)
		}
		var at []string
		for _, r := range posts {
			at = append(at, r.At.Sub(start).String())
		}
		t.Logf("%d notifications in %d posts (%d digests) over %v: %s", total, len(posts), res.Digests, took, strings.Join(at, " "))
	})
}
