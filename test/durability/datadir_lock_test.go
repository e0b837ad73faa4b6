package durability_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

// TestOneHeraldPerDataDir starts a second `herald serve` on the data dir
// of a running one, on another port and on the same port. The second must
// exit non-zero at once, saying which data dir and which process holds it,
// without opening the store; the first keeps serving, and every
// notification it acknowledged (kept in its queue by a chat server that
// fails until the end) is delivered after a restart.
//
// Two processes on one data dir used to both come up ready, and a restart
// then found half the acknowledged notifications gone; a second one on a
// taken port opened the store before it failed to listen.
func TestOneHeraldPerDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("builds herald and runs it as a process")
	}
	bin := buildHerald(t)
	t.Run("other port", func(t *testing.T) { secondHerald(t, bin, false) })
	t.Run("same port", func(t *testing.T) { secondHerald(t, bin, true) })
}

const lockNotes = 200

func secondHerald(t *testing.T, bin string, samePort bool) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	fake := rocketchattest.NewServer(rocketchattest.WithRooms(room))
	t.Cleanup(fake.Close)
	// Nothing is delivered until the end: the notifications stay in the
	// store that a second process would damage.
	fake.Inject(rocketchattest.Fault{Status: 503, Body: `{"success":false,"error":"down"}`})

	writeConfig := func(name, addr string) string {
		text := fmt.Sprintf(`
listen: %q
data_dir: %q
log: {level: info, format: text}
auth:
  clients:
    - name: durability
      token: %s
dispatch:
  quick_retries: 0
  backoff_initial: 100ms
  backoff_max: 500ms
  breaker: {failures: 3, open_for: 200ms}
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
    chain: [%s]
`, addr, dataDir, heraldTok, sinkName, fake.URL, fake.UserID(), fake.Token(), room, sinkName)
		if _, err := config.Parse(name, []byte(text)); err != nil {
			t.Fatalf("the test's config is invalid: %v\n%s", err, text)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	cfgPath := writeConfig("herald.yml", addr)
	logPath := filepath.Join(dir, "herald.log")
	url := "http://" + addr
	first := startHerald(t, bin, cfgPath, logPath, url)

	plan := newPlan(lockNotes, 20)
	l := newLedger()
	client, tr := newClient(url, heraldTok)
	defer tr.CloseIdleConnections()
	publishAll := func(notes []note) {
		var wg sync.WaitGroup
		for _, part := range split(notes, 4) {
			wg.Go(func() {
				for _, nt := range part {
					id, err := publish(t.Context(), client, nt)
					if err != nil {
						l.fail(nt.seq, err)
						continue
					}
					l.ack(nt.seq, id)
				}
			})
		}
		wg.Wait()
	}
	publishAll(plan[:lockNotes/2])

	secondAddr := addr
	if !samePort {
		secondAddr = fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	}
	out, err := runSecond(t, bin, writeConfig("second.yml", secondAddr))
	if err == nil {
		t.Errorf("the second herald exited 0, want an error")
	}
	for _, want := range []string{dataDir, fmt.Sprintf("pid %d", first.cmd.Process.Pid)} {
		if !strings.Contains(out, want) {
			t.Errorf("the second herald does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "component=queue") {
		t.Errorf("the second herald opened the queue:\n%s", out)
	}

	// The first still takes notifications, and keeps them over a restart.
	publishAll(plan[lockNotes/2:])
	acked, _, neverAcked := l.snapshot()
	if len(neverAcked) > 0 {
		t.Errorf("%d publishes to the first herald failed, e.g. %v", len(neverAcked), neverAcked)
	}
	first.stop(t)
	first = startHerald(t, bin, cfgPath, logPath, url)
	fake.ClearFaults()
	var tl tally
	testutil.Eventually(t, waitLimit, "every acknowledged notification at the fake and an empty queue", func() bool {
		tl = tallyMessages(fake.AllMessages(), plan)
		return len(tl.missing(acked)) == 0 && metric(url, "herald_queue_depth") == 0
	})
	first.stop(t)
	check(t, plan, l, tl, checkOpts{rest: true})
	if t.Failed() {
		t.Logf("herald log (tail):\n%s", tail(logPath, 60))
	}
}

// runSecond runs `herald serve` and returns its output once it exits; a
// herald still running after a while is killed and reported.
func runSecond(t *testing.T, bin, cfgPath string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, "serve", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "OTEL_SDK_DISABLED=true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Errorf("the second herald on the same data dir was still running after 20s")
		return out.String(), nil
	}
}
