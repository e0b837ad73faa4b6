package telemetry

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// HTTPTransport returns base (http.DefaultTransport when nil) instrumented
// for the sinks: each request gets a client span, child of the span in its
// context, and carries the trace context in its headers.
//
// The span's url.full shows the URL as RedactURL does, so that a hook URL,
// whose path is its credential, never reaches a trace; the request itself
// goes to the real URL.
//
// A request whose context holds a span that is not sampled (every trace
// herald starts when nothing exports them) gets no client span, only the
// trace context in its headers: under a parent-based sampler, which herald
// uses, its span would not be recorded anyway, and building it (attributes,
// metric options, two request copies) was 2.5% of herald's CPU at 1,000
// notifications/s.
func HTTPTransport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return sampledOnly{
		traced: redactURL{next: otelhttp.NewTransport(restoreURL{next: base})},
		plain:  base,
	}
}

// sampledOnly sends a request through traced unless its context holds a
// valid span context that is not sampled; then through plain, with the
// trace context injected as traced would (the span id is the parent's).
type sampledOnly struct{ traced, plain http.RoundTripper }

func (t sampledOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	sc := trace.SpanContextFromContext(r.Context())
	if !sc.IsValid() || sc.IsSampled() {
		return t.traced.RoundTrip(r)
	}
	// A RoundTripper must not modify the request it is given.
	r = r.Clone(r.Context())
	otel.GetTextMapPropagator().Inject(r.Context(), propagation.HeaderCarrier(r.Header))
	return t.plain.RoundTrip(r)
}

// RedactURL returns what herald may show of u in a span: scheme, host and
// port; the path only when it has an "api" segment (a chat REST method such
// as /api/v1/chat.postMessage), otherwise /REDACTED; never user info or
// fragment. A REST method's query keeps the values of the parameters that
// name a room, a message or a page (shownParams), so a trace says which
// message a lookup was for; every other value shows as REDACTED. Any other
// URL's query shows as REDACTED whole: a hook URL's query can be its
// credential (Teams' sig).
func RedactURL(u *url.URL) *url.URL {
	shown := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/REDACTED"}
	api := hasAPISegment(u.Path)
	if api {
		shown.Path = u.Path
	}
	if u.RawQuery == "" {
		return shown
	}
	if !api {
		shown.RawQuery = "REDACTED"
		return shown
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		shown.RawQuery = "REDACTED"
		return shown
	}
	for k, vs := range q {
		if !shownParams[k] {
			for i := range vs {
				vs[i] = "REDACTED"
			}
		}
	}
	shown.RawQuery = q.Encode()
	return shown
}

// shownParams are the REST query parameters whose values are ids and
// names, never secrets: Rocket.Chat's, Slack's and Mattermost's.
var shownParams = map[string]bool{
	"msgId": true, "roomId": true, "roomName": true, "tmid": true,
	"channel": true, "ts": true, "thread_ts": true, "cursor": true, "limit": true,
	"page": true, "per_page": true, "since": true, "before": true, "after": true,
}

func hasAPISegment(path string) bool {
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "api" {
			return true
		}
	}
	return false
}

type realURLKey struct{}

// redactURL hands the instrumentation a copy of the request with the URL
// redacted, keeping the real one in the context for restoreURL.
type redactURL struct{ next http.RoundTripper }

func (t redactURL) RoundTrip(r *http.Request) (*http.Response, error) {
	shown := r.WithContext(context.WithValue(r.Context(), realURLKey{}, r.URL))
	shown.URL = RedactURL(r.URL)
	return t.next.RoundTrip(shown)
}

// restoreURL puts the real URL back before the request leaves.
type restoreURL struct{ next http.RoundTripper }

func (t restoreURL) RoundTrip(r *http.Request) (*http.Response, error) {
	if u, ok := r.Context().Value(realURLKey{}).(*url.URL); ok {
		r = r.WithContext(r.Context())
		r.URL = u
	}
	return t.next.RoundTrip(r)
}
