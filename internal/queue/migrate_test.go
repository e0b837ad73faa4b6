package queue

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/dispatch"
)

// legacyConsumers replaces q's consumers by those of the herald that held
// one notification per partition at a time (herald-p<N>, MaxAckPending 1,
// no priority group), as a data dir of that version has them.
func legacyConsumers(t *testing.T, q *Queue) []jetstream.Consumer {
	t.Helper()
	ctx := t.Context()
	out := make([]jetstream.Consumer, q.cfg.Partitions)
	for p := range q.cfg.Partitions {
		if err := q.stream.DeleteConsumer(ctx, consumerName(p)); err != nil {
			t.Fatal(err)
		}
		c, err := q.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:        legacyConsumerName(p),
			FilterSubjects: partitionFilters(p),
			DeliverPolicy:  jetstream.DeliverAllPolicy,
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        30 * time.Second,
			MaxAckPending:  1,
			MaxDeliver:     -1,
		})
		if err != nil {
			t.Fatal(err)
		}
		out[p] = c
	}
	return out
}

// A data dir of the older design, with a group whose head waits out a long
// NakWithDelay and notifications behind it, is taken over at start: the
// new consumers start right after the old ones' ack floors, deliver what
// was not acknowledged, in order, and nothing acknowledged again; the old
// consumers are gone.
func TestUpgradeFromOneInHandPerPartition(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(func(c *Config) { c.Partitions = 2 })
	old := openTest(t, dir, cfg)
	legacy := legacyConsumers(t, old.q)

	part := Partition("g", "", cfg.Partitions)
	var ids []string
	for range 4 {
		ids = append(ids, mustPut(t, old.q, notif("g", heraldv1.Severity_SEVERITY_CRITICAL)))
	}
	other := mustPut(t, old.q, notif("", heraldv1.Severity_SEVERITY_INFO))
	// The old herald delivered the first, and was retrying the second
	// with a long backoff when it was upgraded.
	fetchOne := func(c jetstream.Consumer) jetstream.Msg {
		t.Helper()
		batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			return m
		}
		t.Fatal("nothing fetched")
		return nil
	}
	if m := fetchOne(legacy[part]); m.Headers().Get(hdrID) != ids[0] {
		t.Fatalf("old consumer handed out %s first, want %s", m.Headers().Get(hdrID), ids[0])
	} else if err := m.DoubleAck(t.Context()); err != nil {
		t.Fatal(err)
	}
	m := fetchOne(legacy[part])
	if m.Headers().Get(hdrID) != ids[1] {
		t.Fatalf("old consumer handed out %s second, want %s", m.Headers().Get(hdrID), ids[1])
	}
	if err := m.NakWithDelay(time.Hour); err != nil {
		t.Fatal(err)
	}
	// Let the nak reach the server before it shuts down.
	waitFor(t, func() bool {
		ci, err := legacy[part].Info(t.Context())
		return err == nil && ci.NumAckPending == 1 && ci.NumRedelivered == 0 && ci.AckFloor.Stream > 0
	})
	old.q.Close()

	e := openTest(t, dir, cfg)
	names := e.q.stream.ConsumerNames(t.Context())
	var have []string
	for n := range names.Name() {
		have = append(have, n)
	}
	slices.Sort(have)
	if want := []string{consumerName(0), consumerName(1)}; !slices.Equal(have, want) {
		t.Errorf("consumers after the upgrade = %v, want %v", have, want)
	}
	ch := make(chan string, 8)
	consume(t, e.q, func(ctx context.Context, m dispatch.Message) dispatch.Outcome {
		ch <- m.Notification().GetId()
		return dispatch.Outcome{Action: dispatch.Ack}
	})
	got := map[string][]string{}
	for range 4 {
		id := recv(t, ch)
		g := "g"
		if id == other {
			g = "other"
		}
		got[g] = append(got[g], id)
	}
	if want := ids[1:]; strings.Join(got["g"], ",") != strings.Join(want, ",") {
		t.Errorf("group delivered %v after the upgrade, want %v (the first was acknowledged before)", got["g"], want)
	}
	if len(got["other"]) != 1 {
		t.Errorf("the other notification delivered %v, want [%s]", got["other"], other)
	}
	select {
	case id := <-ch:
		t.Errorf("delivered again after the upgrade: %s", id)
	case <-time.After(500 * time.Millisecond):
	}
}

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
	consume(t, e.q, func(ctx context.Context, m dispatch.Message) dispatch.Outcome {
		id := m.Notification().GetId()
		ch <- id
		switch {
		case id == first && m.Delivered() == 1:
			return dispatch.Outcome{Action: dispatch.DeadLetter, Reason: "refused"}
		case id == second:
			select {
			case <-replayed:
			default:
				// The group waits until the first is back.
				return dispatch.Outcome{Action: dispatch.Retry, Delay: 500 * time.Millisecond, Hold: dispatch.HoldRetrying}
			}
		}
		return dispatch.Outcome{Action: dispatch.Ack}
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
