// Package app wires herald's parts together from a config: the queue, the
// service, the webhook shim, the dispatcher with its sinks, and the HTTP
// server. cmd/herald only parses flags and signals and calls New and Serve.
package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/datadir"
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
	// Listener is served instead of a listener New opens on the config's
	// listen address. App owns it from New on.
	Listener net.Listener
	// Load reads the config again for Reload (SIGHUP, POST /-/reload),
	// with the same command-line overrides New's config had. Nil means
	// herald runs without a config file, and Reload refuses.
	Load func() (*config.Config, error)
}

// App is a wired herald, ready to serve.
type App struct {
	// cfg is the config New was given; what a reload changes is in reload.
	cfg    *config.Config
	logger *slog.Logger
	queue  *queue.Queue
	// pending is the queue as the service, the dispatcher and /readyz
	// use it: unavailable until the queue is open.
	pending    *pendingQueue
	dispatcher *dispatch.Dispatcher
	server     *server.Server
	registry   *prometheus.Registry
	listener   net.Listener
	// lock keeps data_dir to this process until Close; nil with an
	// external NATS cluster.
	lock *datadir.Lock
	// sinkTransport is the traced HTTP transport every sink is built on,
	// kept across reloads with its connections.
	sinkTransport http.RoundTripper
	reload        *reloader
}

