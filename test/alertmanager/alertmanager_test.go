// Package alertmanager_test runs the real Prometheus Alertmanager binary
// against herald's webhook: Alertmanager on loopback, webhook_configs pointing
// at herald with bearer auth, alerts posted to Alertmanager's API, and checks
// on what herald stored. Install the binary with scripts/install-alertmanager.sh;
// without it (or under -short) the tests skip.
package alertmanager_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app/apptest"
	"github.com/herald-notify/herald/internal/shim"
	"github.com/herald-notify/herald/internal/testutil"
)

// heraldToken is the bearer token Alertmanager presents to herald.
const heraldToken = "integration-test-token"

// waitLimit bounds every wait for a real process to do something. It is a
// deadline for a hung test, not a speed assertion.
const waitLimit = 90 * time.Second

// TestAlertmanagerFiringThenResolved: one Alertmanager sends a firing and then
// a resolved notification for one group; herald stores both, with the fields
// Alertmanager reported.
func TestAlertmanagerFiringThenResolved(t *testing.T) {
	bin := alertmanagerBinary(t)
	heraldURL, stored := startHerald(t)
	proxyURL, deliveries := recordDeliveries(t, heraldURL)
	am := startAlertmanager(t, bin, amOptions{webhookURL: proxyURL + shim.Path, tracingEndpoint: testutil.FreeAddr(t)})

	startsAt := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	am.postAlerts(t, testAlerts("HeraldSingle", startsAt, time.Time{}))
	fingerprints := am.fingerprints(t, "HeraldSingle")
	if len(fingerprints) != 2 {
		t.Fatalf("Alertmanager knows %d alerts, want 2", len(fingerprints))
	}

	testutil.Eventually(t, waitLimit, "the firing notification", func() bool { return firingAll(stored(), fingerprints) != nil })
	firing := firingAll(stored(), fingerprints)
	wantGroupKey := `{}:{alertname="HeraldSingle", service="checkout"}`
	checkNotification(t, firing, heraldv1.Status_STATUS_FIRING, wantGroupKey, fingerprints, startsAt, time.Time{})
	if firing.GetTitle() != "HeraldSingle service=checkout" {
		t.Errorf("title %q", firing.GetTitle())
	}
	if want := am.url + "/#/silences/new?filter="; !strings.HasPrefix(firing.GetLinks().GetSilence(), want) {
		t.Errorf("silence link %q, want prefix %q", firing.GetLinks().GetSilence(), want)
	}
	if firing.GetLinks().GetRunbook() != "https://runbooks.example.com/checkout" {
		t.Errorf("runbook link %q", firing.GetLinks().GetRunbook())
	}

	// Alertmanager (>= 0.30, with tracing on) sends a W3C traceparent, which
	// herald's server middleware continues.
	testutil.Eventually(t, waitLimit, "herald's answer to reach Alertmanager", func() bool { return len(deliveries()) >= 1 })
	if tp := deliveries()[0].traceparent; !traceparentRE.MatchString(tp) {
		t.Errorf("delivery without a valid traceparent: %q", tp)
	}

	endsAt := time.Now().UTC().Add(-time.Second).Truncate(time.Millisecond)
	am.postAlerts(t, testAlerts("HeraldSingle", startsAt, endsAt))
	testutil.Eventually(t, waitLimit, "the resolved notification", func() bool { return resolvedOne(stored()) != nil })
	resolved := resolvedOne(stored())
	checkNotification(t, resolved, heraldv1.Status_STATUS_RESOLVED, wantGroupKey, fingerprints, startsAt, endsAt)
	if resolved.GetTitle() != "HeraldSingle service=checkout" {
		t.Errorf("title %q", resolved.GetTitle())
	}
	if resolved.GetIdempotencyKey() == firing.GetIdempotencyKey() {
		t.Error("firing and resolved share an idempotency key: the resolved one would be dropped")
	}

	testutil.Eventually(t, waitLimit, "Alertmanager to finish the group", func() bool { return am.aggregationGroups(t) == 0 })
	checkStoredOnce(t, deliveries(), stored())
}

