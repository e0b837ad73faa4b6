package app

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/dispatch"
	"github.com/herald-notify/herald/internal/route"
)

// reloader re-reads the config and puts in effect what can change while
// herald runs: routes, sinks and their templates, auth clients and the
// dispatch settings.
type reloader struct {
	load func() (*config.Config, error)

	mu sync.Mutex // one reload at a time
	// live is the config in effect: the one New was given, then each
	// reloaded one.
	live   atomic.Pointer[config.Config]
	router atomic.Pointer[route.Table]

	ok   prometheus.Gauge
	last prometheus.Gauge
}

func newReloader(cfg *config.Config, router *route.Table, load func() (*config.Config, error), reg prometheus.Registerer) (*reloader, error) {
	r := &reloader{
		load: load,
		// Alertmanager's and Prometheus' names, so that dashboards and
		// alerts written for them read herald too.
		ok: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_config_last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful (1) or refused (0).",
		}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload (or of the start).",
		}),
	}
	for _, c := range []prometheus.Collector{r.ok, r.last} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering reload metrics: %w", err)
		}
	}
	r.live.Store(cfg)
	r.router.Store(router)
	r.ok.Set(1)
	r.last.SetToCurrentTime()
	return r, nil
}

// errNoConfigFile is Reload's answer when herald runs on the built-in
// defaults.
var errNoConfigFile = errors.New("herald was started without a config file (-config or HERALD_CONFIG): there is nothing to re-read")

// Reload re-reads the config file and puts in effect what can change while
// herald runs: routes, sinks and their templates, auth clients and the
// dispatch settings. A config that does not load, or that New would
// refuse, is refused whole: the running one stays in effect, the error is
// logged and returned, and herald_config_last_reload_successful reads 0.
//
// Nothing is dropped: a request under way finishes with the credentials it
// was let in with; a notification being delivered finishes with the
// routes and sinks it started with, and every later one uses the new ones;
// pending notifications stay queued, and each group's message in a chat
// stays its message. A sink whose config is unchanged keeps its circuit
// breaker; one whose config changed starts with a closed breaker, as a new
// sink does. Every sink is built anew, so that its templates are read
// again: what a sink learnt of its server's rate limits is learnt again
// from the next answers.
//
// TLS certificate, key and client CA files are read again, for new
// connections. The listen address, data_dir, the queue, turning TLS on or
// off, the server's timeouts and limits, the webhook's body limit and
// logging take effect only at the next start: a reload that changes them says so in the log and changes
// the rest. Without a config file there is nothing to re-read: Reload
// returns an error saying so and leaves the metrics as they are.
func (a *App) Reload(ctx context.Context) error {
	r := a.reload
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	cfg, err := a.reloadOnce()
	if errors.Is(err, errNoConfigFile) {
		// Nothing was tried: the config in effect is the one there is.
		a.logger.WarnContext(ctx, "config reload asked for, but there is no config file to re-read")
		return err
	}
	if err != nil {
		r.ok.Set(0)
		a.logger.ErrorContext(ctx, "config reload refused; the running config stays in effect", "err", err)
		return err
	}
	r.ok.Set(1)
	r.last.SetToCurrentTime()
	a.logger.InfoContext(ctx, "config reloaded", "sinks", len(cfg.Sinks), "routes", len(cfg.Routes), "took", time.Since(start))
	return nil
}

func (a *App) reloadOnce() (*config.Config, error) {
	r := a.reload
	if r.load == nil {
		return nil, errNoConfigFile
	}
	cfg, err := r.load()
	if err != nil {
		return nil, err
	}
	router, err := route.New(cfg.Routes)
	if err != nil {
		return nil, err
	}
	sinkMap, err := BuildSinks(cfg.Sinks, a.logger, a.sinkTransport)
	if err != nil {
		return nil, err
	}
	old := r.live.Load()
	oldSinks := make(map[string]config.SinkConfig, len(old.Sinks))
	for _, c := range old.Sinks {
		oldSinks[c.Name] = c
	}
	reset := make(map[string]bool)
	for _, c := range cfg.Sinks {
		if prev, ok := oldSinks[c.Name]; ok && !reflect.DeepEqual(prev, c) {
			reset[c.Name] = true
		}
	}
	// TLS files are read again (a renewed certificate); turning TLS on or
	// off needs a restart (restartOnly says so).
	applyTLS := func() {}
	if a.cfg.TLS.Enabled() && cfg.TLS.Enabled() {
		if applyTLS, err = a.server.PrepareTLS(*serverTLS(cfg.TLS)); err != nil {
			return nil, err
		}
	}
	if err := a.dispatcher.Reload(dispatch.Reload{
		Router: router,
		Sinks:  sinkMap,
		Config: cfg.Dispatch,
		Reset:  reset,
	}); err != nil {
		return nil, err
	}
	// Nothing below can fail: the reload is whole from here on.
	applyTLS()
	a.server.SetClients(serverClients(cfg.Auth))
	r.router.Store(router)
	r.live.Store(cfg)
	// Against the config herald started with: those values are running.
	for _, key := range restartOnly(a.cfg, cfg) {
		a.logger.Warn("config: " + key + " changed; it takes effect at the next start, the running value stays until then")
	}
	for _, w := range cfg.Warnings() {
		a.logger.Warn("config: " + w)
	}
	return cfg, nil
}

// restartOnly names the parts of the config that differ between a and b
// and that only a start puts in effect.
func restartOnly(a, b *config.Config) []string {
	var out []string
	for _, f := range []struct {
		key  string
		a, b any
	}{
		{"listen", a.Listen, b.Listen},
		{"data_dir", a.DataDir, b.DataDir},
		{"log", a.Log, b.Log},
		{"server", a.Server, b.Server},
		{"tls (on or off)", a.TLS.Enabled(), b.TLS.Enabled()},
		{"webhook", a.Webhook, b.Webhook},
		{"queue", a.Queue, b.Queue},
	} {
		if !reflect.DeepEqual(f.a, f.b) {
			out = append(out, f.key)
		}
	}
	return out
}
