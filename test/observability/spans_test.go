package observability_test

// The trace of one notification, as designed (issue 7) and as this test
// asserts it. Every span is in the trace Alertmanager started; each line is
// a child of the line above it unless indented alike:
//
//	(Alertmanager's span, remote: the webhook's traceparent)
//	└─ POST /webhooks/alertmanager                server, otelhttp (internal/server)
//	   └─ herald.v1.NotificationService/Publish   otelconnect (the shim's in-process call)
//	      └─ [queue publish]                      producer, optional (internal/queue Put)
//	         └─ herald.dispatch                   the dispatcher's handling; a CHILD of the
//	            │                                 span active at Put, carried across JetStream
//	            │                                 in the message headers (not a link)
//	            ├─ herald.dispatch.attempt        sink=rocketchat, error.class=retryable
//	            │  └─ HTTP POST ...               client, otelhttp (sink transport): 503
//	            └─ herald.dispatch.attempt        sink=slack, fallback.reason, chat.message_id
//	               └─ HTTP POST ...               client: 200
//
// herald.dispatch carries the notification id, group key hash, severity,
// status, route, delivery count and outcome, and a "fallback" event when a
// later sink of the chain delivered. No span shows a token or hook URL.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app/apptest"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/telemetry/telemetrytest"
	"github.com/herald-notify/herald/test/observability"
)

const (
	webhookSpan = "POST /webhooks/alertmanager"
	publishSpan = "herald.v1.NotificationService/Publish"
)

// waitLimit bounds waits on herald's goroutines and JetStream.
const waitLimit = 30 * time.Second

