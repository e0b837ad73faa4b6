package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app/apptest"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
	"github.com/herald-notify/herald/sinks/slack/slackfake"
)

// Names shared by every test's config and fakes.
const (
	apiToken   = "e2e-api-token"
	slackToken = "xoxb-e2e-slack-token"
	critical   = "alerts-critical"
	info       = "alerts-info"
)

// wait bounds every poll on a real herald: long enough for a loaded CI
// machine, and never a statement about speed.
const wait = 20 * time.Second

// Tuning is the part of herald's config a test chooses.
type Tuning struct {
	// Chain is the critical route's sink chain.
	Chain []string
	// RCToken is the token herald sends to Rocket.Chat; "" means the
	// fake's own.
	RCToken string
	// RCTimeout bounds one Rocket.Chat Send.
	RCTimeout time.Duration
	// Dispatch is the dispatch section, as YAML flow mapping content.
	Dispatch string
}

// fastDispatch retries quickly, and opens a breaker after 3 failures for
// one second, so that outage stories take seconds.
const fastDispatch = `quick_retries: 2, quick_retry_budget: 2s, quick_backoff: 100ms, attempt_timeout: 5s,
    backoff_initial: 200ms, backoff_max: 1s, breaker: {failures: 3, open_for: 1s}`

// breakerOpenFor is fastDispatch's breaker.open_for.
const breakerOpenFor = time.Second

// configYAML is a herald config with a Rocket.Chat sink in REST bot mode
// and a Slack sink in bot mode, routed by severity as in
// deploy/herald.example.yml.
func configYAML(rc *rocketchattest.Server, sl *slackfake.Server, tu Tuning) string {
	if tu.RCToken == "" {
		tu.RCToken = rc.Token()
	}
	if tu.RCTimeout == 0 {
		tu.RCTimeout = 2 * time.Second
	}
	if tu.Dispatch == "" {
		tu.Dispatch = fastDispatch
	}
	if tu.Chain == nil {
		tu.Chain = []string{"rocketchat", "slack"}
	}
	var channels []string
	for _, sink := range tu.Chain {
		channels = append(channels, fmt.Sprintf("%s: \"#%s\"", sink, critical))
	}
	return fmt.Sprintf(`
auth:
  clients: [{name: e2e, token: %s}]
log: {level: info}
queue: {partitions: 4}
dispatch: {%s}
sinks:
  - name: rocketchat
    rocketchat:
      url: %s
      mode: rest
      user_id: %s
      token: %q
      channel: "#%s"
      timeout: %s
      mentions: {critical: "@here"}
  - name: slack
    slack:
      mode: bot
      api_url: %s
      token: %s
      channel: "#%s"
      timeout: 1s
      pace: 100ms
      mentions: {critical: "<!here>"}
routes:
  - name: critical
    matchers: ['severity="critical"']
    channels: {%s}
    chain: [%s]
  - name: default
    chain: [rocketchat, slack]
`, apiToken, tu.Dispatch, rc.URL, rc.UserID(), tu.RCToken, info, tu.RCTimeout,
		sl.APIURL(), slackToken, info, strings.Join(channels, ", "), strings.Join(tu.Chain, ", "))
}

// stack is one herald with its two fakes and the network between them.
type stack struct {
	rc    *rocketchattest.Server
	slack *slackfake.Server
	net   *faultNet
	h     *apptest.Herald
	yaml  string
	dir   string
}

// newFakes starts a fake Rocket.Chat and a fake Slack, each with the
// alert channels.
func newFakes(t *testing.T) (*rocketchattest.Server, *slackfake.Server) {
	t.Helper()
	rc := rocketchattest.NewServer(rocketchattest.WithRooms(critical, info))
	t.Cleanup(rc.Close)
	sl := slackfake.New(slackToken)
	t.Cleanup(sl.Close)
	sl.AddChannel(critical)
	sl.AddChannel(info)
	return rc, sl
}

// start runs a herald against both fakes.
func start(t *testing.T, tu Tuning) *stack {
	t.Helper()
	rc, sl := newFakes(t)
	s := &stack{rc: rc, slack: sl, net: newFaultNet(t, rc.URL), dir: t.TempDir()}
	s.yaml = configYAML(rc, sl, tu)
	s.h = apptest.Start(t, s.yaml, apptest.Options{DataDir: s.dir, SinkTransport: s.net})
	return s
}

// restart stops herald and starts it again on the same data dir, config
// and fakes.
func (s *stack) restart(t *testing.T) {
	t.Helper()
	s.h.Stop()
	s.h = apptest.Start(t, s.yaml, apptest.Options{DataDir: s.dir, SinkTransport: s.net})
}

