package webhook

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/sinktest"
)

const (
	confPath   = "/hooks/T0KENINPATH9f3a2c71"
	confQuery  = "?token=qs-7d1e4b9a0c2f"
	confBearer = "bearer-9f3a2c71e5b04d68"
	confHMAC   = "hmac-1c9e77a2b4d05f3e"
	confPass   = "pass-3b8f0e6a1d27c4"
	confHeader = "hdr-key-0a1b2c3d4e5f"
)

// webhookCases are the answers a generic receiver may give.
func webhookCases() []sinktest.Case {
	wantWait := func(d time.Duration) func(*testing.T, sinks.Receipt, error) {
		return func(t *testing.T, _ sinks.Receipt, err error) {
			if w, _ := sinks.ThrottleWait(err); w < d-2*time.Second || w > d+time.Second {
				t.Errorf("wait = %v, want about %v", w, d)
			}
		}
	}
	return []sinktest.Case{
		{Name: "200", Status: 200, Want: sinks.ClassNone, Check: func(t *testing.T, r sinks.Receipt, _ error) {
			// No message id in the answer: the key names the message,
			// and there is no parent for the group to stick to.
			if r.Message.GetMessageId() != sinktest.Notification().Id || r.Parent != nil {
				t.Errorf("receipt = %v", r)
			}
		}},
		{Name: "201 message id", Status: 201, Body: `{"message_id":"TICKET-42"}`, Want: sinks.ClassNone, Check: func(t *testing.T, r sinks.Receipt, _ error) {
			if r.Message.GetMessageId() != "TICKET-42" {
				t.Errorf("receipt = %v", r)
			}
		}},
		{Name: "200 numeric message id", Status: 200, Body: `{"message_id":12345678901234567890}`, Want: sinks.ClassNone, Check: func(t *testing.T, r sinks.Receipt, _ error) {
			if r.Message.GetMessageId() != "12345678901234567890" {
				t.Errorf("receipt = %v", r)
			}
		}},
		{Name: "202 html", Status: 202, Body: "<html>accepted</html>", Want: sinks.ClassNone},
		{Name: "204", Status: 204, Want: sinks.ClassNone},
		{Name: "200 truncated", Respond: sinktest.TruncatedBody, Want: sinks.ClassNone},
		{Name: "400", Status: 400, Body: `{"error":"missing field"}`, Want: sinks.ClassPermanent},
		{Name: "404", Status: 404, Want: sinks.ClassPermanent},
		{Name: "409 in progress", Status: 409, Body: `{"error":"a request with this key is being processed"}`, Want: sinks.ClassRetryable},
		{Name: "413", Status: 413, Want: sinks.ClassPermanent},
		{Name: "422", Status: 422, Want: sinks.ClassPermanent},
		{Name: "425", Status: 425, Want: sinks.ClassRetryable},
		{Name: "429 seconds", Status: 429, Header: http.Header{"Retry-After": {"42"}}, Want: sinks.ClassThrottled, Check: wantWait(42 * time.Second)},
		{Name: "429 http date", Status: 429, Header: http.Header{"Retry-After": {time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)}},
			Want: sinks.ClassThrottled, Check: wantWait(90 * time.Second)},
		{Name: "429 bare waits the default", Status: 429, Want: sinks.ClassThrottled, Check: wantWait(defaultThrottle)},
		{Name: "429 huge retry-after capped", Status: 429, Header: http.Header{"Retry-After": {"86400"}}, Want: sinks.ClassThrottled, Check: wantWait(maxThrottle)},
		{Name: "503 retry-after", Status: 503, Header: http.Header{"Retry-After": {"7"}}, Want: sinks.ClassThrottled, Check: wantWait(7 * time.Second)},
		{Name: "503 unreadable retry-after", Status: 503, Header: http.Header{"Retry-After": {"soon"}}, Want: sinks.ClassRetryable},
		{Name: "301 not followed", Respond: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.example"+r.URL.RequestURI(), http.StatusMovedPermanently)
		}, Want: sinks.ClassPermanent, Check: func(t *testing.T, _ sinks.Receipt, err error) {
			if !errors.Is(err, ErrRedirect) || !strings.Contains(err.Error(), "https://elsewhere.example") {
				t.Errorf("err = %v", err)
			}
		}},
		{Name: "307 not followed", Respond: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.RequestURI()+"&again=1", http.StatusTemporaryRedirect)
		}, Want: sinks.ClassPermanent},
	}
}

// TestConformance runs the suite with every secret configured, and a URL
// whose path and query carry a credential.
func TestConformance(t *testing.T) {
	for _, auth := range []string{"bearer", "basic"} {
		t.Run(auth, func(t *testing.T) {
			sinktest.Run(t, sinktest.Harness{
				New: func(t testing.TB, baseURL string) (sinks.Sink, []string) {
					u := baseURL + confPath + confQuery
					c := Config{URL: secret.String(u), HMACSecret: confHMAC, Headers: map[string]string{"X-Api-Key": confHeader}}
					secrets := []string{u, confPath, "qs-7d1e4b9a0c2f", confHMAC, confHeader}
					if auth == "bearer" {
						c.BearerToken = confBearer
						secrets = append(secrets, confBearer)
					} else {
						c.BasicAuth = &BasicAuth{Username: "herald", Password: confPass}
						secrets = append(secrets, confPass)
					}
					s, err := New("hook", c, sinks.Deps{})
					if err != nil {
						t.Fatal(err)
					}
					return s, secrets
				},
				Target: sinks.Target{Channel: "#alerts", Route: "default", Attempt: 1},
				Cases:  webhookCases(),
			})
		})
	}
}
