package durability_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/gen/herald/v1/heraldv1connect"
	"github.com/herald-notify/herald/internal/app/apptest"
	"github.com/herald-notify/herald/internal/queue"
	"github.com/herald-notify/herald/internal/queue/queuetest"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

const (
	clusterTotal      = 300
	clusterPublishers = 3
	// clusterKillAt is how many acknowledged publishes the node loss and
	// the replica stop wait for.
	clusterKillAt = 120
)

// TestClusterNodeAndReplicaLoss runs two herald replicas (in process) on a
// three-node NATS cluster on loopback, streams and buckets at three
// replicas, both delivering to one Rocket.Chat fake in REST mode. Clients
// publish to both replicas alternately; when the one they picked fails they
// try the other with the same idempotency key. Mid-run the node leading
// the notification stream is shut down and one herald replica stops. Every
// notification must reach the fake exactly once (REST message ids are
// herald's, the same on both replicas), a group's in publish order.
func TestClusterNodeAndReplicaLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster and waits out leader elections")
	}
	srvs := queuetest.StartCluster(t, 3).Servers
	var urls []string
	for _, s := range srvs {
		urls = append(urls, s.ClientURL())
	}

	fake := rocketchattest.NewServer(rocketchattest.WithRooms(room))
	t.Cleanup(fake.Close)
	fake.Inject(rocketchattest.Fault{Endpoint: "chat.sendMessage", Delay: 20 * time.Millisecond, AfterHandling: true})

	cfg := clusterYAML(strings.Join(urls, ","), fake)

	logger := func(name string) *slog.Logger {
		return slog.New(telemetry.NewLogHandler(slog.NewTextHandler(testutil.LogWriter(t, name), &slog.HandlerOptions{Level: slog.LevelWarn})))
	}
	h1 := apptest.Start(t, cfg, apptest.Options{Logger: logger("herald-1")})
	h2 := apptest.Start(t, cfg, apptest.Options{Logger: logger("herald-2")})
	leader := streamLeader(t, srvs)
	if leader == nil {
		t.Fatal("no server leads the notification stream")
	}

	c1, tr1 := newClient(h1.URL, heraldTok)
	c2, tr2 := newClient(h2.URL, heraldTok)
	defer tr1.CloseIdleConnections()
	defer tr2.CloseIdleConnections()
	clients := []struct {
		name string
		c    heraldv1connect.NotificationServiceClient
	}{{"herald-1", c1}, {"herald-2", c2}}

	plan := newPlan(clusterTotal, 10)
	l := newLedger()
	reached := make(chan struct{})
	var once sync.Once
	var publishing sync.WaitGroup
	// lostAt is when the node was lost (UnixNano); firstAck how long after
	// it the first publish was acknowledged again.
	var lostAt, firstAck atomic.Int64
	for _, notes := range split(plan, clusterPublishers) {
		publishing.Go(func() {
			for _, nt := range notes {
				// Replica seq%2 first, then the other, until one answers 2xx.
				deadline := time.Now().Add(waitLimit)
				for try := 0; ; try++ {
					cl := clients[(nt.seq+try)%2]
					id, err := publish(t.Context(), cl.c, nt)
					if err == nil {
						if at := lostAt.Load(); at != 0 {
							firstAck.CompareAndSwap(0, time.Now().UnixNano()-at)
						}
						if l.ack(nt.seq, id) >= clusterKillAt {
							once.Do(func() { close(reached) })
						}
						break
					}
					l.fail(nt.seq, fmt.Errorf("%s: %w", cl.name, err))
					if time.Now().After(deadline) {
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}

	select {
	case <-reached:
	case <-time.After(waitLimit):
		t.Fatalf("fewer than %d publishes acknowledged after %s", clusterKillAt, waitLimit)
	}
	t.Logf("shutting down NATS node %s (the notification stream's leader) and stopping herald-2", leader.Name())
	lost := time.Now()
	lostAt.Store(lost.UnixNano())
	leader.Shutdown()
	var survivors []*server.Server
	for _, s := range srvs {
		if s != leader {
			survivors = append(survivors, s)
		}
	}
	go func() {
		if s := streamLeaderOf(survivors); s != nil {
			t.Logf("%s leads the notification stream %v after the node loss", s.Name(), time.Since(lost).Round(time.Millisecond))
		}
	}()
	h2.Stop()
	t.Logf("herald-2 stopped %v after the node loss", time.Since(lost).Round(time.Millisecond))
	publishing.Wait()
	t.Logf("publishing finished %v after the node loss; the first publish acknowledged after it came %v after it",
		time.Since(lost).Round(time.Millisecond), time.Duration(firstAck.Load()).Round(time.Millisecond))

	acked, failed, never := l.snapshot()
	for seq, err := range never {
		t.Errorf("seq %d never acknowledged by either replica within %s: %v", seq, waitLimit, err)
	}
	t.Logf("%d publish attempts failed and were tried again on the other replica", failed)

	var tl tally
	testutil.Eventually(t, waitLimit, "every notification at the fake and an empty queue", func() bool {
		tl = tallyMessages(fake.AllMessages(), plan)
		return len(tl.missing(acked)) == 0 && gauge(t, h1, "herald_queue_depth") == 0
	})
	t.Logf("everything delivered %v after the node loss", time.Since(lost).Round(time.Millisecond))
	check(t, plan, l, tl, checkOpts{rest: true, splitGroups: "the group's message could not be recorded (SetParent) " +
		"because the write was in flight to the lost node and failed after publish_timeout instead of being sent " +
		"again to the new leader, so the group's next notification posted a new message; " +
		"TestClusterWritesSurviveLeaderLoss fails on that"})
}

// streamLeader returns the server leading herald's notification stream,
// after checking the stream is at three replicas.
func streamLeader(t *testing.T, srvs []*server.Server) *server.Server {
	t.Helper()
	info, err := streamInfo(t.Context(), srvs)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("%s is not at three replicas: %+v", queue.StreamName, info.Cluster)
	}
	for _, s := range srvs {
		if s.Name() == info.Cluster.Leader {
			return s
		}
	}
	return nil
}

// streamLeaderOf polls until one of srvs leads the notification stream,
// for at most waitLimit; nil if none did.
func streamLeaderOf(srvs []*server.Server) *server.Server {
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := streamInfo(ctx, srvs)
		cancel()
		if err == nil && info.Cluster != nil {
			for _, s := range srvs {
				if s.Name() == info.Cluster.Leader {
					return s
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func streamInfo(ctx context.Context, srvs []*server.Server) (*jetstream.StreamInfo, error) {
	return streamInfoOf(ctx, srvs, queue.StreamName)
}

func streamInfoOf(ctx context.Context, srvs []*server.Server, stream string) (*jetstream.StreamInfo, error) {
	nc, err := nats.Connect(srvs[0].ClientURL())
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return st.Info(ctx)
}

// gauge reads an unlabelled metric from h's registry; -1 when absent.
func gauge(t *testing.T, h *apptest.Herald, name string) int {
	mfs, err := h.Registry.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			switch {
			case m.GetGauge() != nil:
				return int(m.GetGauge().GetValue())
			case m.GetCounter() != nil:
				return int(m.GetCounter().GetValue())
			}
		}
	}
	return -1
}
