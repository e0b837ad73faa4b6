package sinks

import (
	"log/slog"
	"net/http"
)

// Deps are what the wiring hands every sink constructor.
type Deps struct {
	// Logger is already scoped to the sink (With("sink", name)).
	Logger *slog.Logger
	// Transport is the HTTP transport sinks build their clients on. It is
	// instrumented for tracing; a sink sets its own timeouts on the client.
	// Nil means http.DefaultTransport.
	Transport http.RoundTripper
}

// HTTPTransport returns d.Transport, or http.DefaultTransport when unset.
func (d Deps) HTTPTransport() http.RoundTripper {
	if d.Transport == nil {
		return http.DefaultTransport
	}
	return d.Transport
}
