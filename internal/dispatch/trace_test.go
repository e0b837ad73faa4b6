package dispatch

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/sinks"
)

// recorder is a TracerProvider that keeps every span it starts, so tests
// need no SDK.
type recorder struct {
	noop.TracerProvider
	mu    sync.Mutex
	spans []*recSpan
}

type recTracer struct {
	noop.Tracer
	r *recorder
}

type recSpan struct {
	noop.Span
	r      *recorder
	name   string
	parent *recSpan
	attrs  map[attribute.Key]attribute.Value
	events []string // "name k=v k=v"
	status codes.Code
	ended  bool
}

func (r *recorder) Tracer(string, ...trace.TracerOption) trace.Tracer { return recTracer{r: r} }

func (t recTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	cfg := trace.NewSpanStartConfig(opts...)
	s := &recSpan{r: t.r, name: name, attrs: map[attribute.Key]attribute.Value{}}
	if p, ok := trace.SpanFromContext(ctx).(*recSpan); ok {
		s.parent = p
	}
	s.SetAttributes(cfg.Attributes()...)
	t.r.mu.Lock()
	t.r.spans = append(t.r.spans, s)
	t.r.mu.Unlock()
	return trace.ContextWithSpan(ctx, s), s
}

func (s *recSpan) SetAttributes(kv ...attribute.KeyValue) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	for _, a := range kv {
		s.attrs[a.Key] = a.Value
	}
}

func (s *recSpan) AddEvent(name string, opts ...trace.EventOption) {
	cfg := trace.NewEventConfig(opts...)
	e := name
	for _, a := range cfg.Attributes() {
		e += " " + string(a.Key) + "=" + a.Value.String()
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.events = append(s.events, e)
}

// IsRecording is true: this span keeps what is set on it, as a sampled
// SDK span does.
func (s *recSpan) IsRecording() bool { return true }

func (s *recSpan) SetStatus(c codes.Code, _ string) { s.status = c }
func (s *recSpan) End(...trace.SpanEndOption)       { s.ended = true }

func (s *recSpan) attr(k string) string { return s.attrs[attribute.Key(k)].String() }

func TestSpans(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		rc := &fakeSink{name: "rc", send: always(err503)}
		slack := &fakeSink{name: "slack"}
		d, err := New(Options{
			Router:         chainRouter{{Sink: "rc", Channel: "#alerts"}, {Sink: "slack", Channel: "#alerts-slack"}},
			Sinks:          map[string]sinks.Sink{"rc": rc, "slack": slack},
			State:          NewMemoryState(),
			TracerProvider: rec,
			Config:         testConfig(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if out := d.Handle(t.Context(), msg("n1", "g")); out.Action != delivery.Ack {
			t.Fatal(out)
		}
		if len(rec.spans) != 5 {
			t.Fatalf("%d spans, want 5: one for Handle, four attempts", len(rec.spans))
		}
		h := rec.spans[0]
		for k, want := range map[string]string{
			"herald.notification.id": "n1",
			"herald.severity":        "SEVERITY_CRITICAL",
			"herald.status":          "STATUS_FIRING",
			"herald.route":           "default",
			"herald.outcome":         "ack",
		} {
			if got := h.attr(k); got != want {
				t.Errorf("handle span %s = %q, want %q", k, got, want)
			}
		}
		if h.name != "herald.dispatch" || !h.ended || h.status == codes.Error {
			t.Errorf("handle span %q ended %v status %v", h.name, h.ended, h.status)
		}
		wantEvents := []string{
			"breaker herald.sink=rc herald.breaker.from=closed herald.breaker.to=open herald.breaker.reason=HTTP 503 Service Unavailable",
			"fallback herald.fallback.from=rc herald.sink=slack herald.fallback.reason=rc: HTTP 503 Service Unavailable",
		}
		if got := strings.Join(h.events, "\n"); got != strings.Join(wantEvents, "\n") {
			t.Errorf("handle span events:\n%s\nwant\n%s", got, strings.Join(wantEvents, "\n"))
		}
		for i, want := range []struct{ sink, channel, attempt, class, reason string }{
			{"rc", "#alerts", "1", "retryable", ""},
			{"rc", "#alerts", "2", "retryable", ""},
			{"rc", "#alerts", "3", "retryable", ""},
			{"slack", "#alerts-slack", "1", "", "rc: HTTP 503 Service Unavailable"},
		} {
			s := rec.spans[i+1]
			got := struct{ sink, channel, attempt, class, reason string }{
				s.attr("herald.sink"), s.attr("herald.channel"), s.attr("herald.attempt"),
				s.attr("herald.error.class"), s.attr("herald.fallback.reason"),
			}
			if got != want || s.parent != h || s.name != "herald.dispatch.attempt" || !s.ended {
				t.Errorf("attempt span %d: %+v (parent ok %v, ended %v), want %+v", i, got, s.parent == h, s.ended, want)
			}
			if wantErr := want.class != ""; (s.status == codes.Error) != wantErr {
				t.Errorf("attempt span %d status %v", i, s.status)
			}
		}
	})
}
