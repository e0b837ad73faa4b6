package rocketchat

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/sinktest"
)

const (
	confToken = "tok-3f9a2c71e5b04d68-secret"
	confHook  = "/hooks/6543a1b2c3d4e5f6/Zq8pXcK2vN7mR4tLwJ9sB5yHsecret"
)

// rcCases are Rocket.Chat's own answers, common to both modes.
func rcCases() []sinktest.Case {
	resetIn := func(d time.Duration) http.Header {
		return http.Header{
			"X-Ratelimit-Limit":     {"10"},
			"X-Ratelimit-Remaining": {"0"},
			"X-Ratelimit-Reset":     {strconv.FormatInt(time.Now().Add(d).UnixMilli(), 10)},
		}
	}
	return []sinktest.Case{
		{Name: "200 success false", Status: 200, Body: `{"success":false,"error":"unknown-error"}`, Want: sinks.ClassRetryable},
		{Name: "200 success false bare", Status: 200, Body: `{"success":false}`, Want: sinks.ClassRetryable},
		{Name: "200 success false invalid room", Status: 200, Body: `{"success":false,"errorType":"error-invalid-room"}`, Want: sinks.ClassPermanent},
		{Name: "404 from a proxy", Status: 404, Body: "404 page not found", Want: sinks.ClassRetryable},
		{Name: "200 no success", Status: 200, Body: `{}`, Want: sinks.ClassRetryable},
		{Name: "200 html", Status: 200, Body: `<!DOCTYPE html><html></html>`, Want: sinks.ClassRetryable},
		{Name: "400 invalid params", Status: 400, Body: `{"success":false,"error":"must NOT have additional properties [invalid-params]","errorType":"invalid-params"}`, Want: sinks.ClassPermanent},
		{Name: "400 size", Status: 400, Body: `{"success":false,"error":"error-message-size-exceeded"}`, Want: sinks.ClassPermanent},
		{
			Name: "429 rate limited", Status: 429, Header: resetIn(42 * time.Second),
			Body: `{"success":false,"error":"Error, too many requests. Please slow down. You must wait 42 seconds before trying this endpoint again. [error-too-many-requests]"}`,
			Want: sinks.ClassThrottled, WantWait: 40 * time.Second,
			Check: func(t *testing.T, _ sinks.Receipt, err error) {
				if w, _ := sinks.ThrottleWait(err); w > 43*time.Second {
					t.Errorf("wait %v, want about 42s", w)
				}
			},
		},
		{
			Name: "400 method rate limit", Status: 400,
			Body: `{"success":false,"error":"Error, too many requests. [too-many-requests]","errorType":"too-many-requests","details":{"timeToReset":5000}}`,
			Want: sinks.ClassThrottled, WantWait: 5 * time.Second,
		},
		{Name: "200 truncated", Respond: sinktest.TruncatedBody, Want: sinks.ClassRetryable},
		{Name: "500 meteor", Status: 500, Body: `{"success":false,"error":"Internal server error"}`, Want: sinks.ClassRetryable},
	}
}

func TestConformanceREST(t *testing.T) {
	cases := append(rcCases(), sinktest.Case{
		Name: "200 sent", Status: 200, Want: sinks.ClassNone,
		Body: `{"success":true,"message":{"_id":"m1","rid":"GENERAL","msg":"x"}}`,
		Check: func(t *testing.T, r sinks.Receipt, err error) {
			if r.Parent.GetChannelId() != "GENERAL" || r.Message.GetMessageId() != "m1" {
				t.Errorf("receipt = %v", r)
			}
		},
	})
	sinktest.Run(t, sinktest.Harness{
		New: func(t testing.TB, baseURL string) (sinks.Sink, []string) {
			s, err := New("rc", Config{URL: baseURL, UserID: "bot", Token: confToken}, sinks.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			return s, []string{confToken}
		},
		// A room id: no lookup before the request each case answers.
		Target: sinks.Target{Channel: "GENERAL", Attempt: 1},
		Cases:  cases,
	})
}

func TestConformanceRESTWithLookup(t *testing.T) {
	// "#name" needs rooms.info first; the cases answer what follows.
	sinktest.Run(t, sinktest.Harness{
		New: func(t testing.TB, baseURL string) (sinks.Sink, []string) {
			s, err := New("rc", Config{URL: baseURL + "/chat/", UserID: "bot", Token: confToken}, sinks.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			return s, []string{confToken}
		},
		Target:     sinks.Target{Channel: "#alerts", Attempt: 3},
		SkipCommon: false,
		Cases:      rcCases(),
		Passthrough: func(r *http.Request) bool {
			return strings.HasSuffix(r.URL.Path, "/chat/api/v1/rooms.info")
		},
		PassthroughHandler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("roomName") != "alerts" || r.Header.Get("X-Auth-Token") != confToken {
				http.Error(w, `{"success":false}`, http.StatusBadRequest)
				return
			}
			w.Write([]byte(`{"success":true,"room":{"_id":"ROOM1","name":"alerts","t":"c"}}`))
		}),
	})
}

func TestConformanceWebhook(t *testing.T) {
	cases := append(rcCases(), sinktest.Case{Name: "200 posted", Status: 200, Body: `{"success":true}`, Want: sinks.ClassNone})
	sinktest.Run(t, sinktest.Harness{
		New: func(t testing.TB, baseURL string) (sinks.Sink, []string) {
			hook := baseURL + confHook
			s, err := New("hook", Config{WebhookURL: secret.String(hook)}, sinks.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			return s, []string{hook}
		},
		Target: sinks.Target{Channel: "#alerts"},
		Cases:  cases,
	})
}
