package queue

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/dispatch"
	"github.com/herald-notify/herald/internal/queue/queuetest"
	"github.com/herald-notify/herald/internal/store"
)

// A notification without a record is found by the time in its id: among
// other traffic, across deleted messages, with its id made a second after
// it was stored (clock skew) or seconds before (a slow publish), and while
// a replay has set its record's seq to 0. What is not stored is not found.
func TestGetFindsPendingByIDTime(t *testing.T) {
	e := newTest(t, nil)
	ctx := t.Context()
	var ns []*heraldv1.Notification
	put := func(k int) {
		for range k {
			n := notif("g"+strconv.Itoa(len(ns)%9), heraldv1.Severity_SEVERITY_INFO)
			mustPut(t, e.q, n)
			ns = append(ns, n)
		}
	}
	put(150)
	ahead := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	ahead.Id = testID(time.Now().Add(time.Second), 1<<40)
	slow := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	slow.Id = testID(time.Now().Add(-4*time.Second), 1<<41)
	mustPut(t, e.q, ahead)
	mustPut(t, e.q, slow)
	ns = append(ns, ahead, slow)
	put(50)

	deleted := map[string]bool{}
	for seq := uint64(3); seq <= uint64(len(ns)); seq += 7 {
		raw, err := e.q.stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		deleted[storedID(raw.Header, raw.Subject)] = true
		if err := e.q.stream.DeleteMsg(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range ns {
		got, err := e.q.Get(ctx, n.Id)
		if deleted[n.Id] {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get(%s, deleted) = %v, want ErrNotFound", n.Id, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Get(%s) = %v", n.Id, err)
			continue
		}
		if !proto.Equal(got.Notification, n) || got.Delivery.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_PENDING {
			t.Errorf("Get(%s) = %v, want it PENDING", n.Id, got)
		}
	}
	for _, id := range []string{
		testID(time.Now(), 1<<50),
		testID(time.Now().Add(-time.Hour), 1),
		testID(time.Now().Add(time.Hour), 1),
		testID(time.UnixMilli(0), 1),
	} {
		if _, err := e.q.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%s, never stored) = %v, want ErrNotFound", id, err)
		}
	}

	// A replay resets the record to seq 0 before publishing its copy.
	n := ns[10]
	if _, err := e.q.updateRecord(ctx, n.Id, func(r *storedRecord, _ bool) bool {
		r.seq, r.rec = 0, &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_PENDING, Route: "replayed"}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := e.q.Get(ctx, n.Id); err != nil || !proto.Equal(got.Notification, n) || got.Delivery.GetRoute() != "replayed" {
		t.Errorf("Get(%s, record at seq 0) = %v, %v", n.Id, got, err)
	}
}

// The search reads at most findMaxReads messages; a notification beyond
// them is reported not found rather than searched for without end.
func TestGetSearchIsBounded(t *testing.T) {
	e := newTest(t, nil)
	ctx := t.Context()
	early := time.Now()
	for range 100 {
		mustPut(t, e.q, notif("g", heraldv1.Severity_SEVERITY_INFO))
	}
	// Stored after 100 others that came after its id's time.
	n := notif("g", heraldv1.Severity_SEVERITY_INFO)
	n.Id = testID(early, 1<<60)
	mustPut(t, e.q, n)
	e.q.findMaxReads = 30
	if _, err := e.q.Get(ctx, n.Id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get with a budget of 30 reads = %v, want ErrNotFound", err)
	}
	e.q.findMaxReads = defaultFindMaxReads
	if _, err := e.q.Get(ctx, n.Id); err != nil {
		t.Errorf("Get with the default budget = %v", err)
	}
}

// An id the service did not make holds no time: a notification stored
// with one is not found while it has no record, and is found once its
// first delivery attempt wrote one.
func TestGetPendingWithoutIDTime(t *testing.T) {
	e := newTest(t, nil)
	ctx := t.Context()
	n := notif("g", heraldv1.Severity_SEVERITY_INFO)
	n.Id = "01TEST000001"
	mustPut(t, e.q, n)
	if _, err := e.q.Get(ctx, n.Id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(%s) without a record = %v, want ErrNotFound", n.Id, err)
	}
	done := make(chan struct{})
	stop := consume(t, e.q, func(ctx context.Context, m dispatch.Message) dispatch.Outcome {
		defer close(done)
		if err := e.q.PutRecord(ctx, n.Id, &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_RETRYING}); err != nil {
			t.Error(err)
		}
		return dispatch.Outcome{Action: dispatch.Retry, Delay: time.Minute}
	})
	recv(t, done)
	stop()
	got, err := e.q.Get(ctx, n.Id)
	if err != nil || !proto.Equal(got.Notification, n) || got.Delivery.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_RETRYING {
		t.Errorf("Get(%s) with a record = %v, %v", n.Id, got, err)
	}
}

