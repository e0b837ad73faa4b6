package telemetry

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/trace"
)

func TestExemplars(t *testing.T) {
	sampled := trace.ContextWithSpanContext(context.Background(), testSpan)
	unsampled := trace.ContextWithSpanContext(context.Background(), testSpan.WithTraceFlags(0))
	tests := []struct {
		name string
		ctx  context.Context
		want string // trace_id exemplar label, "" for none
	}{
		{"sampled span", sampled, testTraceID},
		{"unsampled span", unsampled, ""},
		{"no span", context.Background(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h_seconds", Help: "h", Buckets: []float64{1, 10}})
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total", Help: "c"})
			Observe(tt.ctx, h, 2)
			Add(tt.ctx, c, 3)

			var hm, cm dto.Metric
			if err := h.Write(&hm); err != nil {
				t.Fatal(err)
			}
			if err := c.Write(&cm); err != nil {
				t.Fatal(err)
			}
			if got := hm.GetHistogram().GetSampleCount(); got != 1 {
				t.Errorf("histogram count %d, want 1", got)
			}
			if got := cm.GetCounter().GetValue(); got != 3 {
				t.Errorf("counter %v, want 3", got)
			}
			var hEx *dto.Exemplar
			for _, b := range hm.GetHistogram().GetBucket() {
				if b.GetExemplar() != nil {
					hEx = b.GetExemplar()
				}
			}
			for what, ex := range map[string]*dto.Exemplar{"histogram": hEx, "counter": cm.GetCounter().GetExemplar()} {
				got := ""
				for _, l := range ex.GetLabel() {
					if l.GetName() == ExemplarTraceID {
						got = l.GetValue()
					}
				}
				if got != tt.want {
					t.Errorf("%s exemplar trace_id %q, want %q", what, got, tt.want)
				}
			}
		})
	}
}