func TestOneTraceFromWebhookToBothSinks(t *testing.T) {
	rec := telemetrytest.Install(t)
	var logs syncBuffer
	f := observability.StartFailover(t, apptest.Options{Logger: telemetry.NewLogger("json", "debug", &logs)})

	var tid [16]byte
	var sid [8]byte
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(sid[:])
	remoteTrace, remoteSpan := trace.TraceID(tid), trace.SpanID(sid)
	traceparent := "00-" + remoteTrace.String() + "-" + remoteSpan.String() + "-01"

	published := observability.PostWebhook(t, f.Herald, observability.Webhook(time.Now().Add(-time.Minute)), traceparent)
	if len(published) != 1 || published[0].Duplicate {
		t.Fatalf("webhook stored as %+v, want one new notification", published)
	}
	id := published[0].ID

	// Wait for the dispatcher to finish its handling (its span ends last),
	// then take the spans before any API call of ours adds others.
	observability.Eventually(t, waitLimit, "the dispatch span to end", func() bool {
		return len(rec.Ended().Named(telemetry.SpanDispatch)) > 0
	})
	spans := rec.Ended()
	if started := rec.Started(); started != len(spans) {
		t.Errorf("%d spans started, %d ended: a span is never ended", started, len(spans))
	}
	t.Logf("spans:\n%s", spans)

	// One trace, Alertmanager's, from the webhook to both sinks' requests.
	if got := telemetrytest.AssertOneTrace(t, spans); got != remoteTrace {
		t.Errorf("trace id %s, want the webhook's traceparent trace %s", got, remoteTrace)
	}

	server := spans.One(t, webhookSpan)
	if server.SpanKind() != trace.SpanKindServer {
		t.Errorf("%s is a %v span, want server", webhookSpan, server.SpanKind())
	}
	if p := server.Parent(); !p.IsRemote() || p.TraceID() != remoteTrace || p.SpanID() != remoteSpan {
		t.Errorf("%s has parent %s/%s (remote %v), want Alertmanager's %s/%s",
			webhookSpan, p.TraceID(), p.SpanID(), p.IsRemote(), remoteTrace, remoteSpan)
	}

	dispatch := spans.One(t, telemetry.SpanDispatch)
	checkPublishToDispatch(t, spans, server, dispatch)

	telemetrytest.AssertAttrs(t, dispatch, map[attribute.Key]string{
		telemetry.AttrNotificationID: id,
		telemetry.AttrGroupKeyHash:   telemetry.GroupKeyHash(observability.GroupKey),
		telemetry.AttrSeverity:       heraldv1.Severity_SEVERITY_CRITICAL.String(),
		telemetry.AttrStatus:         heraldv1.Status_STATUS_FIRING.String(),
		telemetry.AttrRoute:          observability.Route,
		telemetry.AttrDelivered:      "1",
		telemetry.AttrOutcome:        "ack",
	})
	if dispatch.Status().Code == codes.Error {
		t.Errorf("%s has status error %q, but a sink delivered", telemetry.SpanDispatch, dispatch.Status().Description)
	}
	if !telemetrytest.HasEvent(dispatch, telemetry.EventFallback, map[attribute.Key]string{
		telemetry.AttrFallbackFrom: observability.PrimarySink,
		telemetry.AttrSink:         observability.FallbackSink,
	}) {
		t.Errorf("%s has no %q event from %s to %s; events: %v", telemetry.SpanDispatch, telemetry.EventFallback,
			observability.PrimarySink, observability.FallbackSink, dispatch.Events())
	} else if reason := eventAttr(dispatch, telemetry.EventFallback, telemetry.AttrFallbackReason); !strings.HasPrefix(reason, observability.PrimarySink+": ") {
		t.Errorf("fallback event reason %q, want it to name %s's failure", reason, observability.PrimarySink)
	}

	// The record says what the chat server answered; the spans must agree.
	record := observability.Record(t, f.Herald, id).GetDelivery()
	if record.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED || record.GetDeliveredBy() != observability.FallbackSink {
		t.Fatalf("delivery record %v, want delivered by %s", record, observability.FallbackSink)
	}
	var slackTS string
	for _, sd := range record.GetSinks() {
		if sd.GetSink() == observability.FallbackSink {
			slackTS = sd.GetMessage().GetMessageId()
		}
	}
	if msgs := f.Slack.Messages(observability.Channel); len(msgs) != 1 || msgs[0].TS != slackTS || slackTS == "" {
		t.Fatalf("Slack holds %d messages (%+v), record says ts %q", len(msgs), msgs, slackTS)
	}

	attempts := spans.Named(telemetry.SpanAttempt)
	if len(attempts) != 2 {
		t.Fatalf("%d attempt spans, want 2 (one per sink, no quick retries):\n%s", len(attempts), spans)
	}
	primary := oneWhere(t, attempts, telemetry.AttrSink, observability.PrimarySink)
	fallback := oneWhere(t, attempts, telemetry.AttrSink, observability.FallbackSink)
	for _, a := range []sdktrace.ReadOnlySpan{primary, fallback} {
		telemetrytest.AssertParent(t, a, dispatch)
		telemetrytest.AssertAttrs(t, a, map[attribute.Key]string{
			telemetry.AttrChannel: observability.Channel,
			telemetry.AttrAttempt: "1",
		})
	}

	// The failed attempt: classified, marked as an error.
	telemetrytest.AssertAttrs(t, primary, map[attribute.Key]string{telemetry.AttrErrorClass: "retryable"})
	if primary.Status().Code != codes.Error {
		t.Errorf("the failed %s attempt has status %v, want error", observability.PrimarySink, primary.Status())
	}
	if _, ok := telemetrytest.Attr(primary, telemetry.AttrFallbackReason); ok {
		t.Errorf("the first sink's attempt carries %s", telemetry.AttrFallbackReason)
	}

	// The fallback attempt: why it happened, and the message it made.
	if v, ok := telemetrytest.Attr(fallback, telemetry.AttrFallbackReason); !ok || !strings.HasPrefix(v.String(), observability.PrimarySink+": ") {
		t.Errorf("fallback attempt %s = %q, want %s's failure", telemetry.AttrFallbackReason, v.String(), observability.PrimarySink)
	}
	if _, ok := telemetrytest.Attr(fallback, telemetry.AttrErrorClass); ok || fallback.Status().Code == codes.Error {
		t.Errorf("the successful fallback attempt is marked failed: %v", fallback.Status())
	}
	telemetrytest.AssertAttrs(t, fallback, map[attribute.Key]string{telemetry.AttrChatMessageID: slackTS})

	// Each attempt holds its sink's HTTP client spans, all in the trace.
	// Rocket.Chat's REST path is shown (it says which method failed); the
	// Slack fake serves its API at the root, which RedactURL hides.
	checkHTTP(t, spans, primary, 503, "/api/v1/")
	checkHTTP(t, spans, fallback, 200, "/REDACTED")
	for _, sp := range spans {
		if sp.SpanKind() != trace.SpanKindClient {
			continue
		}
		if p := spans.Parent(sp); p == nil || p.Name() != telemetry.SpanAttempt {
			t.Errorf("client span %q is not inside an attempt span", sp.Name())
		}
	}

	telemetrytest.AssertNoSecrets(t, spans, append(f.Secrets(), observability.RocketChatUser)...)
	checkLogs(t, logs.String(), id, remoteTrace, f.Secrets())
}

