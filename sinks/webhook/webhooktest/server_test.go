package webhooktest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/sinktest"
	"github.com/herald-notify/herald/sinks/webhook"
)

const secret = "fake-secret-0123"

var now = time.Unix(1_800_000_000, 0)

func validBody(t *testing.T, attempt int) []byte {
	t.Helper()
	b, err := webhook.NewPayload(sinktest.Notification(), sinks.Target{Channel: "#c", Attempt: attempt}, 0).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends body with the headers a correct sink sets, changed by edit.
func post(t *testing.T, s *Server, method string, body []byte, edit func(h http.Header)) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, s.URL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set(webhook.HeaderIdempotencyKey, sinktest.Notification().Id)
	req.Header.Set(webhook.HeaderAttempt, "1")
	req.Header.Set(webhook.HeaderSignature, webhook.Sign(secret, body, now))
	req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	if edit != nil {
		edit(req.Header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&ans)
	return resp.StatusCode, ans.Error
}

func TestFakeRules(t *testing.T) {
	body := validBody(t, 1)
	for _, tt := range []struct {
		name   string
		method string
		body   []byte
		edit   func(h http.Header)
		opts   Options
		want   int
		reason string
	}{
		{name: "valid", body: body, want: 200},
		{name: "GET", method: http.MethodGet, body: nil, want: 405},
		{name: "form content type", body: body, edit: func(h http.Header) { h.Set("Content-Type", "application/x-www-form-urlencoded") }, want: 415},
		{name: "no content type", body: body, edit: func(h http.Header) { h.Del("Content-Type") }, want: 415},
		{name: "too large", body: body, opts: Options{MaxBodySize: 100}, want: 413},
		{name: "no key", body: body, edit: func(h http.Header) { h.Del(webhook.HeaderIdempotencyKey) }, want: 400, reason: "Idempotency-Key"},
		{name: "key too long", body: body, edit: func(h http.Header) { h.Set(webhook.HeaderIdempotencyKey, strings.Repeat("k", 256)) }, want: 400},
		{name: "key is not the id", body: body, edit: func(h http.Header) { h.Set(webhook.HeaderIdempotencyKey, "other") }, want: 422, reason: "id differs"},
		{name: "no attempt", body: body, edit: func(h http.Header) { h.Del(webhook.HeaderAttempt) }, want: 400},
		{name: "signature ok", body: body, opts: Options{Secret: secret}, want: 200},
		{name: "no signature", body: body, opts: Options{Secret: secret}, edit: func(h http.Header) { h.Del(webhook.HeaderSignature) }, want: 401, reason: "missing"},
		{name: "tampered", body: bytes.Replace(body, []byte("db-1"), []byte("db-2"), 1), opts: Options{Secret: secret},
			edit: func(h http.Header) { h.Set(webhook.HeaderSignature, webhook.Sign(secret, body, now)) }, want: 401, reason: "does not match"},
		{name: "stale", body: body, opts: Options{Secret: secret, Now: func() time.Time { return now.Add(10 * time.Minute) }}, want: 401, reason: "tolerance"},
		{name: "timestamp header differs", body: body, opts: Options{Secret: secret}, edit: func(h http.Header) { h.Set(webhook.HeaderTimestamp, "1") }, want: 401},
		{name: "bearer missing", body: body, opts: Options{BearerToken: "tok"}, want: 401},
		{name: "bearer ok", body: body, opts: Options{BearerToken: "tok"}, edit: func(h http.Header) { h.Set("Authorization", "Bearer tok") }, want: 200},
		{name: "header missing", body: body, opts: Options{Headers: map[string]string{"X-Team": "sre"}}, want: 401},
		{name: "any json", body: []byte(`{"text":"hi"}`), opts: Options{AnyJSON: true}, want: 200},
		{name: "any json, not json", body: []byte(`{"text":`), opts: Options{AnyJSON: true}, want: 400},
		{name: "schema required", body: []byte(`{"text":"hi"}`), want: 422, reason: "missing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.Now == nil {
				tt.opts.Now = func() time.Time { return now }
			}
			s := NewServer(tt.opts)
			defer s.Close()
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			st, reason := post(t, s, method, tt.body, tt.edit)
			if st != tt.want || !strings.Contains(reason, tt.reason) {
				t.Errorf("answer %d %q, want %d %q", st, reason, tt.want, tt.reason)
			}
			if accepted := len(s.Requests()); (st == 200) != (accepted == 1) {
				t.Errorf("accepted %d requests after a %d", accepted, st)
			}
		})
	}
}

func TestFakeDedupAndFailures(t *testing.T) {
	s := NewServer(Options{Now: func() time.Time { return now }, MessageIDs: true})
	defer s.Close()
	s.Queue(Answer{Status: 503, RetryAfter: "3"})
	if st, _ := post(t, s, http.MethodPost, validBody(t, 1), nil); st != 503 {
		t.Errorf("queued answer: %d", st)
	}
	for i := range 2 {
		if st, _ := post(t, s, http.MethodPost, validBody(t, 1), nil); st != 200 {
			t.Errorf("post %d: %d", i, st)
		}
	}
	if len(s.Requests()) != 1 || len(s.Duplicates()) != 1 || len(s.Seen()) != 3 {
		t.Errorf("accepted %d, duplicates %d, seen %d", len(s.Requests()), len(s.Duplicates()), len(s.Seen()))
	}
	s.SetDown(&Answer{Status: 502})
	n := sinktest.Notification()
	n.Id = "other"
	b, _ := webhook.NewPayload(n, sinks.Target{Attempt: 1}, 0).Marshal()
	st, _ := post(t, s, http.MethodPost, b, func(h http.Header) { h.Set(webhook.HeaderIdempotencyKey, "other") })
	if st != 502 {
		t.Errorf("down: %d", st)
	}
	s.SetDown(nil)
	st, _ = post(t, s, http.MethodPost, b, func(h http.Header) { h.Set(webhook.HeaderIdempotencyKey, "other") })
	if st != 200 || len(s.Requests()) != 2 {
		t.Errorf("back up: %d, accepted %d", st, len(s.Requests()))
	}
}
