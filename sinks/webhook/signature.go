package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Request headers the sink sets.
const (
	// HeaderSignature carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// "<t>.<body>">", Stripe's scheme, when an hmac_secret is configured.
	HeaderSignature = "X-Herald-Signature"
	// HeaderTimestamp repeats the signature's t, for logs and proxies.
	HeaderTimestamp = "X-Herald-Timestamp"
	// HeaderAttempt counts this sink's attempts for the notification,
	// from 1.
	HeaderAttempt = "X-Herald-Attempt"
	// HeaderIdempotencyKey is the notification's id, the same on every
	// attempt.
	HeaderIdempotencyKey = "Idempotency-Key"
)

// DefaultTolerance is how far a signature's timestamp may be from the
// receiver's clock when Verify is given no tolerance: Stripe's default.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify; check them with errors.Is.
var (
	ErrNoSignature       = errors.New("webhook signature: missing")
	ErrBadSignature      = errors.New("webhook signature: malformed header")
	ErrSignatureMismatch = errors.New("webhook signature: does not match the body")
	ErrSignatureExpired  = errors.New("webhook signature: timestamp outside the tolerance")
)

// Sign returns the X-Herald-Signature value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by secret>".
func Sign(secret string, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + signature(secret, ts, body)
}

func signature(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks header, an X-Herald-Signature value, against body and
// secret: one of its v1 signatures must be the HMAC of "<t>.<body>", and t
// within tolerance of now, before or after (DefaultTolerance when
// tolerance is zero or less), so a captured request cannot be replayed
// later. Elements other than t and v1 are ignored, as Stripe's libraries
// do, so a later scheme can be added beside v1. The comparison takes
// constant time.
func Verify(secret, header string, body []byte, tolerance time.Duration, now time.Time) error {
	if strings.TrimSpace(header) == "" {
		return ErrNoSignature
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrBadSignature
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: t appears twice", ErrBadSignature)
			}
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if ts == "" {
		return fmt.Errorf("%w: no t", ErrBadSignature)
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: no v1 signature", ErrBadSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec <= 0 {
		return fmt.Errorf("%w: t is not a unix time", ErrBadSignature)
	}
	want := []byte(signature(secret, ts, body))
	match := false
	for _, s := range sigs {
		if hmac.Equal(want, []byte(strings.ToLower(s))) {
			match = true
		}
	}
	if !match {
		return ErrSignatureMismatch
	}
	// Checked after the signature: ErrSignatureExpired means the request is
	// authentic but old (a replay, or a clock out of sync).
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %s from now, tolerance %s", ErrSignatureExpired, d.Round(time.Second), tolerance)
	}
	return nil
}
