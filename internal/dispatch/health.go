package dispatch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/herald-notify/herald/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

// SinkHealth is what the dispatcher knows of one sink now: for status
// pages, the API's ListSinks and metrics.
type SinkHealth struct {
	Name    string
	Breaker BreakerState
	// LastErrorClass and LastError are those of the sink's last failed
	// request (never a secret: sinks keep them out of their errors), at
	// LastErrorAt; zero when none failed since the start.
	LastErrorClass string
	LastError      string
	LastErrorAt    time.Time
	// LastSuccessAt is when the sink last took a request.
	LastSuccessAt time.Time
	// ThrottleWait is how long a paced sink waits before its next request
	// to its default channel; zero for others.
	ThrottleWait time.Duration
}

// health tracks the last outcome of every sink's requests.
type health struct {
	mu   sync.Mutex
	last map[string]*SinkHealth
}

// note records the outcome of one request to sink. A request cut short by
// shutdown says nothing about the sink.
func (h *health) note(ctx context.Context, sink string, err error) {
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last == nil {
		h.last = map[string]*SinkHealth{}
	}
	s := h.last[sink]
	if s == nil {
		s = &SinkHealth{Name: sink}
		h.last[sink] = s
	}
	if err == nil {
		s.LastSuccessAt = now
		return
	}
	s.LastErrorClass, s.LastError, s.LastErrorAt = sinks.Classify(err).String(), truncate(err.Error(), 500), now
}

// Health returns every sink's health, by name.
func (d *Dispatcher) Health() []SinkHealth {
	g := d.gen.Load()
	breakers := d.Breakers()
	out := make([]SinkHealth, 0, len(g.sinks))
	d.health.mu.Lock()
	for name := range g.sinks {
		h := SinkHealth{Name: name}
		if s := d.health.last[name]; s != nil {
			h = *s
		}
		h.Breaker = breakers[name]
		out = append(out, h)
	}
	d.health.mu.Unlock()
	for i := range out {
		if p, ok := g.sinks[out[i].Name].(sinks.Pacer); ok {
			out[i].ThrottleWait = p.Wait(sinks.Target{})
		}
	}
	slices.SortFunc(out, func(a, b SinkHealth) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

var (
	descPaceWait = prometheus.NewDesc("herald_sink_pace_wait_seconds",
		"How long a paced sink waits now before its next request to its default channel (0: it can send).",
		[]string{"sink"}, nil)
	descLastSuccess = prometheus.NewDesc("herald_sink_last_success_timestamp_seconds",
		"When the sink last took a request, Unix seconds; absent until it has.",
		[]string{"sink"}, nil)
	descLastError = prometheus.NewDesc("herald_sink_last_error_timestamp_seconds",
		"When a request to the sink last failed, Unix seconds, labelled with that failure's class; absent until one has.",
		[]string{"sink", "class"}, nil)
)

// healthCollector exports Health as metrics at scrape time.
type healthCollector struct{ d *Dispatcher }

func (c healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPaceWait
	ch <- descLastSuccess
	ch <- descLastError
}

func (c healthCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.d.gen.Load()
	for _, h := range c.d.Health() {
		if _, paced := g.sinks[h.Name].(sinks.Pacer); paced {
			ch <- prometheus.MustNewConstMetric(descPaceWait, prometheus.GaugeValue, h.ThrottleWait.Seconds(), h.Name)
		}
		if !h.LastSuccessAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, float64(h.LastSuccessAt.UnixMilli())/1e3, h.Name)
		}
		if !h.LastErrorAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descLastError, prometheus.GaugeValue, float64(h.LastErrorAt.UnixMilli())/1e3, h.Name, h.LastErrorClass)
		}
	}
}
