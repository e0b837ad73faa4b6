package durability_test

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/queue"
	"github.com/herald-notify/herald/internal/queue/queuetest"
	"github.com/herald-notify/herald/internal/testutil"
)

// TestClusterWritesSurviveLeaderLoss: while herald writes to a three-node
// cluster without pause (notifications, delivery records, group messages),
// the node it is connected to, which leads the notification stream and
// both buckets, shuts down. New leaders are elected within a fraction of a
// second, well within publish_timeout, so every write must succeed: each
// is safe to send again (message-id dedup for notifications, compare-and-
// set for records, an overwrite for a group's message) and must be, rather
// than wait out publish_timeout for an answer that died with the node.
//
// What a failed write costs in herald serve (TestClusterNodeAndReplicaLoss
// logs it): a publish in flight gets a 503 after publish_timeout; a group
// whose message could not be recorded (SetParent) is split over two chat
// messages, the first never updated again; a lost ack is a redelivery.
func TestClusterWritesSurviveLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster and waits out a leader election")
	}
	srvs := queuetest.StartCluster(t, 3).Servers
	// herald connects to the node that will be lost (it learns the others
	// from the cluster and reconnects to one of them), and that node leads
	// the notification stream and both buckets: its loss hits every kind of
	// write, whether its request was on the lost connection or on its way
	// to the lost leader.
	target := srvs[0]
	cfg := queue.Config{URL: target.ClientURL(), Replicas: 3, Partitions: 2, PublishTimeout: 5 * time.Second}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var q *queue.Queue
	testutil.Eventually(t, waitLimit, "herald's streams and buckets on the cluster", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		var err error
		q, err = queue.Open(ctx, cfg, queue.Options{Logger: slog.New(slog.DiscardHandler)})
		return err == nil
	})
	t.Cleanup(func() { q.Close() })

	leadOn(t, srvs, target, queue.StreamName, "KV_"+queue.ThreadsBucket, "KV_"+queue.RecordsBucket)

	type failure struct {
		op   string
		took time.Duration
		err  error
	}
	var (
		mu       sync.Mutex
		failures []failure
		ok       atomic.Int64
		stop     = make(chan struct{})
		writers  sync.WaitGroup
	)
	write := func(op string, f func(ctx context.Context, i int) error) {
		writers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				if err := f(context.Background(), i); err != nil {
					mu.Lock()
					failures = append(failures, failure{op, time.Since(start), err})
					mu.Unlock()
					continue
				}
				ok.Add(1)
				time.Sleep(time.Millisecond)
			}
		})
	}
	for w := range 2 {
		write("SetParent", func(ctx context.Context, i int) error {
			ref := &heraldv1.MessageRef{ChannelId: "room", MessageId: fmt.Sprintf("m%d-%d", w, i)}
			return q.SetParent(ctx, sinkName, fmt.Sprintf("group-%d-%d", w, i%50), ref)
		})
		write("PutRecord", func(ctx context.Context, i int) error {
			rec := &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_RETRYING, Route: fmt.Sprint(i)}
			return q.PutRecord(ctx, fmt.Sprintf("REC%d%03d", w, i%100), rec)
		})
		write("Put", func(ctx context.Context, i int) error {
			n := &heraldv1.Notification{Id: fmt.Sprintf("LEADERLOSS%d%08d", w, i), Title: "t", GroupKey: fmt.Sprintf("g%d", i%5)}
			_, _, err := q.Put(ctx, n)
			return err
		})
	}

	testutil.Eventually(t, waitLimit, "writes to flow", func() bool { return ok.Load() >= 200 })
	before := ok.Load()
	t.Logf("shutting down %s, leader of the %s stream and the %s and %s buckets", target.Name(), queue.StreamName, queue.ThreadsBucket, queue.RecordsBucket)
	target.Shutdown()
	// Keep writing until writes have gone on well past the election.
	testutil.Eventually(t, waitLimit, "writes to go on after the node loss", func() bool { return ok.Load() >= before+400 })
	time.Sleep(cfg.PublishTimeout + time.Second) // let a write stuck on the dead node come back
	close(stop)
	writers.Wait()

	sort.Slice(failures, func(i, j int) bool { return failures[i].op < failures[j].op })
	for _, f := range failures {
		t.Errorf("%s failed after %v although the cluster had a new leader: %v", f.op, f.took.Round(time.Millisecond), f.err)
	}
	t.Logf("%d writes succeeded", ok.Load())
}

// leadOn asks each stream's leader to step down until target leads it.
func leadOn(t *testing.T, srvs []*server.Server, target *server.Server, streams ...string) {
	t.Helper()
	leaderOf := func(stream string) string {
		info, err := streamInfoOf(t.Context(), srvs, stream)
		if err != nil || info.Cluster == nil {
			return ""
		}
		return info.Cluster.Leader
	}
	nc, err := nats.Connect(target.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, st := range streams {
		for try := 0; ; try++ {
			l := leaderOf(st)
			if l == target.Name() {
				break
			}
			if try == 20 {
				t.Fatalf("%s still leads %s after %d step-downs", l, st, try)
			}
			if l != "" {
				// Each step-down elects one of the other replicas.
				if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+st, nil, 5*time.Second); err != nil {
					t.Logf("step down %s: %v", st, err)
				}
			}
			testutil.Eventually(t, waitLimit, st+" to have a leader", func() bool { return leaderOf(st) != "" })
		}
	}
}
