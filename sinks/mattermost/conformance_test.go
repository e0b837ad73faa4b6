package mattermost

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/sinktest"
)

const (
	confToken   = "tok-9f3a2c71e5b04d68-secret"
	confHook    = "/hooks/6543a1b2c3d4e5f6secretkey"
	confChannel = "abcdefghijkmnopqrstuvwxyz1"
)

// mmCases are Mattermost's own answers, common to both modes.
func mmCases() []sinktest.Case {
	return []sinktest.Case{
		{Name: "404 app error", Status: 404, Body: `{"id":"app.channel.get.existing.app_error","message":"Unable to find the existing channel.","status_code":404}`, Want: sinks.ClassPermanent},
		{Name: "404 from a proxy", Status: 404, Body: "404 page not found", Want: sinks.ClassRetryable},
		{Name: "400 message too long", Status: 400, Body: `{"id":"model.post.is_valid.msg.app_error","message":"Invalid Message.","status_code":400}`, Want: sinks.ClassPermanent},
		{Name: "413", Status: 413, Body: `{"id":"api.context.request_body_too_large.app_error","message":"too large","status_code":413}`, Want: sinks.ClassPermanent},
		{Name: "401 session expired", Status: 401, Body: `{"id":"api.context.session_expired.app_error","message":"Invalid or expired session, please login again.","status_code":401}`, Want: sinks.ClassPermanent},
		{
			Name: "429 limiter", Status: 429, Body: "limit exceeded\n",
			Header: http.Header{"X-Ratelimit-Limit": {"10"}, "X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"42"}, "Retry-After": {"42"}},
			Want:   sinks.ClassThrottled, WantWait: 41 * time.Second,
			Check: func(t *testing.T, _ sinks.Receipt, err error) {
				if w, _ := sinks.ThrottleWait(err); w > 43*time.Second {
					t.Errorf("wait %v, want about 42s", w)
				}
			},
		},
		{
			Name: "429 reset only", Status: 429, Header: http.Header{"X-Ratelimit-Reset": {"7"}},
			Want: sinks.ClassThrottled, WantWait: 6 * time.Second,
		},
		{Name: "500 dedup pending", Status: 500, Body: `{"id":"api.post.deduplicate_create_post.pending","message":"Post rejected: a post with the same pending id is being created.","status_code":500}`, Want: sinks.ClassRetryable},
		{Name: "503 html", Status: 503, Body: "<html>maintenance</html>", Want: sinks.ClassRetryable},
	}
}

func TestConformanceREST(t *testing.T) {
	cases := append(mmCases(),
		sinktest.Case{
			Name: "201 created", Status: 201, Want: sinks.ClassNone,
			Body: `{"id":"post1post1post1post1post1p","channel_id":"` + confChannel + `","message":"x"}`,
			Check: func(t *testing.T, r sinks.Receipt, err error) {
				if r.Parent.GetChannelId() != confChannel || r.Message.GetMessageId() != "post1post1post1post1post1p" {
					t.Errorf("receipt = %v", r)
				}
			},
		},
		sinktest.Case{Name: "201 unreadable", Status: 201, Body: `<html>`, Want: sinks.ClassRetryable},
		sinktest.Case{Name: "201 no post id", Status: 201, Body: `{}`, Want: sinks.ClassRetryable},
		sinktest.Case{Name: "201 truncated", Respond: sinktest.TruncatedBody, Want: sinks.ClassRetryable},
		sinktest.Case{Name: "403 not in channel", Status: 403, Body: `{"id":"api.context.permissions.app_error","message":"You do not have the appropriate permissions.","status_code":403}`, Want: sinks.ClassPermanent},
	)
	sinktest.Run(t, sinktest.Harness{
		New: func(t testing.TB, baseURL string) (sinks.Sink, []string) {
			s, err := New("mm", Config{BaseURL: baseURL, Token: confToken}, sinks.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			return s, []string{confToken}
		},
		// A channel id: no lookup before the request each case answers.
		Target: sinks.Target{Channel: confChannel, Attempt: 1},
		Cases:  cases,
	})
}

func TestConformanceRESTWithLookups(t *testing.T) {
	// A channel name needs a lookup first, and a retry looks for its post
	// among the channel's posts; the cases answer the create that follows.
	sinktest.Run(t, sinktest.Harness{
		New: func(t testing.TB, baseURL string) (sinks.Sink, []string) {
			s, err := New("mm", Config{BaseURL: baseURL + "/chat/", Token: confToken, Team: "ops"}, sinks.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			return s, []string{confToken}
		},
		Target: sinks.Target{Channel: "~alerts", Attempt: 3},
		Cases:  mmCases(),
		Passthrough: func(r *http.Request) bool {
			return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/chat/api/v4/")
		},
		PassthroughHandler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+confToken {
				w.WriteHeader(401)
				return
			}
			switch r.URL.Path {
			case "/chat/api/v4/teams/name/ops/channels/name/alerts":
				w.Write([]byte(`{"id":"` + confChannel + `","name":"alerts"}`))
			case "/chat/api/v4/channels/" + confChannel + "/posts":
				w.Write([]byte(`{"order":[],"posts":{}}`))
			default:
				w.WriteHeader(404)
			}
		}),
	})
}

func TestConformanceWebhook(t *testing.T) {
	cases := append(mmCases(),
		sinktest.Case{Name: "200 ok", Status: 200, Body: "ok", Want: sinks.ClassNone},
		sinktest.Case{Name: "400 invalid hook", Status: 400, Body: `{"id":"web.incoming_webhook.invalid.app_error","message":"Invalid webhook.","status_code":400}`, Want: sinks.ClassPermanent},
		sinktest.Case{Name: "403 channel locked", Status: 403, Body: `{"id":"web.incoming_webhook.channel_locked.app_error","message":"This webhook is not permitted to post to the requested channel.","status_code":403}`, Want: sinks.ClassPermanent},
		sinktest.Case{Name: "501 hooks disabled", Status: 501, Body: `{"id":"web.incoming_webhook.disabled.app_error","message":"Incoming webhooks have been disabled by the system admin.","status_code":501}`, Want: sinks.ClassPermanent},
	)
	sinktest.Run(t, sinktest.Harness{
		New: func(t testing.TB, baseURL string) (sinks.Sink, []string) {
			hook := baseURL + confHook
			s, err := New("hook", Config{WebhookURL: secret.String(hook), WebhookOverrideChannel: true}, sinks.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			return s, []string{hook}
		},
		Target: sinks.Target{Channel: "alerts"},
		Cases:  cases,
	})
}