// openSubjectPerID starts the embedded server on dir (or connects to
// cfg.URL) with herald's streams, buckets and consumers as they were while
// each notification had its own subject: the stream on herald.n.*.*, each
// partition's consumer filtering herald.n.<p>.* with FilterSubject.
func openSubjectPerID(t *testing.T, dir string, cfg Config) *Queue {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	q := &Queue{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	q.m = newMetrics(q)
	start := func() error { return q.startEmbedded(dir) }
	if cfg.URL != "" {
		start = q.connect
	}
	if err := start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	var err error
	if q.js, err = jetstream.New(q.nc); err != nil {
		t.Fatal(err)
	}
	if q.stream, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "herald notifications, partitioned by group key",
		Subjects:    []string{subjectPrefix + "*.*"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      cfg.Retention,
		Duplicates:  cfg.DuplicateWindow,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Discard:     jetstream.DiscardOld,
		AllowDirect: true,
	}); err != nil {
		t.Fatal(err)
	}
	if q.dlq, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              DeadLetterName,
		Description:       "herald dead letters, one per notification id, kept until replayed",
		Subjects:          []string{dlqPrefix + "*"},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		Duplicates:        cfg.DuplicateWindow,
		Storage:           jetstream.FileStorage,
		Replicas:          cfg.Replicas,
		AllowDirect:       true,
	}); err != nil {
		t.Fatal(err)
	}
	if q.records, err = q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      RecordsBucket,
		Description: "herald delivery records by notification id",
		History:     1,
		TTL:         cfg.Retention,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}); err != nil {
		t.Fatal(err)
	}
	for p := range cfg.Partitions {
		c, err := q.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       consumerName(p),
			Description:   "herald partition " + strconv.Itoa(p),
			FilterSubject: legacySubject(p, "*"),
			DeliverPolicy: jetstream.DeliverAllPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cfg.AckWait,
			MaxAckPending: 1,
			MaxDeliver:    -1,
			Replicas:      cfg.Replicas,
		})
		if err != nil {
			t.Fatal(err)
		}
		q.consumers = append(q.consumers, c)
	}
	return q
}

// publishSubjectPerID stores n as herald did while each notification had
// its own subject (no id header) and returns its sequence.
func publishSubjectPerID(t testing.TB, q *Queue, n *heraldv1.Notification) uint64 {
	t.Helper()
	msg := &nats.Msg{Subject: legacySubject(Partition(n.GetGroupKey(), n.GetId(), q.cfg.Partitions), n.GetId()), Header: nats.Header{}}
	data, release, err := encodeNotification(n, msg.Header)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, dedupID(n))
	ack, err := q.js.PublishMsg(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// A data dir written while each notification had its own subject keeps
// working: the stream and consumers are updated in place, what was stored
// is delivered first and in order, without what was acknowledged, then what
// is stored now; Get, List and the dead letters (replay included) see old
// and new notifications alike.
func TestOpensDataDirOfSubjectPerID(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		testOpensSubjectPerID(t, testConfig(func(c *Config) { c.Partitions = 2 }))
	})
	t.Run("cluster", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts a three-node NATS cluster")
		}
		cluster := queuetest.StartCluster(t, 3)
		testOpensSubjectPerID(t, testConfig(func(c *Config) {
			c.Partitions, c.URL, c.Replicas, c.PublishTimeout = 2, cluster.URL(), 3, 10*time.Second
		}))
	})
}

