package rocketchat

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/sinks"
)

func noRedact(s string) string { return s }

func TestDecodeAnswer(t *testing.T) {
	now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	reset := func(d time.Duration) http.Header {
		return http.Header{"X-Ratelimit-Reset": {strconv.FormatInt(now.Add(d).UnixMilli(), 10)}}
	}
	cases := []struct {
		name     string
		status   int
		header   http.Header
		body     string
		want     sinks.Class
		wantWait time.Duration
		wantText string
	}{
		{"ok", 200, nil, `{"success":true,"message":{"_id":"a","rid":"r"}}`, sinks.ClassNone, 0, ""},
		{"success false", 200, nil, `{"success":false,"error":"unknown-error"}`, sinks.ClassRetryable, 0, "unknown-error"},
		{"success false bare", 200, nil, `{"success":false}`, sinks.ClassRetryable, 0, "HTTP 200"},
		{"success false invalid room", 200, nil, `{"success":false,"error":"Invalid room [error-invalid-room]","errorType":"error-invalid-room"}`, sinks.ClassPermanent, 0, "error-invalid-room"},
		{"success false invalid params", 201, nil, `{"success":false,"errorType":"invalid-params"}`, sinks.ClassPermanent, 0, "invalid-params"},
		{"no success field", 200, nil, `{"message":{}}`, sinks.ClassRetryable, 0, "unreadable"},
		{"not json", 200, nil, `<html>`, sinks.ClassRetryable, 0, "unreadable"},
		{"json array", 200, nil, `[]`, sinks.ClassRetryable, 0, "unreadable"},
		{"400 typed", 400, nil, `{"success":false,"error":"Invalid room [error-invalid-room]","errorType":"error-invalid-room"}`, sinks.ClassPermanent, 0, "error-invalid-room: Invalid room"},
		{"400 bare", 400, nil, `{"success":false}`, sinks.ClassPermanent, 0, "HTTP 400"},
		{"400 error object", 400, nil, `{"success":false,"error":{"code":1}}`, sinks.ClassPermanent, 0, `{"code":1}`},
		{"401 with message string", 401, nil, `{"success":false,"error":"You must be logged in to do this.","status":"error","message":"You must be logged in to do this."}`, sinks.ClassPermanent, 0, "You must be logged in"},
		{"403", 403, nil, `{"success":false,"error":"unauthorized"}`, sinks.ClassPermanent, 0, ""},
		{"404", 404, nil, `Not Found`, sinks.ClassRetryable, 0, ""},
		{"404 json", 404, nil, `{"success":false,"error":"Resource not found"}`, sinks.ClassRetryable, 0, "Resource not found"},
		{"429 reset", 429, reset(42 * time.Second), `{"success":false,"error":"wait [error-too-many-requests]"}`, sinks.ClassThrottled, 42*time.Second + time.Millisecond, ""},
		{"429 reset past", 429, reset(-time.Minute), ``, sinks.ClassThrottled, time.Millisecond, ""},
		{"429 reset far", 429, reset(48 * time.Hour), ``, sinks.ClassThrottled, time.Hour, ""},
		{"429 retry-after", 429, http.Header{"Retry-After": {"7"}}, ``, sinks.ClassThrottled, 7 * time.Second, ""},
		{"429 nothing", 429, nil, ``, sinks.ClassThrottled, defaultThrottle, ""},
		{"429 garbage reset", 429, http.Header{"X-Ratelimit-Reset": {"soon"}}, ``, sinks.ClassThrottled, defaultThrottle, ""},
		{"400 method limiter", 400, nil, `{"success":false,"errorType":"too-many-requests","details":{"timeToReset":1500}}`, sinks.ClassThrottled, 1501 * time.Millisecond, ""},
		{"400 api limiter type", 400, reset(3 * time.Second), `{"success":false,"errorType":"error-too-many-requests"}`, sinks.ClassThrottled, 3*time.Second + time.Millisecond, ""},
		{"408", 408, nil, ``, sinks.ClassRetryable, 0, ""},
		{"500", 500, nil, `{"success":false,"error":"Internal server error"}`, sinks.ClassRetryable, 0, "Internal server error"},
		{"503", 503, nil, `upstream down`, sinks.ClassRetryable, 0, ""},
		{"302", 302, nil, ``, sinks.ClassRetryable, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ar, err := decodeAnswer("chat.sendMessage", c.status, c.header, []byte(c.body), now, noRedact)
			if got := sinks.Classify(err); got != c.want {
				t.Fatalf("class = %s, want %s (err %v)", got, c.want, err)
			}
			if c.want == sinks.ClassNone && (ar == nil || ar.Message.ID != "a") {
				t.Errorf("answer = %+v", ar)
			}
			if c.wantWait != 0 {
				if w, _ := sinks.ThrottleWait(err); w != c.wantWait {
					t.Errorf("wait = %v, want %v", w, c.wantWait)
				}
			}
			if err != nil && !strings.Contains(err.Error(), c.wantText) {
				t.Errorf("error %q does not say %q", err, c.wantText)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "rocketchat chat.sendMessage: HTTP "+strconv.Itoa(c.status)) {
				t.Errorf("error %q does not name the endpoint and status", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	cfg := Config{WebhookURL: "https://chat.example.com/hooks/ID12345/TOK%2Fabc", Token: "tok12345"}
	s := &Sink{secrets: secretsOf(cfg)}
	for _, in := range []string{
		"posting to https://chat.example.com/hooks/ID12345/TOK%2Fabc failed",
		"path /hooks/ID12345/TOK%2Fabc",
		"token TOK%2Fabc alone, and TOK/abc decoded",
		"id ID12345",
		"header X-Auth-Token=tok12345",
	} {
		out := s.redact(in)
		for _, sec := range []string{"TOK%2Fabc", "TOK/abc", "ID12345", "tok12345"} {
			if strings.Contains(out, sec) {
				t.Errorf("redact(%q) = %q still holds %q", in, out, sec)
			}
		}
	}
}

func FuzzDecodeAnswer(f *testing.F) {
	f.Add(200, `{"success":true,"message":{"_id":"x"}}`, "")
	f.Add(200, `{"success":false,"error":"SECRET"}`, "")
	f.Add(400, `{"success":false,"errorType":"too-many-requests","details":{"timeToReset":1e300}}`, "")
	f.Add(429, `{"success":false}`, "99999999999999999")
	f.Add(429, ``, "-5")
	f.Add(401, `{"message":"SECRET","error":["SECRET"]}`, "")
	f.Add(500, "\xff\xfe", "")
	f.Add(200, `{"success":true,"message":{"_id":"a","rid":"r","msg":"x","attachments":[{"text":"y"}],"u":{"_id":"u"}}}`, "")
	f.Add(200, `{"Success":true,"message":5,"message":{"rid":"b"}}`, "")
	f.Add(400, `{"success":false,"error":{"code":1},"errorType":"x","details":{"timeToReset":"9"}}`, "")
	f.Add(200, `{"success":true} x`, "")
	now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	redact := func(s string) string { return strings.ReplaceAll(s, "SECRET", "<secret>") }
	f.Fuzz(func(t *testing.T, status int, body, reset string) {
		h := http.Header{"X-Ratelimit-Reset": {reset}}
		ar, err := decodeAnswer("x", status, h, []byte(body), now, redact)
		if err == nil {
			if ar == nil || ar.Success == nil || !*ar.Success || status < 200 || status > 299 {
				t.Fatalf("success for status %d body %q", status, body)
			}
			return
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("secret in %q", err)
		}
		class := sinks.Classify(err)
		switch {
		case status == 429:
			w, ok := sinks.ThrottleWait(err)
			if class != sinks.ClassThrottled || !ok || w <= 0 || w > maxThrottle {
				t.Fatalf("429: class %s wait %v", class, w)
			}
		case status >= 500:
			if class != sinks.ClassRetryable {
				t.Fatalf("%d: class %s", status, class)
			}
		// A 408, a 425 and a 404 (which comes from in front of
		// Rocket.Chat) may pass later; any other 4xx is final.
		case status >= 400 && status != 404 && status != 408 && status != 425 && class == sinks.ClassRetryable:
			t.Fatalf("%d: class %s", status, class)
		}
	})
}
