// Package server owns herald's one HTTP listener: the Connect service (with
// gRPC and gRPC-Web), gRPC health and reflection, the Alertmanager webhook,
// /metrics, /healthz and /readyz, with auth and per-client scopes, body
// limits, bounds on requests in flight and on list answers, timeouts, TLS
// and a graceful shutdown.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"connectrpc.com/otelconnect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/herald-notify/herald/gen/herald/v1/heraldv1connect"
	"github.com/herald-notify/herald/internal/service"
)

// WebhookPath is where Alertmanager's webhook_configs point.
const WebhookPath = "/webhooks/alertmanager"

// ReloadPath is where POST reloads the config (clients with scope admin),
// as Prometheus' and Alertmanager's /-/reload.
const ReloadPath = "/-/reload"

// Options are the parts the server serves.
type Options struct {
	// Addr is the address Serve's caller listens on, for logs.
	Addr     string
	Timeouts Timeouts
	// MaxBodyBytes bounds every request body, API and webhook.
	MaxBodyBytes int64
	// TLS, when set, serves TLS on the listener.
	TLS *TLS
	// Clients are the callers accepted; with none, every request is let
	// through and New logs a warning.
	Clients []Client
	Service heraldv1connect.NotificationServiceHandler
	// Webhook handles POST /webhooks/alertmanager; nil leaves it unmounted.
	Webhook http.Handler
	// Reload re-reads the config and puts it in effect, or returns why it
	// cannot; POST /-/reload calls it. Nil leaves the path unmounted.
	Reload func(context.Context) error
	// Ready reports whether the queue and config are ready to take work.
	Ready func(context.Context) error
	// Registry is served on /metrics; the server registers its HTTP metrics
	// there.
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// MaxInFlight bounds the webhook and Publish requests handled at once;
	// one more waits up to InFlightWait for a slot and then gets 503 with
	// Retry-After. Zero means DefaultMaxInFlight and DefaultInFlightWait.
	MaxInFlight  int
	InFlightWait time.Duration
	// MaxAnswerBytes bounds a page of ListNotifications or ListDeadLetters
	// (binary protobuf size): a page that would be larger holds fewer
	// notifications and a token for the rest. Zero means
	// DefaultMaxAnswerBytes.
	MaxAnswerBytes int
}

// Server is a configured, not yet listening, herald HTTP server.
type Server struct {
	opts   Options
	http   *http.Server
	auth   *authenticator
	logger *slog.Logger
	// tls is the certificate and client CAs each new TLS connection gets
	// (SetTLS replaces it); nil without TLS.
	tls atomic.Pointer[tls.Config]
}

// New builds the handler tree and the http.Server.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Ready == nil {
		opts.Ready = func(context.Context) error { return nil }
	}
	if opts.MaxInFlight == 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.InFlightWait == 0 {
		opts.InFlightWait = DefaultInFlightWait
	}
	if opts.MaxAnswerBytes == 0 {
		opts.MaxAnswerBytes = DefaultMaxAnswerBytes
	}
	if opts.Timeouts.Shutdown == 0 {
		opts.Timeouts.Shutdown = DefaultShutdownTimeout
	}
	auth := newAuthenticator(opts.Clients, opts.Logger)
	if !auth.enabled() {
		opts.Logger.Warn("no auth.clients configured: the API and the webhook accept requests from anyone")
	}
	h, err := handler(opts, auth)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Addr:              opts.Addr,
		Handler:           h,
		ReadHeaderTimeout: opts.Timeouts.ReadHeader,
		ReadTimeout:       opts.Timeouts.Read,
		WriteTimeout:      opts.Timeouts.Write,
		IdleTimeout:       opts.Timeouts.Idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	// One port for HTTP/1.1 and HTTP/2 with and without TLS, so gRPC
	// clients work against a plain-text listener (h2c).
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	s := &Server{opts: opts, http: srv, auth: auth, logger: opts.Logger}
	if opts.TLS != nil {
		tc, err := tlsConfig(*opts.TLS)
		if err != nil {
			return nil, err
		}
		s.tls.Store(tc)
		// Each handshake takes the files' contents as last read (SetTLS),
		// so a renewed certificate needs no restart.
		srv.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			NextProtos: tc.NextProtos,
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				return s.tls.Load(), nil
			},
		}
	}
	return s, nil
}

