package observability_test

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app/apptest"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/telemetry/telemetrytest"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
	"github.com/herald-notify/herald/sinks/slack/slackfake"
	"github.com/herald-notify/herald/test/observability"
)

// mixedConfig routes by the alerts' team label: a to a healthy Rocket.Chat
// (delivered), b to a Rocket.Chat that is down and then Slack (delivered by
// the fallback), c to a Rocket.Chat room that does not exist (refused for
// good: dead-lettered), anything else to the Rocket.Chat that is down only
// (kept for a retry an hour later: pending).
const mixedConfig = `
auth:
  clients: [{name: alertmanager, token: %[1]s}]
dispatch:
  quick_retries: 0
  backoff_initial: 1h
  backoff_max: 1h
sinks:
  - name: rc
    rocketchat: {mode: rest, url: %[2]q, user_id: %[3]s, token: %[4]s, channel: "#alerts"}
  - name: rcdown
    rocketchat: {mode: rest, url: %[5]q, user_id: %[3]s, token: %[4]s, channel: "#alerts"}
  - name: slack
    slack: {mode: bot, api_url: %[6]q, token: %[7]s, channel: "#alerts", pace: -1s}
routes:
  - name: direct
    matchers: ['team="a"']
    chain: [rc, slack]
  - name: failover
    matchers: ['team="b"']
    chain: [rcdown, slack]
  - name: doomed
    matchers: ['team="c"']
    channels: {rc: "#no-such-room"}
    chain: [rc]
  - name: stuck
    chain: [rcdown]
`

var mixedSinks = []string{"rc", "rcdown", "slack"}

// mixedRun is a herald with mixedConfig and what was sent to it.
type mixedRun struct {
	h    *apptest.Herald
	want map[string]heraldv1.DeliveryState // by notification id
	// private are per-notification strings that must never be a label
	// value: ids, group keys and their hashes, fingerprints, instances.
	private []string
	seq     int
}

func startMixed(t *testing.T) *mixedRun {
	t.Helper()
	rc := rocketchattest.NewServer(rocketchattest.WithRooms("alerts"),
		rocketchattest.WithCredentials(observability.RocketChatUser, observability.RocketChatToken))
	t.Cleanup(rc.Close)
	down := rocketchattest.NewServer(rocketchattest.WithRooms("alerts"),
		rocketchattest.WithCredentials(observability.RocketChatUser, observability.RocketChatToken))
	t.Cleanup(down.Close)
	down.SetDown(true)
	sl := slackfake.New(observability.SlackToken)
	t.Cleanup(sl.Close)
	sl.AddChannel("alerts")
	cfg := fmt.Sprintf(mixedConfig, observability.APIToken, rc.URL, observability.RocketChatUser,
		observability.RocketChatToken, down.URL, sl.APIURL(), observability.SlackToken)
	return &mixedRun{h: apptest.Start(t, cfg, apptest.Options{}), want: map[string]heraldv1.DeliveryState{}}
}

// send posts one webhook of a new group for team and remembers what must
// become of it; it returns the body, to send it again.
func (r *mixedRun) send(t *testing.T, team string, want heraldv1.DeliveryState) string {
	t.Helper()
	r.seq++
	instance := fmt.Sprintf("host-%03d", r.seq)
	fingerprint := fmt.Sprintf("f%015x", 0xabc000+r.seq)
	groupKey := fmt.Sprintf(`{}:{instance="%s", team="%s"}`, instance, team)
	body := fmt.Sprintf(`{"version":"4","status":"firing","receiver":"herald","groupKey":%q,
  "groupLabels":{"instance":%q,"team":%q},
  "commonLabels":{"alertname":"HighLoad","instance":%q,"team":%q,"severity":"warning"},
  "alerts":[{"status":"firing","fingerprint":%q,"startsAt":"2026-11-27T10:00:00Z",
    "labels":{"alertname":"HighLoad","instance":%q,"team":%q,"severity":"warning"}}]}`,
		groupKey, instance, team, instance, team, fingerprint, instance, team)
	got := observability.PostWebhook(t, r.h, body, "")
	if len(got) != 1 || got[0].Duplicate {
		t.Fatalf("webhook stored as %+v, want one new notification", got)
	}
	r.want[got[0].ID] = want
	r.private = append(r.private, got[0].ID, groupKey, telemetry.GroupKeyHash(groupKey), fingerprint, instance)
	return body
}