// New builds every part from cfg. In this order, so that a herald that
// cannot run changes nothing on disk: it locks data_dir (an *InUseError
// from package datadir when another process holds it), binds the listen
// address, then starts the embedded NATS server and opens the queue. It
// delivers nothing and answers nothing until Serve.
//
// With queue.url set New does not contact the cluster: Serve opens the
// queue, waiting as long as it takes (see Serve). data_dir holds nothing
// then and is not locked: replicas sharing one config, or a read-only file
// system, must not stop herald.
func New(ctx context.Context, cfg *config.Config, logger *slog.Logger, opts Options) (_ *App, err error) {
	a := &App{cfg: cfg, logger: logger, registry: opts.Registry, listener: opts.Listener, pending: newPendingQueue()}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.registry == nil {
		a.registry = prometheus.NewRegistry()
		a.registry.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
	}
	if cfg.Queue.URL == "" {
		if a.lock, err = datadir.Acquire(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	if a.listener == nil {
		if a.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, err
		}
	}
	if cfg.Queue.URL == "" {
		// queue.Open names its logger's component itself.
		if a.queue, err = a.openQueue(ctx); err != nil {
			return nil, err
		}
		a.pending.set(a.queue)
	}

	router, err := route.New(cfg.Routes)
	if err != nil {
		return nil, err
	}
	if cfg.Queue.Concurrency != 0 {
		logger.Warn("queue.concurrency is no longer used; attempts in flight are bounded by dispatch.max_in_flight and dispatch.max_in_flight_per_sink")
	}
	a.sinkTransport = sinkTransport(opts.SinkTransport)
	sinkMap, err := BuildSinks(cfg.Sinks, logger, a.sinkTransport)
	if err != nil {
		return nil, err
	}
	if a.reload, err = newReloader(cfg, router, opts.Load, a.registry); err != nil {
		return nil, err
	}
	a.dispatcher, err = dispatch.New(dispatch.Options{
		Router:     router,
		Sinks:      sinkMap,
		State:      a.pending,
		Logger:     logger.With("component", "dispatch"),
		Registerer: a.registry,
		Config:     cfg.Dispatch,
	})
	if err != nil {
		return nil, err
	}

	svc := service.New(a.pending, service.Options{
		Logger:     logger.With("component", "service"),
		Registerer: a.registry,
		Sinks:      a.sinkStatus,
		Fanout:     fanout(&a.reload.router),
	})
	webhook := shim.NewHandler(tracedPublisher{svc}, shim.Options{
		MaxBodyBytes: cfg.Webhook.MaxBodyBytes,
		Logger:       logger.With("component", "shim"),
	})
	a.server, err = server.New(server.Options{
		Addr:         cfg.Listen,
		Timeouts:     serverTimeouts(cfg.Server),
		MaxBodyBytes: cfg.Server.MaxBodyBytes,
		TLS:          serverTLS(cfg.TLS),
		Clients:      serverClients(cfg.Auth),
		Service:      svc,
		Webhook:      webhook,
		Reload:       a.Reload,
		Ready:        a.pending.Ready,
		Registry:     a.registry,
		Logger:       logger.With("component", "server"),
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Serve serves on the listener New bound and delivers from the queue until
// ctx is done. Then it stops accepting, lets in-flight requests finish,
// stops the dispatcher (a delivery cut short is left for redelivery, never
// acked) and returns. Call Close afterwards.
//
// With queue.url set it serves at once and opens the queue meanwhile,
// retrying with backoff for as long as it fails: until then /readyz says
// why herald is not ready, and every API call and webhook gets
// Unavailable (503 with Retry-After), which Alertmanager retries. It
// returns an error wrapping queue.ErrIncompatible when the cluster
// conflicts with the config (its max_payload, the partition count).
func (a *App) Serve(ctx context.Context) error {
	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	consumeCtx, stopConsuming := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	var openErr error
	wg.Go(func() {
		if a.queue == nil {
			q, err := a.openPatiently(serveCtx)
			if err != nil {
				if ctx.Err() == nil {
					openErr = err
					a.logger.Error("cannot open the queue; stopping", "err", err)
					stopServing()
				}
				return
			}
			a.queue = q
			a.pending.set(q)
		}
		a.queue.Consume(consumeCtx, a.dispatcher.Handle, queue.WithRouteOf(a.dispatcher.RouteOf))
	})
	serveErr := a.server.Serve(serveCtx, a.listener)
	stopConsuming()
	wg.Wait()
	return errors.Join(openErr, serveErr)
}

// Close shuts the queue down (and the embedded NATS server with it), closes
// the listener if Serve never ran, and only then releases data_dir.
func (a *App) Close() error {
	var err error
	if a.queue != nil {
		err = a.queue.Close()
	}
	if a.listener != nil {
		// Serve's shutdown closed it already; the second close's error
		// says nothing.
		_ = a.listener.Close()
	}
	return errors.Join(err, a.lock.Close())
}

// Registry is where every herald metric is registered.
func (a *App) Registry() *prometheus.Registry { return a.registry }

// NewLogger builds the process logger from the log config; every line
// logged with a context carries its trace and span ids.
func NewLogger(c config.LogConfig) *slog.Logger {
	return telemetry.NewLogger(c.Format, c.Level, os.Stderr)
}

func serverTimeouts(c config.ServerConfig) server.Timeouts {
	return server.Timeouts{
		ReadHeader: c.ReadHeaderTimeout,
		Read:       c.ReadTimeout,
		Write:      c.WriteTimeout,
		Idle:       c.IdleTimeout,
		Shutdown:   c.ShutdownTimeout,
	}
}

func serverTLS(c config.TLSConfig) *server.TLS {
	if !c.Enabled() {
		return nil
	}
	return &server.TLS{CertFile: c.CertFile, KeyFile: c.KeyFile, ClientCAFile: c.ClientCAFile}
}

// serverClients gives each client its credentials, read from their files
// by config.Validate, and its scopes: every scope when the config lists
// none.
func serverClients(c config.AuthConfig) []server.Client {
	var out []server.Client
	for _, cl := range c.Clients {
		sc := server.Client{
			Name:     cl.Name,
			Token:    cl.Token.Value(),
			Username: cl.Username,
			Password: cl.Password.Value(),
		}
		for _, s := range server.AllScopes() {
			if cl.Allows(s) {
				sc.Scopes = append(sc.Scopes, s)
			}
		}
		out = append(out, sc)
	}
	return out
}

// sinkStatus is the dispatcher's health of every sink, for ListSinks.
func (a *App) sinkStatus() []*heraldv1.SinkStatus {
	live := a.reload.live.Load()
	types := make(map[string]string, len(live.Sinks))
	for _, c := range live.Sinks {
		types[c.Name] = c.Type()
	}
	var out []*heraldv1.SinkStatus
	for _, h := range a.dispatcher.Health() {
		st := &heraldv1.SinkStatus{
			Name:           h.Name,
			Type:           types[h.Name],
			Breaker:        breakerState(h.Breaker),
			LastErrorClass: h.LastErrorClass,
			LastError:      h.LastError,
			PaceWait:       durationpb.New(h.ThrottleWait),
		}
		if !h.LastErrorAt.IsZero() {
			st.LastErrorTime = timestamppb.New(h.LastErrorAt)
		}
		if !h.LastSuccessAt.IsZero() {
			st.LastSuccessTime = timestamppb.New(h.LastSuccessAt)
		}
		out = append(out, st)
	}
	return out
}

func breakerState(s dispatch.BreakerState) heraldv1.BreakerState {
	switch s {
	case dispatch.BreakerClosed:
		return heraldv1.BreakerState_BREAKER_STATE_CLOSED
	case dispatch.BreakerHalfOpen:
		return heraldv1.BreakerState_BREAKER_STATE_HALF_OPEN
	case dispatch.BreakerOpen:
		return heraldv1.BreakerState_BREAKER_STATE_OPEN
	}
	return heraldv1.BreakerState_BREAKER_STATE_UNSPECIFIED
}

// fanout names the routes that deliver n when routes with continue: true
// send it to more than one, by the routes in effect.
func fanout(t *atomic.Pointer[route.Table]) func(*heraldv1.Notification) []string {
	return func(n *heraldv1.Notification) []string {
		ds := t.Load().Routes(n)
		if len(ds) < 2 {
			return nil
		}
		names := make([]string, len(ds))
		for i, d := range ds {
			names[i] = d.Route
		}
		return names
	}
}
