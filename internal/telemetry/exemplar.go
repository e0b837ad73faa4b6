package telemetry

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// ExemplarTraceID is the exemplar label that links a metric sample to its
// trace; Grafana's exemplar link to Jaeger reads it.
const ExemplarTraceID = "trace_id"

// Exemplar returns the exemplar labels for the sampled span in ctx, or nil
// when there is none (unsampled traces are not in Jaeger to link to).
func Exemplar(ctx context.Context) prometheus.Labels {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return nil
	}
	return prometheus.Labels{ExemplarTraceID: sc.TraceID().String()}
}

// Observe records v in o, with the trace of ctx as exemplar when there is
// one and o takes exemplars (client_golang histograms do).
func Observe(ctx context.Context, o prometheus.Observer, v float64) {
	if ex := Exemplar(ctx); ex != nil {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(v, ex)
			return
		}
	}
	o.Observe(v)
}

// Add adds v to c, with the trace of ctx as exemplar when there is one and
// c takes exemplars.
func Add(ctx context.Context, c prometheus.Counter, v float64) {
	if ex := Exemplar(ctx); ex != nil {
		if ea, ok := c.(prometheus.ExemplarAdder); ok {
			ea.AddWithExemplar(v, ex)
			return
		}
	}
	c.Add(v)
}
