package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/slack-go/slack"

	"github.com/herald-notify/herald/sinks"
)

// Error is a failed Slack request. Its text names the method and Slack's
// reason; it never contains the token or the webhook URL.
type Error struct {
	// Method is the Web API method ("chat.postMessage", "chat.update") or
	// "webhook".
	Method string
	// Code is Slack's error code, such as "channel_not_found", when Slack
	// gave one: the error of an ok:false answer, or a webhook's error body.
	Code string
	// StatusCode is the HTTP status when the server answered other than 200.
	StatusCode int
	msg        string
	err        error
}

func (e *Error) Error() string { return "slack " + e.Method + ": " + e.msg }

// Unwrap returns the cause. A *url.Error, which repeats the request URL,
// is never part of the chain: its own cause is kept instead.
func (e *Error) Unwrap() error { return e.err }

// ErrPaced is in the chain of the throttle errors a Sink returns, without
// sending anything, when a channel was posted to less than the configured
// pace ago.
var ErrPaced = errors.New("slack: pacing one message per channel")

// codeClass is Slack's error codes by what retrying them can do. Codes not
// listed are retryable, as every unclassified error is.
var codeClass = map[string]sinks.Class{
	// Rate limits that come as ok:false rather than as a 429.
	"ratelimited":            sinks.ClassThrottled,
	"rate_limited":           sinks.ClassThrottled,
	"message_limit_exceeded": sinks.ClassThrottled,

	// Slack's trouble, worth retrying.
	"internal_error":      sinks.ClassRetryable,
	"fatal_error":         sinks.ClassRetryable,
	"service_unavailable": sinks.ClassRetryable,
	"request_timeout":     sinks.ClassRetryable,
	"rollup_error":        sinks.ClassRetryable,

	// Configuration: token, scopes, channel.
	"invalid_auth":                             sinks.ClassPermanent,
	"not_authed":                               sinks.ClassPermanent,
	"account_inactive":                         sinks.ClassPermanent,
	"token_revoked":                            sinks.ClassPermanent,
	"token_expired":                            sinks.ClassPermanent,
	"invalid_token":                            sinks.ClassPermanent,
	"no_permission":                            sinks.ClassPermanent,
	"missing_scope":                            sinks.ClassPermanent,
	"not_allowed_token_type":                   sinks.ClassPermanent,
	"team_access_not_granted":                  sinks.ClassPermanent,
	"org_login_required":                       sinks.ClassPermanent,
	"ekm_access_denied":                        sinks.ClassPermanent,
	"access_denied":                            sinks.ClassPermanent,
	"two_factor_setup_required":                sinks.ClassPermanent,
	"team_disabled":                            sinks.ClassPermanent,
	"no_team":                                  sinks.ClassPermanent,
	"no_service":                               sinks.ClassPermanent,
	"no_service_id":                            sinks.ClassPermanent,
	"no_active_hooks":                          sinks.ClassPermanent,
	"action_prohibited":                        sinks.ClassPermanent,
	"channel_not_found":                        sinks.ClassPermanent,
	"not_in_channel":                           sinks.ClassPermanent,
	"is_archived":                              sinks.ClassPermanent,
	"channel_is_archived":                      sinks.ClassPermanent,
	"user_not_found":                           sinks.ClassPermanent,
	"restricted_action":                        sinks.ClassPermanent,
	"posting_to_general_channel_denied":        sinks.ClassPermanent,
	"restricted_action_read_only_channel":      sinks.ClassPermanent,
	"restricted_action_thread_only_channel":    sinks.ClassPermanent,
	"restricted_action_non_threadable_channel": sinks.ClassPermanent,
	"as_user_not_supported":                    sinks.ClassPermanent,
	"method_deprecated":                        sinks.ClassPermanent,
	"deprecated_endpoint":                      sinks.ClassPermanent,

	// A message Slack refuses, the same way every time.
	"msg_too_long":            sinks.ClassPermanent,
	"msg_blocks_too_long":     sinks.ClassPermanent,
	"no_text":                 sinks.ClassPermanent,
	"invalid_blocks":          sinks.ClassPermanent,
	"invalid_blocks_format":   sinks.ClassPermanent,
	"invalid_attachments":     sinks.ClassPermanent,
	"too_many_attachments":    sinks.ClassPermanent,
	"invalid_payload":         sinks.ClassPermanent,
	"invalid_arguments":       sinks.ClassPermanent,
	"invalid_arg_name":        sinks.ClassPermanent,
	"invalid_array_arg":       sinks.ClassPermanent,
	"invalid_charset":         sinks.ClassPermanent,
	"invalid_form_data":       sinks.ClassPermanent,
	"invalid_post_type":       sinks.ClassPermanent,
	"missing_post_type":       sinks.ClassPermanent,
	"invalid_metadata_format": sinks.ClassPermanent,
	"invalid_metadata_schema": sinks.ClassPermanent,

	// chat.update of a message that cannot be edited any more.
	"message_not_found":   sinks.ClassPermanent,
	"cant_update_message": sinks.ClassPermanent,
	"edit_window_closed":  sinks.ClassPermanent,
}

// parentGone are the chat.update codes that mean the group's message can no
// longer be edited, so a new one is posted.
var parentGone = map[string]bool{
	"message_not_found":   true,
	"cant_update_message": true,
	"edit_window_closed":  true,
	"channel_not_found":   true,
	"is_archived":         true,
}

// threadGone are the conversations.replies codes that mean a thread's
// parent message no longer exists where herald posted it.
var threadGone = map[string]bool{
	"thread_not_found":  true,
	"message_not_found": true,
	"channel_not_found": true,
	"is_archived":       true,
}

