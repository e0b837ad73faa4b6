package slack

import (
	"errors"
	"net/http"
	"testing"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/sinktest"
)

const (
	testToken   = "xoxb-1111-2222-conformancesecret"
	testHookKey = "hookSECRETc0nformance"
)

// okFalse is a Web API answer: 200 with ok:false and Slack's code.
func okFalse(code string, want sinks.Class) sinktest.Case {
	return sinktest.Case{
		Name: "ok false " + code, Body: `{"ok":false,"error":"` + code + `"}`, Want: want,
		Check: func(t *testing.T, _ sinks.Receipt, err error) {
			var e *Error
			if !errors.As(err, &e) || e.Code != code {
				t.Errorf("err = %v, want an *Error with Code %q", err, code)
			}
		},
	}
}

func TestConformanceBot(t *testing.T) {
	cases := []sinktest.Case{
		{
			Name: "ok", Body: `{"ok":true,"channel":"C0001","ts":"1700000000.000100"}`, Want: sinks.ClassNone,
			Check: func(t *testing.T, r sinks.Receipt, err error) {
				if r.Parent.GetChannelId() != "C0001" || r.Parent.GetMessageId() != "1700000000.000100" {
					t.Errorf("receipt parent = %v, want C0001/1700000000.000100", r.Parent)
				}
			},
		},
		{Name: "ok without ts", Body: `{"ok":true,"channel":"C0001"}`, Want: sinks.ClassRetryable},
		// Slack answers an unknown method with a 404: the API URL is wrong.
		{Name: "404", Status: 404, Body: "404 page not found", Want: sinks.ClassPermanent},
		{Name: "200 html", Header: http.Header{"Content-Type": {"text/html"}}, Body: "<html>proxy login</html>", Want: sinks.ClassRetryable},
		{Name: "500 ok false", Status: 500, Body: `{"ok":false,"error":"internal_error"}`, Want: sinks.ClassRetryable},
		{Name: "429 retry-after 12", Status: 429, Header: http.Header{"Retry-After": {"12"}}, Want: sinks.ClassThrottled, WantWait: 12 * time.Second},
		{Name: "429 retry-after date", Status: 429, Header: http.Header{"Retry-After": {time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}, Want: sinks.ClassThrottled, WantWait: 30 * time.Minute},
		{Name: "ok false ratelimited retry-after", Body: `{"ok":false,"error":"ratelimited"}`, Header: http.Header{"Retry-After": {"7"}}, Want: sinks.ClassThrottled, WantWait: 7 * time.Second},
		okFalse("ratelimited", sinks.ClassThrottled),
		okFalse("channel_not_found", sinks.ClassPermanent),
		okFalse("not_in_channel", sinks.ClassPermanent),
		okFalse("is_archived", sinks.ClassPermanent),
		okFalse("invalid_auth", sinks.ClassPermanent),
		okFalse("not_authed", sinks.ClassPermanent),
		okFalse("account_inactive", sinks.ClassPermanent),
		okFalse("token_revoked", sinks.ClassPermanent),
		okFalse("missing_scope", sinks.ClassPermanent),
		okFalse("msg_too_long", sinks.ClassPermanent),
		okFalse("invalid_blocks", sinks.ClassPermanent),
		okFalse("internal_error", sinks.ClassRetryable),
		okFalse("fatal_error", sinks.ClassRetryable),
		okFalse("service_unavailable", sinks.ClassRetryable),
		okFalse("request_timeout", sinks.ClassRetryable),
		okFalse("a_code_slack_adds_later", sinks.ClassRetryable),
	}
	sinktest.Run(t, sinktest.Harness{
		New: func(t testing.TB, baseURL string) (sinks.Sink, []string) {
			s, err := New("slack", Config{APIURL: baseURL, Token: testToken}, sinks.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			return s, []string{testToken}
		},
		Target: sinks.Target{Channel: "#alerts"},
		Cases:  cases,
	})
}

func TestConformanceBotUpdate(t *testing.T) {
	// With a parent, the first request is chat.update: its failures are
	// classified the same way, except that a gone parent is replaced.
	sinktest.Run(t, sinktest.Harness{
		New: func(t testing.TB, baseURL string) (sinks.Sink, []string) {
			s, err := New("slack", Config{APIURL: baseURL, Token: testToken}, sinks.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			return s, []string{testToken}
		},
		Target: sinks.Target{Channel: "#alerts", Parent: &heraldv1.MessageRef{ChannelId: "C0001", MessageId: "1700000000.000001"}},
		Cases: []sinktest.Case{
			{Name: "404", Status: 404, Body: "404 page not found", Want: sinks.ClassPermanent},
			okFalse("invalid_auth", sinks.ClassPermanent),
			okFalse("ratelimited", sinks.ClassThrottled),
			okFalse("internal_error", sinks.ClassRetryable),
		},
	})
}

func TestConformanceWebhook(t *testing.T) {
	hookErr := func(status int, code string, want sinks.Class) sinktest.Case {
		return sinktest.Case{
			Name: "webhook " + code, Status: status, Body: code, Want: want,
			Header: http.Header{"Content-Type": {"text/html"}},
			Check: func(t *testing.T, _ sinks.Receipt, err error) {
				var e *Error
				if !errors.As(err, &e) || e.Code != code || e.StatusCode != status {
					t.Errorf("err = %v, want an *Error with Code %q and status %d: the body is read", err, code, status)
				}
			},
		}
	}
	sinktest.Run(t, sinktest.Harness{
		New: func(t testing.TB, baseURL string) (sinks.Sink, []string) {
			hook := baseURL + "/services/T0000/B0000/" + testHookKey
			s, err := New("slack", Config{WebhookURL: secret.String(hook)}, sinks.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			return s, []string{hook}
		},
		Target: sinks.Target{Channel: "#alerts"},
		Cases: []sinktest.Case{
			{
				Name: "ok", Body: "ok", Want: sinks.ClassNone,
				Check: func(t *testing.T, r sinks.Receipt, err error) {
					if r.Parent != nil || r.Message != nil {
						t.Errorf("webhook receipt = %+v, want no message references", r)
					}
				},
			},
			hookErr(400, "invalid_payload", sinks.ClassPermanent),
			hookErr(400, "invalid_blocks", sinks.ClassPermanent),
			hookErr(403, "action_prohibited", sinks.ClassPermanent),
			hookErr(403, "invalid_token", sinks.ClassPermanent),
			hookErr(404, "channel_not_found", sinks.ClassPermanent),
			hookErr(404, "no_service", sinks.ClassPermanent),
			{Name: "404", Status: 404, Body: "404 page not found", Want: sinks.ClassPermanent},
			hookErr(410, "channel_is_archived", sinks.ClassPermanent),
			hookErr(500, "rollup_error", sinks.ClassRetryable),
			{Name: "429 retry-after", Status: 429, Header: http.Header{"Retry-After": {"3"}}, Want: sinks.ClassThrottled, WantWait: 3 * time.Second},
		},
	})
}
