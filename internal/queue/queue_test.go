package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/internal/store"
)

type testEnv struct {
	q   *Queue
	dir string
	reg *prometheus.Registry
}

func testConfig(mod func(*Config)) Config {
	cfg := Config{Partitions: 4, AckWait: 5 * time.Second, PublishTimeout: 2 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	return cfg
}

func openTest(t testing.TB, dir string, cfg Config) *testEnv {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	q, err := Open(t.Context(), cfg, Options{
		DataDir:    dir,
		Logger:     testLogger(),
		Registerer: reg,
		Propagator: propagation.TraceContext{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return &testEnv{q: q, dir: dir, reg: reg}
}

func newTest(t testing.TB, mod func(*Config)) *testEnv {
	t.Helper()
	return openTest(t, t.TempDir(), testConfig(mod))
}

var idSeq struct {
	sync.Mutex
	n int
}

func notif(group string, sev heraldv1.Severity) *heraldv1.Notification {
	idSeq.Lock()
	idSeq.n++
	n := idSeq.n
	idSeq.Unlock()
	return &heraldv1.Notification{
		Id:         testID(time.Now(), uint64(n)),
		Source:     "test",
		Severity:   sev,
		Status:     heraldv1.Status_STATUS_FIRING,
		Title:      fmt.Sprintf("notification %d", n),
		GroupKey:   group,
		Labels:     map[string]string{"alertname": "Test"},
		ReceivedAt: timestamppb.Now(),
	}
}

// testID makes an id as the service does (internal/service newID): 26
// Crockford base32 digits, Unix milliseconds then 80 bits, here n instead
// of random bits. Get relies on the time in it.
func testID(at time.Time, n uint64) string {
	const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	hi, lo := uint64(at.UnixMilli())<<16, n
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

func mustPut(t testing.TB, q *Queue, n *heraldv1.Notification) string {
	t.Helper()
	id, dup, err := q.Put(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	if dup {
		t.Fatalf("Put(%s): unexpected duplicate of %s", n.Id, id)
	}
	return id
}

// consume runs Consume in the background; the returned stop cancels it and
// waits for it to return.
func consume(t *testing.T, q *Queue, h Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Consume(ctx, h); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

// recv waits for the next value on ch, failing the test after a generous
// deadline so a broken queue cannot hang the suite.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for the queue")
		panic("unreachable")
	}
}

func TestPutGet(t *testing.T) {
	e := newTest(t, nil)
	n := notif("g1", heraldv1.Severity_SEVERITY_CRITICAL)
	id := mustPut(t, e.q, n)
	if id != n.Id {
		t.Fatalf("Put returned id %q, want %q", id, n.Id)
	}
	got, err := e.q.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.Notification, n) {
		t.Errorf("Get notification = %v, want %v", got.Notification, n)
	}
	if got.Delivery.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_PENDING {
		t.Errorf("state = %v, want PENDING", got.Delivery.GetState())
	}
	if _, err := e.q.Get(t.Context(), "01NOPE"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := e.q.Get(t.Context(), "bad.id"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(bad.id) = %v, want ErrNotFound", err)
	}
	if _, _, err := e.q.Put(t.Context(), &heraldv1.Notification{Id: "a.b"}); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Put(id a.b) = %v, want a non-Unavailable error", err)
	}
}

func TestPutDedup(t *testing.T) {
	e := newTest(t, nil)
	ctx := t.Context()

	first := notif("g", heraldv1.Severity_SEVERITY_WARNING)
	first.IdempotencyKey = "am/receiver/group/firing/abc"
	mustPut(t, e.q, first)

	second := notif("g", heraldv1.Severity_SEVERITY_WARNING)
	second.IdempotencyKey = first.IdempotencyKey
	id, dup, err := e.q.Put(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	if !dup || id != first.Id {
		t.Errorf("Put(same key) = %q, dup=%v; want %q, dup=true", id, dup, first.Id)
	}

	// A key that is not plain ASCII is hashed, still deduplicated.
	odd := notif("g", heraldv1.Severity_SEVERITY_WARNING)
	odd.IdempotencyKey = "schlüssel mit\nzeilenumbruch"
	mustPut(t, e.q, odd)
	odd2 := notif("g", heraldv1.Severity_SEVERITY_WARNING)
	odd2.IdempotencyKey = odd.IdempotencyKey
	if id, dup, err := e.q.Put(ctx, odd2); err != nil || !dup || id != odd.Id {
		t.Errorf("Put(same odd key) = %q, %v, %v; want %q, true, nil", id, dup, err, odd.Id)
	}

	// Retrying the very same notification (a lost ack) is not a duplicate
	// for the caller.
	again := notif("g", heraldv1.Severity_SEVERITY_INFO)
	mustPut(t, e.q, again)
	if id, dup, err := e.q.Put(ctx, again); err != nil || dup || id != again.Id {
		t.Errorf("Put(same notification again) = %q, %v, %v; want %q, false, nil", id, dup, err, again.Id)
	}

	info, err := e.q.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 {
		t.Errorf("stream holds %d messages, want 3", info.State.Msgs)
	}
	if got := testutil.ToFloat64(e.q.m.publishes.WithLabelValues("duplicate")); got != 2 {
		t.Errorf("duplicate publishes = %v, want 2", got)
	}
	if got := testutil.ToFloat64(e.q.m.publishes.WithLabelValues("stored")); got != 4 {
		t.Errorf("stored publishes = %v, want 4", got)
	}
}

// Put stores the message and nothing else: the notification is PENDING
// until its first delivery attempt writes a record, and Get finds it by the
// time in its id meanwhile. A retried Put (lost ack) stores nothing twice and is no
// duplicate for its caller.
func TestPutWritesOnlyTheMessage(t *testing.T) {
	e := newTest(t, nil)
	ctx := t.Context()
	n := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	n.IdempotencyKey = "k1"
	mustPut(t, e.q, n)
	if rec, err := e.q.Record(ctx, n.Id); err != nil || rec != nil {
		t.Fatalf("Record after Put = %v, %v; want none", rec, err)
	}
	got, err := e.q.Get(ctx, n.Id)
	if err != nil || got.Notification.GetId() != n.Id || got.Delivery.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_PENDING {
		t.Fatalf("Get without record = %v, %v; want it PENDING", got, err)
	}
	id, dup, err := e.q.Put(ctx, n)
	if err != nil || dup || id != n.Id {
		t.Fatalf("retried Put = %q, %v, %v; want %q, not a duplicate", id, dup, err, n.Id)
	}
	info, err := e.q.records.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Values() != 0 {
		t.Errorf("records bucket holds %d values after two Puts, want 0", info.Values())
	}
}

func TestListPagingAndFilters(t *testing.T) {
	e := newTest(t, nil)
	ctx := t.Context()
	sevs := []heraldv1.Severity{
		heraldv1.Severity_SEVERITY_CRITICAL, heraldv1.Severity_SEVERITY_WARNING, heraldv1.Severity_SEVERITY_INFO,
	}
	var ids []string
	for i := range 25 {
		ids = append(ids, mustPut(t, e.q, notif(fmt.Sprintf("g%d", i%5), sevs[i%3])))
	}
	// Newest first, in pages of 10, each id once.
	var got []string
	token := ""
	pages := 0
	for {
		page, err := e.q.List(ctx, store.Query{PageSize: 10, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range page.Items {
			got = append(got, it.Notification.GetId())
		}
		if page.NextPageToken == "" {
			break
		}
		token = page.NextPageToken
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if len(got) != 25 {
		t.Fatalf("listed %d notifications, want 25", len(got))
	}
	for i, id := range got {
		if want := ids[len(ids)-1-i]; id != want {
			t.Fatalf("item %d = %s, want %s (newest first)", i, id, want)
		}
	}

	// Severity filter.
	page, err := e.q.List(ctx, store.Query{PageSize: 100, Severity: heraldv1.Severity_SEVERITY_CRITICAL})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 9 {
		t.Errorf("critical: %d items, want 9", len(page.Items))
	}
	for _, it := range page.Items {
		if it.Notification.GetSeverity() != heraldv1.Severity_SEVERITY_CRITICAL {
			t.Errorf("critical filter returned %v", it.Notification.GetSeverity())
		}
	}

	// State filter reads the delivery records.
	delivered := &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, DeliveredBy: "rocketchat"}
	for _, id := range []string{ids[3], ids[7]} {
		if err := e.q.PutRecord(ctx, id, delivered); err != nil {
			t.Fatal(err)
		}
	}
	page, err = e.q.List(ctx, store.Query{PageSize: 100, State: heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || page.Items[0].Notification.GetId() != ids[7] || page.Items[1].Notification.GetId() != ids[3] {
		t.Errorf("delivered filter = %v, want [%s %s]", summaryIDs(page.Items), ids[7], ids[3])
	}
	if page.Items[0].Delivery.GetDeliveredBy() != "rocketchat" {
		t.Errorf("record not returned with the notification: %v", page.Items[0].Delivery)
	}
	page, err = e.q.List(ctx, store.Query{PageSize: 100, State: heraldv1.DeliveryState_DELIVERY_STATE_PENDING})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 23 {
		t.Errorf("pending filter: %d items, want 23", len(page.Items))
	}
}

func summaryIDs(items []*heraldv1.NotificationSummary) []string {
	var ids []string
	for _, it := range items {
		ids = append(ids, it.Notification.GetId())
	}
	return ids
}

func TestListBadPageToken(t *testing.T) {
	e := newTest(t, nil)
	mustPut(t, e.q, notif("g", heraldv1.Severity_SEVERITY_INFO))
	for _, tok := range []string{"x", "12", encodePageToken(5) + "A", "aHExOjA", "!!!"} {
		if _, err := e.q.List(t.Context(), store.Query{PageSize: 5, PageToken: tok}); !errors.Is(err, store.ErrBadPageToken) {
			t.Errorf("List(token %q) = %v, want ErrBadPageToken", tok, err)
		}
		if _, err := e.q.ListDeadLetters(t.Context(), 5, tok); !errors.Is(err, store.ErrBadPageToken) {
			t.Errorf("ListDeadLetters(token %q) = %v, want ErrBadPageToken", tok, err)
		}
	}
	// An empty store lists nothing, without a token.
	e2 := newTest(t, nil)
	page, err := e2.q.List(t.Context(), store.Query{PageSize: 5})
	if err != nil || len(page.Items) != 0 || page.NextPageToken != "" {
		t.Errorf("List(empty) = %v, %v", page, err)
	}
}

func TestRecords(t *testing.T) {
	e := newTest(t, nil)
	ctx := t.Context()
	if rec, err := e.q.Record(ctx, "01UNKNOWN"); err != nil || rec != nil {
		t.Errorf("Record(unknown) = %v, %v; want nil, nil", rec, err)
	}

	// The handler of a message writes its record: it must say where the
	// message sits, so Get reads it by sequence.
	n := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	mustPut(t, e.q, n)
	early := &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_RETRYING, Route: "r1"}
	seqs := make(chan uint64, 1)
	stop := consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		if rec, err := e.q.Record(ctx, n.Id); err != nil || rec != nil {
			t.Errorf("Record in handler = %v, %v; want none", rec, err)
		}
		if err := e.q.PutRecord(ctx, n.Id, early); err != nil {
			t.Error(err)
		}
		// A second write goes straight out with the revision the first
		// returned; it must land, not be lost to a stale revision.
		early.Route = "r2"
		if err := e.q.PutRecord(ctx, n.Id, early); err != nil {
			t.Error(err)
		}
		seqs <- m.(*Message).Sequence()
		return delivery.Outcome{Action: delivery.Ack}
	})
	seq := recv(t, seqs)
	stop()
	got, err := e.q.Get(ctx, n.Id)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.Delivery, early) {
		t.Errorf("record = %v, want the handler's %v", got.Delivery, early)
	}
	sr, _, err := e.q.loadRecord(ctx, n.Id)
	if err != nil || sr.seq != seq {
		t.Errorf("record seq = %d, %v; want the message's %d", sr.seq, err, seq)
	}

	rec := &heraldv1.DeliveryRecord{
		State:       heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED,
		DeliveredBy: "slack",
		Sinks: []*heraldv1.SinkDelivery{
			{Sink: "rocketchat", State: heraldv1.DeliveryState_DELIVERY_STATE_FAILED, Attempts: 3, ErrorClass: "retryable"},
			{Sink: "slack", State: heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, Attempts: 1, Message: &heraldv1.MessageRef{ChannelId: "C1", MessageId: "1.2"}},
		},
	}
	if err := e.q.PutRecord(ctx, n.Id, rec); err != nil {
		t.Fatal(err)
	}
	back, err := e.q.Record(ctx, n.Id)
	if err != nil || !proto.Equal(back, rec) {
		t.Errorf("Record = %v, %v; want %v", back, err, rec)
	}
	if sr2, _, _ := e.q.loadRecord(ctx, n.Id); sr2.seq != sr.seq {
		t.Errorf("PutRecord changed seq %d -> %d", sr.seq, sr2.seq)
	}
}

func TestRecordsConcurrentWriters(t *testing.T) {
	e := newTest(t, nil)
	ctx := t.Context()
	n := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if err := e.q.PutRecord(ctx, n.Id, &heraldv1.DeliveryRecord{Route: fmt.Sprint(i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	rec, err := e.q.Record(ctx, n.Id)
	if err != nil || rec == nil {
		t.Errorf("record after concurrent writes = %v, %v; want one of them", rec, err)
	}
}

func TestParents(t *testing.T) {
	e := newTest(t, nil)
	ctx := t.Context()
	group := `{}/{severity="critical"}:{alertname="Disk full", instance="db-1:9100"}`
	if ref, err := e.q.Parent(ctx, "rocketchat", group); err != nil || ref != nil {
		t.Errorf("Parent(unset) = %v, %v; want nil", ref, err)
	}
	rc := &heraldv1.MessageRef{ChannelId: "GENERAL", MessageId: "abc123"}
	sl := &heraldv1.MessageRef{ChannelId: "C0123", MessageId: "1712345.000100", ThreadId: "1712345.000001"}
	if err := e.q.SetParent(ctx, "rocketchat", group, rc); err != nil {
		t.Fatal(err)
	}
	if err := e.q.SetParent(ctx, "slack fallback/eu", group, sl); err != nil {
		t.Fatal(err)
	}
	for sink, want := range map[string]*heraldv1.MessageRef{"rocketchat": rc, "slack fallback/eu": sl} {
		got, err := e.q.Parent(ctx, sink, group)
		// posted_at is when it was stored: now.
		if err != nil || got.GetPostedAt() == nil || time.Since(got.GetPostedAt().AsTime()).Abs() > time.Minute {
			t.Errorf("Parent(%s) = %v, %v; want posted_at about now", sink, got, err)
		}
		if got != nil {
			got.PostedAt = nil
		}
		if !proto.Equal(got, want) {
			t.Errorf("Parent(%s) = %v, %v; want %v", sink, got, err, want)
		}
	}
	// A posted_at in the stored reference is kept.
	old := &heraldv1.MessageRef{ChannelId: "C", MessageId: "m", PostedAt: timestamppb.New(time.Unix(1700000000, 0))}
	if err := e.q.SetParent(ctx, "old", group, old); err != nil {
		t.Fatal(err)
	}
	if got, err := e.q.Parent(ctx, "old", group); err != nil || !proto.Equal(got, old) {
		t.Errorf("Parent(old) = %v, %v; want %v", got, err, old)
	}
	if ref, err := e.q.Parent(ctx, "rocketchat", group+"x"); err != nil || ref != nil {
		t.Errorf("Parent(other group) = %v, %v; want nil", ref, err)
	}
	// Forgetting a parent (the group resolved) makes it nil again, twice over.
	for range 2 {
		if err := e.q.SetParent(ctx, "rocketchat", group, nil); err != nil {
			t.Fatal(err)
		}
		if ref, err := e.q.Parent(ctx, "rocketchat", group); err != nil || ref != nil {
			t.Errorf("Parent(cleared) = %v, %v; want nil", ref, err)
		}
	}
	if got, err := e.q.Parent(ctx, "slack fallback/eu", group); err != nil || got.GetMessageId() != sl.GetMessageId() {
		t.Errorf("clearing one sink's parent changed another's: %v, %v", got, err)
	}
}

func TestConsumeOutcomes(t *testing.T) {
	e := newTest(t, nil)
	ackN := notif("a", heraldv1.Severity_SEVERITY_CRITICAL)
	retryN := notif("b", heraldv1.Severity_SEVERITY_CRITICAL)
	releaseN := notif("c", heraldv1.Severity_SEVERITY_CRITICAL)
	for _, n := range []*heraldv1.Notification{ackN, retryN, releaseN} {
		mustPut(t, e.q, n)
	}
	type seen struct {
		id        string
		delivered int
	}
	ch := make(chan seen, 16)
	consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		id := m.Notification().GetId()
		ch <- seen{id, m.Delivered()}
		switch {
		case id == retryN.Id && m.Delivered() == 1:
			return delivery.Outcome{Action: delivery.Retry, Delay: 50 * time.Millisecond}
		case id == releaseN.Id && m.Delivered() == 1:
			return delivery.Outcome{Action: delivery.Release}
		}
		return delivery.Outcome{Action: delivery.Ack}
	})
	count := map[string]int{}
	for count[ackN.Id]+count[retryN.Id]+count[releaseN.Id] < 5 {
		s := recv(t, ch)
		count[s.id]++
		if s.delivered != count[s.id] {
			t.Errorf("%s: Delivered() = %d on delivery %d", s.id, s.delivered, count[s.id])
		}
	}
	if count[ackN.Id] != 1 || count[retryN.Id] != 2 || count[releaseN.Id] != 2 {
		t.Errorf("deliveries = %v; want ack 1, retry 2, release 2", count)
	}
	// Everything is acknowledged now: nothing more arrives and depth drains.
	waitFor(t, func() bool {
		d, _, _, err := e.q.backlog(t.Context())
		return err == nil && d == 0
	})
	select {
	case s := <-ch:
		t.Errorf("unexpected extra delivery %v", s)
	default:
	}
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// groupsInPartitions returns group keys of n distinct partitions.
func groupsInPartitions(parts, n int) []string {
	seen := map[int]bool{}
	var out []string
	for i := 0; len(out) < n; i++ {
		g := fmt.Sprintf("group-%d", i)
		if p := Partition(g, "", parts); !seen[p] {
			seen[p] = true
			out = append(out, g)
		}
	}
	return out
}

// The dispatcher relies on this: while a group's head waits to be retried,
// its later notifications wait behind it (a resolved never overtakes its
// firing), and every other group, in its partition or not, flows.
func TestGroupOrderUnderRetry(t *testing.T) {
	e := newTest(t, func(c *Config) { c.Partitions = 1 })
	firing := notif("slow", heraldv1.Severity_SEVERITY_CRITICAL)
	resolved := notif("slow", heraldv1.Severity_SEVERITY_CRITICAL)
	resolved.Status = heraldv1.Status_STATUS_RESOLVED
	// With one partition every group shares it.
	others := []*heraldv1.Notification{
		notif("other-1", heraldv1.Severity_SEVERITY_INFO),
		notif("other-2", heraldv1.Severity_SEVERITY_WARNING),
		notif("", heraldv1.Severity_SEVERITY_INFO),
	}
	for _, n := range append([]*heraldv1.Notification{firing, resolved}, others...) {
		mustPut(t, e.q, n)
	}
	// Published while the group is parked: it joins its list.
	late := notif("slow", heraldv1.Severity_SEVERITY_CRITICAL)

	const retries = 3
	var mu sync.Mutex
	var order []string
	othersDone := make(chan struct{})
	seen := 0
	ch := make(chan string, 16)
	consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		id := m.Notification().GetId()
		mu.Lock()
		order = append(order, id)
		if m.Notification().GetGroupKey() != "slow" {
			if seen++; seen == len(others) {
				close(othersDone)
			}
		}
		mu.Unlock()
		ch <- id
		if id == firing.Id && m.Delivered() <= retries {
			if m.Delivered() == 1 {
				mustPut(t, e.q, late)
			}
			return delivery.Outcome{Action: delivery.Retry, Delay: 300 * time.Millisecond, Hold: delivery.HoldRetrying}
		}
		return delivery.Outcome{Action: delivery.Ack}
	})
	for range retries + 3 + len(others) {
		recv(t, ch)
	}
	<-othersDone
	mu.Lock()
	defer mu.Unlock()
	var slow []string
	firstSlowAck := -1
	for i, id := range order {
		switch id {
		case firing.Id, resolved.Id, late.Id:
			slow = append(slow, id)
			if id == resolved.Id && firstSlowAck < 0 {
				firstSlowAck = i
			}
		}
	}
	want := []string{firing.Id, firing.Id, firing.Id, firing.Id, resolved.Id, late.Id}
	if strings.Join(slow, ",") != strings.Join(want, ",") {
		t.Errorf("group order = %v, want %v", slow, want)
	}
	// Every other group was served before the retried group went on.
	for _, o := range others {
		i := slices.Index(order, o.Id)
		if i < 0 || i > firstSlowAck {
			t.Errorf("group %q delivered at %d, after the retried group's next (%d): it waited for it", o.GroupKey, i, firstSlowAck)
		}
	}
	if got := testutil.ToFloat64(e.q.m.parked.WithLabelValues("retrying")); got < 1 {
		t.Errorf("herald_queue_groups_held_total{hold=retrying} = %v, want at least 1", got)
	}
}

// A group that waits holds no place in hand: with max_in_hand 2, a parked
// group with many notifications does not keep others from flowing.
func TestParkedGroupFreesTheHand(t *testing.T) {
	e := newTest(t, func(c *Config) { c.Partitions = 1; c.MaxInHand = 2 })
	var broken []string
	for range 6 {
		broken = append(broken, mustPut(t, e.q, notif("broken", heraldv1.Severity_SEVERITY_CRITICAL)))
	}
	var healthy []string
	for i := range 6 {
		healthy = append(healthy, mustPut(t, e.q, notif(fmt.Sprintf("healthy-%d", i), heraldv1.Severity_SEVERITY_INFO)))
	}
	ch := make(chan string, 32)
	consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		n := m.Notification()
		if n.GetGroupKey() == "broken" {
			return delivery.Outcome{Action: delivery.Retry, Delay: time.Hour, Hold: delivery.HoldBroken, Route: "critical"}
		}
		ch <- n.GetId()
		return delivery.Outcome{Action: delivery.Ack}
	})
	got := map[string]bool{}
	for range healthy {
		got[recv(t, ch)] = true
	}
	for _, id := range healthy {
		if !got[id] {
			t.Errorf("healthy %s not delivered", id)
		}
	}
	waitFor(t, func() bool {
		return testutil.ToFloat64(e.q.m.parked.WithLabelValues("broken")) == 1
	})
	// The parked group lists all its notifications, in order.
	keys, err := e.q.parkedKeys(t.Context(), 0)
	if err != nil || len(keys) != 1 {
		t.Fatalf("parked keys = %v, %v; want one", keys, err)
	}
	pe, _, err := e.q.readPark(t.Context(), keys[0])
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, it := range pe.Items {
		raw, err := e.q.stream.GetMsg(t.Context(), it.Seq)
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, raw.Header.Get(hdrID))
	}
	if strings.Join(listed, ",") != strings.Join(broken, ",") {
		t.Errorf("parked list = %v, want %v", listed, broken)
	}
	if pe.Hold != "broken" || pe.Route != "critical" {
		t.Errorf("parked hold %q route %q, want broken, critical", pe.Hold, pe.Route)
	}
	// And the metrics say so.
	body := scrape(t, e.reg)
	for _, want := range []string{
		`herald_queue_groups_held{hold="broken"} 1`,
		`herald_queue_held_notifications 6`,
		`herald_queue_oldest_waiting_seconds{route="critical"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// A parked group survives a restart, even without its wake-up: the herald
// that serves the partition next finds it in the groups bucket and delivers
// its list in order.
func TestParkedGroupSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(func(c *Config) { c.Partitions = 1 })
	e := openTest(t, dir, cfg)
	var ids []string
	for range 3 {
		ids = append(ids, mustPut(t, e.q, notif("g", heraldv1.Severity_SEVERITY_CRITICAL)))
	}
	parked := make(chan struct{}, 8)
	stop := consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		parked <- struct{}{}
		return delivery.Outcome{Action: delivery.Retry, Delay: 2 * time.Second, Hold: delivery.HoldRetrying}
	})
	recv(t, parked)
	waitFor(t, func() bool { return testutil.ToFloat64(e.q.m.parked.WithLabelValues("retrying")) == 1 })
	stop()
	// Lose its wake-up, as when the herald that parked it stopped before
	// scheduling it: nothing else is in the partition to wake it.
	if err := e.q.stream.Purge(t.Context(), jetstream.WithPurgeSubject(schedulePrefix+">")); err != nil {
		t.Fatal(err)
	}
	e.q.Close()

	e2 := openTest(t, dir, cfg)
	ch := make(chan string, 8)
	consume(t, e2.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		ch <- m.Notification().GetId()
		return delivery.Outcome{Action: delivery.Ack}
	})
	var got []string
	for range ids {
		got = append(got, recv(t, ch))
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("after restart delivered %v, want %v", got, ids)
	}
	waitFor(t, func() bool {
		keys, err := e2.q.parkedKeys(t.Context(), 0)
		return err == nil && len(keys) == 0
	})
}

func TestRestartKeepsUnacked(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(func(c *Config) { c.Partitions = 1 })
	e := openTest(t, dir, cfg)
	var ns []*heraldv1.Notification
	for range 4 {
		n := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
		ns = append(ns, n)
		mustPut(t, e.q, n)
	}
	ch := make(chan string, 8)
	stop := consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		ch <- m.Notification().GetId()
		return delivery.Outcome{Action: delivery.Ack}
	})
	if got := recv(t, ch); got != ns[0].Id {
		t.Fatalf("first delivery %s, want %s", got, ns[0].Id)
	}
	// Stop consuming after the first ack; the second may be in flight.
	stop()
	var handled []string
	handled = append(handled, ns[0].Id)
	for len(ch) > 0 {
		handled = append(handled, <-ch)
	}
	if err := e.q.Close(); err != nil {
		t.Fatal(err)
	}

	e2 := openTest(t, dir, cfg)
	ch2 := make(chan string, 8)
	consume(t, e2.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		ch2 <- m.Notification().GetId()
		return delivery.Outcome{Action: delivery.Ack}
	})
	for _, n := range ns[len(handled):] {
		if got := recv(t, ch2); got != n.Id {
			t.Errorf("after restart got %s, want %s", got, n.Id)
		}
	}
	// Stored notifications and records survive too.
	for _, n := range ns {
		if _, err := e2.q.Get(t.Context(), n.Id); err != nil {
			t.Errorf("Get(%s) after restart: %v", n.Id, err)
		}
	}
}

func TestPutUnavailable(t *testing.T) {
	e := newTest(t, func(c *Config) { c.PublishTimeout = 300 * time.Millisecond })
	if err := e.q.Ready(t.Context()); err != nil {
		t.Fatalf("Ready before shutdown: %v", err)
	}
	e.q.srv.Shutdown()
	e.q.srv.WaitForShutdown()
	_, _, err := e.q.Put(t.Context(), notif("g", heraldv1.Severity_SEVERITY_CRITICAL))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Put with the server down = %v, want ErrUnavailable", err)
	}
	if err := e.q.Ready(t.Context()); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ready with the server down = %v, want ErrUnavailable", err)
	}
	if got := testutil.ToFloat64(e.q.m.publishes.WithLabelValues("error")); got != 1 {
		t.Errorf("error publishes = %v, want 1", got)
	}
}

func TestDeadLetterAndReplay(t *testing.T) {
	e := newTest(t, nil)
	ctx := t.Context()
	doomed := notif("g1", heraldv1.Severity_SEVERITY_CRITICAL)
	// Large enough to be stored compressed: the encoding must follow it
	// into the dead letters and back.
	doomed.Text = strings.Repeat("db-1: disk full on /var/lib/postgresql. ", 40)
	fine := notif("g2", heraldv1.Severity_SEVERITY_INFO)
	mustPut(t, e.q, doomed)
	mustPut(t, e.q, fine)

	type seen struct {
		id       string
		enqueued time.Time
	}
	ch := make(chan seen, 8)
	replayed := make(chan struct{})
	stop := consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		qm := m.(*Message)
		ch <- seen{m.Notification().GetId(), qm.Enqueued()}
		select {
		case <-replayed:
			return delivery.Outcome{Action: delivery.Ack}
		default:
		}
		if m.Notification().GetId() == doomed.Id {
			return delivery.Outcome{Action: delivery.DeadLetter, Reason: "budget of 24h spent;\nrocketchat: 503"}
		}
		return delivery.Outcome{Action: delivery.Ack}
	})
	var first time.Time
	for range 2 {
		if s := recv(t, ch); s.id == doomed.Id {
			first = s.enqueued
		}
	}
	var page store.Page
	waitFor(t, func() bool {
		var err error
		page, err = e.q.ListDeadLetters(ctx, 10, "")
		return err == nil && len(page.Items) == 1
	})
	dl := page.Items[0]
	if dl.Notification.GetId() != doomed.Id || !proto.Equal(dl.Notification, doomed) {
		t.Errorf("dead letter = %v, want %v", dl.Notification, doomed)
	}
	if dl.Delivery.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED {
		t.Errorf("dead letter state = %v", dl.Delivery.GetState())
	}
	waitFor(t, func() bool {
		rec, err := e.q.Record(ctx, doomed.Id)
		return err == nil && rec.GetState() == heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED
	})
	raw, err := e.q.dlq.GetLastMsgForSubject(ctx, dlqPrefix+doomed.Id)
	if err != nil {
		t.Fatal(err)
	}
	if enc := raw.Header.Get(hdrEncoding); enc != encodingS2 {
		t.Errorf("dead letter encoding = %q, want %q", enc, encodingS2)
	}
	if r := raw.Header.Get(hdrReason); r != "budget of 24h spent; rocketchat: 503" {
		t.Errorf("reason header = %q", r)
	}
	if got := testutil.ToFloat64(e.q.m.deadLetters); got != 1 {
		t.Errorf("dead letters counter = %v, want 1", got)
	}

	// Unknown ids replay nothing.
	if ids, err := e.q.ReplayDeadLetters(ctx, []string{doomed.Id, "01UNKNOWN"}, false); !errors.Is(err, store.ErrNotFound) || len(ids) != 0 {
		t.Errorf("Replay(with unknown) = %v, %v; want ErrNotFound", ids, err)
	}
	if page, _ := e.q.ListDeadLetters(ctx, 10, ""); len(page.Items) != 1 {
		t.Fatalf("a failed replay changed the dead letters: %d left", len(page.Items))
	}

	close(replayed)
	ids, err := e.q.ReplayDeadLetters(ctx, []string{doomed.Id}, false)
	if err != nil || len(ids) != 1 || ids[0] != doomed.Id {
		t.Fatalf("Replay = %v, %v", ids, err)
	}
	s := recv(t, ch)
	if s.id != doomed.Id {
		t.Fatalf("after replay got %s, want %s", s.id, doomed.Id)
	}
	if !s.enqueued.After(first) {
		t.Errorf("replayed copy enqueued %v, not after the first %v: the budget would not restart", s.enqueued, first)
	}
	stop()
	if page, err := e.q.ListDeadLetters(ctx, 10, ""); err != nil || len(page.Items) != 0 {
		t.Errorf("dead letters after replay = %d, %v; want none", len(page.Items), err)
	}
	// The notification is listed once, at its new place, and its record
	// was reset.
	list, err := e.q.List(ctx, store.Query{PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := summaryIDs(list.Items); len(got) != 2 || got[0] != doomed.Id || got[1] != fine.Id {
		t.Errorf("List after replay = %v, want [%s %s]", got, doomed.Id, fine.Id)
	}
	if got, err := e.q.Get(ctx, doomed.Id); err != nil || got.Delivery.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_PENDING {
		t.Errorf("Get after replay = %v, %v; want PENDING", got, err)
	}
	// Replaying what is no longer dead gives ErrNotFound; "all" of nothing
	// is nothing.
	if _, err := e.q.ReplayDeadLetters(ctx, []string{doomed.Id}, false); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Replay = %v, want ErrNotFound", err)
	}
	if ids, err := e.q.ReplayDeadLetters(ctx, nil, true); err != nil || len(ids) != 0 {
		t.Errorf("Replay(all) of none = %v, %v", ids, err)
	}
}

func TestReplayAll(t *testing.T) {
	e := newTest(t, nil)
	ctx := t.Context()
	var want []string
	for i := range 3 {
		n := notif(fmt.Sprintf("g%d", i), heraldv1.Severity_SEVERITY_CRITICAL)
		mustPut(t, e.q, n)
		want = append(want, n.Id)
	}
	var mu sync.Mutex
	dead := true
	delivered := make(chan string, 8)
	stop := consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		mu.Lock()
		defer mu.Unlock()
		if dead {
			return delivery.Outcome{Action: delivery.DeadLetter, Reason: "permanent"}
		}
		delivered <- m.Notification().GetId()
		return delivery.Outcome{Action: delivery.Ack}
	})
	waitFor(t, func() bool {
		page, err := e.q.ListDeadLetters(ctx, 2, "")
		return err == nil && len(page.Items) == 2 && page.NextPageToken != ""
	})
	mu.Lock()
	dead = false
	mu.Unlock()
	ids, err := e.q.ReplayDeadLetters(ctx, nil, true)
	if err != nil || len(ids) != 3 {
		t.Fatalf("Replay(all) = %v, %v", ids, err)
	}
	got := map[string]bool{}
	for range 3 {
		got[recv(t, delivered)] = true
	}
	stop()
	for _, id := range want {
		if !got[id] {
			t.Errorf("%s not delivered after replay", id)
		}
	}
}

// A payload that is not a Notification is dead-lettered under its id and
// never reaches the handler; one without a usable id under its sequence.
func TestUndecodablePayloadIsDeadLettered(t *testing.T) {
	for _, tc := range []struct {
		name   string
		msg    *nats.Msg
		wantID string
	}{
		{"id in header", &nats.Msg{Subject: partitionSubject(0), Header: nats.Header{hdrID: {"01GARBAGE"}}}, "01GARBAGE"},
		{"no id", &nats.Msg{Subject: partitionSubject(0)}, "seq-1"},
		{"id not a token", &nats.Msg{Subject: partitionSubject(0), Header: nats.Header{hdrID: {"a.b *"}}}, "seq-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTest(t, func(c *Config) { c.Partitions = 1 })
			ctx := t.Context()
			tc.msg.Data = []byte{0xff, 0xff, 0xff}
			if _, err := e.q.js.PublishMsg(ctx, tc.msg); err != nil {
				t.Fatal(err)
			}
			after := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
			mustPut(t, e.q, after)
			ch := make(chan string, 4)
			consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
				ch <- m.Notification().GetId()
				return delivery.Outcome{Action: delivery.Ack}
			})
			if got := recv(t, ch); got != after.Id {
				t.Errorf("handler got %s, want only %s", got, after.Id)
			}
			page, err := e.q.ListDeadLetters(ctx, 10, "")
			if err != nil || len(page.Items) != 1 || page.Items[0].Notification.GetId() != tc.wantID {
				t.Fatalf("dead letters = %v, %v; want the garbage as %s", page.Items, err, tc.wantID)
			}
			raw, err := e.q.dlq.GetLastMsgForSubject(ctx, dlqPrefix+tc.wantID)
			if err != nil || string(raw.Data) != "\xff\xff\xff" || raw.Header.Get(hdrUndecodable) == "" {
				t.Errorf("dead letter keeps raw bytes: %q %v %v", raw.Data, raw.Header, err)
			}
			if _, err := e.q.ReplayDeadLetters(ctx, []string{tc.wantID}, false); err == nil {
				t.Error("replaying an undecodable dead letter succeeded")
			}
			if ids, err := e.q.ReplayDeadLetters(ctx, nil, true); err != nil || len(ids) != 0 {
				t.Errorf("Replay(all) = %v, %v; want the undecodable skipped", ids, err)
			}
		})
	}
}

func TestTraceContextTravels(t *testing.T) {
	e := newTest(t, nil)
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(t.Context(), sc)
	if _, _, err := e.q.Put(ctx, notif("g", heraldv1.Severity_SEVERITY_CRITICAL)); err != nil {
		t.Fatal(err)
	}
	ch := make(chan trace.SpanContext, 1)
	consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		ch <- trace.SpanContextFromContext(ctx)
		return delivery.Outcome{Action: delivery.Ack}
	})
	got := recv(t, ch)
	if got.TraceID() != tid || got.SpanID() != sid || !got.IsRemote() {
		t.Errorf("handler span context = %v, want remote %v/%v", got, tid, sid)
	}
}

func TestShutdownReleasesInFlight(t *testing.T) {
	e := newTest(t, func(c *Config) { c.Partitions = 1 })
	n := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	mustPut(t, e.q, n)
	started := make(chan struct{})
	stop := consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		close(started)
		<-ctx.Done()
		return delivery.Outcome{Action: delivery.Release}
	})
	<-started
	stop()
	// Released at once: the next consumer gets it again without waiting
	// out ack_wait.
	ch := make(chan int, 1)
	consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		ch <- m.Delivered()
		return delivery.Outcome{Action: delivery.Ack}
	})
	if d := recv(t, ch); d != 2 {
		t.Errorf("redelivered with Delivered() = %d, want 2", d)
	}
}

func TestMetrics(t *testing.T) {
	e := newTest(t, nil)
	for range 3 {
		mustPut(t, e.q, notif("g", heraldv1.Severity_SEVERITY_CRITICAL))
	}
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(`
# HELP herald_queue_depth Notifications stored but not yet acknowledged by a dispatcher, over all partitions; queue-wide, so every herald replica reports the same value (aggregate with max).
# TYPE herald_queue_depth gauge
herald_queue_depth 3
# HELP herald_queue_dead_letters Dead letters currently kept, waiting for a replay; queue-wide like herald_queue_depth.
# TYPE herald_queue_dead_letters gauge
herald_queue_dead_letters 0
# HELP herald_queue_publishes_total Notifications handed to the queue, by result: stored, duplicate (idempotency key seen before) or error.
# TYPE herald_queue_publishes_total counter
herald_queue_publishes_total{result="duplicate"} 0
herald_queue_publishes_total{result="error"} 0
herald_queue_publishes_total{result="stored"} 3
`), "herald_queue_depth", "herald_queue_dead_letters", "herald_queue_publishes_total"); err != nil {
		t.Error(err)
	}
	_, oldest, _, err := e.q.backlog(t.Context())
	if err != nil || oldest <= 0 {
		t.Errorf("oldest pending age = %v, %v; want > 0", oldest, err)
	}
}

func TestSmallerPartitionCountRefusedWhileBacklogged(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, testConfig(func(c *Config) { c.Partitions = 8 }))
	groups := groupsInPartitions(8, 8)
	for _, g := range groups {
		mustPut(t, e.q, notif(g, heraldv1.Severity_SEVERITY_INFO))
	}
	e.q.Close()
	cfg := testConfig(func(c *Config) { c.Partitions = 2 })
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	q, err := Open(t.Context(), cfg, Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		q.Close()
		t.Fatal("Open with fewer partitions and a backlog beyond them succeeded")
	}
	if !strings.Contains(err.Error(), "partitions") {
		t.Errorf("error %q does not name the setting", err)
	}
}

// A parked group is a backlog too: its notifications are acknowledged, but
// it lives in a partition beyond the smaller count.
func TestSmallerPartitionCountRefusedWhileParked(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, testConfig(func(c *Config) { c.Partitions = 8 }))
	var g string
	for _, c := range groupsInPartitions(8, 8) {
		if Partition(c, "", 8) >= 2 {
			g = c
			break
		}
	}
	mustPut(t, e.q, notif(g, heraldv1.Severity_SEVERITY_INFO))
	stop := consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		return delivery.Outcome{Action: delivery.Retry, Delay: time.Hour, Hold: delivery.HoldRetrying}
	})
	waitFor(t, func() bool { return testutil.ToFloat64(e.q.m.parked.WithLabelValues("retrying")) == 1 })
	stop()
	// Its notification is acknowledged and its wake-up only scheduled:
	// only the groups bucket knows of it.
	if d, _, _, err := e.q.backlog(t.Context()); err != nil || d != 0 {
		t.Fatalf("backlog = %d, %v; want 0", d, err)
	}
	e.q.Close()
	cfg := testConfig(func(c *Config) { c.Partitions = 2 })
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	q, err := Open(t.Context(), cfg, Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		q.Close()
		t.Fatal("Open with fewer partitions and a parked group beyond them succeeded")
	}
	if !strings.Contains(err.Error(), "parked group") {
		t.Errorf("error %q does not say why", err)
	}
}

func TestEmbeddedListenWithToken(t *testing.T) {
	e := newTest(t, func(c *Config) {
		c.Listen = "127.0.0.1:0"
		c.Token = "s3cret"
	})
	addr := e.q.srv.ClientURL()
	if _, err := nats.Connect(addr); err == nil {
		t.Error("connected to the listen port without the token")
	}
	nc, err := nats.Connect(addr, nats.Token("s3cret"))
	if err != nil {
		t.Fatalf("connect with the token: %v", err)
	}
	nc.Close()
	mustPut(t, e.q, notif("g", heraldv1.Severity_SEVERITY_INFO))
}

// An operator deleting a partition's consumer must not stop that partition
// for good: the queue recreates it.
func TestConsumerRecreatedAfterDeletion(t *testing.T) {
	e := newTest(t, func(c *Config) { c.Partitions = 1 })
	e.q.pullExpiry = 2 * time.Second
	ch := make(chan string, 8)
	consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		ch <- m.Notification().GetId()
		return delivery.Outcome{Action: delivery.Ack}
	})
	first := notif("g", heraldv1.Severity_SEVERITY_INFO)
	mustPut(t, e.q, first)
	if got := recv(t, ch); got != first.Id {
		t.Fatalf("got %s, want %s", got, first.Id)
	}
	if err := e.q.stream.DeleteConsumer(t.Context(), consumerName(0)); err != nil {
		t.Fatal(err)
	}
	second := notif("g", heraldv1.Severity_SEVERITY_INFO)
	mustPut(t, e.q, second)
	// The recreated consumer starts from the beginning of the stream; the
	// dispatcher acknowledges already-delivered copies by their record.
	for got := recv(t, ch); got != second.Id; got = recv(t, ch) {
		if got != first.Id {
			t.Fatalf("got %s, want %s or a repeat of %s", got, second.Id, first.Id)
		}
	}
}

func TestPutTooLarge(t *testing.T) {
	e := newTest(t, nil)
	n := notif("g", heraldv1.Severity_SEVERITY_INFO)
	// Random printable text does not compress below the server's limit.
	r := rand.New(rand.NewPCG(1, 2))
	text := make([]byte, EmbeddedMaxPayload+EmbeddedMaxPayload/2)
	for i := range text {
		text[i] = byte(0x21 + r.IntN(0x7e-0x21))
	}
	n.Text = string(text)
	_, _, err := e.q.Put(t.Context(), n)
	if !errors.Is(err, ErrTooLarge) || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Put(12 MiB random) = %v, want ErrTooLarge and not Unavailable", err)
	}
	// What compresses below it is stored.
	n.Text = strings.Repeat("disk full on db-1 ", EmbeddedMaxPayload/16)
	id := mustPut(t, e.q, n)
	got, err := e.q.Get(t.Context(), id)
	if err != nil || got.Notification.GetText() != n.Text {
		t.Errorf("Get of a 9 MiB notification: %v, text intact %v", err, got.GetNotification().GetText() == n.Text)
	}
}

// A replay that stored its copy but failed before deleting the dead letter
// is repeated by the operator. The repeat must store no second copy and must
// not reset a record the dispatcher has since marked delivered.
func TestReplayRepeatedAfterPartialFailure(t *testing.T) {
	e := newTest(t, func(c *Config) { c.Partitions = 1 })
	ctx := t.Context()
	n := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	mustPut(t, e.q, n)
	dead := make(chan struct{})
	stop := consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		defer close(dead)
		return delivery.Outcome{Action: delivery.DeadLetter, Reason: "x"}
	})
	<-dead
	stop()
	var raw *jetstream.RawStreamMsg
	waitFor(t, func() bool {
		var err error
		raw, err = e.q.dlq.GetLastMsgForSubject(ctx, dlqPrefix+n.Id)
		return err == nil
	})
	if _, err := e.q.ReplayDeadLetters(ctx, []string{n.Id}, false); err != nil {
		t.Fatal(err)
	}
	// Put the dead letter back as if its deletion had failed, and let the
	// dispatcher deliver the replayed copy.
	back := &nats.Msg{Subject: raw.Subject, Header: nats.Header{}, Data: raw.Data}
	carryHeaders(back.Header, raw.Header)
	back.Header.Set(hdrSourceSeq, raw.Header.Get(hdrSourceSeq))
	if _, err := e.q.js.PublishMsg(ctx, back); err != nil {
		t.Fatal(err)
	}
	delivered := &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, DeliveredBy: "slack"}
	if err := e.q.PutRecord(ctx, n.Id, delivered); err != nil {
		t.Fatal(err)
	}
	before, _ := e.q.stream.Info(ctx)
	if ids, err := e.q.ReplayDeadLetters(ctx, []string{n.Id, n.Id}, false); err != nil || len(ids) != 1 {
		t.Fatalf("repeated Replay = %v, %v", ids, err)
	}
	after, _ := e.q.stream.Info(ctx)
	if after.State.Msgs != before.State.Msgs {
		t.Errorf("repeated replay stored %d more copies", after.State.Msgs-before.State.Msgs)
	}
	if rec, err := e.q.Record(ctx, n.Id); err != nil || !proto.Equal(rec, delivered) {
		t.Errorf("record after repeated replay = %v, %v; want the delivered one", rec, err)
	}
	if page, _ := e.q.ListDeadLetters(ctx, 10, ""); len(page.Items) != 0 {
		t.Errorf("dead letter not deleted by the repeated replay")
	}
}

// Groups of one partition are handled in parallel: the queue puts no bound
// of its own on them (the dispatcher bounds attempts in flight).
func TestGroupsRunInParallel(t *testing.T) {
	e := newTest(t, func(c *Config) { c.Partitions = 1 })
	const groups = 8
	for i := range groups {
		mustPut(t, e.q, notif(fmt.Sprintf("g-%d", i), heraldv1.Severity_SEVERITY_INFO))
	}
	var mu sync.Mutex
	running, peak := 0, 0
	all := make(chan struct{})
	ch := make(chan string, groups)
	consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		mu.Lock()
		running++
		peak = max(peak, running)
		if running == groups {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(10 * time.Second):
		}
		ch <- m.Notification().GetId()
		return delivery.Outcome{Action: delivery.Ack}
	})
	for range groups {
		recv(t, ch)
	}
	if peak != groups {
		t.Errorf("%d groups of one partition ran at once, want all %d", peak, groups)
	}
}

// A delivery that runs longer than ack_wait is kept alive: JetStream does
// not hand the message out again meanwhile (which would post it twice).
func TestSlowHandlerKeptAlive(t *testing.T) {
	e := newTest(t, func(c *Config) { c.AckWait = time.Second })
	n := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	mustPut(t, e.q, n)
	calls := make(chan int, 4)
	consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		calls <- m.Delivered()
		time.Sleep(3 * time.Second) // three ack_waits
		return delivery.Outcome{Action: delivery.Ack}
	})
	if d := recv(t, calls); d != 1 {
		t.Fatalf("first call with Delivered() = %d, want 1", d)
	}
	select {
	case d := <-calls:
		t.Errorf("handed out again (Delivered() = %d) while the first delivery ran", d)
	case <-time.After(5 * time.Second):
	}
}

// A key is remembered for duplicate_window and no longer: an Alertmanager
// reminder (repeat_interval) about the same alerts has the same key as the
// notification before it and must be stored once the window has passed.
func TestDuplicateWindowEnds(t *testing.T) {
	e := newTest(t, func(c *Config) { c.DuplicateWindow = time.Second })
	first := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	first.IdempotencyKey = "am:same-alerts"
	mustPut(t, e.q, first)
	copyOf := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	copyOf.IdempotencyKey = first.IdempotencyKey
	if id, dup, err := e.q.Put(t.Context(), copyOf); err != nil || !dup || id != first.Id {
		t.Fatalf("copy inside the window = %q, %v, %v; want a duplicate of %q", id, dup, err, first.Id)
	}
	time.Sleep(1500 * time.Millisecond)
	reminder := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	reminder.IdempotencyKey = first.IdempotencyKey
	if id, dup, err := e.q.Put(t.Context(), reminder); err != nil || dup || id != reminder.Id {
		t.Fatalf("reminder after the window = %q, %v, %v; want it stored as %q", id, dup, err, reminder.Id)
	}
}

// testLogger discards logs unless HERALD_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("HERALD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// scrape returns reg's metrics in the text format.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
