package durability_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

const (
	crashTotal      = 1000
	crashPublishers = 4
	// crashAt is how many acknowledged publishes the kill waits for.
	crashAt = 400
	// slowSink is how long the fake holds every post's answer back, after
	// storing the message: kill -9 then leaves posts that reached the chat
	// server but whose answer herald never saw.
	slowSink = 30 * time.Millisecond
	// failPause is how long a publisher waits after a failed attempt
	// before its next note, so that the notes published while herald is
	// down are some, not all.
	failPause = 100 * time.Millisecond
	// downtime is how long herald stays dead before the restart.
	downtime = 300 * time.Millisecond
	// partitions is queue.partitions.
	partitions = 16
	// inFlight is dispatch.max_in_flight_per_sink: the most posts to the
	// fake one herald has under way at once.
	inFlight  = 16
	heraldTok = "durability-test-token"
)

// TestCrashRestart runs `herald serve` as a separate process, publishes
// 1,000 notifications from a few concurrent publishers while the
// Rocket.Chat fake answers slowly, kills herald with SIGKILL once 40% were
// acknowledged, restarts it on the same data dir, finishes publishing and
// waits until the queue is empty. Every acknowledged notification must have
// reached the fake, a group's notifications in publish order.
//
// REST mode: herald chooses each message's id, so a post whose answer was
// lost at the kill is found again on redelivery; no duplicate is allowed.
// Webhook mode: an incoming webhook has no ids, so such a post is made
// twice; duplicates are counted, bounded, and logged with that reason.
func TestCrashRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds herald and runs it as a process")
	}
	bin := buildHerald(t)
	for _, mode := range []string{"rest", "webhook"} {
		t.Run(mode, func(t *testing.T) { crashRestart(t, bin, mode) })
	}
}

