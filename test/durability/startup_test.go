package durability_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/queue"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
	"github.com/herald-notify/herald/test/natscluster"
)

// replica is a herald run in process on a cluster, as `herald serve` runs:
// app.New, then Serve until stopped.
type replica struct {
	name string
	url  string
	app  *app.App
	stop context.CancelFunc
	// done is closed when Serve returned, with its error in err.
	done chan struct{}
	err  error
}

// clusterYAML is herald's config on the cluster at url, delivering to
// fake in REST mode.
func clusterYAML(url string, fake *rocketchattest.Server) string {
	return fmt.Sprintf(`
log: {level: warn}
auth:
  clients:
    - name: durability
      token: %s
      scopes: [publish, read]
queue:
  url: %q
  replicas: 3
  partitions: 8
  ack_wait: 2s
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
`, heraldTok, url, sinkName, fake.URL, fake.UserID(), fake.Token(), room, sinkName, room, sinkName)
}

// startReplica builds a herald from yaml and serves it in the background.
// It does not wait for readiness: that is what the tests look at.
func startReplica(t *testing.T, name, yaml string) *replica {
	t.Helper()
	cfg, err := config.Parse(name+".yml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(telemetry.NewLogHandler(slog.NewTextHandler(testutil.LogWriter(t, name), &slog.HandlerOptions{Level: slog.LevelWarn})))
	a, err := app.New(t.Context(), cfg, logger, app.Options{Listener: l})
	if err != nil {
		t.Fatalf("%s: New: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{name: name, url: "http://" + l.Addr().String(), app: a, stop: cancel, done: make(chan struct{})}
	go func() {
		r.err = a.Serve(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
		a.Close()
	})
	return r
}

// ready reports whether the replica's /readyz answers 200; it fails the
// test when the replica exited.
func (r *replica) ready(t *testing.T) bool {
	select {
	case <-r.done:
		t.Fatalf("%s exited: %v", r.name, r.err)
	default:
	}
	res, err := http.Get(r.url + "/readyz")
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// publishAll publishes plan through the replicas, each note first to
// replica seq%len, then to the others until one acknowledges it, as
// Alertmanager retries a 5xx, with the same idempotency key. It returns
// the longest a publish that was acknowledged took.
func publishAll(t *testing.T, rs []*replica, plan []note, l *ledger) time.Duration {
	t.Helper()
	var clients []func(note) (string, error)
	for _, r := range rs {
		c, tr := newClient(r.url, heraldTok)
		t.Cleanup(tr.CloseIdleConnections)
		clients = append(clients, func(nt note) (string, error) { return publish(t.Context(), c, nt) })
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var longest time.Duration
	for _, notes := range split(plan, 3) {
		wg.Go(func() {
			for _, nt := range notes {
				deadline := time.Now().Add(waitLimit)
				for try := 0; ; try++ {
					began := time.Now()
					id, err := clients[(nt.seq+try)%len(clients)](nt)
					if err == nil {
						mu.Lock()
						longest = max(longest, time.Since(began))
						mu.Unlock()
						l.ack(nt.seq, id)
						break
					}
					l.fail(nt.seq, err)
					if time.Now().After(deadline) {
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	return longest
}

// deliveredOnce waits until every acknowledged note reached the fake and
// checks what every durability test checks: nothing lost, nothing
// doubled, each group in publish order, one message per group.
func deliveredOnce(t *testing.T, fake *rocketchattest.Server, plan []note, l *ledger) {
	t.Helper()
	acked, _, never := l.snapshot()
	for seq, err := range never {
		t.Errorf("seq %d never acknowledged within %s: %v", seq, waitLimit, err)
	}
	var tl tally
	testutil.Eventually(t, waitLimit, "every acknowledged notification at the fake", func() bool {
		tl = tallyMessages(fake.AllMessages(), plan)
		return len(tl.missing(acked)) == 0
	})
	check(t, plan, l, tl, checkOpts{rest: true})
}

// Replicas of a Deployment's first rollout start at the same instant on a
// fresh cluster of nats-server processes (deploy/nats/nats.conf). Each
// creates or adopts the streams, buckets and consumers while the others
// do, and while the cluster elects its first leaders; none exits, all
// become ready, they share the partitions, and what they acknowledge is
// delivered once, each group in order.
func TestReplicasStartTogether(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nats-server processes and three heralds")
	}
	c := natscluster.Start(t, 3)
	fake := rocketchattest.NewServer(rocketchattest.WithRooms(room))
	t.Cleanup(fake.Close)
	yaml := clusterYAML(c.URL(), fake)

	var rs []*replica
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 3 {
		wg.Go(func() {
			<-start
			r := startReplica(t, fmt.Sprintf("herald-%d", i), yaml)
			mu.Lock()
			rs = append(rs, r)
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	began := time.Now()
	for _, r := range rs {
		testutil.Eventually(t, waitLimit, r.name+" ready", func() bool { return r.ready(t) })
	}
	t.Logf("all three replicas ready %v after they started together", time.Since(began).Round(time.Millisecond))

	plan := newPlan(120, 10)
	l := newLedger()
	publishAll(t, rs, plan, l)
	deliveredOnce(t, fake, plan, l)
	for _, r := range rs {
		if served := gaugeAt(t, r.url, "herald_queue_partitions_served"); served == 0 {
			t.Errorf("%s serves no partition: the replicas do not share them", r.name)
		}
	}
}

// A replica that starts while the node leading the notification stream is
// being killed waits for the election instead of exiting: not ready
// meanwhile, ready after it, without a restart. Publishes before, during
// and after, retried as Alertmanager retries, are delivered once.
func TestReplicaStartsDuringElection(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nats-server processes and kills one")
	}
	c := natscluster.Start(t, 3)
	fake := rocketchattest.NewServer(rocketchattest.WithRooms(room))
	t.Cleanup(fake.Close)
	yaml := clusterYAML(c.URL(), fake)
	first := startReplica(t, "herald-1", yaml)
	testutil.Eventually(t, waitLimit, "herald-1 ready", func() bool { return first.ready(t) })

	plan := newPlan(120, 10)
	l := newLedger()
	publishAll(t, []*replica{first}, plan[:40], l)

	leader := c.StreamLeader(queue.StreamName)
	t.Logf("killing %s, the leader of %s, and starting herald-2", c.Name(leader), queue.StreamName)
	killed := time.Now()
	c.Kill(leader)
	second := startReplica(t, "herald-2", yaml)
	var during sync.WaitGroup
	during.Go(func() {
		longest := publishAll(t, []*replica{first, second}, plan[40:80], l)
		t.Logf("during the election the longest acknowledged publish took %v", longest.Round(time.Millisecond))
	})
	testutil.Eventually(t, waitLimit, "herald-2 ready after the election", func() bool { return second.ready(t) })
	t.Logf("herald-2 ready %v after the leader was killed", time.Since(killed).Round(time.Millisecond))
	during.Wait()
	publishAll(t, []*replica{first, second}, plan[80:], l)
	deliveredOnce(t, fake, plan, l)
}

// A webhook body just under webhook.max_body_bytes is stored and delivered
// on a cluster run with deploy/nats/nats.conf (max_payload 8MB). On
// servers left at NATS's default max_payload (1MB) herald refuses to
// start, naming both settings, instead of refusing such a webhook later.
func TestLargeWebhookOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nats-server processes")
	}
	t.Run("deploy config", func(t *testing.T) {
		c := natscluster.Start(t, 3)
		fake := rocketchattest.NewServer(rocketchattest.WithRooms(room))
		t.Cleanup(fake.Close)
		r := startReplica(t, "herald", clusterYAML(c.URL(), fake))
		testutil.Eventually(t, waitLimit, "herald ready", func() bool { return r.ready(t) })
		body, alerts := largeWebhook(4<<20 - 1024)
		var stored struct {
			Notifications []struct {
				ID string `json:"id"`
			} `json:"notifications"`
		}
		post := func() int {
			req, err := http.NewRequest("POST", r.url+"/webhooks/alertmanager", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+heraldTok)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return 0
			}
			defer res.Body.Close()
			if res.StatusCode == http.StatusOK {
				if err := json.NewDecoder(res.Body).Decode(&stored); err != nil {
					t.Fatal(err)
				}
			}
			return res.StatusCode
		}
		var code int
		// Alertmanager retries a 5xx; so does this.
		testutil.Eventually(t, waitLimit, "the webhook answered other than 503", func() bool {
			code = post()
			return code != 0 && code != http.StatusServiceUnavailable
		})
		if code != http.StatusOK || len(stored.Notifications) != 1 {
			t.Fatalf("a %d-byte webhook got HTTP %d (%+v), want 200 and one notification", len(body), code, stored)
		}
		cl, tr := newClient(r.url, heraldTok)
		defer tr.CloseIdleConnections()
		got, err := cl.GetNotification(t.Context(), connect.NewRequest(&heraldv1.GetNotificationRequest{Id: stored.Notifications[0].ID}))
		if err != nil {
			t.Fatal(err)
		}
		if n := got.Msg.GetNotification(); len(n.GetAlerts()) != alerts || n.GetTruncatedAlerts() != 0 {
			t.Errorf("stored %d alerts (%d left out), want all %d", len(n.GetAlerts()), n.GetTruncatedAlerts(), alerts)
		}
		testutil.Eventually(t, waitLimit, "the large group at the fake", func() bool {
			for _, m := range fake.AllMessages() {
				if strings.Contains(m.Text, "LargeGroup") {
					return true
				}
			}
			return false
		})
	})
	t.Run("NATS default max_payload", func(t *testing.T) {
		c := natscluster.Start(t, 3, natscluster.MaxPayload("1MB"))
		fake := rocketchattest.NewServer(rocketchattest.WithRooms(room))
		t.Cleanup(fake.Close)
		r := startReplica(t, "herald", clusterYAML(c.URL(), fake))
		select {
		case <-r.done:
		case <-time.After(waitLimit):
			t.Fatalf("herald still runs on servers with max_payload 1MB after %s", waitLimit)
		}
		if r.err == nil {
			t.Fatal("herald stopped without an error")
		}
		for _, want := range []string{"max_payload", "webhook.max_body_bytes"} {
			if !strings.Contains(r.err.Error(), want) {
				t.Errorf("error %q does not name %s", r.err, want)
			}
		}
	})
}

// largeWebhook is an Alertmanager webhook of about size bytes: one group
// of alerts with long, varied descriptions (S2 cannot shrink them much).
// It returns the body and its number of alerts.
func largeWebhook(size int) (string, int) {
	var b strings.Builder
	b.WriteString(`{"version":"4","status":"firing","receiver":"r","groupKey":"{}:{alertname=\"LargeGroup\"}",` +
		`"groupLabels":{"alertname":"LargeGroup"},"commonLabels":{"alertname":"LargeGroup"},"alerts":[`)
	seed := uint64(1)
	n := 0
	for ; b.Len() < size-2048; n++ {
		i := n
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"status":"firing","labels":{"alertname":"LargeGroup","instance":"host-%d"},"annotations":{"description":"`, i)
		for range 900 {
			seed = seed*6364136223846793005 + 1442695040888963407
			b.WriteByte("abcdefghijklmnopqrstuvwxyz0123456789 "[seed>>59%37])
		}
		fmt.Fprintf(&b, `"},"startsAt":"2026-12-04T00:00:00Z","fingerprint":"%016x"}`, i)
	}
	b.WriteString(`]}`)
	return b.String(), n
}

// gaugeAt reads one unlabelled gauge from url's /metrics.
func gaugeAt(t *testing.T, url, name string) int {
	t.Helper()
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := res.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for line := range strings.Lines(sb.String()) {
		var v float64
		if _, err := fmt.Sscanf(line, name+" %g", &v); err == nil {
			return int(v)
		}
	}
	t.Fatalf("%s not in %s/metrics", name, url)
	return 0
}