// TestAlertmanagerClusterStoresOnce: two clustered Alertmanager peers both
// receive the alerts, as behind a Prometheus that sends to every peer. Their
// gossip is slow and their peer timeout zero, so both often notify (as they do
// when gossip lags); herald must store each distinct notification once. Every
// webhook Alertmanager sent is then sent again, as by a peer that lost the
// race or a retry: all must be answered as duplicates.
func TestAlertmanagerClusterStoresOnce(t *testing.T) {
	bin := alertmanagerBinary(t)
	heraldURL, stored := startHerald(t)
	proxyURL, deliveries := recordDeliveries(t, heraldURL)

	clusterA, clusterB := testutil.FreeAddr(t), testutil.FreeAddr(t)
	opts := amOptions{webhookURL: proxyURL + shim.Path}
	optsA, optsB := opts, opts
	optsA.cluster, optsA.peers = clusterA, []string{clusterB}
	optsB.cluster, optsB.peers = clusterB, []string{clusterA}
	peers := []*alertmanager{startAlertmanager(t, bin, optsA), startAlertmanager(t, bin, optsB)}
	for _, p := range peers {
		testutil.Eventually(t, waitLimit, "the cluster to form at "+p.url, func() bool { return p.clusterPeers(t) == 2 })
	}

	startsAt := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	for _, p := range peers {
		p.postAlerts(t, testAlerts("HeraldCluster", startsAt, time.Time{}))
	}
	fingerprints := peers[0].fingerprints(t, "HeraldCluster")
	wantGroupKey := `{}:{alertname="HeraldCluster", service="checkout"}`

	// A peer may flush between taking the two alerts of one POST and notify
	// about the first alone; the notification to check is the one with both.
	testutil.Eventually(t, waitLimit, "the firing notification", func() bool { return firingAll(stored(), fingerprints) != nil })
	checkNotification(t, firingAll(stored(), fingerprints), heraldv1.Status_STATUS_FIRING, wantGroupKey, fingerprints, startsAt, time.Time{})

	endsAt := time.Now().UTC().Add(-time.Second).Truncate(time.Millisecond)
	for _, p := range peers {
		p.postAlerts(t, testAlerts("HeraldCluster", startsAt, endsAt))
	}
	testutil.Eventually(t, waitLimit, "the resolved notification", func() bool { return resolvedOne(stored()) != nil })
	checkNotification(t, resolvedOne(stored()), heraldv1.Status_STATUS_RESOLVED, wantGroupKey, fingerprints, startsAt, endsAt)

	// Each peer is done with the group once it dropped it (after its resolved
	// flush, sent or skipped by its notification log); only then has every
	// delivery that will ever come arrived.
	for _, p := range peers {
		testutil.Eventually(t, waitLimit, p.url+" to finish the group", func() bool { return p.aggregationGroups(t) == 0 })
	}
	// A peer can flush between taking the two resolved alerts of one POST and
	// send a third, half-resolved notification: that one is distinct and is
	// stored too. What must never happen is one notification stored twice.
	checkStoredOnce(t, deliveries(), stored())

	// Whether both peers' copies reached herald depends on gossip timing.
	// Send every webhook Alertmanager made once more, as a slower peer or a
	// retry after a lost answer would: each must be a duplicate.
	before := len(stored())
	for _, d := range deliveries() {
		req, err := http.NewRequest(http.MethodPost, heraldURL+shim.Path, bytes.NewReader(d.request))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+heraldToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body shim.Response
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || len(body.Notifications) != 1 || !body.Notifications[0].Duplicate {
			t.Errorf("replayed webhook answered %d %+v (%v), want 200 and a duplicate", resp.StatusCode, body, err)
		}
	}
	if after := len(stored()); after != before {
		t.Errorf("replaying Alertmanager's webhooks stored %d more notifications", after-before)
	}
}