// checkLogs checks that every log line about the notification carries the
// notification's trace and a span id, that the lines an SRE needs are there,
// and that no line holds a secret.
func checkLogs(t *testing.T, logs, id string, traceID trace.TraceID, secrets []string) {
	t.Helper()
	for i, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("secret #%d is in herald's logs", i+1)
		}
	}
	seen := map[string]bool{}
	for line := range strings.Lines(logs) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %v: %s", err, line)
			continue
		}
		if rec["notification_id"] != id && rec["id"] != id {
			continue
		}
		msg, _ := rec["msg"].(string)
		seen[msg] = true
		if rec[telemetry.LogTraceID] != traceID.String() || rec[telemetry.LogSpanID] == nil {
			t.Errorf("log line about %s without its trace %s and a span id: %s", id, traceID, line)
		}
	}
	for _, msg := range []string{"delivery attempt failed", "delivered"} {
		if !seen[msg] {
			t.Errorf("no %q log line about %s; lines about it: %v", msg, id, slices.Sorted(maps.Keys(seen)))
		}
	}
}

// syncBuffer is a log destination safe for herald's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// checkPublishToDispatch checks the path from the webhook's server span to
// the dispatch span: the Connect Publish span under the server span, an
// optional queue producer span under it, and the dispatch span under the
// last of these, carried across the queue as a child, not a link.
func checkPublishToDispatch(t *testing.T, spans telemetrytest.Spans, server, dispatch sdktrace.ReadOnlySpan) {
	t.Helper()
	if n := len(dispatch.Links()); n != 0 {
		t.Errorf("%s has %d links; the design makes it a child of the publish, not a link", telemetry.SpanDispatch, n)
	}
	publishes := spans.Named(publishSpan)
	if len(publishes) != 1 {
		t.Errorf("%d %q spans, want 1 between the webhook and the queue (otelconnect on the shim's Publish); dispatch's parent is %q",
			len(publishes), publishSpan, nameOf(spans.Parent(dispatch)))
		return
	}
	publish := publishes[0]
	telemetrytest.AssertParent(t, publish, server)
	parent := spans.Parent(dispatch)
	if parent == nil {
		t.Errorf("%s has no parent among the spans; want %s or a queue producer span under it", telemetry.SpanDispatch, publishSpan)
		return
	}
	if parent.SpanContext().SpanID() == publish.SpanContext().SpanID() {
		return
	}
	if parent.SpanKind() != trace.SpanKindProducer {
		t.Errorf("%s's parent is %q (%v), want %s or a queue producer span", telemetry.SpanDispatch, parent.Name(), parent.SpanKind(), publishSpan)
		return
	}
	telemetrytest.AssertParent(t, parent, publish)
}

// checkHTTP checks that attempt holds at least one HTTP client span, the
// last of which got status, and that every client span's url.full shows
// path (a prefix of it), as RedactURL makes it.
func checkHTTP(t *testing.T, spans telemetrytest.Spans, attempt sdktrace.ReadOnlySpan, status int, path string) {
	t.Helper()
	var clients telemetrytest.Spans
	for _, c := range spans.Children(attempt) {
		if c.SpanKind() == trace.SpanKindClient {
			clients = append(clients, c)
		}
	}
	sink, _ := telemetrytest.Attr(attempt, telemetry.AttrSink)
	if len(clients) == 0 {
		t.Errorf("the %s attempt has no HTTP client span", sink.String())
		return
	}
	last := clients[len(clients)-1]
	for _, c := range clients {
		if c.EndTime().After(last.EndTime()) {
			last = c
		}
	}
	telemetrytest.AssertAttrs(t, last, map[attribute.Key]string{"http.response.status_code": itoa(status)})
	for _, c := range clients {
		u, ok := telemetrytest.Attr(c, "url.full")
		if !ok {
			t.Errorf("%s client span has no url.full", sink.String())
			continue
		}
		if _, p, _ := strings.Cut(strings.TrimPrefix(u.String(), "http://"), "/"); !strings.HasPrefix("/"+p, path) {
			t.Errorf("%s client span shows url.full %q, want path %s...", sink.String(), u.String(), path)
		}
	}
}

func oneWhere(t *testing.T, s telemetrytest.Spans, key attribute.Key, value string) sdktrace.ReadOnlySpan {
	t.Helper()
	w := s.Where(key, value)
	if len(w) != 1 {
		t.Fatalf("%d %s spans with %s=%s, want 1:\n%s", len(w), s[0].Name(), key, value, s)
	}
	return w[0]
}

func eventAttr(sp sdktrace.ReadOnlySpan, event string, key attribute.Key) string {
	for _, e := range sp.Events() {
		if e.Name != event {
			continue
		}
		for _, kv := range e.Attributes {
			if kv.Key == key {
				return kv.Value.String()
			}
		}
	}
	return ""
}

func nameOf(sp sdktrace.ReadOnlySpan) string {
	if sp == nil {
		return "(none among the spans)"
	}
	return sp.Name()
}

func itoa(n int) string { return attribute.IntValue(n).String() }
