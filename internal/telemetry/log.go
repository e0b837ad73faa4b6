package telemetry

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys the handler adds; they sit at the top level of every
// record, whatever groups the logger has opened.
const (
	LogTraceID = "trace_id"
	LogSpanID  = "span_id"
)

// NewLogger returns a logger writing to w in format (text or json) from
// level (debug, info, warn or error) up, with trace and span ids on every
// record logged with a context that holds a valid span. The config has
// validated both values; anything else means text and info.
func NewLogger(format, level string, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: parseLevel(level)}
	var h slog.Handler
	if strings.EqualFold(format, "json") {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(NewLogHandler(h))
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
func NewLogHandler(inner slog.Handler) slog.Handler {
	return &logHandler{root: inner, inner: inner}
}

type logHandler struct {
	// root is the handler as given, before any WithAttrs or WithGroup;
	// inner is root with ops applied.
	root  slog.Handler
	inner slog.Handler
	// ops replays the WithAttrs and WithGroup calls on top of root, which
	// Handle needs once grouped: the ids must go before the first group.
	ops     []func(slog.Handler) slog.Handler
	grouped bool
}

func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return h.inner.Handle(ctx, r)
	}
	ids := []slog.Attr{
		slog.String(LogTraceID, sc.TraceID().String()),
		slog.String(LogSpanID, sc.SpanID().String()),
	}
	if !h.grouped {
		r = r.Clone()
		r.AddAttrs(ids...)
		return h.inner.Handle(ctx, r)
	}
	// Attributes added to the record would land in the innermost group;
	// rebuild the chain with the ids ahead of the first group instead.
	inner := h.root.WithAttrs(ids)
	for _, op := range h.ops {
		inner = op(inner)
	}
	return inner.Handle(ctx, r)
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
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
	ops := make([]func(slog.Handler) slog.Handler, len(h.ops), len(h.ops)+1)
	copy(ops, h.ops)
	return &logHandler{
		root:    h.root,
		inner:   op(h.inner),
		ops:     append(ops, op),
		grouped: h.grouped || group,
	}
}
