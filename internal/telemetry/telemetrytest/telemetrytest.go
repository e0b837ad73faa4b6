// Package telemetrytest records spans in memory for tests and asserts the
// shape of a trace: one trace id, parentage, attributes, and that no secret
// reached a span.
//
// Install replaces OpenTelemetry's global tracer provider and propagator,
// so tests using it must not run in parallel with each other, and must
// build the code under test after Install: a tracer taken from an earlier
// provider keeps reporting there.
package telemetrytest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-notify/herald/internal/telemetry"
)

// Recorder is a tracer provider that keeps every span in memory.
type Recorder struct {
	rec *tracetest.SpanRecorder
	tp  *sdktrace.TracerProvider
}

// New returns a Recorder that samples every span, without touching any
// global; pass TracerProvider() to the code under test.
func New(t testing.TB) *Recorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSpanProcessor(rec),
	)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &Recorder{rec: rec, tp: tp}
}

// Install returns a new Recorder installed as the global tracer provider,
// with herald's propagator (W3C trace context and baggage) as the global
// propagator. Both globals are restored when the test ends.
func Install(t testing.TB) *Recorder {
	t.Helper()
	r := New(t)
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(r.tp)
	otel.SetTextMapPropagator(telemetry.Propagator())
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
	})
	return r
}

// TracerProvider is the recording provider.
func (r *Recorder) TracerProvider() trace.TracerProvider { return r.tp }

// Ended returns the spans ended so far, in the order they ended.
func (r *Recorder) Ended() Spans { return Spans(r.rec.Ended()) }

// Started returns how many spans were started so far, ended or not; a
// span started but never ended is a leak the tree assertions cannot see.
func (r *Recorder) Started() int { return len(r.rec.Started()) }

// Reset forgets every span recorded so far.
func (r *Recorder) Reset() { r.rec.Reset() }

// Spans is a set of ended spans, usually one test's.
type Spans []sdktrace.ReadOnlySpan

// Named returns the spans called name, in order.
func (s Spans) Named(name string) Spans {
	var out Spans
	for _, sp := range s {
		if sp.Name() == name {
			out = append(out, sp)
		}
	}
	return out
}

// Where returns the spans whose attribute key has the given value (as
// attribute.Value.Emit shows it).
func (s Spans) Where(key attribute.Key, value string) Spans {
	var out Spans
	for _, sp := range s {
		if v, ok := Attr(sp, key); ok && v.String() == value {
			out = append(out, sp)
		}
	}
	return out
}

// One returns the only span called name, failing the test now unless
// there is exactly one.
func (s Spans) One(t testing.TB, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	n := s.Named(name)
	if len(n) != 1 {
		t.Fatalf("%d spans named %q, want 1; spans:\n%s", len(n), name, s)
	}
	return n[0]
}

// ByID returns the span with the given id, or nil.
func (s Spans) ByID(id trace.SpanID) sdktrace.ReadOnlySpan {
	for _, sp := range s {
		if sp.SpanContext().SpanID() == id {
			return sp
		}
	}
	return nil
}

// Parent returns sp's parent among s, or nil when sp is a root or its
// parent is not in s (a remote parent, such as Alertmanager's).
func (s Spans) Parent(sp sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	if !sp.Parent().IsValid() {
		return nil
	}
	return s.ByID(sp.Parent().SpanID())
}

// Children returns the spans of s whose parent is sp.
func (s Spans) Children(sp sdktrace.ReadOnlySpan) Spans {
	var out Spans
	for _, c := range s {
		if c.Parent().SpanID() == sp.SpanContext().SpanID() && c.Parent().TraceID() == sp.SpanContext().TraceID() {
			out = append(out, c)
		}
	}
	return out
}

// String lists the spans as an indented tree, for failure messages.
func (s Spans) String() string {
	var b strings.Builder
	var walk func(sp sdktrace.ReadOnlySpan, depth int)
	walk = func(sp sdktrace.ReadOnlySpan, depth int) {
		fmt.Fprintf(&b, "%s%s [trace %s span %s]\n", strings.Repeat("  ", depth), sp.Name(),
			sp.SpanContext().TraceID(), sp.SpanContext().SpanID())
		for _, c := range s.Children(sp) {
			walk(c, depth+1)
		}
	}
	for _, sp := range s {
		if s.Parent(sp) == nil {
			walk(sp, 0)
		}
	}
	return b.String()
}

