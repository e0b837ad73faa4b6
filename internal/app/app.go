// Package app wires herald's parts together from a config: the store, the
// service, the webhook shim, the dispatcher and the HTTP server. cmd/herald
// only parses flags and signals and calls Run.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/server"
	"github.com/herald-notify/herald/internal/service"
	"github.com/herald-notify/herald/internal/shim"
	"github.com/herald-notify/herald/internal/store"
	"github.com/herald-notify/herald/internal/telemetry"
)

// App is a wired herald, ready to serve.
type App struct {
	cfg      *config.Config
	logger   *slog.Logger
	server   *server.Server
	store    store.Store
	registry *prometheus.Registry
	closers  []func() error
}

// New builds every part from cfg. Nothing listens until Serve.
func New(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*App, error) {
	a := &App{cfg: cfg, logger: logger, registry: prometheus.NewRegistry()}
	a.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// The in-memory store keeps the API usable until the durable queue is
	// wired in; it loses everything on exit.
	st := store.NewMemory()
	a.store = st
	svc := service.New(st, service.Options{Logger: logger.With("component", "service"), Registerer: a.registry})
	webhook := shim.NewHandler(svc, shim.Options{
		MaxBodyBytes: cfg.Webhook.MaxBodyBytes,
		Logger:       logger.With("component", "shim"),
	})
	srv, err := server.New(server.Options{
		Config:   cfg,
		Service:  svc,
		Webhook:  webhook,
		Ready:    a.ready,
		Registry: a.registry,
		Logger:   logger.With("component", "server"),
	})
	if err != nil {
		a.Close()
		return nil, err
	}
	a.server = srv
	return a, nil
}

func (a *App) ready(ctx context.Context) error { return nil }

// Serve listens on the configured address and serves until ctx is done.
func (a *App) Serve(ctx context.Context) error {
	l, err := a.server.Listen()
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return a.ServeListener(ctx, l)
}

// ServeListener serves on l until ctx is done, then shuts down gracefully.
func (a *App) ServeListener(ctx context.Context, l net.Listener) error {
	return a.server.Serve(ctx, l)
}

// Close releases everything New opened, in reverse order.
func (a *App) Close() error {
	var first error
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// NewLogger builds the process logger from the log config; every line
// logged with a context carries its trace and span ids.
func NewLogger(c config.LogConfig) *slog.Logger {
	return telemetry.NewLogger(c.Format, c.Level, os.Stderr)
}
