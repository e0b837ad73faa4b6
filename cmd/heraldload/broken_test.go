package main

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/dispatch"
	"github.com/herald-notify/herald/internal/route"
	"github.com/herald-notify/herald/internal/shim"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

// TestBrokenConfigRoutesEveryFourthWebhook checks the broken scenario end
// to end short of herald: its config file is valid, and herald's router
// sends exactly the webhooks toBrokenRoute names to the broken sink,
// whichever template a webhook stamps.
func TestBrokenConfigRoutesEveryFourthWebhook(t *testing.T) {
	ts, err := makeTemplatesWith(16, 5, 3, brokenSeverity)
	if err != nil {
		t.Fatal(err)
	}
	sc := &scenario{name: "broken", broken: true}
	cfg, err := config.Parse("broken.yml", []byte(sc.config("http://127.0.0.1:1", "http://127.0.0.1:2")))
	if err != nil {
		t.Fatal(err)
	}
	table, err := route.New(cfg.Routes)
	if err != nil {
		t.Fatal(err)
	}
	critical := 0
	for i := range 64 {
		m, err := shim.Decode(bytes.NewReader(ts[i%len(ts)].stamp(i)))
		if err != nil {
			t.Fatal(err)
		}
		ns, err := shim.Convert(m)
		if err != nil {
			t.Fatal(err)
		}
		d := table.Route(ns[0])
		if len(d.Chain) != 1 {
			t.Fatalf("webhook %d: chain %v, want one sink (no fallback)", i, d.Chain)
		}
		want := sinkName
		if toBrokenRoute(i) {
			want = brokenSink
			critical++
		}
		if got := d.Chain[0].Sink; got != want {
			t.Errorf("webhook %d (severity %v): routed to %s, want %s", i, ns[0].GetSeverity(), got, want)
		}
	}
	if critical != 16 {
		t.Errorf("%d of 64 webhooks critical, want 16", critical)
	}
}

