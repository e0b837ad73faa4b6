package telemetry

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys the handler adds; they sit at the top level of every
// record, whatever groups the logger has opened.
const (
	LogTraceID = "trace_id"
	LogSpanID  = "span_id"
)

// MaxLogValue bounds the bytes of a string or error attribute NewLogger's
// loggers write: values from outside (a group key, a path) must not make
// a line as long as a request's body.
const MaxLogValue = 1 << 10

// NewLogger returns a logger writing to w in format (text or json) from
// level (debug, info, warn or error) up, with trace and span ids on every
// record logged with a context that holds a valid span. Durations are
// written as Go duration strings ("1.5s") in both formats, and string and
// error values are clipped to MaxLogValue bytes. The config has validated
// format and level; anything else means text and info.
func NewLogger(format, level string, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: parseLevel(level), ReplaceAttr: replaceAttr}
	var h slog.Handler
	if strings.EqualFold(format, "json") {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(NewLogHandler(h))
}

func replaceAttr(groups []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindDuration:
		// slog's JSON handler writes nanoseconds.
		a.Value = slog.StringValue(a.Value.Duration().String())
	case slog.KindString:
		if len(groups) == 0 && a.Key == slog.MessageKey {
			break // herald's own words, or a panic's stack from net/http
		}
		if s := a.Value.String(); len(s) > MaxLogValue {
			a.Value = slog.StringValue(Clip(s, MaxLogValue))
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			if s, ok := errorText(err); ok && len(s) > MaxLogValue {
				a.Value = slog.StringValue(Clip(s, MaxLogValue))
			}
		}
	}
	return a
}

// errorText is err.Error(), or false when that panics (a nil pointer in
// an error interface), which slog's handlers then write as <nil>.
func errorText(err error) (s string, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return err.Error(), true
}

// Clip returns s if it has at most n bytes, and otherwise its first n
// bytes or fewer (whole UTF-8 sequences) followed by "…(N bytes)", N
// being the length of s.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && cut > n-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

func parseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// NewLogHandler wraps inner so that every record handled with a context
// holding a valid span context (local or remote) carries trace_id and
// span_id, as hex, at the top level. Records without one pass unchanged.
//
// WithAttrs and WithGroup are deferred: inner's own (which for the JSON and
// text handlers formats the attributes at once) runs when the derived
// handler first handles or checks a record. A logger derived per
// notification with its id and group mostly logs nothing, and formatting
// its attributes for nothing was 1% of herald's CPU under load.
func NewLogHandler(inner slog.Handler) slog.Handler {
	h := &logHandler{root: inner}
	h.inner.Store(&inner)
	return h
}

type logHandler struct {
	// root is the handler as given, before any WithAttrs or WithGroup.
	root slog.Handler
	// parent and op derive this handler: op applied to parent's inner.
	parent *logHandler
	op     func(slog.Handler) slog.Handler
	// grouped is set once a WithGroup is in the chain.
	grouped bool
	// inner is root with every op of the chain applied, built on first use.
	inner atomic.Pointer[slog.Handler]
}

// handler returns root with the chain's ops applied, building it once.
// Two goroutines may both build it; either result is the same handler.
func (h *logHandler) handler() slog.Handler {
	if in := h.inner.Load(); in != nil {
		return *in
	}
	in := h.op(h.parent.handler())
	h.inner.Store(&in)
	return in
}

// Enabled asks root until the chain is built: a handler's level does not
// depend on the attributes or groups added to it (slog's own handlers take
// it from their options), and a line not logged then costs no formatting.
func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if in := h.inner.Load(); in != nil {
		return (*in).Enabled(ctx, l)
	}
	return h.root.Enabled(ctx, l)
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return h.handler().Handle(ctx, r)
	}
	ids := []slog.Attr{
		slog.String(LogTraceID, sc.TraceID().String()),
		slog.String(LogSpanID, sc.SpanID().String()),
	}
	if !h.grouped {
		r = r.Clone()
		r.AddAttrs(ids...)
		return h.handler().Handle(ctx, r)
	}
	// Attributes added to the record would land in the innermost group;
	// rebuild the chain with the ids ahead of the first group instead.
	var ops []func(slog.Handler) slog.Handler
	for c := h; c.parent != nil; c = c.parent {
		ops = append(ops, c.op)
	}
	inner := h.root.WithAttrs(ids)
	for i := len(ops) - 1; i >= 0; i-- {
		inner = ops[i](inner)
	}
	return inner.Handle(ctx, r)
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	// Values are taken now, as an undeferred WithAttrs would.
	for i := range attrs {
		attrs[i].Value = attrs[i].Value.Resolve()
	}
	return h.with(func(in slog.Handler) slog.Handler { return in.WithAttrs(attrs) }, false)
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(func(in slog.Handler) slog.Handler { return in.WithGroup(name) }, true)
}

func (h *logHandler) with(op func(slog.Handler) slog.Handler, group bool) slog.Handler {
	return &logHandler{root: h.root, parent: h, op: op, grouped: h.grouped || group}
}
