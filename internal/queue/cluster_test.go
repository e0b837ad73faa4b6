package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus/testutil"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/internal/queue/queuetest"
	"github.com/herald-notify/herald/internal/store"
)

// Two herald replicas share a three-node cluster with streams at three
// replicas. Mid-run one NATS node dies and one herald replica stops;
// publishing and consuming go on, every acknowledged notification is
// delivered, a group keeps its order, and duplicates are counted.
func TestClusterSurvivesNodeLoss(t *testing.T) {
	const total = 200
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster and waits out a leader election")
	}
	cluster := queuetest.StartCluster(t, 3)
	srvs := cluster.Servers
	cfg := Config{URL: cluster.URL(), Replicas: 3, Partitions: 4, AckWait: 5 * time.Second, PublishTimeout: 10 * time.Second}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	replica := 0
	open := func() *Queue {
		replica++
		i := replica
		var q *Queue
		// Stream creation can race the cluster's first elections.
		waitFor(t, func() bool {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			var err error
			q, err = Open(ctx, cfg, Options{Logger: testLogger().With("replica", i)})
			return err == nil
		})
		t.Cleanup(func() { q.Close() })
		return q
	}
	q1, q2 := open(), open()

	info, err := q1.stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream is not replicated three times: %+v", info.Cluster)
	}

	var leader *server.Server
	for _, s := range srvs {
		if s.Name() == info.Cluster.Leader {
			leader = s
		}
	}
	if leader == nil {
		t.Fatalf("no server is the stream leader %q", info.Cluster.Leader)
	}

	var mu sync.Mutex
	deliveries := map[string]int{}
	var order = map[string][]string{} // group -> ids in first-delivery order
	handler := func(ctx context.Context, m delivery.Message) delivery.Outcome {
		n := m.Notification()
		mu.Lock()
		deliveries[n.Id]++
		if deliveries[n.Id] == 1 {
			order[n.GroupKey] = append(order[n.GroupKey], n.Id)
		}
		mu.Unlock()
		return delivery.Outcome{Action: delivery.Ack}
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	done1, done2 := make(chan struct{}), make(chan struct{})
	go func() { q1.Consume(ctx1, handler); close(done1) }()
	go func() { q2.Consume(ctx2, handler); close(done2) }()
	defer func() { cancel1(); cancel2() }()

	// put stores n like a caller that retries on Unavailable (Alertmanager
	// does), alternating between the two replicas.
	put := func(i int, n *heraldv1.Notification) {
		qs := []*Queue{q1, q2}
		for attempt := 0; ; attempt++ {
			q := qs[(i+attempt)%2]
			if i >= total/2 {
				q = q1 // q2 is gone
			}
			_, _, err := q.Put(t.Context(), n)
			if err == nil {
				return
			}
			if !errors.Is(err, store.ErrUnavailable) || attempt > 50 {
				t.Fatalf("Put %s: %v", n.Id, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	groups := []string{"ga", "gb", "gc", "gd", "ge", "gf"}
	published := map[string][]string{}
	var all []string
	for i := range total {
		if i == total/2 {
			// Kill the stream's leader node and a herald replica mid-run.
			leader.Shutdown()
			cancel2()
			<-done2
			q2.Close()
		}
		g := groups[i%len(groups)]
		n := notif(g, heraldv1.Severity_SEVERITY_CRITICAL)
		put(i, n)
		published[g] = append(published[g], n.Id)
		all = append(all, n.Id)
	}

	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range all {
			if deliveries[id] == 0 {
				return false
			}
		}
		return true
	})
	cancel1()
	<-done1
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, id := range all {
		dups += deliveries[id] - 1
	}
	if dups > 0 {
		// A node loss can cost an acknowledgement; the notification is
		// then delivered again. Count it, as the crash test does.
		t.Logf("%d duplicate deliveries of %d notifications", dups, total)
	}
	if dups > total/10 {
		t.Errorf("%d duplicate deliveries of %d notifications", dups, total)
	}
	for g, ids := range published {
		if strings.Join(order[g], ",") != strings.Join(ids, ",") {
			t.Errorf("group %s delivered in order %v, published %v", g, order[g], ids)
		}
	}
	if len(deliveries) != total {
		t.Errorf("%d distinct notifications delivered, want %d", len(deliveries), total)
	}
	// The surviving nodes still answer reads.
	if _, err := q1.Get(t.Context(), all[0]); err != nil {
		t.Errorf("Get after node loss: %v", err)
	}
}

// Replicas share the partitions: each serves its part and delivers, so
// more replicas deliver more at once. A replica that stops hands its
// partitions over: the others serve them without waiting out ack_wait,
// and every notification is delivered once, a group's in order.
func TestReplicasSharePartitions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster")
	}
	const parts = 6
	cluster := queuetest.StartCluster(t, 3)
	cfg := Config{URL: cluster.URL(), Replicas: 3, Partitions: parts, AckWait: 5 * time.Second, PublishTimeout: 10 * time.Second}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	delivered := map[string]int{}  // id -> deliveries
	by := map[int]int{}            // replica -> deliveries
	order := map[string][]string{} // group -> ids in first-delivery order
	type replica struct {
		q      *Queue
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func(i int) *replica {
		var q *Queue
		waitFor(t, func() bool {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			var err error
			q, err = Open(ctx, cfg, Options{Logger: testLogger().With("replica", i)})
			return err == nil
		})
		ctx, cancel := context.WithCancel(context.Background())
		r := &replica{q: q, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(r.done)
			q.Consume(ctx, func(ctx context.Context, m delivery.Message) delivery.Outcome {
				n := m.Notification()
				time.Sleep(20 * time.Millisecond) // a chat server's answer
				mu.Lock()
				defer mu.Unlock()
				delivered[n.Id]++
				by[i]++
				if delivered[n.Id] == 1 {
					order[n.GroupKey] = append(order[n.GroupKey], n.Id)
				}
				return delivery.Outcome{Action: delivery.Ack}
			})
		}()
		return r
	}
	stop := func(r *replica) {
		r.cancel()
		<-r.done
		r.q.Close()
	}
	rs := []*replica{start(0), start(1), start(2)}
	defer func() {
		for _, r := range rs[:2] {
			stop(r)
		}
	}()
	served := func(r *replica) int {
		n := 0
		if ps := r.q.parts.Load(); ps != nil {
			for _, pt := range *ps {
				if pt.serving() {
					n++
				}
			}
		}
		return n
	}
	// Each replica ends up serving its share, parts/3, once it has
	// been handed some work.
	var published map[string][]string
	publish := func(count int) {
		for i := range count {
			g := fmt.Sprintf("g%d", i%24)
			n := notif(g, heraldv1.Severity_SEVERITY_CRITICAL)
			if _, _, err := rs[0].q.Put(t.Context(), n); err != nil {
				t.Fatal(err)
			}
			if published == nil {
				published = map[string][]string{}
			}
			published[g] = append(published[g], n.Id)
		}
	}
	allDelivered := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ids := range published {
			for _, id := range ids {
				if delivered[id] == 0 {
					return false
				}
			}
		}
		return true
	}
	publish(240)
	waitFor(t, allDelivered)
	waitFor(t, func() bool { return served(rs[0]) == parts/3 && served(rs[1]) == parts/3 && served(rs[2]) == parts/3 })
	mu.Lock()
	for i := range 3 {
		if by[i] == 0 {
			t.Errorf("replica %d delivered nothing: %v", i, by)
		}
	}
	t.Logf("deliveries by replica: %v", by)
	mu.Unlock()

	// The third replica stops; its partitions are handed over.
	before := testutil.ToFloat64(rs[0].q.m.takeovers.WithLabelValues("partition")) + testutil.ToFloat64(rs[1].q.m.takeovers.WithLabelValues("partition"))
	publish(120)
	stop(rs[2])
	publish(120)
	waitFor(t, allDelivered)
	waitFor(t, func() bool { return served(rs[0])+served(rs[1]) == parts })
	after := testutil.ToFloat64(rs[0].q.m.takeovers.WithLabelValues("partition")) + testutil.ToFloat64(rs[1].q.m.takeovers.WithLabelValues("partition"))
	if after != before {
		t.Errorf("%v takeovers held a whole partition after a replica handed its partitions over", after-before)
	}
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, n := range delivered {
		dups += n - 1
	}
	if dups > 0 {
		t.Errorf("%d duplicate deliveries", dups)
	}
	for g, ids := range published {
		if strings.Join(order[g], ",") != strings.Join(ids, ",") {
			t.Errorf("group %s delivered in order %v, published %v", g, order[g], ids)
		}
	}
}
