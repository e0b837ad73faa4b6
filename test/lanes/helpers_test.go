package lanes_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app/apptest"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

// apiToken is the bearer token every test's herald accepts.
const apiToken = "lanes-api-token"

// hang bounds every wait on a real herald for something that must happen
// eventually: a guard against a hung test, never a statement about speed.
const hang = 30 * time.Second

// note is one Alertmanager notification a test sends: step step of the
// alert group group. Its summary carries a marker that names it alone, so
// that it can be found in what a fake chat server received, alone or in a
// digest.
type note struct {
	group    int
	step     int
	severity string
	// alerts is how many alerts the group has at this step (1 or 2).
	alerts   int
	resolved bool

	// Set once published.
	id   string
	sent time.Time
}

// markerRE finds the markers of notes in request bodies and messages.
var markerRE = regexp.MustCompile(`mk\d{3}s\d`)

// marker names the note in the messages it is delivered in.
func (n *note) marker() string { return fmt.Sprintf("mk%03ds%d", n.group, n.step) }

// alertname is the group's alert name, its title in chat.
func (n *note) alertname() string { return fmt.Sprintf("LanesAlert%03d", n.group) }

func (n *note) String() string {
	status := "firing"
	if n.resolved {
		status = "resolved"
	}
	return fmt.Sprintf("%s (%s %s, %s)", n.marker(), n.alertname(), status, n.severity)
}

