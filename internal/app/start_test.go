package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/queue"
	"github.com/herald-notify/herald/internal/testutil"
)

// clusterConfig is a herald config on the NATS server at url.
func clusterConfig(t *testing.T, url string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yml", []byte(fmt.Sprintf(`
auth:
  clients: [{name: t, token: tok-app-test}]
queue: {url: %q, publish_timeout: 2s}
sinks: [{name: log, log: {}}]
routes: [{name: default, chain: [log]}]
`, url)))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	return cfg
}

// startNATS runs a JetStream server on port (a free one when 0).
func startNATS(t *testing.T, port, maxPayload int) *server.Server {
	t.Helper()
	if port == 0 {
		port = server.RANDOM_PORT
	}
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true, MaxPayload: int32(maxPayload),
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	return s
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// A herald whose cluster is not there yet serves at once: alive, not
// ready and saying why, the webhook answering 503 with Retry-After (which
// Alertmanager retries). Once the cluster answers it becomes ready by
// itself, without a restart, and stores what it is sent.
func TestStartsBeforeTheCluster(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsPort := testutil.FreePort(t)
	cfg := clusterConfig(t, fmt.Sprintf("nats://127.0.0.1:%d", natsPort))
	a, err := app.New(t.Context(), cfg, slog.New(slog.DiscardHandler), app.Options{Listener: l})
	if err != nil {
		t.Fatalf("New without the cluster: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		a.Close()
	}()
	base := "http://" + l.Addr().String()

	testutil.Eventually(t, 30*time.Second, "herald answers", func() bool { code, _ := get(t, base+"/healthz"); return code == 200 })
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "queue: starting") {
		t.Errorf("/readyz before the cluster = %d %q, want 503 saying the queue is starting", code, body)
	}
	req, _ := http.NewRequest("POST", base+"/webhooks/alertmanager", strings.NewReader(webhookBody))
	req.Header.Set("Authorization", "Bearer tok-app-test")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("webhook before the cluster = %d (Retry-After %q), want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}

	startNATS(t, natsPort, 8<<20)
	testutil.Eventually(t, 30*time.Second, "herald answers", func() bool { code, _ := get(t, base+"/readyz"); return code == 200 })
	res, err = http.DefaultClient.Do(mustRequest(t, base, webhookBody))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("webhook once ready = %d, want 200", res.StatusCode)
	}
}

// A cluster whose max_payload cannot hold what the webhook accepts stops
// herald with an error naming both settings: waiting would not help.
func TestRefusesClusterWithSmallMaxPayload(t *testing.T) {
	s := startNATS(t, 0, 1<<20)
	cfg := clusterConfig(t, s.ClientURL())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(t.Context(), cfg, slog.New(slog.DiscardHandler), app.Options{Listener: l})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = a.Serve(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Serve = %v, want a refusal before the deadline", err)
	}
	for _, want := range []string{"max_payload", "webhook.max_body_bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if !errors.Is(err, queue.ErrIncompatible) {
		t.Errorf("error %v is not queue.ErrIncompatible", err)
	}
}

const webhookBody = `{"version":"4","status":"firing","receiver":"r","groupKey":"{}:{a=\"b\"}","alerts":[{"status":"firing","labels":{"alertname":"A"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"f1"}]}`

func mustRequest(t *testing.T, base, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/webhooks/alertmanager", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer tok-app-test")
	return req
}