// TestBrokenSeverityKeepsTheRest checks that forcing severities leaves the
// rest of each body as makeTemplates draws it.
func TestBrokenSeverityKeepsTheRest(t *testing.T) {
	plain, err := makeTemplates(8, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	forced, err := makeTemplatesWith(8, 5, 3, func(int, string) string { return "info" })
	if err != nil {
		t.Fatal(err)
	}
	for i := range plain {
		p, err := shim.Decode(bytes.NewReader(plain[i].stamp(1)))
		if err != nil {
			t.Fatal(err)
		}
		f, err := shim.Decode(bytes.NewReader(forced[i].stamp(1)))
		if err != nil {
			t.Fatal(err)
		}
		if f.CommonLabels["severity"] != "info" {
			t.Errorf("template %d: severity %q, want info", i, f.CommonLabels["severity"])
		}
		if p.GroupKey != f.GroupKey || len(p.Alerts) != len(f.Alerts) || p.Alerts[0].Fingerprint != f.Alerts[0].Fingerprint {
			t.Errorf("template %d: forcing the severity changed the rest", i)
		}
	}
	for _, c := range []struct {
		i           int
		drawn, want string
	}{{0, "info", "critical"}, {4, "warning", "critical"}, {1, "critical", "warning"}, {2, "info", "info"}, {3, "warning", "warning"}} {
		if got := brokenSeverity(c.i, c.drawn); got != c.want {
			t.Errorf("brokenSeverity(%d, %q) = %q, want %q", c.i, c.drawn, got, c.want)
		}
	}
}

// TestSlowConfigSetsInFlightBounds checks that -delivery-concurrency
// becomes dispatch's in-flight bounds, and that the bound printed is
// herald's default without it.
func TestSlowConfigSetsInFlightBounds(t *testing.T) {
	for _, c := range []struct {
		sc                     scenario
		wantTotal, wantPerSink int
		wantBound              int
	}{
		{scenario{name: "slow", deliveryConc: 8}, 8, 8, 8},
		{scenario{name: "broken", broken: true, deliveryConc: 8}, 16, 8, 8},
		{scenario{name: "slow"}, 64, 32, 32}, // dispatch's defaults, applied by the config
	} {
		cfg, err := config.Parse("slow.yml", []byte(c.sc.config("http://127.0.0.1:1", "http://127.0.0.1:2")))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Dispatch.MaxInFlight != c.wantTotal || cfg.Dispatch.MaxInFlightPerSink != c.wantPerSink {
			t.Errorf("%+v: max_in_flight %d, per sink %d; want %d, %d", c.sc, cfg.Dispatch.MaxInFlight, cfg.Dispatch.MaxInFlightPerSink, c.wantTotal, c.wantPerSink)
		}
		if cfg.Queue.Concurrency != 0 {
			t.Errorf("queue.concurrency set: %d", cfg.Queue.Concurrency)
		}
		if got := deliveryBound(c.sc.deliveryConc); got != c.wantBound {
			t.Errorf("deliveryBound(%d) = %d, want %d", c.sc.deliveryConc, got, c.wantBound)
		}
	}
	d := dispatch.DefaultConfig()
	if deliveryBound(0) != min(d.MaxInFlightPerSink, d.MaxInFlight) {
		t.Error("deliveryBound(0) is not herald's default")
	}
}

func TestSplitLoad(t *testing.T) {
	lr := &loadResult{spec: loadSpec{firstSeq: 100}, elapsed: time.Second}
	for i := range 10 {
		st := http.StatusOK
		if i == 4 {
			st = http.StatusServiceUnavailable
		}
		lr.sent = append(lr.sent, sent{seq: 100 + i, status: st})
	}
	crit := splitLoad(lr, toBrokenRoute)
	rest := splitLoad(lr, func(i int) bool { return !toBrokenRoute(i) })
	if len(crit.sent) != 3 || crit.ok != 2 { // 100, 104 (refused), 108
		t.Errorf("broken route: %d sent, %d ok; want 3, 2", len(crit.sent), crit.ok)
	}
	if len(rest.sent) != 7 || rest.ok != 7 {
		t.Errorf("healthy route: %d sent, %d ok; want 7, 7", len(rest.sent), rest.ok)
	}
	if crit.spec.firstSeq != 100 || crit.elapsed != time.Second {
		t.Error("the split lost the spec or the elapsed time")
	}
}

func TestMetricValues(t *testing.T) {
	text := `# HELP herald_queue_groups_held Groups held back.
# TYPE herald_queue_groups_held gauge
herald_queue_groups_held{hold="broken"} 47
herald_queue_groups_held{hold="retrying"} 3
herald_queue_groups_held{hold="throttled"} 0
herald_queue_groups_held_total{hold="broken"} 120
herald_queue_held_notifications 50
herald_queue_held_notifications_x 9
`
	g := metricValues(text, "herald_queue_groups_held")
	if len(g) != 3 || g[`hold="broken"`] != 47 || g[`hold="retrying"`] != 3 || g[`hold="throttled"`] != 0 {
		t.Errorf("groups held: %v", g)
	}
	n := metricValues(text, "herald_queue_held_notifications")
	if len(n) != 1 || n[""] != 50 {
		t.Errorf("held notifications: %v", n)
	}
	if len(metricValues(text, "herald_missing")) != 0 {
		t.Error("a metric that is not there has values")
	}
}

func TestAttemptsOf(t *testing.T) {
	t0 := time.Now()
	post := func(seq int, at time.Duration) rocketchattest.Request {
		return rocketchattest.Request{Endpoint: "chat.sendMessage", At: t0.Add(at),
			Body: []byte(`{"text":"loadid=` + loadToken(seq) + ` again ` + loadToken(seq) + `"}`)}
	}
	a := attemptsOf([]rocketchattest.Request{
		post(1, 0), post(2, 10*time.Millisecond), post(1, 600*time.Millisecond),
		{Endpoint: "rooms.info", At: t0.Add(6 * time.Second)},
		post(1, 1600*time.Millisecond), post(2, 5*time.Second),
	})
	if a.requests != 6 || a.distinct != 2 {
		t.Errorf("requests %d, distinct %d; want 6, 2", a.requests, a.distinct)
	}
	if a.minGap != 600*time.Millisecond {
		t.Errorf("shortest gap %v, want 600ms", a.minGap)
	}
	if !a.first.Equal(t0) || !a.last.Equal(t0.Add(6*time.Second)) {
		t.Errorf("first %v, last %v", a.first.Sub(t0), a.last.Sub(t0))
	}
}

func TestRetriesIn(t *testing.T) {
	// Lines as herald's text logger writes them (trace ids cut).
	log := `time=2026-12-04T14:57:56.302Z level=WARN msg="delivery attempt failed" component=dispatch notification_id=A group=g1 route=critical sink=rocketchat-broken attempt=1 class=retryable err="rocketchat: rooms.info: HTTP 503" probe=false
time=2026-12-04T14:57:56.642Z level=WARN msg="circuit breaker open" component=dispatch sink=rocketchat-broken from=closed reason="HTTP 503"
time=2026-12-04T14:57:56.643Z level=WARN msg="no sink took the notification; retrying later" component=dispatch notification_id=A group=g1 route=critical delay=3.3s hold=retrying delivered=1 reason="rocketchat-broken: HTTP 503"
time=2026-12-04T14:57:56.643Z level=WARN msg="group held back" component=queue partition=14 group=x hold=retrying route=critical waiting=1 due_in=3.395s
time=2026-12-04T14:57:56.841Z level=WARN msg="no sink took the notification; retrying later" component=dispatch notification_id=B group=g2 route=critical delay=4.8s hold=broken delivered=1 reason="rocketchat-broken: circuit open"
time=2026-12-04T14:58:00.040Z level=WARN msg="no sink took the notification; retrying later" component=dispatch notification_id=A group=g1 route=critical delay=8.1s hold=broken delivered=2 reason="rocketchat-broken: circuit open"
time=2026-12-04T14:58:00.041Z level=WARN msg="no sink took the notification; retrying later" component=dispatch notification_id=C group=g3 route=default delay=2s hold=retrying delivered=1 reason="rocketchat: HTTP 503"
time=2026-12-04T14:58:00.042Z level=WARN msg="circuit breaker open" component=dispatch sink=rocketchat from=closed reason="HTTP 503"
`
	rr := retriesIn(log, "critical", "rocketchat-broken")
	if rr.failed != 1 || rr.breakerOpened != 1 || rr.notifs != 2 {
		t.Errorf("failed %d, breaker opened %d, notifications %d; want 1, 1, 2", rr.failed, rr.breakerOpened, rr.notifs)
	}
	if rr.retries["retrying"] != 1 || rr.retries["broken"] != 2 || len(rr.retries) != 2 {
		t.Errorf("retries %v", rr.retries)
	}
	if got := holdsString(rr.retries); got != "retrying 1, throttled 0, broken 2" {
		t.Errorf("holdsString = %q", got)
	}
}

func TestWaitedAtLeast(t *testing.T) {
	d := deliveryStats{lost: 2, fromSend: []time.Duration{time.Millisecond, 499 * time.Millisecond, 500 * time.Millisecond, 3 * time.Second}}
	if got := waitedAtLeast(d, 500*time.Millisecond); got != 4 {
		t.Errorf("waited %d, want 4: two slow, two never delivered", got)
	}
	if got := waitedAtLeast(deliveryStats{fromSend: []time.Duration{time.Millisecond}}, 500*time.Millisecond); got != 0 {
		t.Errorf("waited %d, want 0", got)
	}
}
