// Package telemetry owns herald's OpenTelemetry setup: the tracer provider
// configured from the standard OTEL_* environment variables, W3C trace
// context and baggage propagation, the span attribute names every package
// shares, and the slog handler that puts trace and span ids on log lines.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// DefaultServiceName is the service.name herald reports unless
// OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) says
// otherwise.
const DefaultServiceName = "herald"

// Options configures Setup. Everything about the exporter comes from the
// environment, as the OpenTelemetry specification defines it.
type Options struct {
	// ServiceVersion becomes the resource's service.version.
	ServiceVersion string
	// Logger receives one line saying where traces go, and OpenTelemetry's
	// own errors (failed exports). Nil discards them.
	Logger *slog.Logger
}

// Environment variables Setup reads itself; the OTLP exporters read their
// endpoint, headers, timeout, TLS and compression variables on their own.
const (
	envTracesExporter = "OTEL_TRACES_EXPORTER"
	envEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envSDKDisabled    = "OTEL_SDK_DISABLED"
	protocolGRPC      = "grpc"
	protocolHTTP      = "http/protobuf"
	exporterOTLP      = "otlp"
	exporterNone      = "none"
)

// Setup installs herald's global tracer provider and propagator and returns
// the function that flushes and stops them.
//
// Traces are exported over OTLP when OTEL_TRACES_EXPORTER=otlp, or when it
// is unset and OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set; the protocol is
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL, grpc or
// http/protobuf (the default). Spans are exported in batches (OTEL_BSP_*),
// sampled as OTEL_TRACES_SAMPLER says (parent-based always-on by default).
//
// Without an exporter, or with OTEL_SDK_DISABLED=true, nothing leaves the
// process, but spans still get ids: log lines carry trace and span ids, and
// an incoming traceparent is continued into the queue and the sinks' HTTP
// requests, keeping its sampled flag. Traces herald starts itself are then
// not recorded. The propagator is always W3C trace context plus baggage.
//
// Setup fails on an unknown exporter or protocol, or when the exporter
// cannot be built from its environment; it then changes no global.
func Setup(ctx context.Context, opts Options) (shutdown func(context.Context) error, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	exporter, protocol, err := exporterFromEnv()
	if err != nil {
		return nil, err
	}
	res, err := newResource(ctx, opts.ServiceVersion)
	if errors.Is(err, resource.ErrPartialResource) {
		log.Warn("tracing: some resource attributes from the environment are ignored", "err", err)
	} else if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if exporter == exporterOTLP {
		exp, err := newExporter(ctx, protocol)
		if err != nil {
			return nil, err
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
	} else {
		// Nothing is exported, so a trace herald starts itself is not
		// recorded: its spans still get ids (for the logs and for
		// traceparent), but no attributes, events or timings are kept,
		// which at 1,000 notifications/s was 4% of the bytes allocated.
		// A trace an upstream sampled is recorded, so it leaves herald
		// still marked sampled for whoever exports it downstream.
		tpOpts = append(tpOpts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)

	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(Propagator())
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("opentelemetry", "err", err)
	}))
	service := ""
	if v, ok := res.Set().Value(semconv.ServiceNameKey); ok {
		service = v.AsString()
	}
	if exporter == exporterOTLP {
		log.Info("tracing: exporting over OTLP", "protocol", protocol, "service", service)
	} else {
		log.Info("tracing: export off (set OTEL_EXPORTER_OTLP_ENDPOINT to export)", "service", service)
	}
	return tp.Shutdown, nil
}

// Propagator is the propagator herald installs globally: W3C trace context
// and baggage. Packages that carry context (HTTP, queue headers) use the
// global one; this is for tests and for callers that need it explicitly.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// exporterFromEnv decides whether to export, and over which protocol.
func exporterFromEnv() (exporter, protocol string, err error) {
	if disabled, _ := lookup(envSDKDisabled); strings.EqualFold(disabled, "true") {
		return exporterNone, "", nil
	}
	exporter, set := lookup(envTracesExporter)
	if !set {
		exporter = exporterNone
		if _, ok := lookup(envTracesEndpoint); ok {
			exporter = exporterOTLP
		} else if _, ok := lookup(envEndpoint); ok {
			exporter = exporterOTLP
		}
	}
	switch exporter {
	case exporterNone:
		return exporterNone, "", nil
	case exporterOTLP:
	default:
		return "", "", fmt.Errorf("%s=%q: herald supports otlp or none", envTracesExporter, exporter)
	}
	protocol, ok := lookup(envTracesProtocol)
	if !ok {
		protocol, ok = lookup(envProtocol)
	}
	if !ok {
		protocol = protocolHTTP
	}
	switch protocol {
	case protocolHTTP, protocolGRPC:
		return exporterOTLP, protocol, nil
	}
	return "", "", fmt.Errorf("OTLP protocol %q (from %s or %s): herald supports %s or %s",
		protocol, envTracesProtocol, envProtocol, protocolGRPC, protocolHTTP)
}

// lookup reads an environment variable, treating a blank value as unset, as
// the specification asks.
func lookup(key string) (string, bool) {
	v := strings.TrimSpace(os.Getenv(key))
	return v, v != ""
}

func newExporter(ctx context.Context, protocol string) (sdktrace.SpanExporter, error) {
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch protocol {
	case protocolGRPC:
		exp, err = otlptracegrpc.New(ctx)
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP %s trace exporter: %w", protocol, err)
	}
	return exp, nil
}

// newResource describes this process: service.name defaults to herald,
// service.version is the build's, and OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES override or add to both.
func newResource(ctx context.Context, version string) (*resource.Resource, error) {
	attrs := []resource.Option{
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(semconv.ServiceName(DefaultServiceName)),
		resource.WithTelemetrySDK(),
	}
	if version != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceVersion(version)))
	}
	// Later detectors win, so the environment overrides the defaults above.
	attrs = append(attrs, resource.WithFromEnv())
	// A partial resource (a malformed pair in OTEL_RESOURCE_ATTRIBUTES) is
	// returned with its error: the rest is usable.
	return resource.New(ctx, attrs...)
}
