package telemetry_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/telemetry/telemetrytest"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://chat.example/api/v1/chat.postMessage":                                "https://chat.example/api/v1/chat.postMessage",
		"https://proxy.example/rc/api/v1/chat.update":                                 "https://proxy.example/rc/api/v1/chat.update",
		"https://slack.com/api/chat.postMessage":                                      "https://slack.com/api/chat.postMessage",
		"https://chat.example/hooks/6543abcd/TOKENxyz":                                "https://chat.example/REDACTED",
		"https://hooks.slack.com/services/T000/B000/XXXXXXXX":                         "https://hooks.slack.com/REDACTED",
		"https://chat.example/api/v1/chat.getMessage?msgId=a&tok=b":                   "https://chat.example/api/v1/chat.getMessage?msgId=a&tok=REDACTED",
		"https://chat.example/api/v1/rooms.info?roomName=alerts":                      "https://chat.example/api/v1/rooms.info?roomName=alerts",
		"https://flows.example/workflows/abc/triggers/manual/paths/invoke?sig=SECRET": "https://flows.example/REDACTED?REDACTED",
		"https://user:pass@chat.example:8443/api/v1/chat.update#frag":                 "https://chat.example:8443/api/v1/chat.update",
		"http://127.0.0.1:3000/apis/x":                                                "http://127.0.0.1:3000/REDACTED",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := telemetry.RedactURL(u).String(); got != want {
			t.Errorf("RedactURL(%s) = %s, want %s", in, got, want)
		}
		if u.String() != in {
			t.Errorf("RedactURL changed its argument to %s", u)
		}
	}
}

// TestHTTPTransport sends to a hook URL and a REST URL through the
// instrumented transport: the server sees the real URLs and the trace
// context, the spans see neither the hook's token nor the query.
func TestHTTPTransport(t *testing.T) {
	var (
		mu     sync.Mutex
		seen   []string
		parent []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.URL.RequestURI())
		parent = append(parent, r.Header.Get("Traceparent"))
		if strings.HasPrefix(r.URL.Path, "/hooks/") {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = io.WriteString(w, `{"success":true}`)
	}))
	defer srv.Close()

	// Install: the request's trace context goes out through the global
	// propagator, which this test must not take from another test.
	rec := telemetrytest.Install(t)
	ctx, attempt := rec.TracerProvider().Tracer("test").Start(t.Context(), telemetry.SpanAttempt)
	client := &http.Client{Transport: telemetry.HTTPTransport(nil)}
	const token, query = "s3cr3tHookToken", "s3cr3tQuery"
	for _, path := range []string{"/hooks/abc/" + token + "?x=" + query, "/api/v1/chat.postMessage"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.Request.URL.String() != srv.URL+path {
			t.Errorf("response's request URL %s, want the real one", res.Request.URL)
		}
	}
	attempt.End()

	if strings.Join(seen, " ") != "/hooks/abc/"+token+"?x="+query+" /api/v1/chat.postMessage" {
		t.Errorf("server saw %v, want the real URLs", seen)
	}
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want the attempt and two HTTP client spans:\n%s", len(spans), spans)
	}
	telemetrytest.AssertOneTrace(t, spans)
	a := spans.One(t, telemetry.SpanAttempt)
	clients := spans.Named("HTTP POST")
	if len(clients) != 2 {
		t.Fatalf("%d HTTP POST spans:\n%s", len(clients), spans)
	}
	for i, c := range clients {
		telemetrytest.AssertParent(t, c, a)
		if c.SpanKind() != trace.SpanKindClient {
			t.Errorf("span kind %v", c.SpanKind())
		}
		// The server got this span as its parent.
		tp := propagation.TraceContext{}.Extract(t.Context(), propagation.HeaderCarrier{"Traceparent": {parent[i]}})
		if got := trace.SpanContextFromContext(tp).SpanID(); got != c.SpanContext().SpanID() {
			t.Errorf("request %d carried parent span %s, want its client span %s", i, got, c.SpanContext().SpanID())
		}
	}
	telemetrytest.AssertAttrs(t, clients[0], map[attribute.Key]string{
		"url.full":                  srv.URL + "/REDACTED?REDACTED",
		"http.response.status_code": "503",
	})
	telemetrytest.AssertAttrs(t, clients[1], map[attribute.Key]string{
		"url.full":                  srv.URL + "/api/v1/chat.postMessage",
		"http.response.status_code": "200",
	})
	telemetrytest.AssertNoSecrets(t, spans, token, query, "/hooks/")
}

// TestHTTPTransportUnsampled sends with a parent span that is not sampled,
// as every trace herald starts is when nothing exports: no client span is
// made, and the request still carries the trace context, unsampled.
func TestHTTPTransportUnsampled(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
	}))
	defer srv.Close()

	rec := telemetrytest.Install(t)
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6},
	})
	ctx := trace.ContextWithSpanContext(t.Context(), parent)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/v1/chat.postMessage", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&http.Client{Transport: telemetry.HTTPTransport(nil)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if req.Header.Get("Traceparent") != "" {
		t.Error("the caller's request was modified")
	}
	const want = "00-01020300000000000000000000000000-0405060000000000-00"
	if tp := got.Get("Traceparent"); tp != want {
		t.Errorf("traceparent %q, want %q", tp, want)
	}
	if spans := rec.Ended(); len(spans) != 0 {
		t.Errorf("%d spans, want none:\n%s", len(spans), spans)
	}
}
