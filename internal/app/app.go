// Package app wires herald's parts together from a config: the queue, the
// service, the webhook shim, the dispatcher with its sinks, and the HTTP
// server. cmd/herald only parses flags and signals and calls New and Serve.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/dispatch"
	"github.com/herald-notify/herald/internal/queue"
	"github.com/herald-notify/herald/internal/route"
	"github.com/herald-notify/herald/internal/server"
	"github.com/herald-notify/herald/internal/service"
	"github.com/herald-notify/herald/internal/shim"
	"github.com/herald-notify/herald/internal/telemetry"
)

// Options are what a test or an embedding program may change beyond the
// config file.
type Options struct {
	// SinkTransport is the base HTTP transport of every sink; nil means
	// http.DefaultTransport. It is wrapped for tracing either way.
	SinkTransport http.RoundTripper
	// Registry receives every metric; nil means a new one.
	Registry *prometheus.Registry
}

// App is a wired herald, ready to serve.
type App struct {
	cfg        *config.Config
	logger     *slog.Logger
	queue      *queue.Queue
	dispatcher *dispatch.Dispatcher
	server     *server.Server
	registry   *prometheus.Registry
}

// New builds every part from cfg: it opens the queue (starting the embedded
// NATS server unless queue.url is set) but delivers nothing and listens
// nowhere until Serve.
func New(ctx context.Context, cfg *config.Config, logger *slog.Logger, opts Options) (*App, error) {
	a := &App{cfg: cfg, logger: logger, registry: opts.Registry}
	if a.registry == nil {
		a.registry = prometheus.NewRegistry()
		a.registry.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
	}
	q, err := queue.Open(ctx, cfg.Queue, queue.Options{
		DataDir:    cfg.DataDir,
		Logger:     logger.With("component", "queue"),
		Registerer: a.registry,
	})
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	a.queue = q
	fail := func(err error) (*App, error) {
		q.Close()
		return nil, err
	}

	router, err := route.New(cfg.Routes)
	if err != nil {
		return fail(err)
	}
	if cfg.Queue.Concurrency != 0 {
		logger.Warn("queue.concurrency is no longer used; attempts in flight are bounded by dispatch.max_in_flight and dispatch.max_in_flight_per_sink")
	}
	perSink := cfg.Dispatch.MaxInFlightPerSink
	if perSink == 0 {
		perSink = dispatch.DefaultConfig().MaxInFlightPerSink
	}
	sinkMap, err := buildSinks(cfg.Sinks, logger, opts.SinkTransport, perSink)
	if err != nil {
		return fail(err)
	}
	a.dispatcher, err = dispatch.New(dispatch.Options{
		Router:     router,
		Sinks:      sinkMap,
		State:      q,
		Logger:     logger.With("component", "dispatch"),
		Registerer: a.registry,
		Config:     cfg.Dispatch,
	})
	if err != nil {
		return fail(err)
	}

	svc := service.New(q, service.Options{Logger: logger.With("component", "service"), Registerer: a.registry})
	webhook := shim.NewHandler(tracedPublisher{svc}, shim.Options{
		MaxBodyBytes: cfg.Webhook.MaxBodyBytes,
		Logger:       logger.With("component", "shim"),
	})
	a.server, err = server.New(server.Options{
		Config:   cfg,
		Service:  svc,
		Webhook:  webhook,
		Ready:    q.Ready,
		Registry: a.registry,
		Logger:   logger.With("component", "server"),
	})
	if err != nil {
		return fail(err)
	}
	return a, nil
}

// Serve listens on the configured address and serves until ctx is done.
func (a *App) Serve(ctx context.Context) error {
	l, err := a.server.Listen()
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return a.ServeListener(ctx, l)
}

// ServeListener serves on l and delivers from the queue until ctx is done.
// Then it stops accepting, lets in-flight requests finish, stops the
// dispatcher (a delivery cut short is left for redelivery, never acked) and
// returns. Call Close afterwards.
func (a *App) ServeListener(ctx context.Context, l net.Listener) error {
	consumeCtx, stopConsuming := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	var consumeErr error
	wg.Go(func() {
		consumeErr = a.queue.Consume(consumeCtx, a.dispatcher.Handle, queue.WithRouteOf(a.dispatcher.RouteOf))
		if consumeErr != nil {
			a.logger.Error("dispatcher stopped", "err", consumeErr)
		}
	})
	serveErr := a.server.Serve(ctx, l)
	stopConsuming()
	wg.Wait()
	return errors.Join(serveErr, consumeErr)
}

// Close shuts the queue down (and the embedded NATS server with it).
func (a *App) Close() error {
	return a.queue.Close()
}

// Registry is where every herald metric is registered.
func (a *App) Registry() *prometheus.Registry { return a.registry }

// NewLogger builds the process logger from the log config; every line
// logged with a context carries its trace and span ids.
func NewLogger(c config.LogConfig) *slog.Logger {
	return telemetry.NewLogger(c.Format, c.Level, os.Stderr)
}