// SetTLS reads t's certificate, key and client CAs and gives them to every
// TLS connection from the next handshake on; connections already open keep
// theirs. It changes nothing and returns the error when a file cannot be
// used, and when the server was built without TLS (turning TLS on or off
// needs a new listener: a restart).
func (s *Server) SetTLS(t TLS) error {
	apply, err := s.PrepareTLS(t)
	if err != nil {
		return err
	}
	apply()
	return nil
}

// PrepareTLS reads t's files as SetTLS does and returns the func that puts
// them in effect, so that a reload can check every part before it changes
// any.
func (s *Server) PrepareTLS(t TLS) (apply func(), err error) {
	if s.tls.Load() == nil {
		return nil, errors.New("tls: herald was started without TLS; turning it on needs a restart")
	}
	tc, err := tlsConfig(t)
	if err != nil {
		return nil, err
	}
	return func() { s.tls.Store(tc) }, nil
}

// SetClients makes clients the accepted callers from the next request on
// (a reload); requests under way keep the client they were let in as.
func (s *Server) SetClients(clients []Client) {
	s.auth.set(clients)
	if !s.auth.enabled() {
		s.logger.Warn("no auth.clients configured: the API and the webhook accept requests from anyone")
	}
}

// Handler returns the server's root handler, for tests.
func (s *Server) Handler() http.Handler { return s.http.Handler }

func handler(opts Options, auth *authenticator) (http.Handler, error) {
	if err := checkProcedureScopes(); err != nil {
		return nil, err
	}
	otelInterceptor, err := otelconnect.NewInterceptor(otelconnect.WithoutMetrics())
	if err != nil {
		return nil, err
	}
	metrics := newHTTPMetrics(opts.Registry)

	// Webhooks and publishes are the requests whose bodies a storm makes
	// many of: at most MaxInFlight are read and handled at once.
	limit := newLimiter(opts.MaxInFlight, opts.InFlightWait, metrics.shed)

	mux := http.NewServeMux()
	// service.HandlerOptions: a JSON decoder that names an unknown enum
	// value instead of reading it as unset ("required").
	path, svc := heraldv1connect.NewNotificationServiceHandler(opts.Service, append(service.HandlerOptions(),
		connect.WithInterceptors(otelInterceptor, boundPages(opts.MaxAnswerBytes)),
		connect.WithReadMaxBytes(int(opts.MaxBodyBytes)),
	)...)
	api := http.MaxBytesHandler(svc, opts.MaxBodyBytes+1024)
	mux.Handle(path, metrics.wrap("api", auth.wrap(auth.require(procedureScope, connectDenied, api))))
	mux.Handle(heraldv1connect.NotificationServicePublishProcedure,
		metrics.wrap("api", auth.wrap(auth.require(procedureScope, connectDenied, limit.wrap("api", api, connectBusy)))))

	// Health answers load balancers' and Kubernetes' probes, which carry no
	// credentials; reflection describes the API to every client, whatever
	// its scopes.
	checker := &healthChecker{ready: opts.Ready}
	mux.Handle(grpchealth.NewHandler(checker))
	reflector := grpcreflect.NewStaticReflector(heraldv1connect.NotificationServiceName, grpchealth.HealthV1ServiceName)
	authed := func(path string, h http.Handler) (string, http.Handler) { return path, auth.wrap(h) }
	mux.Handle(authed(grpcreflect.NewHandlerV1(reflector)))
	mux.Handle(authed(grpcreflect.NewHandlerV1Alpha(reflector)))

	if opts.Webhook != nil {
		mux.Handle("POST "+WebhookPath, metrics.wrap("webhook",
			auth.wrap(auth.require(needs(ScopePublish), httpDenied, limit.wrap("webhook", opts.Webhook, httpBusy)))))
		mux.Handle(WebhookPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed: POST an Alertmanager webhook here", http.StatusMethodNotAllowed)
		}))
	}
	if opts.Reload != nil {
		mux.Handle("POST "+ReloadPath, metrics.wrap("reload",
			auth.wrap(auth.require(needs(ScopeAdmin), httpDenied, reloadHandler(opts.Reload)))))
		mux.Handle(ReloadPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed: POST here to reload the config", http.StatusMethodNotAllowed)
		}))
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := opts.Ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return otelhttp.NewHandler(mux, "herald",
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }),
		otelhttp.WithFilter(func(r *http.Request) bool {
			switch r.URL.Path {
			case "/metrics", "/healthz", "/readyz":
				return false
			}
			return true
		}),
	), nil
}

