package rocketchat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/herald-notify/herald/sinks"
)

// APIError is an answer of Rocket.Chat that is not a success. Its text
// holds the endpoint, the status and the server's short reason, never the
// request URL, a token or a hook URL. It unwraps to a *sinks.StatusError.
type APIError struct {
	// Endpoint is the REST method ("chat.sendMessage") or "webhook".
	Endpoint   string
	StatusCode int
	// ErrorType is Rocket.Chat's errorType ("invalid-params",
	// "error-invalid-room", ...), when it sent one.
	ErrorType string
	// Reason is the server's error text, redacted and shortened.
	Reason string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rocketchat %s: HTTP %d", e.Endpoint, e.StatusCode)
	if e.ErrorType != "" {
		b.WriteString(" " + e.ErrorType)
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	return b.String()
}

// Unwrap gives the status as a *sinks.StatusError.
func (e *APIError) Unwrap() error {
	return &sinks.StatusError{StatusCode: e.StatusCode, Reason: e.Reason}
}

// transportError is a failure to get an answer at all. Its text never
// holds the request URL (Go's *url.Error does), only the endpoint.
type transportError struct {
	endpoint string
	msg      string
	err      error
}

func (e *transportError) Error() string { return "rocketchat " + e.endpoint + ": " + e.msg }
func (e *transportError) Unwrap() error { return e.err }

// Throttle defaults.
const (
	// defaultThrottle is the wait when a rate-limit answer says nothing
	// about its reset.
	defaultThrottle = 10 * time.Second
	// maxThrottle caps the wait a server can ask for.
	maxThrottle = time.Hour
	maxBody     = 1 << 20
	maxReason   = 200
)

// decodeAnswer reads one answer: it returns the decoded body of a success,
// or an error classified for the dispatcher. redact removes secrets from
// any text the server sent. It never panics, whatever the input.
func decodeAnswer(endpoint string, status int, h http.Header, body []byte, now time.Time, redact func(string) string) (*apiResponse, error) {
	ar, jsonErr := parseAnswer(body)
	if status >= 200 && status < 300 && jsonErr == nil && ar.Success != nil && *ar.Success {
		return &ar, nil
	}
	apiErr := &APIError{Endpoint: endpoint, StatusCode: status, ErrorType: shortText(redact(ar.ErrorType), 60), Reason: shortText(redact(ar.reason()), maxReason)}
	switch {
	case status >= 200 && status < 300:
		if jsonErr != nil || ar.Success == nil {
			apiErr.Reason = "unreadable answer"
			return nil, apiErr // retryable: the server may recover
		}
		// success is false: Rocket.Chat answers its refusals with a 400,
		// so a 200 that says no is an error the server did not classify
		// (a failing app or integration script, a proxy's rewrite), and
		// may well pass later. Only a named refusal that can never pass
		// is permanent.
		if permanentTypes[ar.ErrorType] {
			return nil, sinks.Permanent(apiErr)
		}
		return nil, apiErr
	case status == http.StatusNotFound:
		// Rocket.Chat answers a missing message, room or hook with a 400
		// or a 401, never a 404: a 404 comes from in front of it (a proxy
		// or an ingress with no backend while Rocket.Chat restarts, a
		// server still starting) and may pass later. A base URL that is
		// wrong for good is retried until the retry budget, while the
		// fallback takes the notifications.
		return nil, apiErr
	case status == http.StatusTooManyRequests:
		return nil, sinks.Throttled(apiErr, rateLimitWait(h, ar.Details.TimeToReset, now))
	case status == http.StatusBadRequest && (ar.ErrorType == "too-many-requests" || ar.ErrorType == "error-too-many-requests"):
		// The per-method limiter (sendMessage: 5 per second for users
		// without the bot role) answers 400, with the wait in details.
		return nil, sinks.Throttled(apiErr, rateLimitWait(h, ar.Details.TimeToReset, now))
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status >= 500:
		return nil, apiErr
	case status >= 400:
		return nil, sinks.Permanent(apiErr)
	}
	// 1xx and 3xx are no delivery; retry, the server may recover.
	return nil, apiErr
}

// permanentTypes are the errorTypes of refusals that no retry can change:
// an unknown room, a body the server's schema or size limit refuses, an
// action the server does not allow.
var permanentTypes = map[string]bool{
	"error-invalid-room":          true,
	"error-room-not-found":        true,
	"invalid-channel":             true,
	"error-invalid-channel":       true,
	"invalid-params":              true,
	"error-invalid-params":        true,
	"error-message-size-exceeded": true,
	"error-not-allowed":           true,
	"error-action-not-allowed":    true,
}

// parseAnswer decodes a JSON object field by field, so that one field of an
// unexpected type (401 answers carry "message" as a string, where
// chat.sendMessage has an object) does not hide the others.
func parseAnswer(body []byte) (apiResponse, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return apiResponse{}, err
	}
	if raw == nil {
		return apiResponse{}, errors.New("not an object")
	}
	var ar apiResponse
	field := func(key string, v any) {
		if b, ok := raw[key]; ok {
			_ = json.Unmarshal(b, v)
		}
	}
	field("success", &ar.Success)
	field("error", &ar.Error)
	field("errorType", &ar.ErrorType)
	field("details", &ar.Details)
	field("message", &ar.Message)
	field("room", &ar.Room)
	return ar, nil
}