// AssertOneTrace checks that every span of s belongs to one trace and
// returns its id; it fails the test now when s is empty.
func AssertOneTrace(t testing.TB, s Spans) trace.TraceID {
	t.Helper()
	if len(s) == 0 {
		t.Fatal("no spans recorded")
	}
	id := s[0].SpanContext().TraceID()
	for _, sp := range s[1:] {
		if got := sp.SpanContext().TraceID(); got != id {
			t.Errorf("span %q is in trace %s, want %s; spans:\n%s", sp.Name(), got, id, s)
		}
	}
	return id
}

// AssertParent checks that parent is child's direct parent.
func AssertParent(t testing.TB, child, parent sdktrace.ReadOnlySpan) {
	t.Helper()
	if got, want := child.Parent(), parent.SpanContext(); got.TraceID() != want.TraceID() || got.SpanID() != want.SpanID() {
		t.Errorf("span %q has parent %s/%s, want %q (%s/%s)", child.Name(),
			got.TraceID(), got.SpanID(), parent.Name(), want.TraceID(), want.SpanID())
	}
}

// AssertPath checks sp's ancestry by name: names[0] is sp's parent,
// names[1] its grandparent, and so on. Every ancestor named must be in s.
func AssertPath(t testing.TB, s Spans, sp sdktrace.ReadOnlySpan, names ...string) {
	t.Helper()
	cur := sp
	for i, name := range names {
		p := s.Parent(cur)
		if p == nil {
			t.Errorf("span %q: ancestor %d should be %q, but %q has no parent among the spans:\n%s", sp.Name(), i+1, name, cur.Name(), s)
			return
		}
		if p.Name() != name {
			t.Errorf("span %q: ancestor %d is %q, want %q; spans:\n%s", sp.Name(), i+1, p.Name(), name, s)
			return
		}
		cur = p
	}
}

// Attr returns sp's attribute key.
func Attr(sp sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range sp.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// AssertAttrs checks that sp has each attribute with the value given, as
// attribute.Value.Emit shows it (ints in decimal, bools as true/false).
func AssertAttrs(t testing.TB, sp sdktrace.ReadOnlySpan, want map[attribute.Key]string) {
	t.Helper()
	for k, w := range want {
		v, ok := Attr(sp, k)
		switch {
		case !ok:
			t.Errorf("span %q has no attribute %s (want %q)", sp.Name(), k, w)
		case v.String() != w:
			t.Errorf("span %q attribute %s = %q, want %q", sp.Name(), k, v.String(), w)
		}
	}
}

// HasEvent reports whether sp has an event called name whose attributes
// include every one of want (compared with Emit).
func HasEvent(sp sdktrace.ReadOnlySpan, name string, want map[attribute.Key]string) bool {
outer:
	for _, e := range sp.Events() {
		if e.Name != name {
			continue
		}
		for k, w := range want {
			found := false
			for _, kv := range e.Attributes {
				if kv.Key == k && kv.Value.String() == w {
					found = true
					break
				}
			}
			if !found {
				continue outer
			}
		}
		return true
	}
	return false
}

// AssertNoSecrets checks that none of the secrets appears anywhere a span
// shows text: its name, attributes, status, events, links and resource.
// Empty secrets are ignored.
func AssertNoSecrets(t testing.TB, s Spans, secrets ...string) {
	t.Helper()
	for _, sp := range s {
		for _, f := range texts(sp) {
			for i, secret := range secrets {
				if secret != "" && strings.Contains(f.text, secret) {
					t.Errorf("span %q: %s contains secret #%d", sp.Name(), f.where, i+1)
				}
			}
		}
	}
}

type text struct{ where, text string }

// texts lists every piece of text a span carries, with where it is.
func texts(sp sdktrace.ReadOnlySpan) []text {
	out := []text{{"name", sp.Name()}, {"status description", sp.Status().Description}}
	addKVs := func(where string, kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			out = append(out, text{where + " " + string(kv.Key) + " (key)", string(kv.Key)})
			out = append(out, text{where + " " + string(kv.Key), kv.Value.String()})
		}
	}
	addKVs("attribute", sp.Attributes())
	for _, e := range sp.Events() {
		out = append(out, text{"event name", e.Name})
		addKVs("event "+e.Name+" attribute", e.Attributes)
	}
	for _, l := range sp.Links() {
		addKVs("link attribute", l.Attributes)
	}
	if r := sp.Resource(); r != nil {
		addKVs("resource attribute", r.Attributes())
	}
	return out
}
