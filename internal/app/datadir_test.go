package app_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/app/apptest"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/datadir"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/testutil"
)

func testConfig(t *testing.T, dataDir, listen string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yml", []byte(logOnly))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir, cfg.Listen = dataDir, listen
	return cfg
}

var discard = slog.New(slog.DiscardHandler)

// TestSecondHeraldOnDataDirRefused: a second herald on a data dir in use
// fails with an error naming the dir and the holder, and the first keeps
// taking and delivering notifications.
func TestSecondHeraldOnDataDirRefused(t *testing.T) {
	dir := t.TempDir()
	h := apptest.Start(t, logOnly, apptest.Options{DataDir: dir})

	second, err := app.New(t.Context(), testConfig(t, dir, "127.0.0.1:0"), discard, app.Options{})
	var inUse *datadir.InUseError
	if !errors.As(err, &inUse) || inUse.Dir != dir || inUse.PID != os.Getpid() {
		if second != nil {
			second.Close()
		}
		t.Fatalf("second herald on %s: %v, want an InUseError naming it and pid %d", dir, err, os.Getpid())
	}

	res, err := h.Client().Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{Notification: &heraldv1.Notification{
		Source: "t", Severity: heraldv1.Severity_SEVERITY_WARNING, Title: "still here",
	}}))
	if err != nil {
		t.Fatal(err)
	}
	h.WaitDelivered(t, res.Msg.GetId(), heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, 10*time.Second)
}

// TestBusyListenAddressTouchesNoStore: a herald whose listen address is
// taken fails before it opens the queue, so its data dir holds no store,
// and it leaves the dir unlocked.
func TestBusyListenAddressTouchesNoStore(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := filepath.Join(t.TempDir(), "data")
	a, err := app.New(t.Context(), testConfig(t, dir, taken.Addr().String()), discard, app.Options{})
	if !errors.Is(err, syscall.EADDRINUSE) {
		if a != nil {
			a.Close()
		}
		t.Fatalf("New on a taken address = %v, want address in use", err)
	}
	var files []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && path != dir {
			files = append(files, d.Name())
		}
		return nil
	})
	if len(files) != 1 || files[0] != datadir.LockFile {
		t.Errorf("data dir holds %v, want only %s", files, datadir.LockFile)
	}

	a, err = app.New(t.Context(), testConfig(t, dir, "127.0.0.1:0"), discard, app.Options{})
	if err != nil {
		t.Fatalf("New after the failed one: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Error(err)
	}
}

// TestLogLinesNameComponentOnce: every line, the queue's and the embedded
// NATS server's included, has one component key.
func TestLogLinesNameComponentOnce(t *testing.T) {
	var buf testutil.Buffer
	logger := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	h := apptest.Start(t, logOnly, apptest.Options{Logger: logger})
	res, err := h.Client().Publish(context.Background(), connect.NewRequest(&heraldv1.PublishRequest{Notification: &heraldv1.Notification{
		Source: "t", Severity: heraldv1.Severity_SEVERITY_INFO, Title: "hello",
	}}))
	if err != nil {
		t.Fatal(err)
	}
	h.WaitDelivered(t, res.Msg.GetId(), heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, 10*time.Second)
	h.Stop()

	logs := buf.String()
	queueLines := 0
	for line := range strings.Lines(logs) {
		if n := strings.Count(line, `"component":`); n > 1 {
			t.Errorf("component %d times: %s", n, line)
		}
		if strings.Contains(line, `"component":"queue"`) {
			queueLines++
		}
	}
	if queueLines == 0 {
		t.Errorf("no line from the queue: nothing checked\n%s", logs)
	}
}
