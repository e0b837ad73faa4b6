package queue

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// Message headers herald sets besides the trace context.
const (
	// hdrID is the notification id of a message in the notification
	// stream, whose subject names only its partition.
	hdrID = "Herald-Id"
	// hdrReason says why a message was dead-lettered.
	hdrReason = "Herald-Reason"
	// hdrSourceSeq is the main-stream sequence a dead letter came from.
	hdrSourceSeq = "Herald-Source-Seq"
	// hdrReplay counts how often a notification was replayed from the dead
	// letters; the current copy's budget starts at its stream timestamp.
	hdrReplay = "Herald-Replay"
	// hdrOrder is a replayed notification's place in its group's order:
	// the stream sequence of the copy first dead-lettered.
	hdrOrder = "Herald-Order"
	// hdrUndecodable marks a dead letter whose payload is not a Notification.
	hdrUndecodable = "Herald-Undecodable"
)

// headerCarrier lets an OpenTelemetry propagator read and write NATS
// headers.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string { return nats.Header(c).Get(key) }
func (c headerCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

var _ propagation.TextMapCarrier = headerCarrier(nil)

func (q *Queue) propagator() propagation.TextMapPropagator {
	if q.prop != nil {
		return q.prop
	}
	return otel.GetTextMapPropagator()
}

func (q *Queue) inject(ctx context.Context, h nats.Header) {
	q.propagator().Inject(ctx, headerCarrier(h))
}

func (q *Queue) extract(ctx context.Context, h nats.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return q.propagator().Extract(ctx, headerCarrier(h))
}

// carryHeaders copies the headers a notification keeps when it moves between
// streams: trace context and herald's own, never the NATS ones.
func carryHeaders(dst, src nats.Header) {
	for k, v := range src {
		if strings.HasPrefix(k, "Nats-") || k == hdrReason || k == hdrSourceSeq || k == hdrUndecodable {
			continue
		}
		dst[k] = append([]string(nil), v...)
	}
}

// cleanReason makes a dead-letter reason safe for a header: one line,
// bounded.
func cleanReason(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 1024 {
		s = s[:1024]
	}
	if s == "" {
		s = "unspecified"
	}
	return s
}