// wait waits until every notification sent is in its expected state, and
// the queue has caught up with the dispatcher's verdicts (acks and
// dead-letter moves happen after the record is written).
func (r *mixedRun) wait(t *testing.T) {
	t.Helper()
	var pending, dead float64
	for id, want := range r.want {
		switch want {
		case heraldv1.DeliveryState_DELIVERY_STATE_RETRYING:
			pending++
		case heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED:
			dead++
		}
		r.h.WaitDelivered(t, id, want, waitLimit)
	}
	var last string
	observability.Eventually(t, waitLimit, "the queue to settle", func() bool {
		f := scrape(t, r.h)
		// Pending is what JetStream has not acknowledged plus what waits in
		// parked groups (acknowledged, listed in the groups bucket).
		depth := value(f, "herald_queue_depth", nil) + value(f, "herald_queue_held_notifications", nil)
		dlq := value(f, "herald_queue_dead_letters", nil)
		last = fmt.Sprintf("depth and held %v (want %v), dead letters %v (want %v)", depth, pending, dlq, dead)
		return depth == pending && dlq == dead
	})
	t.Log("queue settled: " + last)
}

// TestMetricsAddUp sends a mixed load and checks, on /metrics scraped over
// HTTP, that every notification received is accounted for exactly once:
//
//	received  = stored + duplicate + invalid + unavailable   (herald_notifications_received_total, herald_publish_total)
//	stored    = delivered + pending + dead-lettered
//	delivered = Σ herald_deliveries_total{outcome="delivered"} (one per notification, at the sink that took it)
//	pending   = herald_queue_depth + herald_queue_held_notifications (stored, not acknowledged or parked)
//	dead      = Σ herald_dead_letters_total                   (= herald_queue_dead_letters_total = herald_queue_dead_letters)
//
// and that no label value is a notification's (ids, group keys,
// fingerprints): more notifications of the same kinds add no series.
func TestMetricsAddUp(t *testing.T) {
	rec := telemetrytest.Install(t) // sampled spans, so that exemplars can link to them
	r := startMixed(t)
	const (
		delivered  = heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED
		retrying   = heraldv1.DeliveryState_DELIVERY_STATE_RETRYING
		deadLetter = heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED
	)
	var again string
	for range 3 {
		again = r.send(t, "a", delivered)
	}
	for range 2 {
		r.send(t, "b", delivered) // by the fallback
	}
	for range 2 {
		r.send(t, "c", deadLetter)
	}
	for range 2 {
		r.send(t, "d", retrying)
	}
	// Alertmanager's retry of a stored webhook: received, not stored again.
	if got := observability.PostWebhook(t, r.h, again, ""); len(got) != 1 || !got[0].Duplicate {
		t.Fatalf("resent webhook stored as %+v, want a duplicate", got)
	}
	// An API call herald refuses: received, never stored.
	_, err := r.h.Client().Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{Notification: &heraldv1.Notification{
		Id: "chosen-by-caller", Source: "metrics-test", Title: "refused",
	}}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("publish with an id: %v, want InvalidArgument", err)
	}
	r.wait(t)

	f := scrape(t, r.h)
	received := value(f, "herald_notifications_received_total", nil)
	stored := value(f, "herald_publish_total", map[string]string{"outcome": "stored"})
	refused := value(f, "herald_publish_total", map[string]string{"outcome": "duplicate"}) +
		value(f, "herald_publish_total", map[string]string{"outcome": "invalid"}) +
		value(f, "herald_publish_total", map[string]string{"outcome": "unavailable"})
	deliveredN := value(f, "herald_deliveries_total", map[string]string{"outcome": "delivered"})
	pending := value(f, "herald_queue_depth", nil) + value(f, "herald_queue_held_notifications", nil)
	dead := value(f, "herald_dead_letters_total", nil)
	t.Logf("received %v = stored %v + refused %v; stored = delivered %v + pending %v + dead-lettered %v",
		received, stored, refused, deliveredN, pending, dead)

	// The run's known shape, so that the sums below cannot agree by luck.
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"herald_notifications_received_total", map[string]string{"source": "alertmanager"}, 10},
		{"herald_notifications_received_total", map[string]string{"source": "api"}, 1},
		{"herald_publish_total", map[string]string{"outcome": "stored"}, 9},
		{"herald_publish_total", map[string]string{"outcome": "duplicate"}, 1},
		{"herald_publish_total", map[string]string{"outcome": "invalid"}, 1},
		{"herald_deliveries_total", map[string]string{"sink": "rc", "outcome": "delivered"}, 3},
		{"herald_deliveries_total", map[string]string{"sink": "slack", "outcome": "delivered"}, 2},
		{"herald_fallbacks_total", map[string]string{"from": "rcdown", "to": "slack"}, 2},
		{"herald_dead_letters_total", map[string]string{"reason": "permanent"}, 2},
		// The two retrying wait in parked groups, acknowledged in JetStream.
		{"herald_queue_depth", nil, 0},
		{"herald_queue_held_notifications", nil, 2},
	} {
		if got := value(f, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	if received != stored+refused {
		t.Errorf("received %v != stored %v + duplicate/invalid/unavailable %v", received, stored, refused)
	}
	if stored != deliveredN+pending+dead {
		t.Errorf("stored %v != delivered %v + pending %v + dead-lettered %v", stored, deliveredN, pending, dead)
	}
	if q := value(f, "herald_queue_publishes_total", map[string]string{"result": "stored"}); q != stored {
		t.Errorf("the queue stored %v notifications, the service says %v", q, stored)
	}
	if q, g := value(f, "herald_queue_dead_letters_total", nil), value(f, "herald_queue_dead_letters", nil); q != dead || g != dead {
		t.Errorf("dead letters: dispatcher %v, queue moved %v, queue holds %v", dead, q, g)
	}
	if acks := value(f, "herald_dispatch_outcomes_total", map[string]string{"action": "ack"}); acks != deliveredN {
		t.Errorf("dispatcher acked %v notifications, delivered %v", acks, deliveredN)
	}

	checkLabelsBounded(t, f, r.private)
	checkLatencyExemplars(t, r.h, rec)

	// More notifications of kinds already seen must add samples, not series.
	before := seriesOf(f)
	for range 3 {
		r.send(t, "a", delivered)
	}
	r.send(t, "c", deadLetter)
	r.wait(t)
	after := scrape(t, r.h)
	if got := value(after, "herald_deliveries_total", map[string]string{"outcome": "delivered"}); got != deliveredN+3 {
		t.Errorf("after 3 more deliveries herald_deliveries_total{outcome=delivered} = %v, want %v", got, deliveredN+3)
	}
	for _, s := range slices.Sorted(maps.Keys(seriesOf(after))) {
		if !before[s] {
			t.Errorf("new series after more notifications of known kinds (unbounded label?): %s", s)
		}
	}
	checkLabelsBounded(t, after, r.private)
}

// checkLabelsBounded checks that no herald_* label value holds anything
// that is per notification, and that sink labels name configured sinks.
func checkLabelsBounded(t *testing.T, f map[string]*dto.MetricFamily, private []string) {
	t.Helper()
	for name, fam := range f {
		if !strings.HasPrefix(name, "herald_") {
			continue
		}
		for _, m := range fam.GetMetric() {
			for _, lp := range m.GetLabel() {
				v := lp.GetValue()
				for _, p := range private {
					if strings.Contains(v, p) {
						t.Errorf("%s{%s=%q}: the label holds a notification's %q", name, lp.GetName(), v, p)
					}
				}
				if lp.GetName() == "sink" && !slices.Contains(mixedSinks, v) {
					t.Errorf("%s{sink=%q}: not a configured sink", name, v)
				}
			}
		}
	}
}

// checkLatencyExemplars checks that the receipt-to-chat latency histogram
// links its samples to the notifications' traces (exemplars), which needs
// the protobuf exposition: the text format has no exemplars.
func checkLatencyExemplars(t *testing.T, h *apptest.Herald, rec *telemetrytest.Recorder) {
	t.Helper()
	traces := map[string]bool{}
	for _, sp := range rec.Ended().Named(telemetry.SpanDispatch).Where(telemetry.AttrOutcome, "ack") {
		traces[sp.SpanContext().TraceID().String()] = true
	}
	if len(traces) == 0 {
		t.Fatal("no acked dispatch span recorded")
	}
	fam := scrapeProto(t, h)["herald_delivery_latency_seconds"]
	if fam == nil {
		t.Fatal("no herald_delivery_latency_seconds on /metrics")
	}
	var exemplars, linked int
	for _, m := range fam.GetMetric() {
		var ex []*dto.Exemplar
		for _, b := range m.GetHistogram().GetBucket() {
			ex = append(ex, b.GetExemplar())
		}
		ex = append(ex, m.GetHistogram().GetExemplars()...)
		for _, e := range ex {
			if e == nil {
				continue
			}
			exemplars++
			for _, lp := range e.GetLabel() {
				if lp.GetName() == telemetry.ExemplarTraceID && traces[lp.GetValue()] {
					linked++
				}
			}
		}
	}
	if exemplars == 0 || linked != exemplars {
		t.Errorf("herald_delivery_latency_seconds has %d exemplars, %d of them with the %s of a delivered notification's trace; want every sample linked",
			exemplars, linked, telemetry.ExemplarTraceID)
	}
}

// scrape reads /metrics over HTTP in the Prometheus text format.
func scrape(t testing.TB, h *apptest.Herald) map[string]*dto.MetricFamily {
	t.Helper()
	body := get(t, h.URL+"/metrics", "text/plain;version=0.0.4")
	p := expfmt.NewTextParser(model.UTF8Validation)
	f, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return f
}

// scrapeProto reads /metrics in the delimited protobuf format, which
// carries exemplars.
func scrapeProto(t testing.TB, h *apptest.Herald) map[string]*dto.MetricFamily {
	t.Helper()
	format := expfmt.NewFormat(expfmt.TypeProtoDelim)
	body := get(t, h.URL+"/metrics", string(format))
	dec := expfmt.NewDecoder(strings.NewReader(body), format)
	out := map[string]*dto.MetricFamily{}
	for {
		var mf dto.MetricFamily
		err := dec.Decode(&mf)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decoding /metrics as protobuf: %v", err)
		}
		out[mf.GetName()] = &mf
	}
}

func get(t testing.TB, url, accept string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", accept)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: HTTP %d, %v: %s", res.StatusCode, err, b)
	}
	return string(b)
}

// value sums the samples of family name (counter, gauge or untyped) whose
// labels include every one of labels; 0 when there are none.
func value(f map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	var sum float64
	for _, m := range f[name].GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		i := slices.IndexFunc(m.GetLabel(), func(lp *dto.LabelPair) bool { return lp.GetName() == k })
		if i < 0 || m.GetLabel()[i].GetValue() != v {
			return false
		}
	}
	return true
}

// seriesOf names every herald_* series: family name and label pairs.
func seriesOf(f map[string]*dto.MetricFamily) map[string]bool {
	out := map[string]bool{}
	for name, fam := range f {
		if !strings.HasPrefix(name, "herald_") {
			continue
		}
		for _, m := range fam.GetMetric() {
			var b strings.Builder
			b.WriteString(name + "{")
			for _, lp := range m.GetLabel() {
				fmt.Fprintf(&b, "%s=%q,", lp.GetName(), lp.GetValue())
			}
			b.WriteString("}")
			out[b.String()] = true
		}
	}
	return out
}
