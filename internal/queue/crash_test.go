package queue

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

const helperDirEnv = "HERALD_QUEUE_TEST_PUT_FOREVER_DIR"

// TestHelperPutForever is not a test: TestKill9KeepsAcknowledged runs it in
// a child process that publishes until it is killed, printing each id once
// Put returned nil.
func TestHelperPutForever(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process for TestKill9KeepsAcknowledged")
	}
	cfg := Config{Partitions: 4}
	if err := cfg.Validate(); err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	q, err := Open(context.Background(), cfg, Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		n := &heraldv1.Notification{Id: testID(time.Now(), uint64(i)), GroupKey: fmt.Sprintf("g%d", i%7), Title: "t"}
		if _, _, err := q.Put(context.Background(), n); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("ok", n.Id)
	}
}

// With the default sync policy ("interval"), what Put acknowledged survives
// kill -9 of the process: the message and its delivery record.
func TestKill9KeepsAcknowledged(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPutForever$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var acked []string
	for sc.Scan() {
		line := sc.Text()
		if id, ok := strings.CutPrefix(line, "ok "); ok {
			acked = append(acked, id)
			if len(acked) == 500 {
				if err := cmd.Process.Kill(); err != nil { // SIGKILL
					t.Fatal(err)
				}
				break
			}
		} else if strings.HasPrefix(line, "error") {
			t.Fatalf("helper: %s", line)
		}
	}
	// Ids acknowledged just before the kill are still in the pipe.
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "ok "); ok {
			acked = append(acked, id)
		}
	}
	_ = cmd.Wait()
	if len(acked) < 500 {
		t.Fatalf("helper acknowledged only %d notifications", len(acked))
	}

	t0 := time.Now()
	e := openTest(t, dir, testConfig(nil))
	t.Logf("reopened after kill -9 in %v", time.Since(t0)) // information, not an assertion
	for _, id := range acked {
		got, err := e.q.Get(t.Context(), id)
		if err != nil {
			t.Fatalf("acknowledged %s lost after kill -9: %v", id, err)
		}
		if got.Delivery.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_PENDING {
			t.Errorf("%s: record state %v after restart", id, got.Delivery.GetState())
		}
	}
	d, _, _, err := e.q.backlog(t.Context())
	if err != nil || d < uint64(len(acked)) {
		t.Errorf("backlog after restart = %d, %v; want at least %d", d, err, len(acked))
	}
}
