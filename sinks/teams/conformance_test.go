package teams

import (
	"net/http"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/sinktest"
)

const confHook = "/workflows/4f1c2e9a7b3d4c5e/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=Zq8pXcK2vN7mR4tLwJ9sB5yHsecret"

func TestConformance(t *testing.T) {
	la := func(code, msg string) string { return `{"error":{"code":"` + code + `","message":"` + msg + `"}}` }
	wantWait := func(min, max time.Duration) func(t *testing.T, _ sinks.Receipt, err error) {
		return func(t *testing.T, _ sinks.Receipt, err error) {
			if w, _ := sinks.ThrottleWait(err); w < min || w > max {
				t.Errorf("wait %v, want %v to %v", w, min, max)
			}
		}
	}
	sinktest.Run(t, sinktest.Harness{
		New: func(t testing.TB, baseURL string) (sinks.Sink, []string) {
			hook := baseURL + confHook
			s, err := New("teams", Config{WebhookURL: secret.String(hook)}, sinks.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			return s, []string{hook, "Zq8pXcK2vN7mR4tLwJ9sB5yHsecret"}
		},
		Target: sinks.Target{Channel: "#alerts", Attempt: 1},
		Cases: []sinktest.Case{
			{Name: "202 accepted", Status: 202, Want: sinks.ClassNone},
			{Name: "200 with a Response action", Status: 200, Body: `{"ok":true}`, Want: sinks.ClassNone},
			{Name: "202 truncated", Respond: sinktest.TruncatedBody, Want: sinks.ClassNone},
			{Name: "400 schema mismatch", Status: 400, Body: la("TriggerInputSchemaMismatch", "The input body for trigger 'manual' of type 'Request' did not match its schema definition."), Want: sinks.ClassPermanent},
			{Name: "401 bad signature", Status: 401, Body: la("DirectApiInvalidAuthorizationSignature", "The provided authorization signature is not valid."), Want: sinks.ClassPermanent},
			{Name: "404 flow deleted", Status: 404, Body: la("WorkflowNotFound", "The workflow could not be found."), Want: sinks.ClassPermanent},
			{Name: "409 flow disabled", Status: 409, Body: la("WorkflowTriggerIsNotEnabled", "The workflow is disabled."), Want: sinks.ClassPermanent},
			{Name: "413", Status: 413, Body: "<html>Request Entity Too Large</html>", Want: sinks.ClassPermanent},
			{Name: "429 without Retry-After", Status: 429, Body: la("WorkflowRequestsThrottled", "Number of requests exceeded the limit."),
				Want: sinks.ClassThrottled, WantWait: DefaultThrottleWait, Check: wantWait(DefaultThrottleWait, DefaultThrottleWait)},
			{Name: "429 Retry-After 120", Status: 429, Header: http.Header{"Retry-After": {"120"}},
				Want: sinks.ClassThrottled, WantWait: 120 * time.Second, Check: wantWait(120*time.Second, 120*time.Second)},
			{Name: "502 from the gateway", Status: 502, Body: la("BadGateway", "x"), Want: sinks.ClassRetryable},
			{Name: "302 not followed", Status: 302, Header: http.Header{"Location": {"http://elsewhere.example/"}}, Want: sinks.ClassRetryable},
		},
	})
}
