package telemetry

import (
	"hash/fnv"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
)

// Span attribute keys. Every package uses these names, so that one Jaeger
// query (herald.notification.id=...) finds a notification wherever it went.
// Values are ids, enum names and config names: never a secret, token, hook
// URL or message text.
const (
	// AttrNotificationID is the id the service assigned on Publish.
	AttrNotificationID attribute.Key = "herald.notification.id"
	// AttrGroupKeyHash is GroupKeyHash of the notification's group key;
	// group keys hold label values and can be long.
	AttrGroupKeyHash attribute.Key = "herald.group_key_hash"
	// AttrSeverity is the Severity enum name, e.g. SEVERITY_CRITICAL.
	AttrSeverity attribute.Key = "herald.severity"
	// AttrStatus is the Status enum name, e.g. STATUS_FIRING.
	AttrStatus attribute.Key = "herald.status"
	// AttrRoute is the name of the route that matched.
	AttrRoute attribute.Key = "herald.route"
	// AttrSink is a sink's configured name.
	AttrSink attribute.Key = "herald.sink"
	// AttrChannel is the chat channel a sink posts to.
	AttrChannel attribute.Key = "herald.channel"
	// AttrAttempt counts attempts at one sink, from 1.
	AttrAttempt attribute.Key = "herald.attempt"
	// AttrErrorClass is sinks.Classify(err): retryable, throttled,
	// permanent...
	AttrErrorClass attribute.Key = "herald.error.class"
	// AttrFallbackReason says why a later sink of the chain was tried.
	AttrFallbackReason attribute.Key = "herald.fallback.reason"
	// AttrFallbackFrom is the first sink of the chain, when a fallback
	// delivered.
	AttrFallbackFrom attribute.Key = "herald.fallback.from"
	// AttrChatMessageID is the id the chat server gave the message.
	AttrChatMessageID attribute.Key = "herald.chat.message_id"
	// AttrDelivered counts how often the queue has delivered the message
	// to a dispatcher (1 on the first try).
	AttrDelivered attribute.Key = "herald.delivered"
	// AttrOutcome is the dispatcher's verdict: ack, retry, dead_letter or
	// release.
	AttrOutcome attribute.Key = "herald.outcome"
	// AttrSource is where a notification came from: alertmanager or api.
	AttrSource attribute.Key = "herald.source"
	// AttrBreakerFrom, AttrBreakerTo and AttrBreakerReason describe a
	// circuit breaker transition (on EventBreaker).
	AttrBreakerFrom   attribute.Key = "herald.breaker.from"
	AttrBreakerTo     attribute.Key = "herald.breaker.to"
	AttrBreakerReason attribute.Key = "herald.breaker.reason"
	// AttrDuplicate says, on a Publish span, whether the notification was
	// a copy of one already stored (an HA peer's, or a retry); the
	// duplicate event's AttrDuplicateOf names the stored one.
	AttrDuplicate   attribute.Key = "herald.duplicate"
	AttrDuplicateOf attribute.Key = "herald.duplicate_of"
)

// Span and event names herald uses.
const (
	// SpanDispatch covers one dispatcher handling of a queued notification.
	SpanDispatch = "herald.dispatch"
	// SpanAttempt covers one Send to one sink, inside SpanDispatch.
	SpanAttempt = "herald.dispatch.attempt"
	// EventBreaker marks a circuit breaker transition.
	EventBreaker = "breaker"
	// EventFallback marks a delivery by a later sink of the chain.
	EventFallback = "fallback"
	// EventDuplicate marks a Publish that stored nothing: a copy.
	EventDuplicate = "duplicate"
)

// GroupKeyHash is the short, stable form of an Alertmanager group key used
// in spans and logs: FNV-64a in hex, empty for an empty key.
func GroupKeyHash(key string) string {
	if key == "" {
		return ""
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	return strconv.FormatUint(h.Sum64(), 16)
}
