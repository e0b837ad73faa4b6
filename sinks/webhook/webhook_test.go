package webhook_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/sinktest"
	"github.com/herald-notify/herald/sinks/webhook"
	"github.com/herald-notify/herald/sinks/webhook/webhooktest"
)

const (
	hmacSecret = "hmac-77f0c1d2e3b4a596"
	bearer     = "bearer-0f9e8d7c6b5a"
	urlToken   = "qs-tok-5a4b3c2d1e0f"
)

func newSink(t *testing.T, c webhook.Config) *webhook.Sink {
	t.Helper()
	s, err := webhook.New("hook", c, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var to = sinks.Target{Channel: "#alerts", Route: "db", Attempt: 1}

// TestSignedDelivery: the sink's signature passes the fake's Verify, and
// the fake gets what the docs promise.
func TestSignedDelivery(t *testing.T) {
	fake := webhooktest.NewServer(webhooktest.Options{Secret: hmacSecret, BearerToken: bearer, Headers: map[string]string{"X-Team": "sre"}})
	defer fake.Close()
	s := newSink(t, webhook.Config{
		URL: secret.String(fake.URL + "/hook?token=" + urlToken), HMACSecret: hmacSecret, BearerToken: bearer,
		Headers: map[string]string{"X-Team": "sre"},
	})
	n := sinktest.Notification()
	r, err := s.Send(t.Context(), n, to)
	if err != nil {
		t.Fatalf("Send: %v (rejected: %v)", err, fake.Rejected())
	}
	reqs := fake.Requests()
	if len(reqs) != 1 {
		t.Fatalf("accepted %d requests", len(reqs))
	}
	got := reqs[0]
	if got.Key != n.Id || got.Attempt != 1 || got.Payload.ID != n.Id || got.Payload.Channel != "#alerts" || got.Payload.Route != "db" {
		t.Errorf("request = key %q attempt %d payload %+v", got.Key, got.Attempt, got.Payload)
	}
	if got.Header.Get("Content-Type") != "application/json" || got.Header.Get("User-Agent") != "herald" {
		t.Errorf("headers = %v", got.Header)
	}
	// A receiver in Go checks the signature with Verify.
	if err := webhook.Verify(hmacSecret, got.Header.Get(webhook.HeaderSignature), got.Body, time.Minute, time.Now()); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if r.Message.GetMessageId() != n.Id || r.Parent != nil || r.Message.GetChannelId() != "#alerts" {
		t.Errorf("receipt = %v", r)
	}
}

// TestSignatureRefused: a receiver with another secret refuses the
// request, and the refusal is permanent.
func TestSignatureRefused(t *testing.T) {
	fake := webhooktest.NewServer(webhooktest.Options{Secret: "another-secret"})
	defer fake.Close()
	s := newSink(t, webhook.Config{URL: secret.String(fake.URL), HMACSecret: hmacSecret})
	_, err := s.Send(t.Context(), sinktest.Notification(), to)
	if sinks.Classify(err) != sinks.ClassPermanent {
		t.Errorf("err = %v, want permanent", err)
	}
	if rej := fake.Rejected(); len(rej) != 1 || rej[0].Status != 401 || !strings.Contains(rej[0].Reason, "does not match") {
		t.Errorf("rejected = %v", rej)
	}
	sinktest.AssertNoSecret(t, err, []string{hmacSecret})
}

// TestIdempotencyKeyStable: every attempt of one notification carries
// the same key and its own attempt number; the fake stores it once.
func TestIdempotencyKeyStable(t *testing.T) {
	fake := webhooktest.NewServer(webhooktest.Options{Secret: hmacSecret, MessageIDs: true})
	defer fake.Close()
	fake.Queue(
		webhooktest.Answer{Status: 503},
		webhooktest.Answer{Status: 429, RetryAfter: "1"},
	)
	s := newSink(t, webhook.Config{URL: secret.String(fake.URL), HMACSecret: hmacSecret})
	n := sinktest.Notification()
	var rcpt sinks.Receipt
	var err error
	for attempt := 1; attempt <= 4; attempt++ {
		tgt := to
		tgt.Attempt = attempt
		rcpt, err = s.Send(t.Context(), n, tgt)
		switch attempt {
		case 1:
			if sinks.Classify(err) != sinks.ClassRetryable {
				t.Fatalf("attempt 1: %v", err)
			}
		case 2:
			if w, ok := sinks.ThrottleWait(err); !ok || w != time.Second {
				t.Fatalf("attempt 2: %v", err)
			}
		default:
			if err != nil {
				t.Fatalf("attempt %d: %v", attempt, err)
			}
		}
	}
	seen := fake.Seen()
	if len(seen) != 4 {
		t.Fatalf("seen %d requests", len(seen))
	}
	for i, r := range seen {
		if r.Key != n.Id || r.Attempt != i+1 || r.Header.Get(webhook.HeaderAttempt) != string(rune('1'+i)) {
			t.Errorf("request %d: key %q attempt %d", i, r.Key, r.Attempt)
		}
	}
	if len(fake.Requests()) != 1 || len(fake.Duplicates()) != 1 {
		t.Errorf("accepted %d, duplicates %d", len(fake.Requests()), len(fake.Duplicates()))
	}
	// The duplicate was answered like the first delivery.
	if rcpt.Message.GetMessageId() != "m1" {
		t.Errorf("receipt of the duplicate = %v", rcpt)
	}

	// Another notification has another key.
	n2 := sinktest.Notification()
	n2.Id = "01JOTHER"
	if _, err := s.Send(t.Context(), n2, to); err != nil {
		t.Fatal(err)
	}
	if reqs := fake.Requests(); len(reqs) != 2 || reqs[1].Key != "01JOTHER" {
		t.Errorf("requests = %v", reqs)
	}
}

// TestTimeoutThenRetry: the receiver takes the first attempt but answers
// after the sink gave up; the retries carry the same key, so the receiver
// keeps one copy (answering 409 while the first is still in progress).
func TestTimeoutThenRetry(t *testing.T) {
	fake := webhooktest.NewServer(webhooktest.Options{MessageIDs: true})
	defer fake.Close()
	fake.Queue(webhooktest.Answer{Delay: 5 * time.Second})
	s := newSink(t, webhook.Config{URL: secret.String(fake.URL), Timeout: 100 * time.Millisecond})
	n := sinktest.Notification()
	_, err := s.Send(t.Context(), n, to)
	if sinks.Classify(err) != sinks.ClassRetryable || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("attempt 1: %v", err)
	}
	var rcpt sinks.Receipt
	for attempt := 2; ; attempt++ {
		if attempt > 50 {
			t.Fatal("no success after 50 attempts")
		}
		tgt := to
		tgt.Attempt = attempt
		rcpt, err = s.Send(t.Context(), n, tgt)
		if err == nil {
			break
		}
		if sinks.Classify(err) != sinks.ClassRetryable {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(fake.Requests()) != 1 || len(fake.Duplicates()) == 0 || rcpt.Message.GetMessageId() != "m1" {
		t.Errorf("accepted %d, duplicates %d, receipt %v", len(fake.Requests()), len(fake.Duplicates()), rcpt)
	}
}

// TestParentAndMessageID: the receiver's message_id becomes the group's
// message, sent back as parent with the group's next notification.
func TestParentAndMessageID(t *testing.T) {
	fake := webhooktest.NewServer(webhooktest.Options{MessageIDs: true})
	defer fake.Close()
	s := newSink(t, webhook.Config{URL: secret.String(fake.URL)})
	first, err := s.Send(t.Context(), sinktest.Notification(), to)
	if err != nil {
		t.Fatal(err)
	}
	next := sinktest.Notification()
	next.Id = "01JRESOLVED"
	next.Status = heraldv1.Status_STATUS_RESOLVED
	tgt := to
	tgt.Parent = first.Parent
	r, err := s.Send(t.Context(), next, tgt)
	if err != nil {
		t.Fatal(err)
	}
	reqs := fake.Requests()
	if p := reqs[1].Payload.Parent; p == nil || p.MessageID != "m1" || p.ChannelID != "#alerts" {
		t.Errorf("parent = %+v", p)
	}
	if r.Parent.GetMessageId() != "m1" || r.Message.GetMessageId() != "m2" {
		t.Errorf("receipt = %v", r)
	}
}

func TestBasicAuth(t *testing.T) {
	fake := webhooktest.NewServer(webhooktest.Options{Username: "herald", Password: "pw-s3cret"})
	defer fake.Close()
	s := newSink(t, webhook.Config{URL: secret.String(fake.URL), BasicAuth: &webhook.BasicAuth{Username: "herald", Password: "pw-s3cret"}})
	if _, err := s.Send(t.Context(), sinktest.Notification(), to); err != nil {
		t.Fatal(err)
	}
	s = newSink(t, webhook.Config{URL: secret.String(fake.URL), BasicAuth: &webhook.BasicAuth{Username: "herald", Password: "wrong-pw"}})
	_, err := s.Send(t.Context(), sinktest.Notification(), to)
	if sinks.Classify(err) != sinks.ClassPermanent {
		t.Errorf("wrong password: %v", err)
	}
	sinktest.AssertNoSecret(t, err, []string{"wrong-pw", "pw-s3cret"})
}

// TestTemplateBody: a body template's JSON reaches a receiver that takes
// any JSON, with the same headers and signature.
func TestTemplateBody(t *testing.T) {
	fake := webhooktest.NewServer(webhooktest.Options{AnyJSON: true, Secret: hmacSecret})
	defer fake.Close()
	path := filepath.Join(t.TempDir(), "body.tmpl")
	os.WriteFile(path, []byte(`{{define "body"}}{"summary": "{{.Emoji}} {{.Title}}", "labels": {{template "pairs" .CommonLabels}}, "attempt": {{.Attempt}}}{{end}}`), 0o600)
	s := newSink(t, webhook.Config{URL: secret.String(fake.URL), HMACSecret: hmacSecret, Template: path})
	tgt := to
	tgt.Attempt = 3
	if _, err := s.Send(t.Context(), sinktest.Notification(), tgt); err != nil {
		t.Fatalf("%v %v", err, fake.Rejected())
	}
	got := fake.Requests()[0]
	if want := `{"summary": "🔴 DiskFull on db-1", "labels": {"instance":"db-1"}, "attempt": 3}`; string(got.Body) != want {
		t.Errorf("body = %s, want %s", got.Body, want)
	}
	if got.Key != sinktest.Notification().Id || got.Attempt != 3 {
		t.Errorf("key %q attempt %d", got.Key, got.Attempt)
	}
}

// TestNoSecretInErrors sends to answers and failures that tend to carry
// the URL or credentials, with every secret configured.
func TestNoSecretInErrors(t *testing.T) {
	fake := webhooktest.NewServer(webhooktest.Options{BearerToken: "other"})
	defer fake.Close()
	secrets := []string{fake.URL + "/hook/" + urlToken + "?token=" + urlToken, urlToken, bearer, hmacSecret, "hdr-s3cret-value"}
	for _, base := range []string{fake.URL, "http://127.0.0.1:1", "http://no-such-host.invalid"} {
		u := base + "/hook/" + urlToken + "?token=" + urlToken
		s := newSink(t, webhook.Config{
			URL: secret.String(u), BearerToken: bearer, HMACSecret: hmacSecret,
			Headers: map[string]string{"X-Key": "hdr-s3cret-value"}, Timeout: 2 * time.Second,
		})
		_, err := s.Send(t.Context(), sinktest.Notification(), to)
		if err == nil {
			t.Fatalf("%s: no error", base)
		}
		sinktest.AssertNoSecret(t, err, append(secrets, u))
		if strings.Contains(err.Error(), "/hook/") {
			t.Errorf("error holds the URL's path: %v", err)
		}
	}
}

// TestEchoedCredentialsRedacted: a server that echoes the request's
// headers in its error shows neither the bearer token nor the basic
// credentials, even base64-encoded as sent.
func TestEchoedCredentialsRedacted(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		fmt.Fprintf(w, "refused %s auth=%q", r.URL, r.Header.Get("Authorization"))
	}))
	defer echo.Close()
	basic := base64.StdEncoding.EncodeToString([]byte("herald:pw-s3cret-basic"))
	for _, c := range []webhook.Config{
		{URL: secret.String(echo.URL + "/h?token=" + urlToken), BearerToken: bearer},
		{URL: secret.String(echo.URL + "/h?token=" + urlToken), BasicAuth: &webhook.BasicAuth{Username: "herald", Password: "pw-s3cret-basic"}},
	} {
		_, err := newSink(t, c).Send(t.Context(), sinktest.Notification(), to)
		if sinks.Classify(err) != sinks.ClassPermanent || !strings.Contains(err.Error(), "<secret>") {
			t.Errorf("err = %v", err)
		}
		sinktest.AssertNoSecret(t, err, []string{bearer, urlToken, "pw-s3cret-basic", basic})
	}
}

