package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// otelEnv lists every variable Setup or the exporters read that a test
// might inherit from the developer's shell.
var otelEnv = []string{
	envTracesExporter, envEndpoint, envTracesEndpoint, envProtocol, envTracesProtocol, envSDKDisabled,
	"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPORTER_OTLP_HEADERS",
	"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_COMPRESSION",
	"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_INSECURE",
	"OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
}

// setup runs Setup with exactly env set, and restores the globals Setup
// changes when the test ends.
func setup(t *testing.T, env map[string]string) (shutdown func(context.Context) error, logs *bytes.Buffer, err error) {
	t.Helper()
	for _, k := range otelEnv {
		t.Setenv(k, "")
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	tp, prop := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	logs = &bytes.Buffer{}
	shutdown, err = Setup(t.Context(), Options{
		ServiceVersion: "1.2.3",
		Logger:         slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err == nil {
		t.Cleanup(func() {
			_ = shutdown(context.Background())
			otel.SetTracerProvider(tp)
			otel.SetTextMapPropagator(prop)
		})
	}
	return shutdown, logs, err
}

// receiver collects what an OTLP exporter sends, over HTTP or gRPC.
type receiver struct {
	collectorpb.UnimplementedTraceServiceServer
	mu       sync.Mutex
	requests []*collectorpb.ExportTraceServiceRequest
	headers  []http.Header
}

func (r *receiver) add(req *collectorpb.ExportTraceServiceRequest, h http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, req)
	r.headers = append(r.headers, h)
}

// ServeHTTP implements OTLP/HTTP with binary protobuf at /v1/traces.
func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces application/x-protobuf", http.StatusBadRequest)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	msg := &collectorpb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(raw, msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.add(msg, req.Header.Clone())
	out, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// Export implements OTLP/gRPC.
func (r *receiver) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	r.add(req, nil)
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

// span is one received span with its resource's attributes.
type span struct {
	*tracepb.Span
	resource map[string]string
}

func (r *receiver) spans() []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []span
	for _, req := range r.requests {
		for _, rs := range req.GetResourceSpans() {
			res := attrs(rs.GetResource().GetAttributes())
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					out = append(out, span{s, res})
				}
			}
		}
	}
	return out
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	return m
}

// produce makes a parent with one child through the global provider and
// returns their span contexts.
func produce(t *testing.T) (parent, child trace.SpanContext) {
	tr := otel.Tracer("telemetry-test")
	ctx, p := tr.Start(t.Context(), "parent")
	_, c := tr.Start(ctx, "child", trace.WithAttributes(AttrSink.String("slack")))
	c.End()
	p.End()
	return p.SpanContext(), c.SpanContext()
}

// checkTree checks that got holds exactly the two spans produce made.
func checkTree(t *testing.T, got []span, parent, child trace.SpanContext) {
	t.Helper()
	if len(got) != 2 {
		t.Fatalf("received %d spans, want 2", len(got))
	}
	byName := map[string]span{}
	for _, s := range got {
		byName[s.GetName()] = s
	}
	p, c := byName["parent"], byName["child"]
	if p.Span == nil || c.Span == nil {
		t.Fatalf("received spans %v, want parent and child", byName)
	}
	tid, pid, cid := parent.TraceID(), parent.SpanID(), child.SpanID()
	if !bytes.Equal(p.GetTraceId(), tid[:]) || !bytes.Equal(c.GetTraceId(), tid[:]) {
		t.Errorf("trace ids %x, %x, want %s", p.GetTraceId(), c.GetTraceId(), parent.TraceID())
	}
	if !bytes.Equal(c.GetSpanId(), cid[:]) || !bytes.Equal(c.GetParentSpanId(), pid[:]) {
		t.Errorf("child span %x with parent %x, want %s with parent %s", c.GetSpanId(), c.GetParentSpanId(), child.SpanID(), parent.SpanID())
	}
	if len(p.GetParentSpanId()) != 0 {
		t.Errorf("parent has parent %x", p.GetParentSpanId())
	}
	if got := attrs(c.GetAttributes())[string(AttrSink)]; got != "slack" {
		t.Errorf("child %s = %q", AttrSink, got)
	}
}

