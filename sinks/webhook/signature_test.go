package webhook

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	const secret = "whsec-5f2b8c1e"
	body := []byte(`{"version":"1","id":"01J"}`)
	now := time.Unix(1_800_000_000, 0)
	h := Sign(secret, body, now)

	// Stripe's scheme: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">; the
	// value was computed independently with
	//   printf '%s' '1800000000.{"version":"1","id":"01J"}' | openssl dgst -sha256 -hmac whsec-5f2b8c1e
	const want = "t=1800000000,v1=df018980af937de9c748766d064d815fa02ad6942335a2d3e91e5096c3e4cab5"
	if h != want {
		t.Fatalf("header = %q, want %q", h, want)
	}

	for _, tt := range []struct {
		name   string
		secret string
		header string
		body   []byte
		tol    time.Duration
		now    time.Time
		want   error
	}{
		{"ok", secret, h, body, time.Minute, now, nil},
		{"ok within tolerance, late", secret, h, body, time.Minute, now.Add(59 * time.Second), nil},
		{"ok within tolerance, clock behind", secret, h, body, time.Minute, now.Add(-59 * time.Second), nil},
		{"default tolerance", secret, h, body, 0, now.Add(4 * time.Minute), nil},
		{"replayed later", secret, h, body, time.Minute, now.Add(61 * time.Second), ErrSignatureExpired},
		{"replayed after default tolerance", secret, h, body, 0, now.Add(6 * time.Minute), ErrSignatureExpired},
		{"from the future", secret, h, body, time.Minute, now.Add(-2 * time.Minute), ErrSignatureExpired},
		{"tampered body", secret, h, []byte(`{"version":"1","id":"01K"}`), time.Minute, now, ErrSignatureMismatch},
		{"body with a byte more", secret, h, append(append([]byte{}, body...), ' '), time.Minute, now, ErrSignatureMismatch},
		{"wrong secret", "other", h, body, time.Minute, now, ErrSignatureMismatch},
		{"timestamp moved", secret, strings.Replace(h, "t=1800000000", "t=1800000060", 1), body, time.Minute, now.Add(time.Minute), ErrSignatureMismatch},
		{"upper-case hex", secret, "t=1800000000,v1=" + strings.ToUpper(strings.TrimPrefix(h, "t=1800000000,v1=")), body, time.Minute, now, nil},
		{"rotation: second v1 matches", secret, "t=1800000000,v1=00ff," + strings.TrimPrefix(h, "t=1800000000,"), body, time.Minute, now, nil},
		{"other scheme ignored", secret, h + ",v0=abc", body, time.Minute, now, nil},
		{"only another scheme", secret, "t=1800000000,v0=abc", body, time.Minute, now, ErrBadSignature},
		{"empty", secret, "", body, time.Minute, now, ErrNoSignature},
		{"no t", secret, strings.TrimPrefix(h, "t=1800000000,"), body, time.Minute, now, ErrBadSignature},
		{"two t", secret, "t=1," + h, body, time.Minute, now, ErrBadSignature},
		{"garbage", secret, "sha256=deadbeef", body, time.Minute, now, ErrBadSignature},
		{"t not a number", secret, "t=abc,v1=00", body, time.Minute, now, ErrBadSignature},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, tt.header, tt.body, tt.tol, tt.now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), tt.secret) {
				t.Errorf("error reveals the secret: %v", err)
			}
		})
	}
}