func testOpensSubjectPerID(t *testing.T, cfg Config) {
	dir := t.TempDir()
	ctx := t.Context()

	old := openSubjectPerID(t, dir, cfg)
	dead := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	acked := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	pending := []*heraldv1.Notification{
		notif("g", heraldv1.Severity_SEVERITY_WARNING),
		notif("g", heraldv1.Severity_SEVERITY_WARNING),
	}
	foreign := notif("g", heraldv1.Severity_SEVERITY_INFO)
	foreign.Id = "01OLDTEST0001" // no time in it: found by subject
	pending = append(pending, foreign)
	seqs := map[string]uint64{}
	for _, n := range append([]*heraldv1.Notification{dead, acked}, pending...) {
		seqs[n.Id] = publishSubjectPerID(t, old, n)
	}
	part := Partition("g", "", cfg.Partitions)
	batch, err := old.consumers[part].Fetch(2, jetstream.FetchMaxWait(5*time.Second), jetstream.FetchPriorityGroup(priorityGroup))
	if err != nil {
		t.Fatal(err)
	}
	var fetched []string
	for m := range batch.Messages() {
		md, _ := m.Metadata()
		fetched = append(fetched, m.Subject())
		if md.Sequence.Stream == seqs[dead.Id] {
			if err := old.deadLetterRaw(ctx, m.Data(), m.Headers(), md.Sequence.Stream, dead.Id, "permanent", false); err != nil {
				t.Fatal(err)
			}
			if err := old.setState(ctx, dead.Id, md.Sequence.Stream, heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED); err != nil {
				t.Fatal(err)
			}
		} else if err := old.setState(ctx, acked.Id, md.Sequence.Stream, heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED); err != nil {
			t.Fatal(err)
		}
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{legacySubject(part, dead.Id), legacySubject(part, acked.Id)}; !slices.Equal(fetched, want) {
		t.Fatalf("old consumer handed out %v, want %v", fetched, want)
	}
	if raw, err := old.dlq.GetLastMsgForSubject(ctx, dlqPrefix+dead.Id); err != nil || raw.Header.Get(hdrID) != "" {
		t.Fatalf("old dead letter = %v, %v; want one without an id header", raw, err)
	}
	old.Close()

	e := openTest(t, dir, cfg)
	info, err := e.q.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"herald.n.*", "herald.n.*.*", "herald.w.*", "herald.s.*.*"}; !slices.Equal(info.Config.Subjects, want) {
		t.Errorf("stream subjects = %v, want %v", info.Config.Subjects, want)
	}
	for p := range cfg.Partitions {
		ci, err := e.q.consumers[p].Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ci.Config.FilterSubject != "" || !slices.Equal(ci.Config.FilterSubjects, append(partitionFilters(p), wakeSubject(p))) {
			t.Errorf("consumer %d filters %q %v, want %v", p, ci.Config.FilterSubject, ci.Config.FilterSubjects, append(partitionFilters(p), wakeSubject(p)))
		}
		if want := uint64(0); p == part {
			want = uint64(len(pending))
			if ci.NumPending != want {
				t.Errorf("consumer %d: %d pending after the update, want %d", p, ci.NumPending, want)
			}
		}
	}

	for _, n := range append([]*heraldv1.Notification{dead, acked}, pending...) {
		got, err := e.q.Get(ctx, n.Id)
		if err != nil || !proto.Equal(got.Notification, n) {
			t.Errorf("Get(%s) of the old layout = %v, %v", n.Id, got, err)
		}
	}
	fresh := []*heraldv1.Notification{notif("g", heraldv1.Severity_SEVERITY_INFO), notif("g", heraldv1.Severity_SEVERITY_INFO)}
	for _, n := range fresh {
		mustPut(t, e.q, n)
		if got, err := e.q.Get(ctx, n.Id); err != nil || !proto.Equal(got.Notification, n) {
			t.Errorf("Get(%s) = %v, %v", n.Id, got, err)
		}
	}
	list, err := e.q.List(ctx, store.Query{PageSize: 20})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{fresh[1].Id, fresh[0].Id, foreign.Id, pending[1].Id, pending[0].Id, acked.Id, dead.Id}
	if got := summaryIDs(list.Items); !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
	dl, err := e.q.ListDeadLetters(ctx, 10, "")
	if err != nil || len(dl.Items) != 1 || !proto.Equal(dl.Items[0].Notification, dead) {
		t.Fatalf("dead letters = %v, %v; want the old one", dl.Items, err)
	}

	var mu sync.Mutex
	var order []string
	ch := make(chan string, 16)
	consume(t, e.q, func(ctx context.Context, m dispatch.Message) dispatch.Outcome {
		id := m.Notification().GetId()
		mu.Lock()
		order = append(order, id)
		mu.Unlock()
		ch <- id
		return dispatch.Outcome{Action: dispatch.Ack}
	})
	for range len(pending) + len(fresh) {
		recv(t, ch)
	}
	if ids, err := e.q.ReplayDeadLetters(ctx, []string{dead.Id}, false); err != nil || len(ids) != 1 {
		t.Fatalf("Replay of the old dead letter = %v, %v", ids, err)
	}
	recv(t, ch)
	mu.Lock()
	want = []string{pending[0].Id, pending[1].Id, foreign.Id, fresh[0].Id, fresh[1].Id, dead.Id}
	if !slices.Equal(order, want) {
		t.Errorf("delivered %v, want %v", order, want)
	}
	mu.Unlock()
	sr, _, err := e.q.loadRecord(ctx, dead.Id)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := e.q.stream.GetMsg(ctx, sr.seq)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Subject != partitionSubject(part) || raw.Header.Get(hdrID) != dead.Id {
		t.Errorf("replayed copy at seq %d on %s with %v; want on %s with its id header", sr.seq, raw.Subject, raw.Header, partitionSubject(part))
	}
	waitFor(t, func() bool {
		d, _, _, err := e.q.backlog(ctx)
		return err == nil && d == 0
	})
}