// webhook renders the note as an Alertmanager version 4 webhook body.
func (n *note) webhook() []byte {
	status, endsAt := "firing", "0001-01-01T00:00:00Z"
	if n.resolved {
		status, endsAt = "resolved", "2026-11-27T10:08:12Z"
	}
	common := map[string]string{"alertname": n.alertname(), "severity": n.severity, "service": "lanes"}
	var alerts []map[string]any
	for i := range n.alerts {
		labels := map[string]string{"alertname": n.alertname(), "severity": n.severity, "service": "lanes",
			"instance": fmt.Sprintf("node-%d.prod:9100", i)}
		h := fnv.New64a()
		fmt.Fprintf(h, "%s/%d", n.alertname(), i)
		alerts = append(alerts, map[string]any{
			"status": status, "labels": labels,
			"annotations":  map[string]string{"summary": "instance node-" + fmt.Sprint(i)},
			"startsAt":     "2026-11-27T09:58:12Z",
			"endsAt":       endsAt,
			"generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=up",
			"fingerprint":  fmt.Sprintf("%016x", h.Sum64()),
		})
	}
	body := map[string]any{
		"version": "4", "receiver": "herald", "status": status,
		"groupKey":        fmt.Sprintf(`{}/{service="lanes"}:{alertname=%q}`, n.alertname()),
		"truncatedAlerts": 0,
		"groupLabels":     map[string]string{"alertname": n.alertname()},
		"commonLabels":    common,
		// The marker leads the summary, which every message and digest
		// line shows.
		"commonAnnotations": map[string]string{"summary": n.marker() + " lanes test alert"},
		"externalURL":       "http://alertmanager.example.com:9093",
		"alerts":            alerts,
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return b
}

// group returns the notes of one alert group: a firing, or for a group of
// three a firing, a firing with a second alert, and the resolved.
func group(g, size int, severity string) []*note {
	ns := []*note{{group: g, step: 0, severity: severity, alerts: 1}}
	if size == 3 {
		ns = append(ns,
			&note{group: g, step: 1, severity: severity, alerts: 2},
			&note{group: g, step: 2, severity: severity, alerts: 2, resolved: true})
	}
	return ns
}

// interleave lists the groups' notes round robin: every group's first,
// then every group's second, and so on, so that groups of different
// routes alternate and each group's notes are spread over the list.
func interleave(groups [][]*note) []*note {
	var out []*note
	for step := 0; ; step++ {
		added := false
		for _, g := range groups {
			if step < len(g) {
				out = append(out, g[step])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

// post sends one webhook body and returns the id of the notification it
// was stored as. Safe to call from any goroutine.
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
	if res.StatusCode/100 != 2 {
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

// publish posts the notes' webhooks with 8 senders at once and fails the
// test unless each is answered 2xx. A group's notes are posted by one
// sender, each after the previous one's 2xx, so that the group's publish
// order is the order of the list; different groups' notes interleave as
// listed.
func publish(t *testing.T, h *apptest.Herald, notes []*note) {
	t.Helper()
	const senders = 8
	errs := make([]error, senders)
	var wg sync.WaitGroup
	for w := range senders {
		wg.Go(func() {
			for _, n := range notes {
				if n.group%senders != w {
					continue
				}
				n.sent = time.Now()
				id, err := post(t.Context(), h, n.webhook())
				if err != nil {
					errs[w] = fmt.Errorf("%v: %w", n, err)
					return
				}
				n.id = id
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// sighting is where a fake chat server first received a note: the index
// of the request among the server's successful posts, and when.
type sighting struct {
	post int
	at   time.Time
}

// posted reports, per marker, the first successful request to srv that
// carried it: a post, an update or a webhook answered 200, the digests
// included.
func posted(srv *rocketchattest.Server) map[string]sighting {
	out := map[string]sighting{}
	i := 0
	for _, r := range srv.Requests() {
		if !isPost(r) || r.Status != http.StatusOK {
			continue
		}
		for _, m := range markerRE.FindAllString(string(r.Body), -1) {
			if _, ok := out[m]; !ok {
				out[m] = sighting{post: i, at: r.At}
			}
		}
		i++
	}
	return out
}

// isPost reports whether r would put something in a room.
func isPost(r rocketchattest.Request) bool {
	switch r.Endpoint {
	case "chat.sendMessage", "chat.postMessage", "chat.update", "webhook":
		return true
	}
	return false
}

// allPosted reports whether srv received every note.
func allPosted(srv *rocketchattest.Server, notes []*note) bool {
	seen := posted(srv)
	for _, n := range notes {
		if _, ok := seen[n.marker()]; !ok {
			return false
		}
	}
	return true
}

// countPosted counts the notes srv received.
func countPosted(srv *rocketchattest.Server, notes []*note) int {
	seen := posted(srv)
	c := 0
	for _, n := range notes {
		if _, ok := seen[n.marker()]; ok {
			c++
		}
	}
	return c
}

// checkGroupOrder checks that srv received every note, and each group's
// notes in the order they were published (the order of notes within a
// group).
func checkGroupOrder(t *testing.T, srv *rocketchattest.Server, notes []*note) {
	t.Helper()
	seen := posted(srv)
	last := map[int]*note{}
	for _, n := range notes {
		s, ok := seen[n.marker()]
		if !ok {
			t.Errorf("%v was never posted", n)
			continue
		}
		if prev := last[n.group]; prev != nil {
			if ps := seen[prev.marker()]; ps.post >= s.post {
				t.Errorf("group %s out of order: %v was published after %v but posted at post #%d, not after #%d",
					n.alertname(), n, prev, s.post, ps.post)
			}
		}
		last[n.group] = n
	}
}

// waitDelivered waits until herald's delivery record of every note says
// delivered, and checks that sink delivered it.
func waitDelivered(t *testing.T, h *apptest.Herald, notes []*note, sink string) {
	t.Helper()
	c := h.Client()
	deadline := time.Now().Add(hang)
	for _, n := range notes {
		for {
			var d *heraldv1.DeliveryRecord
			res, err := c.GetNotification(t.Context(), connect.NewRequest(&heraldv1.GetNotificationRequest{Id: n.id}))
			if err == nil {
				d = res.Msg.GetDelivery()
			}
			if d.GetState() == heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED {
				if by := d.GetDeliveredBy(); by != sink {
					t.Errorf("%v delivered by %q, want %q", n, by, sink)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v not delivered within %s; last record %v (err %v)", n, hang, d, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// metrics is one scrape of herald's /metrics.
type metrics map[string]*dto.MetricFamily

// scrape reads herald's /metrics as Prometheus would.
func scrape(t *testing.T, h *apptest.Herald) metrics {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping /metrics: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scraping /metrics: HTTP %d", res.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// value returns the value of the series of name with every label of
// labels (a gauge or a counter), and whether there is one.
func (m metrics) value(name string, labels ...string) (float64, bool) {
	f := m[name]
	if f == nil {
		return 0, false
	}
series:
	for _, s := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range s.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue series
			}
		}
		switch {
		case s.GetGauge() != nil:
			return s.GetGauge().GetValue(), true
		case s.GetCounter() != nil:
			return s.GetCounter().GetValue(), true
		case s.GetUntyped() != nil:
			return s.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// quietLogger logs herald's warnings and errors to t.Log: a test of
// hundreds of notifications would drown in its info lines.
func quietLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testutil.LogWriter(t, ""), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// countStatus counts the requests srv answered with status.
func countStatus(srv *rocketchattest.Server, status int) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.Status == status {
			n++
		}
	}
	return n
}

// useUpWindow posts n messages to room through srv's chat.sendMessage as
// its bot user, as another client of the same user would, using up that
// endpoint's rate-limit window.
func useUpWindow(t *testing.T, srv *rocketchattest.Server, room string, n int) {
	t.Helper()
	for i := range n {
		body := fmt.Sprintf(`{"message":{"rid":%q,"msg":"another client's message %d"}}`, srv.RoomID(room), i)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/api/v1/chat.sendMessage", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-User-Id", srv.UserID())
		req.Header.Set("X-Auth-Token", srv.Token())
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("another client's post %d: HTTP %d", i, res.StatusCode)
		}
	}
}

// skipShort skips a test in -short runs (make test-short: unit tests
// only), as the project's other whole-herald tests do.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a whole herald and waits out backoffs and rate-limit windows")
	}
}
