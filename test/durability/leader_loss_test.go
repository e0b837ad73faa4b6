package durability_test

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/queue"
)

// TestClusterWritesSurviveLeaderLoss: while herald writes to a three-node
// cluster without pause (notifications, delivery records, group messages),
// the node leading the group-message bucket shuts down. A new leader is
// elected well within publish_timeout, so every write must succeed: a
// write is safe to send again (message-id dedup for notifications, a
// plain overwrite for a group's message) and must be, rather than wait
// for an answer that died with the node.
//
// What a failed write costs in herald serve (TestClusterNodeAndReplicaLoss
// logs it): a publish in flight gets a 503 after publish_timeout; a group
// whose message could not be recorded (SetParent) is split over two chat
// messages, the first never updated again; a lost ack is a redelivery.
func TestClusterWritesSurviveLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster and waits out a leader election")
	}
	srvs := startCluster(t)
	var urls []string
	for _, s := range srvs {
		urls = append(urls, s.ClientURL())
	}
	cfg := queue.Config{URL: strings.Join(urls, ","), Replicas: 3, Partitions: 2, PublishTimeout: 5 * time.Second}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var q *queue.Queue
	waitFor(t, "herald's streams and buckets on the cluster", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		var err error
		q, err = queue.Open(ctx, cfg, queue.Options{Logger: slog.New(slog.DiscardHandler)})
		return err == nil
	})
	t.Cleanup(func() { q.Close() })

	// One node to lead both the notification stream and the group-message
	// bucket, so that its loss hits Put and SetParent.
	target := colocateLeaders(t, srvs, queue.StreamName, "KV_"+queue.ThreadsBucket)

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
		write("Put", func(ctx context.Context, i int) error {
			n := &heraldv1.Notification{Id: fmt.Sprintf("LEADERLOSS%d%08d", w, i), Title: "t", GroupKey: fmt.Sprintf("g%d", i%5)}
			_, _, err := q.Put(ctx, n)
			return err
		})
	}

	waitFor(t, "writes to flow", func() bool { return ok.Load() >= 200 })
	before := ok.Load()
	t.Logf("shutting down %s, leader of the %s stream and the %s bucket", target.Name(), queue.StreamName, queue.ThreadsBucket)
	target.Shutdown()
	// Keep writing until writes have gone on well past the election.
	waitFor(t, "writes to go on after the node loss", func() bool { return ok.Load() >= before+400 })
	time.Sleep(cfg.PublishTimeout + time.Second) // let a write stuck on the dead node come back
	close(stop)
	writers.Wait()

	sort.Slice(failures, func(i, j int) bool { return failures[i].op < failures[j].op })
	for _, f := range failures {
		t.Errorf("%s failed after %v although the cluster had a new leader: %v", f.op, f.took.Round(time.Millisecond), f.err)
	}
	t.Logf("%d writes succeeded", ok.Load())
}

// colocateLeaders asks the leader of stream b to step down until the
// server leading stream a leads b too, and returns that server.
func colocateLeaders(t *testing.T, srvs []*server.Server, a, b string) *server.Server {
	t.Helper()
	leaderOf := func(stream string) string {
		info, err := streamInfoOf(t.Context(), srvs, stream)
		if err != nil || info.Cluster == nil {
			return ""
		}
		return info.Cluster.Leader
	}
	nc, err := nats.Connect(srvs[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for range 20 {
		la, lb := leaderOf(a), leaderOf(b)
		if la != "" && la == lb {
			for _, s := range srvs {
				if s.Name() == la {
					return s
				}
			}
		}
		if la != "" && lb != "" {
			// Each step-down elects one of the other replicas.
			if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+b, nil, 5*time.Second); err != nil {
				t.Logf("step down %s: %v", b, err)
			}
		}
		waitFor(t, b+" to have a leader", func() bool { return leaderOf(b) != "" })
	}
	t.Fatalf("could not bring the leaders of %s and %s onto one server", a, b)
	return nil
}