func crashRestart(t *testing.T, bin, mode string) {
	dir := t.TempDir()
	fakeOpts := []rocketchattest.Option{rocketchattest.WithRooms(room)}
	if mode == "webhook" {
		// Turn the hook's rate limit off, and tell herald's pacing so below:
		// pacing is tested elsewhere and would only stretch this test.
		fakeOpts = append(fakeOpts, rocketchattest.WithRateLimit(0, 0))
	}
	fake := rocketchattest.NewServer(fakeOpts...)
	t.Cleanup(fake.Close)
	endpoint := "chat.sendMessage"
	sinkYAML := fmt.Sprintf(`
      url: %s
      mode: rest
      user_id: %s
      token: %s
      channel: "#%s"`, fake.URL, fake.UserID(), fake.Token(), room)
	if mode == "webhook" {
		endpoint = "webhook"
		sinkYAML = fmt.Sprintf(`
      mode: webhook
      webhook_url: %s%s
      webhook_rate: {count: 100000, per: 1s}`, fake.URL, fake.AddHook(room))
	}
	fake.Inject(rocketchattest.Fault{Endpoint: endpoint, Delay: slowSink, AfterHandling: true})

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
  partitions: %d
  # A notification handed to the killed herald is handed out again this
  # long after its last progress signal.
  ack_wait: 2s
dispatch:
  max_in_flight_per_sink: %d
sinks:
  - name: %s
    rocketchat:%s
routes:
  - name: all
    channels: {%s: "#%s"}
    chain: [%s]
`, addr, filepath.Join(dir, "data"), heraldTok, partitions, inFlight, sinkName, sinkYAML, sinkName, room, sinkName)
	cfgPath := filepath.Join(dir, "herald.yml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse(cfgPath, []byte(cfgText)); err != nil {
		t.Fatalf("the test's config is invalid: %v\n%s", err, cfgText)
	}
	logPath := filepath.Join(dir, "herald.log")
	url := "http://" + addr

	h := startHerald(t, bin, cfgPath, logPath, url)

	plan := newPlan(crashTotal, 20)
	l := newLedger()
	client, tr := newClient(url, heraldTok)
	defer tr.CloseIdleConnections()
	reached := make(chan struct{})
	var once sync.Once
	var publishing sync.WaitGroup
	var attempts atomic.Int64
	for _, notes := range split(plan, crashPublishers) {
		publishing.Go(func() {
			for _, nt := range notes {
				attempts.Add(1)
				id, err := publish(t.Context(), client, nt)
				if err != nil {
					l.fail(nt.seq, err)
					time.Sleep(failPause)
					continue
				}
				if l.ack(nt.seq, id) >= crashAt {
					once.Do(func() { close(reached) })
				}
			}
		})
	}

	select {
	case <-reached:
	case <-time.After(waitLimit):
		acked, _, _ := l.snapshot()
		t.Fatalf("%d publishes acknowledged after %s; herald log:\n%s", len(acked), waitLimit, tail(logPath, 40))
	}
	delivered := len(tallyMessages(fake.AllMessages(), plan).posts)
	h.kill(t)
	killedAt := attempts.Load()
	t.Logf("killed herald with SIGKILL after %d publish attempts; %d notes had reached the fake", killedAt, delivered)
	// Notes attempted meanwhile fail; then the same data dir serves again.
	time.Sleep(downtime)
	h = startHerald(t, bin, cfgPath, logPath, url)
	t.Logf("herald restarted after %d more publish attempts", attempts.Load()-killedAt)
	publishing.Wait()

	acked, _, _ := l.snapshot()
	var tl tally
	testutil.Eventually(t, waitLimit, "every acknowledged notification at the fake and an empty queue", func() bool {
		tl = tallyMessages(fake.AllMessages(), plan)
		return len(tl.missing(acked)) == 0 && metric(url, "herald_queue_depth") == 0
	})
	// Handed out again after the restart, but their delivery record
	// already said delivered: acked without a second post.
	t.Logf("%v notifications handed out again after the restart were already delivered (herald_already_delivered_total)",
		metric(url, "herald_already_delivered_total"))
	h.stop(t)

	if mode == "rest" {
		// A post stored before the kill whose answer herald never saw is
		// sent again with the same id after the restart; the fake refuses
		// the duplicate id with a 400 and herald finds the message.
		refused := 0
		for _, r := range fake.Requests() {
			if r.Endpoint == "chat.sendMessage" && r.Status == http.StatusBadRequest {
				refused++
			}
		}
		t.Logf("%d posts sent again after the restart were refused as duplicate ids and found by chat.getMessage", refused)
		if refused == 0 {
			t.Errorf("no post was in flight at the kill: the test exercised no redelivery of a post (the sink is slow so that there is one)")
		}
	}

	o := checkOpts{rest: mode == "rest"}
	if mode == "webhook" {
		// A notification whose delivery record says delivered is acked
		// without a second post, even when its ack was lost at the kill;
		// only a post whose delivered record was not yet written at the
		// kill is made again. The dispatcher holds a request's in-flight
		// slot until that record is written, so there are at most
		// max_in_flight_per_sink of them.
		o.maxDuplicates = inFlight
		o.explain = "each reached the fake through the incoming webhook before the kill, but herald died before it " +
			"saw the answer and wrote the delivery record, so the restarted herald posted it again; a webhook " +
			"post has no id to look up"
	}
	check(t, plan, l, tl, o)
	if t.Failed() {
		t.Logf("herald log (tail):\n%s", tail(logPath, 60))
	}
}

// buildHerald builds cmd/herald from the module this test is in.
func buildHerald(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		testutil.Missing(t, "no go command on PATH to build herald with", "install Go")
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not inside a Go module")
	}
	bin := filepath.Join(t.TempDir(), "herald")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/herald")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/herald: %v\n%s", err, out)
	}
	return bin
}

// heraldProc is a running `herald serve`.
type heraldProc struct {
	cmd  *exec.Cmd
	done chan error
}

// startHerald starts herald, appending its log to logPath, and waits until
// /readyz says it is ready.
func startHerald(t *testing.T, bin, cfgPath, logPath, url string) *heraldProc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "----- herald serve started by the test at %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, "serve", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// No tracing: the test has no collector.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "OTEL_SDK_DISABLED=true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &heraldProc{cmd: cmd, done: make(chan error, 1)}
	go func() { h.done <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-h.done:
		default:
			_ = cmd.Process.Kill()
			<-h.done
		}
	})
	deadline := time.Now().Add(waitLimit)
	for {
		select {
		case err := <-h.done:
			h.done <- err
			t.Fatalf("herald exited before it was ready: %v\n%s", err, tail(logPath, 40))
		default:
		}
		res, err := http.Get(url + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("herald not ready after %s\n%s", waitLimit, tail(logPath, 40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (h *heraldProc) kill(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-h.done
	h.done <- err
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("herald did not die of SIGKILL: %v", err)
	}
}

// stop sends SIGTERM and expects a clean exit.
func (h *heraldProc) stop(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-h.done:
		h.done <- err
		if err != nil {
			t.Errorf("herald did not stop cleanly on SIGTERM: %v", err)
		}
	case <-time.After(waitLimit):
		t.Errorf("herald still running %s after SIGTERM", waitLimit)
	}
}

// metric reads the unlabelled metric name from herald's /metrics; -1 when
// it cannot.
func metric(url, name string) int {
	res, err := http.Get(url + "/metrics")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return -1
			}
			return int(f)
		}
	}
	return -1
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(head(lines[max(0, len(lines)-n):], n), "\n")
}