// TestFakeRefusesWhatHeraldMustNotSend checks the fake's own strictness
// on requests the sink would never make.
func TestFakeRefusesWhatHeraldMustNotSend(t *testing.T) {
	fake := webhooktest.NewServer(webhooktest.Options{})
	defer fake.Close()
	s := newSink(t, webhook.Config{URL: secret.String(fake.URL)})
	if _, err := s.Send(t.Context(), sinktest.Notification(), to); err != nil {
		t.Fatal(err)
	}
	body := fake.Requests()[0].Body
	for _, tt := range []struct {
		name string
		body []byte
		want int
	}{
		{"unknown field", bytes.Replace(body, []byte(`"version"`), []byte(`"extra":1,"version"`), 1), 422},
		{"missing field", bytes.Replace(body, []byte(`"channel":"#alerts",`), nil, 1), 422},
		{"null list", bytes.Replace(body, []byte(`"alerts":[`), []byte(`"alerts":null,"x":[`), 1), 422},
		{"wrong version", bytes.Replace(body, []byte(`"version":"1"`), []byte(`"version":"2"`), 1), 422},
		{"not json", []byte(`{"version":`), 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := postRaw(t, fake.URL, tt.body, map[string]string{
				"Content-Type": "application/json", webhook.HeaderIdempotencyKey: sinktest.Notification().Id, webhook.HeaderAttempt: "1",
			})
			if st != tt.want {
				t.Errorf("status %d, want %d (body %s)", st, tt.want, tt.body)
			}
		})
	}
}

func postRaw(t *testing.T, url string, body []byte, h map[string]string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