// faultNet is the sinks' transport. While refusing, every request to the
// fake Rocket.Chat is sent to a loopback port nobody listens on, so it
// fails the way a stopped Rocket.Chat does: connection refused, from the
// kernel, through the real dialer.
type faultNet struct {
	base    *http.Transport
	rcHost  string
	closed  string
	refuse  atomic.Bool
	refused atomic.Int64
}

func newFaultNet(t *testing.T, rcURL string) *faultNet {
	t.Helper()
	u, err := url.Parse(rcURL)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	return &faultNet{base: base, rcHost: u.Host, closed: closed}
}

func (f *faultNet) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != f.rcHost || !f.refuse.Load() {
		return f.base.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	r.URL.Host, r.Host = f.closed, f.closed
	res, err := f.base.RoundTrip(r)
	if errors.Is(err, syscall.ECONNREFUSED) {
		f.refused.Add(1)
	}
	return res, err
}

// alert describes one Alertmanager group of one alert.
type alert struct {
	name     string
	severity string
	resolved bool
}

// groupKey is the group's Alertmanager group key.
func (a alert) groupKey() string {
	return fmt.Sprintf(`{}/{severity=~"critical|warning"}:{alertname=%q}`, a.name)
}

// webhook renders the group as an Alertmanager version 4 webhook body.
func (a alert) webhook() []byte {
	h := fnv.New64a()
	h.Write([]byte(a.name))
	status, endsAt := "firing", "0001-01-01T00:00:00Z"
	if a.resolved {
		status, endsAt = "resolved", "2026-11-27T10:08:12Z"
	}
	labels := map[string]string{"alertname": a.name, "severity": a.severity, "service": "checkout", "instance": "api-0.prod:8080"}
	ann := map[string]string{"summary": a.name + " on checkout", "description": "end-to-end test alert " + a.name}
	body := map[string]any{
		"version": "4", "receiver": "herald", "status": status,
		"groupKey": a.groupKey(), "truncatedAlerts": 0,
		"groupLabels":       map[string]string{"alertname": a.name},
		"commonLabels":      labels,
		"commonAnnotations": ann,
		"externalURL":       "http://alertmanager.example.com:9093",
		"alerts": []map[string]any{{
			"status": status, "labels": labels, "annotations": ann,
			"startsAt": "2026-11-27T09:58:12Z", "endsAt": endsAt,
			"generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=up",
			"fingerprint":  fmt.Sprintf("%016x", h.Sum64()),
		}},
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return b
}

// post sends an Alertmanager webhook body to herald and returns the id of
// the one notification it was stored as. Safe to call from any goroutine.
func post(ctx context.Context, h *apptest.Herald, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+"/webhooks/alertmanager", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+h.Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("webhook: HTTP %d: %s", res.StatusCode, b)
	}
	var out struct {
		Notifications []struct {
			ID        string `json:"id"`
			Duplicate bool   `json:"duplicate"`
		} `json:"notifications"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return "", fmt.Errorf("webhook answer %s: %w", b, err)
	}
	if len(out.Notifications) != 1 || out.Notifications[0].Duplicate {
		return "", fmt.Errorf("webhook stored as %s, want one new notification", b)
	}
	return out.Notifications[0].ID, nil
}

// postAlert posts a's webhook and returns its notification id.
func postAlert(t *testing.T, h *apptest.Herald, a alert) string {
	t.Helper()
	id, err := post(t.Context(), h, a.webhook())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// postAlerts posts the webhooks of as at once and returns their ids, in
// the order of as.
func postAlerts(t *testing.T, h *apptest.Herald, as []alert) []string {
	t.Helper()
	ids := make([]string, len(as))
	errs := make([]error, len(as))
	var wg sync.WaitGroup
	for i, a := range as {
		wg.Go(func() { ids[i], errs[i] = post(t.Context(), h, a.webhook()) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return ids
}

// record returns the notification's delivery record.
func record(t *testing.T, h *apptest.Herald, id string) *heraldv1.GetNotificationResponse {
	t.Helper()
	res, err := h.Client().GetNotification(t.Context(), connect.NewRequest(&heraldv1.GetNotificationRequest{Id: id}))
	if err != nil {
		t.Fatalf("GetNotification(%s): %v", id, err)
	}
	return res.Msg
}

// sinkEntry returns the record's entry for sink, or nil.
func sinkEntry(rec *heraldv1.DeliveryRecord, sink string) *heraldv1.SinkDelivery {
	for _, s := range rec.GetSinks() {
		if s.GetSink() == sink {
			return s
		}
	}
	return nil
}

// latency is how long herald took from storing the notification to the
// delivering sink's success, by herald's own clock.
func latency(r *heraldv1.GetNotificationResponse) time.Duration {
	sd := sinkEntry(r.GetDelivery(), r.GetDelivery().GetDeliveredBy())
	return sd.GetUpdatedAt().AsTime().Sub(r.GetNotification().GetReceivedAt().AsTime())
}

// deadLetters lists every dead letter.
func deadLetters(t *testing.T, h *apptest.Herald) []*heraldv1.NotificationSummary {
	t.Helper()
	var out []*heraldv1.NotificationSummary
	token := ""
	for {
		res, err := h.Client().ListDeadLetters(t.Context(), connect.NewRequest(&heraldv1.ListDeadLettersRequest{PageSize: 100, PageToken: token}))
		if err != nil {
			t.Fatalf("ListDeadLetters: %v", err)
		}
		out = append(out, res.Msg.GetNotifications()...)
		if token = res.Msg.GetNextPageToken(); token == "" {
			return out
		}
	}
}

// countStatus counts the fake Rocket.Chat's answers with status.
func countStatus(rc *rocketchattest.Server, status int) int {
	n := 0
	for _, r := range rc.Requests() {
		if r.Status == status {
			n++
		}
	}
	return n
}

// checkExactlyOnce checks that every notification ids[i] (of alert
// sent[i]) is delivered, to a message that exists where its record says
// and names it; that no alert is named by two messages of either fake; and
// that every message of either fake is one some record points at (a digest
// stands for several notifications). It returns how many each sink
// delivered.
func checkExactlyOnce(t *testing.T, s *stack, sent []alert, ids []string) map[string]int {
	t.Helper()
	bySink := map[string]int{}
	refs := map[string]bool{}
	for i, id := range ids {
		d := record(t, s.h, id).GetDelivery()
		if d.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED {
			t.Errorf("%s: state %v, want DELIVERED", sent[i].name, d.GetState())
			continue
		}
		by := d.GetDeliveredBy()
		bySink[by]++
		ref := sinkEntry(d, by).GetMessage()
		var text string
		switch by {
		case "rocketchat":
			m, ok := s.rc.Message(ref.GetMessageId())
			if !ok || m.RoomID != ref.GetChannelId() {
				t.Errorf("%s: its record points at Rocket.Chat message %v, which does not exist", sent[i].name, ref)
			}
			text = m.Text + attachmentsText(m)
		case "slack":
			m, ok := s.slack.Message(ref.GetChannelId(), ref.GetMessageId())
			if !ok {
				t.Errorf("%s: its record points at Slack message %v, which does not exist", sent[i].name, ref)
			}
			text = m.Text + string(m.Blocks)
		default:
			t.Errorf("%s: delivered by %q", sent[i].name, by)
		}
		if !strings.Contains(text, sent[i].name) {
			t.Errorf("%s: the message its record points at does not name it: %q", sent[i].name, text)
		}
		refs[by+"/"+ref.GetChannelId()+"/"+ref.GetMessageId()] = true
	}
	var texts []string
	for _, m := range s.rc.AllMessages() {
		if !refs["rocketchat/"+m.RoomID+"/"+m.ID] {
			t.Errorf("Rocket.Chat message %s in #%s is no notification's: %q", m.ID, m.RoomName, m.Text)
		}
		texts = append(texts, m.Text+attachmentsText(m))
	}
	for _, ch := range []string{critical, info} {
		for _, m := range s.slack.Messages(ch) {
			if !refs["slack/"+m.ChannelID+"/"+m.TS] {
				t.Errorf("Slack message %s in #%s is no notification's: %q", m.TS, ch, m.Text)
			}
			texts = append(texts, m.Text+string(m.Blocks))
		}
	}
	for _, a := range sent {
		n := 0
		for _, txt := range texts {
			if strings.Contains(txt, a.name) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s is named by %d messages, want 1", a.name, n)
		}
	}
	return bySink
}

// attachmentsText is the text of a Rocket.Chat message's attachments.
func attachmentsText(m rocketchattest.Message) string {
	var b strings.Builder
	for _, a := range m.Attachments {
		b.WriteString("\n" + a.Title + "\n" + a.Text)
		for _, f := range a.Fields {
			b.WriteString("\n" + f.Title + ": " + f.Value)
		}
	}
	return b.String()
}

// counter sums the counter name's series that have every label of labels.
func counter(t *testing.T, h *apptest.Herald, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := h.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