// CodeClass returns how Slack's error code code is treated.
func CodeClass(code string) sinks.Class {
	if c, ok := codeClass[code]; ok {
		return c
	}
	return sinks.ClassRetryable
}

// defaultThrottle is the wait for a rate limit that does not say how long.
const defaultThrottle = 5 * time.Second

// maxReason bounds the server text kept in an error.
const maxReason = 200

// exchange is what the transport saw of the one answer to a request: slack-go
// reports a status but drops the body and, for unreadable Retry-After
// values, the header.
type exchange struct {
	// wholeBody asks for the body of 200 answers too, which slack-go does
	// not read for webhooks.
	wholeBody bool
	status    int
	header    http.Header
	body      string
	// bodyErr is the error reading the body, such as a connection closed
	// before the promised length.
	bodyErr error
}

type exchangeKey struct{}

// captureTransport records, for requests whose context carries an
// *exchange, the answer's status and headers, and up to maxBody bytes of the
// body of a non-200 answer, leaving the body readable for slack-go.
type captureTransport struct{ next http.RoundTripper }

const maxBody = 4 << 10

func (t captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	x, ok := req.Context().Value(exchangeKey{}).(*exchange)
	if !ok {
		return resp, nil
	}
	x.status, x.header = resp.StatusCode, resp.Header.Clone()
	if (x.wholeBody || resp.StatusCode != http.StatusOK) && resp.Body != nil {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		x.body, x.bodyErr = string(b), err
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(strings.NewReader(x.body), resp.Body), resp.Body}
	}
	return resp, nil
}

// withExchange returns ctx carrying a fresh exchange for one request.
func withExchange(ctx context.Context) (context.Context, *exchange) {
	x := &exchange{}
	return context.WithValue(ctx, exchangeKey{}, x), x
}

// scrubber removes secrets from text.
type scrubber []string

func (s scrubber) scrub(text string) string {
	for _, v := range s {
		if v != "" {
			text = strings.ReplaceAll(text, v, "<secret>")
			text = strings.ReplaceAll(text, url.QueryEscape(v), "<secret>")
		}
	}
	return text
}

// reasonText turns a server's answer body into a short, printable,
// single-line reason.
func reasonText(body string) string {
	body = strings.TrimSpace(body)
	if i := strings.IndexAny(body, "\r\n"); i >= 0 {
		body = body[:i]
	}
	body = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, body)
	if len(body) > maxReason {
		cut := maxReason
		for cut > 0 && !isRuneStart(body[cut]) {
			cut--
		}
		body = body[:cut] + "…"
	}
	return body
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// isCode reports whether s looks like a Slack error code
// ("channel_not_found"), as opposed to an HTML page or prose.
func isCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && r != '_' && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// classify turns the error of one request into a classified *Error. x is
// what the transport saw of the answer; now is for HTTP-date Retry-After
// values.
func (s *Sink) classify(method string, err error, x *exchange, now time.Time) error {
	e, class := describe(method, err, x, s.secrets)
	e.msg = s.secrets.scrub(e.msg)
	switch class {
	case sinks.ClassPermanent:
		return sinks.Permanent(e)
	case sinks.ClassThrottled:
		var rle *slack.RateLimitedError
		if errors.As(err, &rle) {
			return sinks.Throttled(e, rle.RetryAfter)
		}
		return sinks.Throttled(e, retryAfter(x, now))
	}
	return e
}

// describe explains err as an *Error and says how to treat it.
func describe(method string, err error, x *exchange, sc scrubber) (*Error, sinks.Class) {
	e := &Error{Method: method}
	if x.status != http.StatusOK {
		e.StatusCode = x.status
	}
	var (
		ser slack.SlackErrorResponse
		rle *slack.RateLimitedError
		sce slack.StatusCodeError
		ue  *url.Error
	)
	switch {
	case errors.As(err, &ser):
		// ok:false in a 200.
		e.Code, e.msg, e.err = ser.Err, ser.Err, err
		return e, CodeClass(ser.Err)

	case errors.As(err, &rle):
		e.msg, e.err = "rate limited", err
		return e, sinks.ClassThrottled

	case x.status == http.StatusTooManyRequests:
		// A 429 whose Retry-After slack-go could not read (an HTTP date),
		// or that had none.
		e.msg, e.err = "HTTP 429", err
		return e, sinks.ClassThrottled

	case errors.As(err, &sce):
		e.StatusCode = sce.Code
		body := reasonText(sc.scrub(x.body))
		if isCode(body) {
			e.Code = body
		}
		e.msg = fmt.Sprintf("HTTP %d", sce.Code)
		if body != "" {
			e.msg += ": " + body
		}
		// The chain holds the status, not its class: the class is decided
		// here, once.
		e.err = &sinks.StatusError{StatusCode: sce.Code, Reason: body}
		if c, ok := codeClass[e.Code]; ok {
			// The body names the problem precisely (webhooks do).
			return e, c
		}
		return e, sinks.Classify(sinks.ClassifyStatus(sce.Code, body, 0))

	case errors.As(err, &ue):
		// Drop the URL: in webhook mode it is the secret.
		e.msg, e.err = ue.Op+": "+ue.Err.Error(), ue.Err
		return e, sinks.ClassRetryable
	}
	e.msg, e.err = err.Error(), err
	return e, sinks.ClassRetryable
}

func retryAfter(x *exchange, now time.Time) time.Duration {
	if x.header != nil {
		if d, ok := sinks.ParseRetryAfter(x.header.Get("Retry-After"), now); ok {
			return d
		}
	}
	return defaultThrottle
}
