package dispatch

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
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
				Title:      fmt.Sprintf("storm-%03d", i),
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

		title := regexp.MustCompile(`storm-\d{3}`)
		count := map[string]int{}
		order := map[int][]int{}
		msgs := srv.Messages("alerts")
		digests := 0
		for _, m := range msgs {
			found := title.FindAllString(m.Text, -1)
			if len(found) > 1 {
				digests++
			}
			if strings.Contains(m.Text, "more notifications") {
				t.Errorf("a digest left notifications out: %q", m.Text)
			}
			for _, id := range found {
				count[id]++
				var i int
				fmt.Sscanf(id, "storm-%d", &i)
				order[i%groups] = append(order[i%groups], i)
			}
		}
		for i := range total {
			if n := count[fmt.Sprintf("storm-%03d", i)]; n != 1 {
				t.Errorf("storm-%03d received %d times, want once", i, n)
			}
		}
		for g, got := range order {
			if !slices.IsSorted(got) {
				t.Errorf("group %d arrived in the order %v", g, got)
			}
		}
		var posts []rocketchattest.Request
		for _, r := range srv.Requests() {
			if r.Endpoint == "webhook" {
				posts = append(posts, r)
			}
		}
		// The fake records a request once it has answered it, so requests
		// answered at the same instant may be recorded in another order
		// than its rate limiter counted them. Put them back in the
		// limiter's order: by time, then, within the instant (one window),
		// by falling X-RateLimit-Remaining.
		slices.SortStableFunc(posts, func(a, b rocketchattest.Request) int {
			if c := a.At.Compare(b.At); c != 0 {
				return c
			}
			return cmp.Compare(remaining(t, b), remaining(t, a))
		})
		for i, r := range posts {
			if r.Status != 200 {
				t.Errorf("webhook request %d at %v answered %d", i, r.At.Sub(start), r.Status)
			}
			if i > 0 && posts[i-1].Header.Get("X-RateLimit-Remaining") == "0" && r.At.Before(posts[i-1].RateLimitReset()) {
				t.Errorf("webhook request %d sent at %v, before the reset at %v", i, r.At.Sub(start), posts[i-1].RateLimitReset().Sub(start))
			}
		}
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
		t.Logf("%d notifications in %d posts (%d digests) over %v: %s", total, len(posts), digests, took, strings.Join(at, " "))
	})
}

// remaining is the X-RateLimit-Remaining of a rate-limited answer.
func remaining(t *testing.T, r rocketchattest.Request) int {
	n, err := strconv.Atoi(r.Header.Get("X-RateLimit-Remaining"))
	if err != nil {
		t.Fatalf("webhook answer at %v without X-RateLimit-Remaining: %v", r.At, err)
	}
	return n
}
