// Package lanes_test shows, with a whole herald in process (apptest: real
// config, embedded JetStream, dispatcher, HTTP server) and strict fake
// Rocket.Chat servers, that herald keeps order per alert group and makes
// nothing else wait:
//
//   - a route whose chat server is down holds back only its own groups:
//     every other route's notifications are delivered, each group in
//     publish order, before the broken route's first retry backoff has
//     even ended, and /metrics shows the broken route's groups held; once
//     the server is back, the held groups are delivered, each in order;
//   - a sink that answers 429 with X-RateLimit-Reset delays only its own
//     channel: the other route's notifications are delivered before the
//     throttle's reset, and the throttled ones after it, in order;
//   - on an incoming webhook paced like Rocket.Chat's (10 posts per window
//     per hook), a critical alert sent during a storm of info alerts is the
//     next post the hook receives, before any further info digest.
//
// Bounds on time are taken from herald's configured backoff or from the
// fake's rate-limit reset, never from how fast a machine is; every other
// wait is a generous guard against a hung test.
package lanes_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/app/apptest"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

// TestBrokenRouteDoesNotDelayHealthy sends 200 Alertmanager webhooks, a
// quarter of them critical and routed to a Rocket.Chat that answers 503,
// the others to a healthy one, and checks that the healthy route does not
// wait for the broken one.
func TestBrokenRouteDoesNotDelayHealthy(t *testing.T) {
	skipShort(t)
	broken := rocketchattest.NewServer(rocketchattest.WithRooms("alerts-critical"))
	t.Cleanup(broken.Close)
	broken.SetDown(true)
	healthy := rocketchattest.NewServer(rocketchattest.WithRooms("alerts-info"))
	t.Cleanup(healthy.Close)

	// Quick retries and the breaker are short so that the broken route
	// settles into waiting at once; its backoff is long enough to be the
	// yardstick below, and short enough to end the test soon after the
	// server is back.
	h := apptest.Start(t, fmt.Sprintf(`
auth:
  clients: [{name: lanes, token: %s}]
dispatch:
  quick_retries: 1
  quick_backoff: 100ms
  quick_retry_budget: 1s
  attempt_timeout: 2s
  backoff_initial: 10s
  backoff_max: 10s
  breaker: {failures: 5, open_for: 500ms}
sinks:
  - name: rc-critical
    rocketchat: {url: %s, mode: rest, user_id: %s, token: %q, channel: "#alerts-critical"}
  - name: rc-main
    rocketchat: {url: %s, mode: rest, user_id: %s, token: %q, channel: "#alerts-info"}
routes:
  - name: critical
    matchers: ['severity="critical"']
    chain: [rc-critical]
  - name: default
    chain: [rc-main]
`, apiToken, broken.URL, broken.UserID(), broken.Token(), healthy.URL, healthy.UserID(), healthy.Token()),
		apptest.Options{Logger: quietLogger(t)})

	// 40 critical groups (50 notifications: 5 groups fire, grow and
	// resolve) among 130 other groups (150 notifications, 10 groups of
	// three), one critical group in four.
	var groups [][]*note
	var brokenNotes, healthyNotes []*note
	nCrit, nOther := 0, 0
	for g := range 170 {
		if g%4 == 0 && nCrit < 40 {
			size := 1
			if nCrit < 5 {
				size = 3
			}
			ns := group(g, size, "critical")
			groups = append(groups, ns)
			brokenNotes = append(brokenNotes, ns...)
			nCrit++
			continue
		}
		size, sev := 1, "warning"
		if nOther < 10 {
			size = 3
		}
		if nOther%2 == 1 {
			sev = "info"
		}
		ns := group(g, size, sev)
		groups = append(groups, ns)
		healthyNotes = append(healthyNotes, ns...)
		nOther++
	}
	notes := interleave(groups)
	if len(notes) != 200 || len(brokenNotes) != 50 {
		t.Fatalf("test setup: %d notes, %d critical", len(notes), len(brokenNotes))
	}

	start := time.Now()
	publish(t, h, notes)
	published := time.Since(start)

	// A critical group's first notification is attempted once it is
	// published, fails, and the group then waits at least the shortest
	// first backoff (backoff_initial with equal jitter: between half and
	// all of it) before its head is tried again. So every healthy
	// notification must be posted within that backoff of its own
	// publish, and all of them before the last critical group's first
	// backoff can have ended: while the broken route is still in its
	// first backoff. (Counting from the last group rather than the first
	// keeps the time it takes to publish 200 webhooks out of the bound.)
	// The old design (16 partitions, one notification in flight each)
	// failed this: a healthy group hashed to a partition whose head was a
	// critical one waited for the broken route.
	minBackoff := h.Config.Dispatch.BackoffInitial / 2
	var lastGroupStart time.Time
	for _, n := range brokenNotes {
		if n.step == 0 && n.sent.After(lastGroupStart) {
			lastGroupStart = n.sent
		}
	}
	backoffEnds := lastGroupStart.Add(minBackoff)
	for !allPosted(healthy, healthyNotes) {
		if time.Now().After(backoffEnds) {
			t.Fatalf("%d of %d healthy notifications were not posted within %s (the broken route's shortest first backoff) of the last critical group's first notification being sent",
				len(healthyNotes)-countPosted(healthy, healthyNotes), len(healthyNotes), minBackoff)
		}
		time.Sleep(20 * time.Millisecond)
	}
	seen := posted(healthy)
	var lastHealthy time.Time
	var slowest time.Duration
	for _, n := range healthyNotes {
		at := seen[n.marker()].at
		if at.After(lastHealthy) {
			lastHealthy = at
		}
		lat := at.Sub(n.sent)
		slowest = max(slowest, lat)
		if lat >= minBackoff {
			t.Errorf("%v was posted %s after it was sent: it waited as long as the broken route's shortest first backoff (%s)",
				n, lat.Round(time.Millisecond), minBackoff)
		}
	}
	checkGroupOrder(t, healthy, healthyNotes)
	if n := countPosted(broken, brokenNotes); n != 0 {
		t.Fatalf("the broken server took %d notifications while down", n)
	}

	// Operators see the broken route's groups held back, and nothing of
	// the healthy route waiting.
	var m metrics
	testutil.Eventually(t, hang, "the broken route's groups reported held in /metrics", func() bool {
		m = scrape(t, h)
		retrying, _ := m.value("herald_queue_groups_held", "hold", "retrying")
		brk, _ := m.value("herald_queue_groups_held", "hold", "broken")
		waiting, _ := m.value("herald_queue_held_notifications")
		age, critWaits := m.value("herald_queue_oldest_waiting_seconds", "route", "critical")
		_, defaultWaits := m.value("herald_queue_oldest_waiting_seconds", "route", "default")
		return retrying+brk > 0 && waiting > 0 && critWaits && age > 0 && !defaultWaits
	})
	retrying, _ := m.value("herald_queue_groups_held", "hold", "retrying")
	brk, _ := m.value("herald_queue_groups_held", "hold", "broken")
	waiting, _ := m.value("herald_queue_held_notifications")
	age, _ := m.value("herald_queue_oldest_waiting_seconds", "route", "critical")
	t.Logf("published 200 webhooks in %s; healthy route done %s after the last critical group started, slowest healthy notification %s (a first backoff lasts at least %s); held: %v retrying, %v broken, %v notifications, oldest critical waiting %.1fs",
		published.Round(time.Millisecond), lastHealthy.Sub(lastGroupStart).Round(time.Millisecond), slowest.Round(time.Millisecond),
		minBackoff, retrying, brk, waiting, age)

	// The server comes back: every held group is delivered, in order.
	broken.SetDown(false)
	healed := time.Now()
	testutil.Eventually(t, hang, "every critical notification posted once the server is back", func() bool { return allPosted(broken, brokenNotes) })
	t.Logf("critical route drained %s after the server came back", time.Since(healed).Round(time.Millisecond))
	checkGroupOrder(t, broken, brokenNotes)
	waitDelivered(t, h, healthyNotes, "rc-main")
	waitDelivered(t, h, brokenNotes, "rc-critical")
	testutil.Eventually(t, hang, "no group held once everything is delivered", func() bool {
		m := scrape(t, h)
		sum := 0.0
		for _, hold := range []string{"retrying", "throttled", "broken"} {
			v, _ := m.value("herald_queue_groups_held", "hold", hold)
			sum += v
		}
		waiting, _ := m.value("herald_queue_held_notifications")
		return sum == 0 && waiting == 0
	})
}

