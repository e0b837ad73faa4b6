package telemetrytest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-notify/herald/internal/telemetry"
)

// recT records failures instead of failing, so tests can check that the
// assertions fail when they should.
type recT struct {
	testing.TB
	mu     sync.Mutex
	errors []string
	fatal  bool
}

func (r *recT) Helper() {}
func (r *recT) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recT) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	r.fatal = true
	panic(r)
}
func (r *recT) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

// run calls f with a recording T and returns what it reported.
func run(t *testing.T, f func(tb testing.TB)) *recT {
	r := &recT{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil && p != any(r) {
				panic(p)
			}
		}()
		f(r)
	}()
	return r
}

// tree records webhook → publish → dispatch → attempt ×2, with an
// Alertmanager-like remote parent.
func tree(t *testing.T) (*Recorder, trace.TraceID) {
	rec := Install(t)
	tr := otel.Tracer("test")
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3},
		SpanID:     trace.SpanID{4, 5, 6},
		TraceFlags: trace.FlagsSampled,
		Remote:     true,
	})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remote)
	ctx, webhook := tr.Start(ctx, "webhook")
	pctx, publish := tr.Start(ctx, "publish")
	// Across the queue through headers, as internal/queue does.
	h := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(pctx, h)
	publish.End()
	webhook.End()
	dctx, dispatch := tr.Start(otel.GetTextMapPropagator().Extract(context.Background(), h), telemetry.SpanDispatch,
		trace.WithAttributes(telemetry.AttrNotificationID.String("n1")))
	for i, sink := range []string{"rocketchat", "slack"} {
		_, a := tr.Start(dctx, telemetry.SpanAttempt, trace.WithAttributes(
			telemetry.AttrSink.String(sink), telemetry.AttrAttempt.Int(i+1)))
		a.End()
	}
	dispatch.AddEvent(telemetry.EventFallback, trace.WithAttributes(telemetry.AttrSink.String("slack")))
	dispatch.End()
	return rec, remote.TraceID()
}

func TestTree(t *testing.T) {
	rec, want := tree(t)
	s := rec.Ended()
	if len(s) != 5 || rec.Started() != 5 {
		t.Fatalf("%d spans ended, %d started, want 5", len(s), rec.Started())
	}
	if got := AssertOneTrace(t, s); got != want {
		t.Errorf("trace %s, want Alertmanager's %s", got, want)
	}
	d := s.One(t, telemetry.SpanDispatch)
	attempts := s.Named(telemetry.SpanAttempt)
	if len(attempts) != 2 {
		t.Fatalf("%d attempts", len(attempts))
	}
	slack := attempts.Where(telemetry.AttrSink, "slack")
	if len(slack) != 1 {
		t.Fatalf("%d slack attempts", len(slack))
	}
	AssertParent(t, slack[0], d)
	AssertPath(t, s, slack[0], telemetry.SpanDispatch, "publish", "webhook")
	AssertAttrs(t, slack[0], map[attribute.Key]string{telemetry.AttrSink: "slack", telemetry.AttrAttempt: "2"})
	if s.Parent(s.One(t, "webhook")) != nil {
		t.Error("webhook span's remote parent found among the spans")
	}
	if got := len(s.Children(d)); got != 2 {
		t.Errorf("dispatch has %d children, want 2", got)
	}
	if !HasEvent(d, telemetry.EventFallback, map[attribute.Key]string{telemetry.AttrSink: "slack"}) {
		t.Error("fallback event not found")
	}
	if HasEvent(d, telemetry.EventFallback, map[attribute.Key]string{telemetry.AttrSink: "rocketchat"}) {
		t.Error("fallback event found with the wrong sink")
	}
	AssertNoSecrets(t, s, "hunter2", "")
	if str := s.String(); !strings.Contains(str, "\n      herald.dispatch.attempt") {
		t.Errorf("tree rendering lacks nesting:\n%s", str)
	}
}

// TestAssertionsFail checks that each assertion reports a broken tree.
func TestAssertionsFail(t *testing.T) {
	rec, _ := tree(t)
	s := rec.Ended()
	d := s.One(t, telemetry.SpanDispatch)
	webhook := s.One(t, "webhook")
	attempt := s.Named(telemetry.SpanAttempt)[0]

	// A span of another trace.
	_, other := otel.Tracer("test").Start(context.Background(), "stray")
	other.End()
	withStray := rec.Ended()

	for name, f := range map[string]func(tb testing.TB){
		"two traces":       func(tb testing.TB) { AssertOneTrace(tb, withStray) },
		"no spans":         func(tb testing.TB) { AssertOneTrace(tb, nil) },
		"wrong parent":     func(tb testing.TB) { AssertParent(tb, attempt, webhook) },
		"wrong path":       func(tb testing.TB) { AssertPath(tb, s, attempt, telemetry.SpanDispatch, "webhook") },
		"path past root":   func(tb testing.TB) { AssertPath(tb, s, webhook, "alertmanager") },
		"missing attr":     func(tb testing.TB) { AssertAttrs(tb, d, map[attribute.Key]string{telemetry.AttrRoute: "default"}) },
		"wrong attr":       func(tb testing.TB) { AssertAttrs(tb, d, map[attribute.Key]string{telemetry.AttrNotificationID: "n2"}) },
		"secret in attr":   func(tb testing.TB) { AssertNoSecrets(tb, s, "rocketch") },
		"secret in event":  func(tb testing.TB) { AssertNoSecrets(tb, Spans{d}, "slack") },
		"secret in name":   func(tb testing.TB) { AssertNoSecrets(tb, s, "publi") },
		"one of two named": func(tb testing.TB) { s.One(tb, telemetry.SpanAttempt) },
	} {
		t.Run(name, func(t *testing.T) {
			if r := run(t, f); len(r.errors) == 0 {
				t.Error("assertion passed")
			}
		})
	}
}

// TestInstallRestores checks that the globals come back after the test.
func TestInstallRestores(t *testing.T) {
	before := otel.GetTracerProvider()
	t.Run("installed", func(t *testing.T) {
		rec := Install(t)
		if otel.GetTracerProvider() != rec.TracerProvider() {
			t.Error("recorder not installed globally")
		}
		// A composite propagator's fields come from a map: compare as a set.
		fields := otel.GetTextMapPropagator().Fields()
		slices.Sort(fields)
		if strings.Join(fields, ",") != "baggage,traceparent,tracestate" {
			t.Errorf("propagator fields %v", fields)
		}
	})
	if otel.GetTracerProvider() != before {
		t.Error("global tracer provider not restored")
	}
}