// reloadHandler answers POST /-/reload as Prometheus and Alertmanager do:
// 200 once the config is in effect, 500 with the reason when it was
// refused (the old one keeps running).
func reloadHandler(reload func(context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := reload(r.Context()); err != nil {
			http.Error(w, "failed to reload config: "+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "config reloaded")
	})
}

// healthChecker answers gRPC health checks from readiness: SERVING when
// herald can take work, NOT_SERVING otherwise.
type healthChecker struct{ ready func(context.Context) error }

func (h *healthChecker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	switch req.Service {
	case "", heraldv1connect.NotificationServiceName:
	default:
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %q", req.Service))
	}
	if err := h.ready(ctx); err != nil {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}

func tlsConfig(c TLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.client_ca_file: %s holds no PEM certificate", c.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// Serve serves on l until ctx is cancelled, then stops accepting, lets
// in-flight requests finish within the shutdown timeout, and returns.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	// Read TLSConfig before serving: http.Server.Serve sets it (to an
	// empty config) when it configures HTTP/2.
	useTLS := s.http.TLSConfig != nil
	errc := make(chan error, 1)
	go func() {
		if useTLS {
			errc <- s.http.Serve(tls.NewListener(l, s.http.TLSConfig))
			return
		}
		errc <- s.http.Serve(l)
	}()
	s.logger.Info("serving", "addr", l.Addr().String(), "tls", useTLS)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.logger.Info("shutting down: finishing in-flight requests", "timeout", s.opts.Timeouts.Shutdown)
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeouts.Shutdown)
	defer cancel()
	err := s.http.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}

// httpMetrics are the server's request metrics, by handler.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight *prometheus.GaugeVec
	shed     *prometheus.CounterVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	f := promauto.With(reg)
	return &httpMetrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_http_requests_total",
			Help: "HTTP requests by handler, method and status code.",
		}, []string{"handler", "method", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                        "herald_http_request_duration_seconds",
			Help:                        "HTTP request latency by handler.",
			Buckets:                     []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
			NativeHistogramBucketFactor: 1.1,
		}, []string{"handler", "method", "code"}),
		inflight: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_http_requests_in_flight",
			Help: "HTTP requests being served, by handler.",
		}, []string{"handler"}),
		shed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_http_requests_shed_total",
			Help: "Webhook and Publish requests answered 503 (Retry-After) because the in-flight bound was reached, by handler.",
		}, []string{"handler"}),
	}
}

func (m *httpMetrics) wrap(name string, h http.Handler) http.Handler {
	labels := prometheus.Labels{"handler": name}
	return promhttp.InstrumentHandlerInFlight(m.inflight.With(labels),
		promhttp.InstrumentHandlerDuration(m.duration.MustCurryWith(labels),
			promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(labels), h)))
}
