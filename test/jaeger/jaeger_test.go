// Package jaeger_test exports herald's traces over OTLP to the real Jaeger
// v2 and finds them through Jaeger's query API, so that what the in-memory
// span tests assert is also what an SRE sees. Install the binary with
// scripts/install-jaeger.sh; without it (or under -short) the test skips.
package jaeger_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-notify/herald/internal/telemetry"
)

// jaegerEnv is a running Jaeger: where to send OTLP and where to query.
type jaegerEnv struct {
	OTLPHTTP string // base URL of the OTLP/HTTP receiver
	OTLPGRPC string // http://host:port of the OTLP/gRPC receiver
	Query    string // base URL of the query service (UI and /api)
}

// wantSpan is a span the trace must hold: its operation name, its parent's
// (empty for the root, whose parent is Alertmanager's remote span), and
// tags it must carry.
type wantSpan struct {
	Name   string
	Parent string
	Tags   map[string]string
}

// produced is what produceTrace made and Jaeger must show.
type produced struct {
	TraceID string
	// RemoteParent is the span id the root continues (Alertmanager's).
	RemoteParent string
	Spans        []wantSpan
	// Secrets must appear nowhere in the trace.
	Secrets []string
}

func TestTraceReachesJaeger(t *testing.T) {
	bin := jaegerBinary(t)
	env := startJaeger(t, bin)
	for _, protocol := range []string{"http/protobuf", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			endpoint := env.OTLPHTTP
			if protocol == "grpc" {
				endpoint = env.OTLPGRPC
			}
			for _, k := range []string{"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_EXPORTER",
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SDK_DISABLED",
				"OTEL_TRACES_SAMPLER", "OTEL_EXPORTER_OTLP_HEADERS"} {
				t.Setenv(k, "")
			}
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)

			want := produceTrace(t, env)
			got := waitForTrace(t, env, want)
			checkTrace(t, got, want)
		})
	}
}