// startHerald starts the herald side Alertmanager talks to and returns its
// base URL and a function listing the notifications it stored, oldest
// first. Until `herald serve` can run in process, it is the shim handler
// behind a bearer-token check, publishing into a fake store that deduplicates
// by idempotency key as the real store does.
// startHerald runs the real herald (internal/app: auth, shim, service,
// embedded JetStream, dispatcher to the log sink) on a free port and returns
// its base URL and a function listing what it stored, oldest first, read
// back through the API.
func startHerald(t *testing.T) (baseURL string, stored func() []*heraldv1.Notification) {
	t.Helper()
	h := apptest.Start(t, `
auth:
  clients: [{name: alertmanager, token: `+heraldToken+`}]
sinks: [{name: log, log: {}}]
routes: [{name: default, chain: [log]}]
`, apptest.Options{})
	return h.URL, func() []*heraldv1.Notification {
		var all []*heraldv1.Notification
		token := ""
		for {
			res, err := h.Client().ListNotifications(context.Background(), connect.NewRequest(&heraldv1.ListNotificationsRequest{
				PageSize: 500, PageToken: token,
			}))
			if err != nil {
				t.Fatalf("ListNotifications: %v", err)
			}
			for _, s := range res.Msg.GetNotifications() {
				all = append(all, s.GetNotification())
			}
			if token = res.Msg.GetNextPageToken(); token == "" {
				break
			}
		}
		slices.Reverse(all)
		return all
	}
}

// delivery is one webhook request Alertmanager made and herald's answer.
type delivery struct {
	traceparent string
	request     []byte
	status      int
	response    []byte
}

// recordDeliveries puts a recording reverse proxy between Alertmanager and
// herald, so the tests see every delivery whatever herald is behind it.
func recordDeliveries(t *testing.T, target string) (proxyURL string, deliveries func() []delivery) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	var mu sync.Mutex
	var ds []delivery
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(req))
		cw := &capture{ResponseWriter: w, status: http.StatusOK}
		proxy.ServeHTTP(cw, r)
		mu.Lock()
		ds = append(ds, delivery{traceparent: r.Header.Get("Traceparent"), request: req, status: cw.status, response: cw.body.Bytes()})
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []delivery {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(ds)
	}
}

type capture struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *capture) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *capture) Write(p []byte) (int, error) {
	c.body.Write(p)
	return c.ResponseWriter.Write(p)
}

// checkStoredOnce checks herald's dedup against what Alertmanager sent:
// every distinct notification delivered (same receiver, group key, status and
// alerts' fingerprint/status/startsAt/endsAt) is stored exactly once, nothing
// else is stored, and every repeated delivery was answered as a duplicate.
// The identity is computed here from the raw webhook JSON, independently of
// the shim's idempotency key.
func checkStoredOnce(t *testing.T, ds []delivery, stored []*heraldv1.Notification) {
	t.Helper()
	delivered := map[string]bool{}
	duplicates := 0
	for _, d := range ds {
		if d.status != http.StatusOK {
			t.Errorf("herald answered Alertmanager %d: %s", d.status, d.response)
			continue
		}
		var resp shim.Response
		if err := json.Unmarshal(d.response, &resp); err != nil || len(resp.Notifications) != 1 {
			t.Errorf("herald's answer %q: %v", d.response, err)
			continue
		}
		if resp.Notifications[0].Duplicate {
			duplicates++
		}
		delivered[webhookIdentity(t, d.request)] = true
	}
	storedIDs := map[string]int{}
	for _, n := range stored {
		id := notificationIdentity(n)
		storedIDs[id]++
		if !delivered[id] {
			t.Errorf("stored a notification Alertmanager did not send: %s", id)
		}
	}
	for id := range delivered {
		if storedIDs[id] != 1 {
			t.Errorf("notification stored %d times, want once: %s", storedIDs[id], id)
		}
	}
	if len(ds) != len(delivered)+duplicates {
		t.Errorf("%d deliveries of %d distinct notifications, but %d answered as duplicates", len(ds), len(delivered), duplicates)
	}
	t.Logf("%d deliveries, %d distinct notifications, %d stored, %d answered as duplicates", len(ds), len(delivered), len(stored), duplicates)
}