// reason is the server's explanation: error, else errorType.
func (ar *apiResponse) reason() string {
	switch v := ar.Error.(type) {
	case string:
		return v
	case nil:
	default:
		if b, err := json.Marshal(v); err == nil {
			return string(b)
		}
	}
	return ""
}

// rateLimitWait is how long a rate limit lasts: until X-RateLimit-Reset
// (epoch milliseconds; Rocket.Chat sends no Retry-After), else Retry-After,
// else details.timeToReset (milliseconds), else defaultThrottle. It is at
// least a millisecond past the reset and at most maxThrottle.
func rateLimitWait(h http.Header, timeToResetMS float64, now time.Time) time.Duration {
	if ms, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64); err == nil && ms > 0 {
		return clampWait(time.UnixMilli(ms).Sub(now) + time.Millisecond)
	}
	if d, ok := sinks.ParseRetryAfter(h.Get("Retry-After"), now); ok {
		return clampWait(d)
	}
	if timeToResetMS > 0 && timeToResetMS < float64(maxThrottle/time.Millisecond) {
		return clampWait(time.Duration(timeToResetMS*float64(time.Millisecond)) + time.Millisecond)
	}
	return defaultThrottle
}

func clampWait(d time.Duration) time.Duration {
	return min(max(d, time.Millisecond), maxThrottle)
}

// shortText keeps the first max bytes of s on one line, at a rune boundary.
func shortText(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= max {
		return s
	}
	cut := 0
	for i := range s {
		if i > max {
			break
		}
		cut = i
	}
	return s[:cut] + "…"
}

// call makes one request and decodes its answer. endpoint is a REST method
// ("chat.sendMessage"), or "webhook" for the hook URL.
func (s *Sink) call(ctx context.Context, method, endpoint string, query url.Values, body any) (*apiResponse, error) {
	var target string
	if endpoint == "webhook" {
		target = s.cfg.WebhookURL.Value()
	} else {
		target = s.apiBase + endpoint
		if len(query) > 0 {
			target += "?" + query.Encode()
		}
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, sinks.Permanent(fmt.Errorf("rocketchat %s: encoding the request: %w", endpoint, err))
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, sinks.Permanent(&transportError{endpoint: endpoint, msg: "invalid request"})
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "herald")
	if endpoint != "webhook" {
		req.Header.Set("X-User-Id", s.cfg.UserID)
		req.Header.Set("X-Auth-Token", s.cfg.Token.Value())
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, s.transportFailure(ctx, endpoint, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, s.transportFailure(ctx, endpoint, fmt.Errorf("reading the answer: %w", err))
	}
	ar, err := decodeAnswer(endpoint, resp.StatusCode, resp.Header, b, time.Now(), s.redact)
	s.observe(ctx, resp, err)
	return ar, err
}

// transportFailure turns a failed round trip into a retryable error that
// wraps the context's error when the context ended, and never holds the URL.
func (s *Sink) transportFailure(ctx context.Context, endpoint string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return &transportError{endpoint: endpoint, msg: cerr.Error(), err: cerr}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &transportError{endpoint: endpoint, msg: shortText(s.redact(err.Error()), 300), err: err}
}

// redact replaces every configured secret, and the credential parts of the
// hook URL, by "<secret>".
func (s *Sink) redact(text string) string {
	for _, sec := range s.secrets {
		if sec != "" && strings.Contains(text, sec) {
			text = strings.ReplaceAll(text, sec, "<secret>")
		}
	}
	return text
}

// secretsOf lists what redact removes: the token and the hook URL, and the
// hook URL's path, its last two segments (id and token) and their escaped
// forms, longest first.
func secretsOf(c Config) []string {
	var out []string
	add := func(v string) {
		if len(v) >= 4 {
			out = append(out, v, url.QueryEscape(v), url.PathEscape(v))
		}
	}
	add(c.Token.Value())
	if c.WebhookURL.IsSet() {
		add(c.WebhookURL.Value())
		if u, err := url.Parse(c.WebhookURL.Value()); err == nil {
			add(u.Path)
			add(u.EscapedPath())
			segs := strings.Split(strings.Trim(u.EscapedPath(), "/"), "/")
			for i, seg := range segs {
				if i > 0 && segs[i-1] == "hooks" || i >= 2 && segs[i-2] == "hooks" {
					add(seg)
					if un, err := url.PathUnescape(seg); err == nil {
						add(un)
					}
				}
			}
		}
	}
	// Longest first, so a URL is replaced whole before its parts.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && len(out[j]) > len(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
