package sinks

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Class is how the dispatcher treats a delivery error.
type Class int

const (
	// ClassNone is the class of a nil error.
	ClassNone Class = iota
	// ClassRetryable errors may succeed if the same request is tried again:
	// timeouts, refused connections, 5xx. Every unclassified error is
	// retryable.
	ClassRetryable
	// ClassThrottled errors are rate limits: retry after the error's wait.
	ClassThrottled
	// ClassPermanent errors will fail the same way every time: bad config,
	// bad credentials, a payload the server refuses.
	ClassPermanent
)

// String is the class's name as used in metrics, logs and delivery records.
func (c Class) String() string {
	switch c {
	case ClassNone:
		return "none"
	case ClassRetryable:
		return "retryable"
	case ClassThrottled:
		return "throttled"
	case ClassPermanent:
		return "permanent"
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// PermanentError marks an error that retrying cannot fix.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as permanent. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// BrokenError marks an error that says the sink itself cannot deliver
// anything until its config changes (a deleted incoming webhook, revoked
// credentials), rather than that it refused one notification.
type BrokenError struct{ Err error }

func (e *BrokenError) Error() string { return e.Err.Error() }
func (e *BrokenError) Unwrap() error { return e.Err }

// Broken marks err as permanent and as the sink's own fault (see
// IsBroken). Broken(nil) is nil.
func Broken(err error) error {
	if err == nil {
		return nil
	}
	return Permanent(&BrokenError{Err: err})
}

// IsBroken reports whether err says the sink cannot deliver anything until
// its config changes: marked with Broken, or an HTTP 401 or 403. The
// dispatcher counts such an error against the sink's circuit breaker, so
// that notifications go on to the next sink of their chains instead of
// trying this one each time; any other permanent error refuses one
// notification and says the sink is up.
func IsBroken(err error) bool {
	var be *BrokenError
	if errors.As(err, &be) {
		return true
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.StatusCode == http.StatusUnauthorized || se.StatusCode == http.StatusForbidden
	}
	return false
}

// ThrottledError is a rate limit: the server asked to wait Wait before the
// next request.
type ThrottledError struct {
	Err  error
	Wait time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%v (throttled for %s)", e.Err, e.Wait)
}
func (e *ThrottledError) Unwrap() error { return e.Err }

// Throttled marks err as a rate limit lifting after wait. A negative wait is
// treated as zero. Throttled(nil, d) is nil.
func Throttled(err error, wait time.Duration) error {
	if err == nil {
		return nil
	}
	return &ThrottledError{Err: err, Wait: max(wait, 0)}
}

// Classify returns err's class: permanent when marked permanent anywhere in
// its chain, else throttled when marked throttled, else retryable.
func Classify(err error) Class {
	var p *PermanentError
	var t *ThrottledError
	switch {
	case err == nil:
		return ClassNone
	case errors.As(err, &p):
		return ClassPermanent
	case errors.As(err, &t):
		return ClassThrottled
	}
	return ClassRetryable
}

// ThrottleWait returns the wait of the throttle error in err's chain.
func ThrottleWait(err error) (time.Duration, bool) {
	var t *ThrottledError
	if errors.As(err, &t) {
		return t.Wait, true
	}
	return 0, false
}

// StatusError is an HTTP answer a sink did not expect. Its text holds the
// status and a short, secret-free reason, never the request URL.
type StatusError struct {
	StatusCode int
	// Reason is the server's own short explanation, if it gave one.
	Reason string
}

func (e *StatusError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("HTTP %d: %s", e.StatusCode, e.Reason)
}

// ClassifyStatus wraps a non-2xx HTTP status as an error of the usual class:
// 408, 425, 5xx retryable; 429 throttled for retryAfter; other 4xx permanent.
func ClassifyStatus(code int, reason string, retryAfter time.Duration) error {
	err := &StatusError{StatusCode: code, Reason: reason}
	switch {
	case code == http.StatusTooManyRequests:
		return Throttled(err, retryAfter)
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code >= 500:
		return err
	case code >= 400:
		return Permanent(err)
	}
	// 1xx/3xx answers are not a delivery: retry, the server may recover.
	return err
}

// ParseRetryAfter reads an HTTP Retry-After header: delay-seconds or an
// HTTP date. It reports false when the header is absent or unreadable.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, int64(24*time.Hour/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
