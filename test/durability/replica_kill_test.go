package durability_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/queue/queuetest"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

const (
	killTotal = 600
	// killAckWait is queue.ack_wait in the test's config.
	killAckWait = 2 * time.Second
	// memberTTL is how long the other replicas still count one that
	// stopped writing its member key (internal/queue: memberTTL); then
	// they take its partitions.
	memberTTL = 4 * time.Second
)

// TestReplicaKilledMidDelivery runs two `herald serve` processes on a
// three-node NATS cluster, both delivering to one slow Rocket.Chat fake in
// REST mode, publishes to the second, and kills the first with SIGKILL
// while it is delivering its share of the partitions. The second takes them
// over: every acknowledged notification must reach the fake exactly once,
// each group in publish order. The notifications the killed herald had in
// hand wait for the takeover; how long they waited is measured and must
// stay within what the design allows (the member TTL, then the
// whole-partition hold of two ack_waits and 2s, and a margin), not the
// whole run.
func TestReplicaKilledMidDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds herald, runs two processes on a three-node NATS cluster")
	}
	bin := buildHerald(t)
	srvs := queuetest.StartCluster(t, 3).Servers
	var urls []string
	for _, s := range srvs {
		urls = append(urls, s.ClientURL())
	}
	fake := rocketchattest.NewServer(rocketchattest.WithRooms(room))
	t.Cleanup(fake.Close)
	// Slow posts: the killed herald has several under way.
	fake.Inject(rocketchattest.Fault{Endpoint: "chat.sendMessage", Delay: 100 * time.Millisecond, AfterHandling: true})

	dir := t.TempDir()
	start := func(name string) (*heraldProc, string, string) {
		addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
		cfgText := fmt.Sprintf(`
listen: %q
data_dir: %q
log: {level: info, format: text}
auth:
  clients:
    - name: durability
      token: %s
queue:
  url: %q
  replicas: 3
  partitions: 8
  ack_wait: %s
sinks:
  - name: %s
    rocketchat:
      url: %s
      mode: rest
      user_id: %s
      token: %s
      channel: "#%s"
routes:
  - name: all
    channels: {%s: "#%s"}
    chain: [%s]
`, addr, filepath.Join(dir, name), heraldTok, strings.Join(urls, ","), killAckWait, sinkName,
			fake.URL, fake.UserID(), fake.Token(), room, sinkName, room, sinkName)
		cfgPath := filepath.Join(dir, name+".yml")
		if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := config.Parse(cfgPath, []byte(cfgText)); err != nil {
			t.Fatalf("the test's config is invalid: %v\n%s", err, cfgText)
		}
		logPath := filepath.Join(dir, name+".log")
		url := "http://" + addr
		return startHerald(t, bin, cfgPath, logPath, url), url, logPath
	}
	// The two share the partitions; the survivor takes the victim's.
	victim, _, victimLog := start("herald-1")
	survivor, url, survivorLog := start("herald-2")

	plan := newPlan(killTotal, 30)
	l := newLedger()
	client, tr := newClient(url, heraldTok)
	defer tr.CloseIdleConnections()
	var mu sync.Mutex
	ackedAt := map[int]time.Time{}
	var publishing sync.WaitGroup
	for _, notes := range split(plan, 3) {
		publishing.Go(func() {
			for _, nt := range notes {
				id, err := publish(t.Context(), client, nt)
				if err != nil {
					l.fail(nt.seq, err)
					continue
				}
				mu.Lock()
				ackedAt[nt.seq] = time.Now()
				mu.Unlock()
				l.ack(nt.seq, id)
				// A steady stream rather than one burst: the kill falls
				// in the middle of deliveries.
				time.Sleep(2 * time.Millisecond)
			}
		})
	}

	// Kill the first herald once it is delivering.
	testutil.Eventually(t, waitLimit, "the first herald delivering", func() bool {
		return metric(url, "herald_queue_depth") > 0 && len(fake.AllMessages()) > killTotal/5
	})
	victim.kill(t)
	killedAt := time.Now()
	t.Logf("killed the first herald with SIGKILL; %d messages at the fake", len(fake.AllMessages()))
	publishing.Wait()

	acked, _, _ := l.snapshot()
	var tl tally
	testutil.Eventually(t, waitLimit, "every acknowledged notification at the fake and an empty queue", func() bool {
		tl = tallyMessages(fake.AllMessages(), plan)
		return len(tl.missing(acked)) == 0 && metric(url, "herald_queue_depth") == 0
	})
	// Known: a herald killed between a group's first post and storing the
	// group's message leaves the group's next notification to post a new
	// top-level message (logged, not failed, as in the node-loss test).
	check(t, plan, l, tl, checkOpts{rest: true, splitGroups: "the killed herald posted the group's first message " +
		"but died before storing it as the group's message, so the survivor started a new one"})

	// How long each notification delivered after the kill waited past
	// the later of its acknowledgement and the kill; and how long those
	// delivered before it took.
	byID := map[string]time.Time{}
	for _, m := range fake.AllMessages() {
		byID[m.ID] = m.Created
	}
	var affected, before []time.Duration
	mu.Lock()
	for seq, posts := range tl.posts {
		if len(posts) == 0 {
			continue
		}
		at, ok := byID[posts[0].id]
		acked, known := ackedAt[seq]
		if !ok || !known {
			continue
		}
		if at.After(killedAt) {
			affected = append(affected, at.Sub(later(acked, killedAt)))
		} else {
			before = append(before, at.Sub(acked))
		}
	}
	mu.Unlock()
	slices.Sort(affected)
	slices.Sort(before)
	p := func(ds []time.Duration, q float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		return ds[int(q*float64(len(ds)-1))].Round(time.Millisecond)
	}
	t.Logf("delivered after the kill: %d notifications, waited past the later of their acknowledgement and the kill p50 %s, max %s; before the kill: %d, p50 %s, p99 %s",
		len(affected), p(affected, 0.5), p(affected, 1), len(before), p(before, 0.5), p(before, 0.99))
	if len(affected) == 0 {
		t.Errorf("no notification was delivered after the kill: the kill fell outside deliveries")
	}
	// The survivor takes the partitions after memberTTL and holds each
	// for two ack_waits and 2s; the rest is the slow fake working off the
	// backlog.
	if bound := memberTTL + 2*killAckWait + 2*time.Second + 5*time.Second; p(affected, 1) > bound {
		t.Errorf("a notification waited %s after the kill, more than the member TTL and the takeover's hold allow (%s)", p(affected, 1), bound)
	}
	if t.Failed() {
		t.Logf("survivor log (tail):\n%s\nvictim log (tail):\n%s", tail(survivorLog, 60), tail(victimLog, 30))
	}
	survivor.stop(t)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
