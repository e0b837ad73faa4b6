package mattermost

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

// APIError is an answer of Mattermost that is not a success. Its text
// holds the operation, the status and the server's error id and message,
// redacted and shortened; never the request URL, a token or a hook URL. It
// unwraps to a *sinks.StatusError.
type APIError struct {
	// Op is what the sink was doing: "create post", "patch post", ...
	Op         string
	StatusCode int
	// ID is Mattermost's error id ("api.context.session_expired.app_error"),
	// when the body was an AppError.
	ID string
	// Reason is the server's message, redacted and shortened.
	Reason string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mattermost %s: HTTP %d", e.Op, e.StatusCode)
	if e.ID != "" {
		b.WriteString(" " + e.ID)
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
// holds the request URL (Go's *url.Error does), only the operation.
type transportError struct {
	op  string
	msg string
	err error
}

func (e *transportError) Error() string { return "mattermost " + e.op + ": " + e.msg }
func (e *transportError) Unwrap() error { return e.err }

const (
	// defaultThrottle is the wait when a 429 says nothing about its reset.
	defaultThrottle = 10 * time.Second
	// maxThrottle caps the wait a server can ask for.
	maxThrottle = time.Hour
	maxBody     = 4 << 20
	maxReason   = 200
)

// classify turns a non-2xx answer into an error of its class:
// 401/403/400/413 permanent; 404 permanent when Mattermost itself said it
// (an AppError body: a missing channel, team or post), retryable when it
// came from a proxy in front of a server that is down; 429 throttled for
// Retry-After (Mattermost's limiter sends it in seconds) or else
// X-RateLimit-Reset (seconds until the limit is reset); 408, 425 and 5xx
// retryable, except 501, Mattermost's answer when incoming webhooks are
// disabled.
func classify(op string, status int, h http.Header, body []byte, now time.Time, redact func(string) string) error {
	var ae appError
	isApp := json.Unmarshal(body, &ae) == nil && ae.ID != ""
	e := &APIError{Op: op, StatusCode: status}
	if isApp {
		e.ID = shortText(redact(ae.ID), 80)
		e.Reason = shortText(redact(ae.Message), maxReason)
	} else if t := strings.TrimSpace(string(body)); t != "" && !strings.HasPrefix(t, "<") && !strings.HasPrefix(t, "{") {
		e.Reason = shortText(redact(t), maxReason)
	}
	switch {
	case status == http.StatusTooManyRequests:
		return sinks.Throttled(e, rateLimitWait(h, now))
	case status == http.StatusNotFound:
		if isApp {
			return sinks.Permanent(e)
		}
		return e
	case status == http.StatusNotImplemented && isApp:
		return sinks.Permanent(e)
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status >= 500:
		return e
	case status >= 400:
		return sinks.Permanent(e)
	}
	// 1xx and 3xx are no delivery; retry, the server may recover.
	return e
}

// rateLimitWait is how long a rate limit lasts: Retry-After, else
// X-RateLimit-Reset (seconds from now, as Mattermost's limiter sends it;
// a value that looks like an epoch time in seconds or milliseconds is read
// as one), else defaultThrottle; at most maxThrottle.
func rateLimitWait(h http.Header, now time.Time) time.Duration {
	if d, ok := sinks.ParseRetryAfter(h.Get("Retry-After"), now); ok && d > 0 {
		return min(d, maxThrottle)
	}
	if v, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64); err == nil && v > 0 {
		var d time.Duration
		switch {
		case v > 1e12:
			d = time.UnixMilli(v).Sub(now)
		case v > 1e9:
			d = time.Unix(v, 0).Sub(now)
		default:
			d = time.Duration(v) * time.Second
		}
		return min(max(d, time.Second), maxThrottle)
	}
	return defaultThrottle
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

// call makes one request to the API (path below /api/v4/, or "" for the
// webhook URL) and decodes a 2xx JSON answer into out (nil: ignore it).
func (s *Sink) call(ctx context.Context, op, method, path string, query url.Values, body, out any) error {
	target := s.cfg.WebhookURL.Value()
	if path != "" {
		target = s.apiBase + path
		if len(query) > 0 {
			target += "?" + query.Encode()
		}
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return sinks.Permanent(fmt.Errorf("mattermost %s: encoding the request: %w", op, err))
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return sinks.Permanent(&transportError{op: op, msg: "invalid request"})
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "herald")
	if path != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.Token.Value())
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return s.transportFailure(ctx, op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return s.transportFailure(ctx, op, fmt.Errorf("reading the answer: %w", err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err = classify(op, resp.StatusCode, resp.Header, b, time.Now(), s.redact)
	} else if out != nil {
		if jerr := json.Unmarshal(b, out); jerr != nil {
			// The request may have done its work: retryable, and the next
			// attempt looks the post up before posting again.
			err = &APIError{Op: op, StatusCode: resp.StatusCode, Reason: "unreadable answer"}
		}
	}
	s.observe(ctx, err)
	return err
}

// transportFailure turns a failed round trip into a retryable error that
// wraps the context's error when the context ended, and never holds the URL.
func (s *Sink) transportFailure(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return &transportError{op: op, msg: cerr.Error(), err: cerr}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &transportError{op: op, msg: shortText(s.redact(err.Error()), 300), err: err}
}

// redact replaces every configured secret by "<secret>".
func (s *Sink) redact(text string) string {
	for _, sec := range s.secrets {
		if sec != "" && strings.Contains(text, sec) {
			text = strings.ReplaceAll(text, sec, "<secret>")
		}
	}
	return text
}

// secretsOf lists what redact removes: the token, the hook URL, its path
// and its key, in their escaped forms too, longest first.
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
				if i > 0 && segs[i-1] == "hooks" {
					add(seg)
					if un, err := url.PathUnescape(seg); err == nil {
						add(un)
					}
				}
			}
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && len(out[j]) > len(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
