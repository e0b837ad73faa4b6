// Package apptest runs a whole herald in process for end-to-end tests: the
// real config validation, embedded JetStream in a temporary data dir, the
// dispatcher with the configured sinks, and the HTTP server on a free
// loopback port.
package apptest

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/gen/herald/v1/heraldv1connect"
	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/testutil"
)

// Herald is a running herald.
type Herald struct {
	// URL is the base URL, http://127.0.0.1:port.
	URL string
	// Token is a bearer token herald accepts (from the config's first
	// client), or "" when auth is off.
	Token    string
	Registry *prometheus.Registry
	Config   *config.Config
	stop     func()
	app      *app.App

	mu   sync.Mutex
	yaml string // the config file's content, as Reload reads it
}

// Options tune Start.
type Options struct {
	// DataDir reuses a data dir (to test restarts); "" means t.TempDir().
	DataDir string
	// SinkTransport is the base transport of every sink (to inject faults).
	SinkTransport http.RoundTripper
	// Logger; nil logs to t.Log at info level, with trace ids.
	Logger *slog.Logger
	// NoConfigFile runs herald as without -config: Reload has no file to
	// re-read.
	NoConfigFile bool
}

// Start parses yaml as a config file (after ${ENV} expansion), overrides
// listen and data_dir, starts herald, returns once /readyz says it is
// ready, and stops it at the end of the test.
func Start(t testing.TB, yaml string, opts Options) *Herald {
	t.Helper()
	cfg, err := config.Parse("test.yml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	cfg.DataDir = opts.DataDir
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(telemetry.NewLogHandler(slog.NewTextHandler(testutil.LogWriter(t, ""), &slog.HandlerOptions{Level: slog.LevelInfo})))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &Herald{URL: "http://" + l.Addr().String(), Config: cfg, yaml: yaml}
	// Reload reads the config "file" again, with the same data_dir.
	load := func() (*config.Config, error) {
		h.mu.Lock()
		yaml := h.yaml
		h.mu.Unlock()
		c, err := config.Parse("test.yml", []byte(yaml))
		if err != nil {
			return nil, err
		}
		c.DataDir = opts.DataDir
		return c, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	if opts.NoConfigFile {
		load = nil
	}
	a, err := app.New(ctx, cfg, logger, app.Options{SinkTransport: opts.SinkTransport, Listener: l, Load: load})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	h.app, h.Registry = a, a.Registry()
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	if len(cfg.Auth.Clients) > 0 {
		h.Token = cfg.Auth.Clients[0].Token.Value()
	}
	stopped := false
	h.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("herald stopped with: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("herald close: %v", err)
		}
	}
	t.Cleanup(h.stop)
	// With queue.url Serve opens the queue after it starts serving.
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := http.Get(h.URL + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("herald not ready within a minute: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return h
}

// Reload makes yaml the config file's content and reloads it, as SIGHUP
// does, returning why herald refused it.
func (h *Herald) Reload(ctx context.Context, yaml string) error {
	h.SetConfig(yaml)
	return h.app.Reload(ctx)
}

// SetConfig makes yaml the config file's content, for the next reload.
func (h *Herald) SetConfig(yaml string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.yaml = yaml
}

// Stop shuts herald down gracefully (it is also done at cleanup).
func (h *Herald) Stop() { h.stop() }

// Client returns an API client using h.Token.
func (h *Herald) Client(opts ...connect.ClientOption) heraldv1connect.NotificationServiceClient {
	if h.Token != "" {
		tok := h.Token
		opts = append(opts, connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+tok)
				return next(ctx, req)
			}
		})))
	}
	return heraldv1connect.NewNotificationServiceClient(http.DefaultClient, h.URL, opts...)
}

// PostWebhook posts an Alertmanager webhook body and returns the status.
func (h *Herald) PostWebhook(t testing.TB, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.URL+"/webhooks/alertmanager", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// WaitDelivered polls GetNotification until the notification's overall
// state is want or the timeout passes, and returns the last record seen.
// This is an integration wait on real processes, not a timing assertion.
func (h *Herald) WaitDelivered(t testing.TB, id string, want heraldv1.DeliveryState, timeout time.Duration) *heraldv1.GetNotificationResponse {
	t.Helper()
	c := h.Client()
	deadline := time.Now().Add(timeout)
	var last *heraldv1.GetNotificationResponse
	for {
		res, err := c.GetNotification(context.Background(), connect.NewRequest(&heraldv1.GetNotificationRequest{Id: id}))
		if err == nil {
			last = res.Msg
			if last.GetDelivery().GetState() == want {
				return last
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("notification %s not %v within %s; last record: %v (err %v)", id, want, timeout, last.GetDelivery(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