// produceTrace makes one notification's trace the way herald does, with
// the OTEL_* environment already pointing at Jaeger, and returns it once
// exported. It stands in for sending one Alertmanager webhook through
// `herald serve` with a sink chain that fails over once; the checks that
// follow only depend on what it returns.
func produceTrace(t *testing.T, _ jaegerEnv) produced {
	t.Helper()
	tp, prop := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	shutdown, err := telemetry.Setup(t.Context(), telemetry.Options{ServiceVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		otel.SetTracerProvider(tp)
		otel.SetTextMapPropagator(prop)
	}()

	// Chat servers: Rocket.Chat's hook is down, Slack's API takes it.
	const hookToken = "hOoKt0kenS3cret"
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"success":false}`, http.StatusServiceUnavailable)
	}))
	defer rc.Close()
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"ok":true,"ts":"1700000000.000100"}`)
	}))
	defer slack.Close()
	client := &http.Client{Transport: telemetry.HTTPTransport(nil)}

	// Alertmanager's traceparent on the webhook.
	var tid [16]byte
	var sid [8]byte
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(sid[:])
	traceID, remote := trace.TraceID(tid).String(), trace.SpanID(sid).String()
	in := propagation.HeaderCarrier{"Traceparent": {"00-" + traceID + "-" + remote + "-01"}}
	ctx := otel.GetTextMapPropagator().Extract(t.Context(), in)
	tracer := otel.Tracer("herald/jaeger-test")

	ctx, webhook := tracer.Start(ctx, "POST /webhooks/alertmanager", trace.WithSpanKind(trace.SpanKindServer))
	pctx, publish := tracer.Start(ctx, "herald.v1.NotificationService/Publish", trace.WithSpanKind(trace.SpanKindServer))
	// The queue carries the context in message headers.
	headers := propagation.HeaderCarrier{}
	otel.GetTextMapPropagator().Inject(pctx, headers)
	publish.End()
	webhook.End()

	const id = "01JTESTNOTIFICATION"
	dctx, dispatch := tracer.Start(otel.GetTextMapPropagator().Extract(context.Background(), headers), telemetry.SpanDispatch,
		trace.WithAttributes(
			telemetry.AttrNotificationID.String(id),
			telemetry.AttrSeverity.String("SEVERITY_CRITICAL"),
			telemetry.AttrStatus.String("STATUS_FIRING"),
			telemetry.AttrRoute.String("critical"),
			telemetry.AttrGroupKeyHash.String(telemetry.GroupKeyHash(`{}:{alertname="DiskFull"}`)),
		))
	send := func(sink, url string, attempt int) error {
		actx, span := tracer.Start(dctx, telemetry.SpanAttempt, trace.WithAttributes(
			telemetry.AttrSink.String(sink), telemetry.AttrChannel.String("#alerts-critical"), telemetry.AttrAttempt.Int(attempt)))
		defer span.End()
		req, err := http.NewRequestWithContext(actx, http.MethodPost, url, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			span.SetAttributes(telemetry.AttrErrorClass.String("retryable"))
			span.SetStatus(codes.Error, fmt.Sprintf("HTTP %d", res.StatusCode))
			return fmt.Errorf("HTTP %d", res.StatusCode)
		}
		span.SetAttributes(telemetry.AttrChatMessageID.String("1700000000.000100"))
		return nil
	}
	if send("rocketchat", rc.URL+"/hooks/abc/"+hookToken, 1) == nil {
		t.Fatal("Rocket.Chat stand-in accepted the message")
	}
	if err := send("slack", slack.URL+"/api/chat.postMessage", 1); err != nil {
		t.Fatal(err)
	}
	dispatch.AddEvent(telemetry.EventFallback, trace.WithAttributes(
		telemetry.AttrFallbackFrom.String("rocketchat"), telemetry.AttrSink.String("slack"),
		telemetry.AttrFallbackReason.String("rocketchat: HTTP 503")))
	dispatch.SetAttributes(telemetry.AttrOutcome.String("ack"))
	dispatch.End()

	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("flushing spans to Jaeger: %v", err)
	}
	return produced{
		TraceID:      traceID,
		RemoteParent: remote,
		Spans: []wantSpan{
			{Name: "POST /webhooks/alertmanager"},
			{Name: "herald.v1.NotificationService/Publish", Parent: "POST /webhooks/alertmanager"},
			{Name: telemetry.SpanDispatch, Parent: "herald.v1.NotificationService/Publish", Tags: map[string]string{
				string(telemetry.AttrNotificationID): id, string(telemetry.AttrRoute): "critical",
				string(telemetry.AttrOutcome): "ack",
			}},
			{Name: telemetry.SpanAttempt, Parent: telemetry.SpanDispatch, Tags: map[string]string{
				string(telemetry.AttrSink): "rocketchat", string(telemetry.AttrErrorClass): "retryable", "error": "true",
			}},
			{Name: "HTTP POST", Parent: telemetry.SpanAttempt, Tags: map[string]string{"http.response.status_code": "503"}},
			{Name: telemetry.SpanAttempt, Parent: telemetry.SpanDispatch, Tags: map[string]string{
				string(telemetry.AttrSink): "slack", string(telemetry.AttrChatMessageID): "1700000000.000100",
			}},
			{Name: "HTTP POST", Parent: telemetry.SpanAttempt, Tags: map[string]string{"http.response.status_code": "200"}},
		},
		Secrets: []string{hookToken},
	}
}

// Jaeger's query API (v1 JSON), the parts the test reads.
type jTrace struct {
	TraceID   string              `json:"traceID"`
	Spans     []jSpan             `json:"spans"`
	Processes map[string]jProcess `json:"processes"`
}

type jSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags      []jTag `json:"tags"`
	ProcessID string `json:"processID"`
	Logs      []struct {
		Fields []jTag `json:"fields"`
	} `json:"logs"`
}

type jTag struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

type jProcess struct {
	ServiceName string `json:"serviceName"`
	Tags        []jTag `json:"tags"`
}

