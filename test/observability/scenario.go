// Package observability holds the end-to-end checks of what herald tells
// SREs about itself: the trace of one notification from the webhook to the
// chat servers, and the /metrics counters after a mixed run. Its exported
// scenario (StartFailover) is shared with the real-Jaeger test in
// test/jaeger, so that both look at the same trace.
package observability

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app/apptest"
	"github.com/herald-notify/herald/internal/shim"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
	"github.com/herald-notify/herald/sinks/slack/slackfake"
)

// Names the failover scenario configures.
const (
	// Route is the route the scenario's notification takes.
	Route = "critical"
	// Channel is the channel both sinks post to.
	Channel = "#alerts-critical"
	// PrimarySink is the Rocket.Chat (REST) sink, which answers 503.
	PrimarySink = "rocketchat"
	// FallbackSink is the Slack (bot) sink, which takes the notification.
	FallbackSink = "slack"
	// GroupKey is the Alertmanager group key of the scenario's webhook.
	GroupKey = `{}/{severity="critical"}:{alertname="DiskFull", instance="db-1"}`
)

// Secrets the scenario's herald holds; none may reach a span, a log line
// meant for traces, or a metric label.
const (
	APIToken        = "am-bearer-S3cret-7f3a9c"
	RocketChatToken = "rc-pat-S3cret-91b2e4"
	RocketChatUser  = "heraldBotUser0001"
	SlackToken      = "xoxb-slack-S3cret-5d8e1f"
)

// Failover is a running herald whose only useful route sends to a Rocket.Chat
// sink that is down (every request answered 503) and then to Slack, with no
// quick retries, so one notification fails over exactly once.
type Failover struct {
	Herald     *apptest.Herald
	RocketChat *rocketchattest.Server
	Slack      *slackfake.Server
}

// Secrets lists every credential the scenario configured.
func (f *Failover) Secrets() []string {
	return []string{APIToken, RocketChatToken, SlackToken}
}

const failoverConfig = `
auth:
  clients: [{name: alertmanager, token: %[1]s}]
dispatch:
  quick_retries: 0
sinks:
  - name: %[2]s
    rocketchat: {mode: rest, url: %[3]q, user_id: %[4]s, token: %[5]s, channel: %[6]q}
  - name: %[7]s
    slack: {mode: bot, api_url: %[8]q, token: %[9]s, channel: %[6]q, pace: -1s}
routes:
  - name: %[10]s
    matchers: ['severity="critical"']
    channels: {%[2]s: %[6]q, %[7]s: %[6]q}
    chain: [%[2]s, %[7]s]
  - name: default
    chain: [%[2]s, %[7]s]
`

// StartFailover starts the chat fakes and a herald wired to them, with opts
// (a logger, say). Install any tracer provider (telemetrytest.Install,
// telemetry.Setup) before: herald takes the global one when it starts.
func StartFailover(t testing.TB, opts apptest.Options) *Failover {
	t.Helper()
	rc := rocketchattest.NewServer(
		rocketchattest.WithRooms(strings.TrimPrefix(Channel, "#")),
		rocketchattest.WithCredentials(RocketChatUser, RocketChatToken),
	)
	t.Cleanup(rc.Close)
	// Rocket.Chat is down behind its load balancer: every endpoint, every
	// time, until the test ends.
	rc.Inject(rocketchattest.Fault{Status: http.StatusServiceUnavailable,
		Body: `{"success":false,"error":"Service Unavailable"}`})

	sl := slackfake.New(SlackToken)
	t.Cleanup(sl.Close)
	sl.AddChannel(strings.TrimPrefix(Channel, "#"))

	cfg := fmt.Sprintf(failoverConfig, APIToken, PrimarySink, rc.URL, RocketChatUser, RocketChatToken,
		Channel, FallbackSink, sl.APIURL(), SlackToken, Route)
	h := apptest.Start(t, cfg, opts)
	return &Failover{Herald: h, RocketChat: rc, Slack: sl}
}

// Webhook is an Alertmanager (version 4) webhook body for one firing
// critical alert of group GroupKey.
func Webhook(startsAt time.Time) string {
	return fmt.Sprintf(`{
  "version": "4", "status": "firing", "receiver": "herald",
  "groupKey": %q, "truncatedAlerts": 0,
  "groupLabels": {"alertname": "DiskFull", "instance": "db-1"},
  "commonLabels": {"alertname": "DiskFull", "instance": "db-1", "severity": "critical"},
  "commonAnnotations": {"summary": "Disk on db-1 is 97%% full"},
  "externalURL": "http://alertmanager.example:9093",
  "alerts": [{
    "status": "firing", "fingerprint": "a1b2c3d4e5f60718",
    "labels": {"alertname": "DiskFull", "instance": "db-1", "severity": "critical"},
    "annotations": {"summary": "Disk on db-1 is 97%% full"},
    "startsAt": %q, "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://prometheus.example:9090/graph"
  }]
}`, GroupKey, startsAt.UTC().Format(time.RFC3339))
}

// PostWebhook posts body to herald's webhook as Alertmanager does, with
// traceparent (when not empty) and bearer auth, and returns the ids of the
// notifications herald stored it as. Any answer but 200 fails the test.
func PostWebhook(t testing.TB, h *apptest.Herald, body, traceparent string) []shim.Published {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.URL+shim.Path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Alertmanager/0.30.0")
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	if traceparent != "" {
		req.Header.Set("Traceparent", traceparent)
	}
	// A plain client: the caller's own span must not become the parent.
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("webhook answered HTTP %d: %s", res.StatusCode, raw)
	}
	var out shim.Response
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("webhook answer %s: %v", raw, err)
	}
	return out.Notifications
}

// Record returns the notification and its delivery record, read through
// the API.
func Record(t testing.TB, h *apptest.Herald, id string) *heraldv1.GetNotificationResponse {
	t.Helper()
	res, err := h.Client().GetNotification(t.Context(), connect.NewRequest(&heraldv1.GetNotificationRequest{Id: id}))
	if err != nil {
		t.Fatalf("GetNotification(%s): %v", id, err)
	}
	return res.Msg
}

// Eventually polls cond every 20ms until it holds or limit passes, and then
// fails the test with what. It waits on real processes (JetStream, HTTP);
// it is a deadline for a hung test, not a speed assertion.
func Eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", limit, what)
		}
	}
}
