package queue

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
)

// A replayed dead letter takes its place in its group's order among what
// still waits: replayed while the group's later notifications are parked,
// it is delivered before them.
func TestReplayTakesItsPlaceInTheGroup(t *testing.T) {
	e := newTest(t, func(c *Config) { c.Partitions = 1 })
	first := mustPut(t, e.q, notif("g", heraldv1.Severity_SEVERITY_CRITICAL))
	second := mustPut(t, e.q, notif("g", heraldv1.Severity_SEVERITY_CRITICAL))
	third := mustPut(t, e.q, notif("g", heraldv1.Severity_SEVERITY_CRITICAL))

	replayed := make(chan struct{})
	ch := make(chan string, 16)
	consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		id := m.Notification().GetId()
		ch <- id
		switch {
		case id == first && m.Delivered() == 1:
			return delivery.Outcome{Action: delivery.DeadLetter, Reason: "refused"}
		case id == second:
			select {
			case <-replayed:
			default:
				// The group waits until the first is back.
				return delivery.Outcome{Action: delivery.Retry, Delay: 500 * time.Millisecond, Hold: delivery.HoldRetrying}
			}
		}
		return delivery.Outcome{Action: delivery.Ack}
	})
	if got := recv(t, ch); got != first {
		t.Fatalf("first delivery %s, want %s", got, first)
	}
	if got := recv(t, ch); got != second {
		t.Fatalf("second delivery %s, want %s", got, second)
	}
	waitFor(t, func() bool { return testutil.ToFloat64(e.q.m.parked.WithLabelValues("retrying")) >= 1 })
	if _, err := e.q.ReplayDeadLetters(t.Context(), []string{first}, false); err != nil {
		t.Fatal(err)
	}
	// Let the replayed copy reach the parked group before it is due.
	waitFor(t, func() bool {
		keys, err := e.q.parkedKeys(t.Context(), 0)
		if err != nil || len(keys) != 1 {
			return false
		}
		pe, _, err := e.q.readPark(t.Context(), keys[0])
		return err == nil && len(pe.Items) == 3
	})
	close(replayed)
	var rest []string
	for len(rest) < 3 {
		id := recv(t, ch)
		if id == second && len(rest) == 0 {
			continue // retried before the replay was listed
		}
		rest = append(rest, id)
	}
	if want := []string{first, second, third}; strings.Join(rest, ",") != strings.Join(want, ",") {
		t.Errorf("after the replay delivered %v, want %v", rest, want)
	}
}
