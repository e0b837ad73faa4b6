// Package jaeger_test runs a real herald exporting its traces over OTLP to
// the real Jaeger v2 and finds one notification's trace through Jaeger's
// query API, so that what the in-memory span test (test/observability)
// asserts is also what an SRE sees. Install the binary with
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
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app/apptest"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/test/observability"
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

// produceTrace sends one Alertmanager webhook, with a traceparent, through
// a real herald (apptest) whose tracing telemetry.Setup configured from the
// OTEL_* environment already pointing at Jaeger. Its route fails over once:
// Rocket.Chat answers 503, Slack takes the notification. herald is stopped
// (so the dispatcher's spans have ended) and the spans flushed before it
// returns what Jaeger must show: the trace as test/observability's span
// tree test asserts it in memory.
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
	f := observability.StartFailover(t, apptest.Options{})

	// Alertmanager's traceparent on the webhook.
	var tid [16]byte
	var sid [8]byte
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(sid[:])
	traceID, remote := trace.TraceID(tid).String(), trace.SpanID(sid).String()
	published := observability.PostWebhook(t, f.Herald, observability.Webhook(time.Now().Add(-time.Minute)),
		"00-"+traceID+"-"+remote+"-01")
	if len(published) != 1 {
		t.Fatalf("webhook stored as %+v, want one notification", published)
	}
	id := published[0].ID
	rec := f.Herald.WaitDelivered(t, id, heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, 30*time.Second).GetDelivery()
	if rec.GetDeliveredBy() != observability.FallbackSink {
		t.Fatalf("delivered by %q, want the fallback %s", rec.GetDeliveredBy(), observability.FallbackSink)
	}
	var slackTS string
	for _, sd := range rec.GetSinks() {
		if sd.GetSink() == observability.FallbackSink {
			slackTS = sd.GetMessage().GetMessageId()
		}
	}
	// Stopping herald waits for the dispatcher, whose span ends after the
	// record is written; only ended spans are flushed.
	f.Herald.Stop()
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("flushing spans to Jaeger: %v", err)
	}

	const (
		webhook = "POST /webhooks/alertmanager"
		publish = "herald.v1.NotificationService/Publish"
	)
	return produced{
		TraceID:      traceID,
		RemoteParent: remote,
		Spans: []wantSpan{
			{Name: webhook},
			{Name: publish, Parent: webhook},
			{Name: telemetry.SpanDispatch, Parent: publish, Tags: map[string]string{
				string(telemetry.AttrNotificationID): id,
				string(telemetry.AttrGroupKeyHash):   telemetry.GroupKeyHash(observability.GroupKey),
				string(telemetry.AttrSeverity):       heraldv1.Severity_SEVERITY_CRITICAL.String(),
				string(telemetry.AttrStatus):         heraldv1.Status_STATUS_FIRING.String(),
				string(telemetry.AttrRoute):          observability.Route,
				string(telemetry.AttrOutcome):        "ack",
			}},
			{Name: telemetry.SpanAttempt, Parent: telemetry.SpanDispatch, Tags: map[string]string{
				string(telemetry.AttrSink):       observability.PrimarySink,
				string(telemetry.AttrChannel):    observability.Channel,
				string(telemetry.AttrAttempt):    "1",
				string(telemetry.AttrErrorClass): "retryable",
				"error":                          "true",
			}},
			// The Rocket.Chat sink looks the room up first (rooms.info).
			{Name: "HTTP GET", Parent: telemetry.SpanAttempt, Tags: map[string]string{"http.response.status_code": "503"}},
			{Name: telemetry.SpanAttempt, Parent: telemetry.SpanDispatch, Tags: map[string]string{
				string(telemetry.AttrSink):           observability.FallbackSink,
				string(telemetry.AttrChannel):        observability.Channel,
				string(telemetry.AttrAttempt):        "1",
				string(telemetry.AttrFallbackReason): rec.GetFallbackReason(),
				string(telemetry.AttrChatMessageID):  slackTS,
			}},
			{Name: "HTTP POST", Parent: telemetry.SpanAttempt, Tags: map[string]string{"http.response.status_code": "200"}},
		},
		Secrets: append(f.Secrets(), observability.RocketChatUser),
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
// with all its spans (Jaeger stores asynchronously), or with fewer spans
// that stay the same for two seconds: herald flushed everything before, so
// those are all there will be, and checkTrace says which are missing.
func waitForTrace(t *testing.T, env jaegerEnv, want produced) jTrace {
	t.Helper()
	q := url.Values{"service": {"herald"}, "lookback": {"1h"}, "limit": {"500"}}
	u := env.Query + "/api/traces?" + q.Encode()
	var (
		last   string
		seen   jTrace
		stable int
	)
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
		last = fmt.Sprintf("%d traces, none is %s with %d spans", len(r.Data), want.TraceID, len(want.Spans))
		for _, tr := range r.Data {
			if tr.TraceID != want.TraceID {
				continue
			}
			if len(tr.Spans) >= len(want.Spans) {
				return tr
			}
			if len(tr.Spans) == len(seen.Spans) {
				stable++
			} else {
				stable = 0
			}
			seen = tr
			if stable >= 10 {
				return tr
			}
		}
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

// jaegerBinary finds the binary scripts/install-jaeger.sh builds, or skips
// the test (fails it in CI: testutil.Missing).
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
		testutil.Missing(t, "Jaeger binary not found: "+err.Error(), "run make test-jaeger; it builds Jaeger once into .tools/bin, ~6 min")
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
	grpcAddr, httpAddr, queryAddr, queryGRPC := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	cfg := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, jaegerConfig, grpcAddr, httpAddr, queryAddr, queryGRPC), 0o600); err != nil {
		t.Fatal(err)
	}
	var out testutil.Buffer
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