// waitForTrace searches Jaeger for service herald until the trace shows up
// with all its spans (Jaeger stores asynchronously).
func waitForTrace(t *testing.T, env jaegerEnv, want produced) jTrace {
	t.Helper()
	q := url.Values{"service": {"herald"}, "lookback": {"1h"}, "limit": {"100"}}
	u := env.Query + "/api/traces?" + q.Encode()
	var last string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		res, err := http.Get(u)
		if err != nil {
			last = err.Error()
			continue
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			last = fmt.Sprintf("HTTP %d: %s", res.StatusCode, body)
			continue
		}
		var r struct {
			Data []jTrace `json:"data"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("Jaeger's answer: %v\n%s", err, body)
		}
		for _, tr := range r.Data {
			if tr.TraceID == want.TraceID && len(tr.Spans) >= len(want.Spans) {
				return tr
			}
		}
		last = fmt.Sprintf("%d traces, none is %s with %d spans", len(r.Data), want.TraceID, len(want.Spans))
	}
	t.Fatalf("trace %s never appeared in Jaeger for service herald: %s", want.TraceID, last)
	return jTrace{}
}

// checkTrace compares what Jaeger shows with what was produced.
func checkTrace(t *testing.T, got jTrace, want produced) {
	t.Helper()
	if len(got.Spans) != len(want.Spans) {
		t.Errorf("Jaeger holds %d spans, want %d", len(got.Spans), len(want.Spans))
	}
	byID := map[string]jSpan{}
	for _, s := range got.Spans {
		byID[s.SpanID] = s
		if p := got.Processes[s.ProcessID]; p.ServiceName != "herald" {
			t.Errorf("span %s has service %q, want herald", s.OperationName, p.ServiceName)
		}
	}
	parentOf := func(s jSpan) (name string, remote string) {
		for _, r := range s.References {
			if r.RefType != "CHILD_OF" {
				continue
			}
			if r.TraceID != want.TraceID {
				t.Errorf("span %s refers to trace %s", s.OperationName, r.TraceID)
			}
			if p, ok := byID[r.SpanID]; ok {
				return p.OperationName, ""
			}
			return "", r.SpanID
		}
		return "", ""
	}
	// Match each wanted span to a distinct span of the trace.
	used := map[string]bool{}
	for _, w := range want.Spans {
		var match *jSpan
		var mismatch []string
		for i := range got.Spans {
			s := got.Spans[i]
			if used[s.SpanID] || s.OperationName != w.Name {
				continue
			}
			parent, remote := parentOf(s)
			if parent != w.Parent {
				mismatch = append(mismatch, fmt.Sprintf("parent %q", parent))
				continue
			}
			if w.Parent == "" && remote != want.RemoteParent {
				mismatch = append(mismatch, fmt.Sprintf("remote parent %q, want Alertmanager's %s", remote, want.RemoteParent))
				continue
			}
			if diff := tagDiff(s.Tags, w.Tags); diff != "" {
				mismatch = append(mismatch, diff)
				continue
			}
			match = &got.Spans[i]
			break
		}
		if match == nil {
			t.Errorf("no span %q under %q with tags %v; candidates: %v", w.Name, w.Parent, w.Tags, mismatch)
			continue
		}
		used[match.SpanID] = true
	}
	raw, _ := json.Marshal(got)
	for _, s := range want.Secrets {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("a secret reached Jaeger")
		}
	}
	if t.Failed() {
		t.Logf("trace in Jaeger: %s", raw)
	}
}

func tagDiff(have []jTag, want map[string]string) string {
	var diffs []string
	for k, w := range want {
		i := slices.IndexFunc(have, func(tg jTag) bool { return tg.Key == k })
		if i < 0 {
			diffs = append(diffs, k+" missing")
		} else if g := fmt.Sprint(have[i].Value); g != w {
			diffs = append(diffs, fmt.Sprintf("%s=%q (want %q)", k, g, w))
		}
	}
	slices.Sort(diffs)
	return strings.Join(diffs, ", ")
}

// jaegerBinary finds the binary scripts/install-jaeger.sh builds, or skips.
func jaegerBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a real Jaeger; skipped under -short")
	}
	bin := os.Getenv("HERALD_JAEGER_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", ".tools", "bin", "jaeger")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("Jaeger binary not found at %s (run scripts/install-jaeger.sh): %v", bin, err)
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// jaegerConfig runs Jaeger v2 all-in-one with in-memory storage, listening
// only on the loopback ports given: OTLP gRPC and HTTP in, query HTTP and
// gRPC out, and no internal telemetry endpoint.
const jaegerConfig = `
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: %[3]s
    grpc:
      endpoint: %[4]s
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %[1]s
      http:
        endpoint: %[2]s
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// startJaeger runs Jaeger until the test ends and waits until its query
// API answers.
func startJaeger(t *testing.T, bin string) jaegerEnv {
	t.Helper()
	dir := t.TempDir()
	grpcAddr, httpAddr, queryAddr, queryGRPC := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, jaegerConfig, grpcAddr, httpAddr, queryAddr, queryGRPC), 0o600); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	cmd := exec.Command(bin, "--config", "file:"+cfg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("jaeger output:\n%s", out.String())
		}
	})
	env := jaegerEnv{
		OTLPHTTP: "http://" + httpAddr,
		OTLPGRPC: "http://" + grpcAddr,
		Query:    "http://" + queryAddr,
	}
	// Ready when the query API answers and the OTLP receivers listen.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-exited:
			t.Fatalf("jaeger exited: %v\n%s", err, out.String())
		default:
		}
		if ready(env.Query+"/api/services") && listening(httpAddr) && listening(grpcAddr) {
			return env
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger not ready after a minute:\n%s", out.String())
		}
	}
}

func ready(u string) bool {
	res, err := http.Get(u)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

func listening(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

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