// TestThrottledSinkDelaysOnlyItsChannel routes warnings to a Rocket.Chat
// whose bot has no rate-limit bypass, so that it answers 429 with
// X-RateLimit-Reset once its window is full, and everything else to
// another, and checks that the throttle delays only the warnings: whether
// a throttled warning waits in its channel's lane for the next digest (the
// default) or its group is parked in the queue until the reset (a wait
// longer than throttle_hold).
func TestThrottledSinkDelaysOnlyItsChannel(t *testing.T) {
	skipShort(t)
	tests := []struct {
		name string
		// limit is the throttled server's posts per window.
		limit    int
		dispatch string
		// parked: the throttled groups are parked, held "throttled".
		parked bool
	}{
		// A window of 5 posts: after the reset the waiting warnings go
		// out in digests.
		{name: "waiting in the lane", limit: 5, dispatch: "{}"},
		// The throttle outlasts throttle_hold and the quick retry budget,
		// and the backoff is shorter than the throttle: each warning
		// group is parked until the reset. A window of 40 then takes
		// every warning, one post each.
		{name: "parked until the reset", limit: 40, parked: true,
			dispatch: "{quick_retry_budget: 500ms, throttle_hold: 500ms, backoff_initial: 1s}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { throttledRoute(t, tt.limit, tt.dispatch, tt.parked) })
	}
}

func throttledRoute(t *testing.T, limit int, dispatch string, parked bool) {
	const window = 6 * time.Second
	throttled := rocketchattest.NewServer(rocketchattest.WithRooms("alerts-warning"),
		rocketchattest.WithBotRole(false), rocketchattest.WithRateLimit(limit, window))
	t.Cleanup(throttled.Close)
	healthy := rocketchattest.NewServer(rocketchattest.WithRooms("alerts-info"))
	t.Cleanup(healthy.Close)
	h := apptest.Start(t, fmt.Sprintf(`
auth:
  clients: [{name: lanes, token: %s}]
dispatch: %s
sinks:
  - name: rc-warning
    rocketchat: {url: %s, mode: rest, user_id: %s, token: %q, channel: "#alerts-warning"}
  - name: rc-main
    rocketchat: {url: %s, mode: rest, user_id: %s, token: %q, channel: "#alerts-info"}
routes:
  - name: warning
    matchers: ['severity="warning"']
    chain: [rc-warning]
  - name: default
    chain: [rc-main]
`, apiToken, dispatch, throttled.URL, throttled.UserID(), throttled.Token(), healthy.URL, healthy.UserID(), healthy.Token()),
		apptest.Options{Logger: quietLogger(t)})

	// 24 warning groups (4 fire, grow and resolve): 32 notifications.
	var warnGroups [][]*note
	var warnNotes []*note
	for g := range 24 {
		size := 1
		if g < 4 {
			size = 3
		}
		ns := group(g, size, "warning")
		warnGroups = append(warnGroups, ns)
		warnNotes = append(warnNotes, ns...)
	}
	// 40 other groups (10 of three): 60 notifications.
	var laterGroups [][]*note
	var healthyNotes []*note
	for i := range 40 {
		size, sev := 1, "info"
		if i < 10 {
			size = 3
		}
		if i%4 == 0 {
			sev = "critical"
		}
		ns := group(100+i, size, sev)
		laterGroups = append(laterGroups, ns)
		healthyNotes = append(healthyNotes, ns...)
	}

	// Another client of the same Rocket.Chat user has just used up the
	// window, so herald's first post of a warning is answered 429 with
	// X-RateLimit-Reset; the throttle lasts until that reset.
	useUpWindow(t, throttled, "alerts-warning", limit)
	var firsts []*note
	for _, g := range warnGroups {
		firsts = append(firsts, g[0])
		if len(g) > 1 {
			laterGroups = append(laterGroups, g[1:])
		}
	}
	publish(t, h, firsts)
	var reset time.Time
	testutil.Eventually(t, hang, "herald's post throttled", func() bool {
		for _, r := range throttled.Requests() {
			if r.Endpoint == "chat.sendMessage" && r.Status == http.StatusTooManyRequests {
				reset = r.RateLimitReset()
				return true
			}
		}
		return false
	})
	if time.Until(reset) < window/2 {
		t.Fatalf("test setup: only %s of the throttle left after publishing %d notifications", time.Until(reset), len(firsts))
	}

	// While the throttle lasts, the other groups, and the warning groups'
	// later notifications, are published. Every other notification must
	// be posted before the throttle's reset: the old design (16
	// partitions, one notification in flight each) held a partition while
	// its head waited for the throttled sink, and with it every group of
	// the partition.
	publish(t, h, interleave(laterGroups))
	for !allPosted(healthy, healthyNotes) {
		if time.Now().After(reset) {
			t.Fatalf("%d of %d notifications of the unthrottled route were not posted before the other sink's throttle ended",
				len(healthyNotes)-countPosted(healthy, healthyNotes), len(healthyNotes))
		}
		time.Sleep(20 * time.Millisecond)
	}
	doneAt := time.Now()
	checkGroupOrder(t, healthy, healthyNotes)
	if n := countPosted(throttled, warnNotes); n != 0 {
		t.Errorf("the throttled server posted %d warnings while its window was full", n)
	}
	// Operators see the warnings waiting (their groups held back, when
	// parked), and nothing of the other route.
	testutil.Eventually(t, time.Until(reset), "only the throttled route reported waiting in /metrics", func() bool {
		m := scrape(t, h)
		age, warnWaits := m.value("herald_queue_oldest_waiting_seconds", "route", "warning")
		_, defaultWaits := m.value("herald_queue_oldest_waiting_seconds", "route", "default")
		held, _ := m.value("herald_queue_groups_held", "hold", "throttled")
		waiting, _ := m.value("herald_queue_held_notifications")
		return warnWaits && age > 0 && !defaultWaits && (!parked || held > 0 && waiting > 0)
	})

	// After the reset the warnings arrive, each group in order.
	testutil.Eventually(t, hang, "every warning posted after the throttle", func() bool { return allPosted(throttled, warnNotes) })
	checkGroupOrder(t, throttled, warnNotes)
	seen := posted(throttled)
	for _, n := range warnNotes {
		if at := seen[n.marker()].at; at.Before(reset) {
			t.Errorf("%v posted at %s, before the throttle's reset %s", n, at.Format(time.StampMilli), reset.Format(time.StampMilli))
		}
	}
	waitDelivered(t, h, healthyNotes, "rc-main")
	waitDelivered(t, h, warnNotes, "rc-warning")
	testutil.Eventually(t, hang, "no group held once everything is delivered", func() bool {
		v, _ := scrape(t, h).value("herald_queue_held_notifications")
		return v == 0
	})
	t.Logf("other route done %s before the throttle's reset; %d warnings posted after it; the throttled server answered %d requests with 429",
		reset.Sub(doneAt).Round(time.Millisecond), len(warnNotes), countStatus(throttled, http.StatusTooManyRequests))
}

// TestCriticalFirstUnderInfoStorm shares one Rocket.Chat incoming webhook,
// paced like Rocket.Chat's (10 posts per window per hook; the window is
// shortened, on both sides, from the real 60s), between #alerts-info and
// #alerts-critical. A storm of info alerts fills the window and queues up
// for digests; a critical alert sent then must be the hook's next post.
func TestCriticalFirstUnderInfoStorm(t *testing.T) {
	skipShort(t)
	const (
		limit  = 10
		window = 5 * time.Second
	)
	srv := rocketchattest.NewServer(rocketchattest.WithRateLimit(limit, window), rocketchattest.WithRooms("alerts-critical"))
	t.Cleanup(srv.Close)
	hook := srv.AddHook("alerts-info", rocketchattest.HookOverrideChannel())
	h := apptest.Start(t, fmt.Sprintf(`
auth:
  clients: [{name: lanes, token: %s}]
sinks:
  - name: rc-hook
    rocketchat:
      mode: webhook
      webhook_url: %s
      webhook_rate: {count: %d, per: %s}
      webhook_override_channel: true
routes:
  - name: critical
    matchers: ['severity="critical"']
    channels: {rc-hook: "#alerts-critical"}
    chain: [rc-hook]
  - name: default
    channels: {rc-hook: "#alerts-info"}
    chain: [rc-hook]
`, apiToken, srv.URL+hook, limit, window), apptest.Options{Logger: quietLogger(t)})

	var infos []*note
	for g := range 40 {
		infos = append(infos, group(g, 1, "info")...)
	}
	crit := group(500, 1, "critical")

	// The storm fills the hook's window; the rest of it waits in the
	// channel's lane for the window to move.
	publish(t, h, infos)
	var reset time.Time
	testutil.Eventually(t, hang, "the hook's window full", func() bool {
		n := 0
		for _, r := range srv.Requests() {
			if r.Endpoint == "webhook" && r.Status == 200 {
				n++
				reset = r.RateLimitReset()
			}
		}
		return n >= limit
	})
	if n := countPosted(srv, infos); n == len(infos) {
		t.Fatalf("test setup: all %d infos fit the hook's first window", n)
	}
	// Time for the critical alert to reach its lane well before the
	// window moves (a guard on the test's own premise, not on herald).
	if left := time.Until(reset); left < window/4 {
		t.Fatalf("test setup: only %s of the hook's window left after the storm", left)
	}

	sentCrit := time.Now()
	publish(t, h, crit)
	testutil.Eventually(t, hang, "the critical alert posted", func() bool { return allPosted(srv, crit) })

	// The first post the hook received after the critical alert was sent
	// is the critical alert, in its channel, before the infos that had
	// been waiting longer.
	var after []rocketchattest.Request
	for _, r := range srv.Requests() {
		if r.Endpoint == "webhook" && r.Status == 200 && !r.At.Before(sentCrit) {
			after = append(after, r)
		}
	}
	if len(after) == 0 {
		t.Fatal("no post recorded after the critical alert was sent")
	}
	if got := markerRE.FindAllString(string(after[0].Body), -1); !slices.Equal(got, []string{crit[0].marker()}) {
		t.Errorf("the hook's first post after the critical alert was sent carried %v, want only %s", got, crit[0].marker())
	}
	if ms := srv.Messages("alerts-critical"); len(ms) != 1 || !strings.Contains(ms[0].Text, crit[0].marker()) {
		t.Errorf("#alerts-critical holds %d messages, want the critical alert's", len(ms))
	}

	// Every info still arrives, in digests.
	testutil.Eventually(t, hang, "every info posted", func() bool { return allPosted(srv, infos) })
	digests, infoPosts := 0, 0
	for _, m := range srv.Messages("alerts-info") {
		infoPosts++
		if len(markerRE.FindAllString(m.Text, -1)) > 1 {
			digests++
		}
	}
	if digests == 0 {
		t.Errorf("the %d infos went out in %d posts, none of them a digest", len(infos), infoPosts)
	}
	if n := countStatus(srv, http.StatusTooManyRequests); n != 0 {
		t.Errorf("the hook answered %d requests with 429: herald did not pace itself", n)
	}
	waitDelivered(t, h, append(infos, crit...), "rc-hook")
	t.Logf("critical sent %s before the window moved; %d infos in %d posts (%d digests)",
		reset.Sub(sentCrit).Round(time.Millisecond), len(infos), infoPosts, digests)
}