// webhookIdentity canonicalises a raw webhook's identity.
func webhookIdentity(t *testing.T, body []byte) string {
	t.Helper()
	var w struct {
		Receiver string `json:"receiver"`
		GroupKey string `json:"groupKey"`
		Status   string `json:"status"`
		Alerts   []struct {
			Fingerprint string    `json:"fingerprint"`
			Status      string    `json:"status"`
			StartsAt    time.Time `json:"startsAt"`
			EndsAt      time.Time `json:"endsAt"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatalf("Alertmanager sent %q: %v", body, err)
	}
	var alerts []string
	for _, a := range w.Alerts {
		alerts = append(alerts, alertIdentity(a.Fingerprint, a.Status, a.StartsAt, a.EndsAt))
	}
	return identity(w.Receiver, w.GroupKey, w.Status, alerts)
}

func notificationIdentity(n *heraldv1.Notification) string {
	var alerts []string
	for _, a := range n.GetAlerts() {
		var ends time.Time
		if a.GetEndsAt() != nil {
			ends = a.GetEndsAt().AsTime()
		}
		alerts = append(alerts, alertIdentity(a.GetFingerprint(), statusName(a.GetStatus()), a.GetStartsAt().AsTime(), ends))
	}
	return identity(n.GetReceiver(), n.GetGroupKey(), statusName(n.GetStatus()), alerts)
}

func alertIdentity(fp, status string, starts, ends time.Time) string {
	e := ""
	if ends.Year() > 1 && status == "resolved" {
		e = ends.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%s/%s/%s/%s", fp, status, starts.UTC().Format(time.RFC3339Nano), e)
}

func identity(receiver, groupKey, status string, alerts []string) string {
	slices.Sort(alerts)
	return fmt.Sprintf("%s|%s|%s|%s", receiver, groupKey, status, strings.Join(alerts, ","))
}

func statusName(s heraldv1.Status) string {
	switch s {
	case heraldv1.Status_STATUS_FIRING:
		return "firing"
	case heraldv1.Status_STATUS_RESOLVED:
		return "resolved"
	}
	return s.String()
}

// resolvedOne returns the stored resolved notification, or nil.
// firingAll returns the first firing notification about exactly the alerts
// with these fingerprints, or nil.
func firingAll(ns []*heraldv1.Notification, fingerprints []string) *heraldv1.Notification {
	for _, n := range ns {
		if n.GetStatus() != heraldv1.Status_STATUS_FIRING || len(n.GetAlerts()) != len(fingerprints) {
			continue
		}
		got := make([]string, 0, len(n.GetAlerts()))
		for _, a := range n.GetAlerts() {
			got = append(got, a.GetFingerprint())
		}
		slices.Sort(got)
		if slices.Equal(got, fingerprints) {
			return n
		}
	}
	return nil
}

func resolvedOne(ns []*heraldv1.Notification) *heraldv1.Notification {
	for _, n := range ns {
		if n.GetStatus() == heraldv1.Status_STATUS_RESOLVED {
			return n
		}
	}
	return nil
}

var traceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

func checkNotification(t *testing.T, n *heraldv1.Notification, status heraldv1.Status, groupKey string, fingerprints []string, startsAt, endsAt time.Time) {
	t.Helper()
	if n.GetStatus() != status {
		t.Errorf("status %v, want %v", n.GetStatus(), status)
	}
	if n.GetSeverity() != heraldv1.Severity_SEVERITY_CRITICAL {
		t.Errorf("severity %v, want critical", n.GetSeverity())
	}
	if n.GetSource() != "alertmanager" || n.GetReceiver() != "herald" {
		t.Errorf("source %q receiver %q", n.GetSource(), n.GetReceiver())
	}
	if n.GetGroupKey() != groupKey {
		t.Errorf("group key %q, want %q", n.GetGroupKey(), groupKey)
	}
	if k := n.GetIdempotencyKey(); !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(k) {
		t.Errorf("idempotency key %q is not a hex SHA-256", k)
	}
	if n.GetLabels()["service"] != "checkout" || n.GetAnnotations()["summary"] != "Checkout is slow" {
		t.Errorf("labels %v annotations %v", n.GetLabels(), n.GetAnnotations())
	}
	var got []string
	for _, a := range n.GetAlerts() {
		got = append(got, a.GetFingerprint())
		if a.GetStatus() != status {
			t.Errorf("alert %s status %v, want %v", a.GetFingerprint(), a.GetStatus(), status)
		}
		if !a.GetStartsAt().AsTime().Equal(startsAt) {
			t.Errorf("alert %s startsAt %v, want %v", a.GetFingerprint(), a.GetStartsAt().AsTime(), startsAt)
		}
		switch {
		case endsAt.IsZero() && a.GetEndsAt() != nil:
			t.Errorf("firing alert %s has endsAt %v", a.GetFingerprint(), a.GetEndsAt().AsTime())
		case !endsAt.IsZero() && !a.GetEndsAt().AsTime().Equal(endsAt):
			t.Errorf("alert %s endsAt %v, want %v", a.GetFingerprint(), a.GetEndsAt().AsTime(), endsAt)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, fingerprints) {
		t.Errorf("fingerprints %v, want Alertmanager's %v", got, fingerprints)
	}
}

// apiAlert is an alert as Alertmanager's /api/v2/alerts takes it.
type apiAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     string            `json:"startsAt,omitempty"`
	EndsAt       string            `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// testAlerts is a group of two alerts; a non-zero endsAt resolves them.
func testAlerts(name string, startsAt, endsAt time.Time) []apiAlert {
	var out []apiAlert
	for _, instance := range []string{"api-0:8080", "api-1:8080"} {
		a := apiAlert{
			Labels:       map[string]string{"alertname": name, "service": "checkout", "instance": instance, "severity": "critical"},
			Annotations:  map[string]string{"summary": "Checkout is slow", "runbook_url": "https://runbooks.example.com/checkout"},
			StartsAt:     startsAt.Format(time.RFC3339Nano),
			GeneratorURL: "http://prometheus.example.com:9090/graph?g0.expr=up",
		}
		if !endsAt.IsZero() {
			a.EndsAt = endsAt.Format(time.RFC3339Nano)
		}
		out = append(out, a)
	}
	return out
}

// alertmanagerBinary finds the binary scripts/install-alertmanager.sh
// installs, or skips the test (fails it in CI, which installs it:
// testutil.Missing).
func alertmanagerBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real Alertmanager processes; skipped under -short")
	}
	bin := os.Getenv("HERALD_ALERTMANAGER_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", ".tools", "bin", "alertmanager")
	}
	if _, err := os.Stat(bin); err != nil {
		testutil.Missing(t, "Alertmanager binary not found: "+err.Error(), "run scripts/install-alertmanager.sh or make tools")
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

type amOptions struct {
	webhookURL string
	// cluster is this peer's cluster address; empty disables clustering.
	cluster string
	peers   []string
	// tracingEndpoint turns on Alertmanager's tracing (OTLP over HTTP to an
	// address where nothing listens), so that it sends traceparent.
	tracingEndpoint string
	// repeatInterval is the route's repeat_interval; empty means 1h.
	repeatInterval string
}

type alertmanager struct {
	url string
}

const configTemplate = `
route:
  receiver: herald
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: %s
receivers:
  - name: herald
    webhook_configs:
      - url: %q
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: %q
`

const tracingTemplate = `
tracing:
  client_type: http
  endpoint: %q
  insecure: true
  sampling_fraction: 1.0
`

// startAlertmanager runs Alertmanager on loopback until the test ends and
// waits until it is ready.
func startAlertmanager(t *testing.T, bin string, o amOptions) *alertmanager {
	t.Helper()
	dir := t.TempDir()
	repeat := o.repeatInterval
	if repeat == "" {
		repeat = "1h"
	}
	cfg := fmt.Sprintf(configTemplate, repeat, o.webhookURL, heraldToken)
	if o.tracingEndpoint != "" {
		cfg += fmt.Sprintf(tracingTemplate, o.tracingEndpoint)
	}
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	web := testutil.FreeAddr(t)
	am := &alertmanager{url: "http://" + web}
	args := []string{
		"--config.file=" + cfgPath,
		"--storage.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + web,
		"--web.external-url=" + am.url,
		"--cluster.listen-address=" + o.cluster,
		"--log.level=debug",
		// Drop finished groups promptly: the tests wait for that.
		"--dispatch.maintenance-interval=1s",
	}
	if o.cluster != "" {
		args = append(args,
			"--cluster.advertise-address="+o.cluster,
			// Slow gossip and a zero peer timeout: peers often notify before
			// they hear the other did, as happens when gossip lags in
			// production, so herald's dedup (not Alertmanager's) must keep
			// one copy. Joining does not wait for these intervals.
			"--cluster.gossip-interval=5s",
			"--cluster.pushpull-interval=30s",
			"--cluster.settle-timeout=2s",
			"--cluster.peer-timeout=0s",
			"--cluster.probe-interval=200ms",
			"--cluster.reconnect-interval=1s",
		)
		for _, p := range o.peers {
			args = append(args, "--cluster.peer="+p)
		}
	}

	out := &testutil.Buffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("Alertmanager %s output:\n%s", am.url, out.String())
		}
	})

	testutil.Eventually(t, waitLimit, "Alertmanager at "+am.url+" to be ready", func() bool {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("Alertmanager exited: %v\n%s", err, out.String())
		default:
		}
		resp, err := http.Get(am.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return am
}

func (am *alertmanager) postAlerts(t *testing.T, alerts []apiAlert) {
	t.Helper()
	body, err := json.Marshal(alerts)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(am.url+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /api/v2/alerts: %d %s", resp.StatusCode, b)
	}
}

// fingerprints returns the sorted fingerprints Alertmanager gave the alerts
// named name.
func (am *alertmanager) fingerprints(t *testing.T, name string) []string {
	t.Helper()
	var alerts []struct {
		Fingerprint string `json:"fingerprint"`
	}
	am.getJSON(t, "/api/v2/alerts?filter="+url.QueryEscape(`alertname="`+name+`"`), &alerts)
	var fps []string
	for _, a := range alerts {
		fps = append(fps, a.Fingerprint)
	}
	slices.Sort(fps)
	return fps
}

// clusterPeers is how many peers Alertmanager's cluster status lists.
func (am *alertmanager) clusterPeers(t *testing.T) int {
	t.Helper()
	var st struct {
		Cluster struct {
			Status string            `json:"status"`
			Peers  []json.RawMessage `json:"peers"`
		} `json:"cluster"`
	}
	am.getJSON(t, "/api/v2/status", &st)
	return len(st.Cluster.Peers)
}

// aggregationGroups is Alertmanager's count of live alert groups, from its
// own metrics. A group is dropped once its alerts resolved and the resolved
// notification was flushed.
func (am *alertmanager) aggregationGroups(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(am.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^alertmanager_dispatcher_aggregation_groups ([0-9.e+]+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s/metrics has no alertmanager_dispatcher_aggregation_groups", am.url)
	}
	var n float64
	if _, err := fmt.Sscan(string(m[1]), &n); err != nil {
		t.Fatal(err)
	}
	return int(n)
}

func (am *alertmanager) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(am.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}