func TestSetupWithoutEnvExportsNothingButPropagates(t *testing.T) {
	shutdown, logs, err := setup(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "export off") {
		t.Errorf("log does not say export is off:\n%s", logs)
	}
	// An incoming request from Alertmanager with a sampled traceparent.
	const incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	in := propagation.HeaderCarrier{"Traceparent": {incoming}, "Baggage": {"tenant=a"}}
	ctx := otel.GetTextMapPropagator().Extract(context.Background(), in)
	ctx, sp := otel.Tracer("t").Start(ctx, "webhook")
	defer sp.End()
	if !sp.SpanContext().IsValid() || sp.SpanContext().SpanID().String() == "b7ad6b7169203331" {
		t.Fatalf("span context %v: want a new valid span in the incoming trace", sp.SpanContext())
	}
	out := propagation.HeaderCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, out)
	want := "00-0af7651916cd43dd8448eb211c80319c-" + sp.SpanContext().SpanID().String() + "-01"
	if got := out.Get("traceparent"); got != want {
		t.Errorf("outgoing traceparent %q, want %q", got, want)
	}
	if got := out.Get("baggage"); got != "tenant=a" {
		t.Errorf("outgoing baggage %q, want tenant=a", got)
	}
	// A trace herald starts itself is not recorded (nothing would export
	// it) but still has ids for the logs and for traceparent.
	_, root := otel.Tracer("t").Start(context.Background(), "webhook")
	defer root.End()
	if root.IsRecording() || !root.SpanContext().IsValid() || root.SpanContext().IsSampled() {
		t.Errorf("root span without exporter: recording %v, context %v; want ids, not recorded, not sampled",
			root.IsRecording(), root.SpanContext())
	}
	if err := shutdown(context.Background()); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func TestSetupExportsOverOTLPHTTP(t *testing.T) {
	tests := []struct {
		name        string
		env         func(url string) map[string]string
		wantService string
		wantExtra   map[string]string
		wantNone    bool
	}{{
		name: "endpoint",
		env: func(url string) map[string]string {
			return map[string]string{envEndpoint: url, "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20t0k"}
		},
		wantService: "herald",
	}, {
		name: "traces endpoint and gzip",
		env: func(url string) map[string]string {
			return map[string]string{envTracesEndpoint: url + "/v1/traces", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}
		},
		wantService: "herald",
	}, {
		name: "service name override",
		env: func(url string) map[string]string {
			return map[string]string{envEndpoint: url, "OTEL_SERVICE_NAME": "herald-eu"}
		},
		wantService: "herald-eu",
	}, {
		name: "resource attributes",
		env: func(url string) map[string]string {
			return map[string]string{envEndpoint: url, "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod,service.name=from-attrs"}
		},
		wantService: "from-attrs",
		wantExtra:   map[string]string{"deployment.environment.name": "prod"},
	}, {
		name: "malformed resource attributes are skipped",
		env: func(url string) map[string]string {
			return map[string]string{envEndpoint: url, "OTEL_RESOURCE_ATTRIBUTES": "novalue,deployment.environment.name=prod"}
		},
		wantService: "herald",
		wantExtra:   map[string]string{"deployment.environment.name": "prod"},
	}, {
		name: "exporter none wins over endpoint",
		env: func(url string) map[string]string {
			return map[string]string{envEndpoint: url, envTracesExporter: "none"}
		},
		wantNone: true,
	}, {
		name: "sdk disabled",
		env: func(url string) map[string]string {
			return map[string]string{envEndpoint: url, envSDKDisabled: "true"}
		},
		wantNone: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := &receiver{}
			srv := httptest.NewServer(rcv)
			defer srv.Close()
			shutdown, _, err := setup(t, tt.env(srv.URL))
			if err != nil {
				t.Fatal(err)
			}
			parent, child := produce(t)
			// Nothing is exported before the batch is flushed.
			if err := shutdown(context.Background()); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			got := rcv.spans()
			if tt.wantNone {
				if len(got) != 0 {
					t.Fatalf("received %d spans with export off", len(got))
				}
				return
			}
			checkTree(t, got, parent, child)
			res := got[0].resource
			if res["service.name"] != tt.wantService || res["service.version"] != "1.2.3" {
				t.Errorf("resource service %q version %q, want %q 1.2.3", res["service.name"], res["service.version"], tt.wantService)
			}
			for k, v := range tt.wantExtra {
				if res[k] != v {
					t.Errorf("resource %s = %q, want %q", k, res[k], v)
				}
			}
			if h := rcv.headers[0].Get("Authorization"); tt.name == "endpoint" && h != "Bearer t0k" {
				t.Errorf("Authorization header %q from OTEL_EXPORTER_OTLP_HEADERS", h)
			}
		})
	}
}

func TestSetupExportsOverOTLPGRPC(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rcv := &receiver{}
	srv := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(srv, rcv)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()

	shutdown, logs, err := setup(t, map[string]string{
		envEndpoint: "http://" + l.Addr().String(),
		envProtocol: "grpc",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "protocol=grpc") {
		t.Errorf("log does not name the protocol:\n%s", logs)
	}
	parent, child := produce(t)
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	got := rcv.spans()
	checkTree(t, got, parent, child)
	if got[0].resource["service.name"] != "herald" {
		t.Errorf("service.name %q", got[0].resource["service.name"])
	}
}

func TestSetupRejectsUnknownSettings(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"exporter":        {envTracesExporter: "zipkin"},
		"protocol":        {envEndpoint: "http://127.0.0.1:1", envProtocol: "http/json"},
		"traces protocol": {envEndpoint: "http://127.0.0.1:1", envProtocol: "grpc", envTracesProtocol: "thrift"},
	} {
		t.Run(name, func(t *testing.T) {
			before := otel.GetTracerProvider()
			_, _, err := setup(t, env)
			if err == nil {
				t.Fatal("Setup accepted it")
			}
			if otel.GetTracerProvider() != before {
				t.Error("a failed Setup changed the global tracer provider")
			}
		})
	}
}

func TestGroupKeyHash(t *testing.T) {
	a, b := GroupKeyHash(`{}:{alertname="A"}`), GroupKeyHash(`{}:{alertname="B"}`)
	if a == "" || a == b || a != GroupKeyHash(`{}:{alertname="A"}`) {
		t.Errorf("hashes %q %q: want stable and distinct", a, b)
	}
	if GroupKeyHash("") != "" {
		t.Error("empty key hashes to non-empty")
	}
}
