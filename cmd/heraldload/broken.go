package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/dispatch"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

// heldSettle bounds how long, after the healthy route has drained, the
// broken scenario waits for herald to report every notification of the
// broken route as held.
const heldSettle = 10 * time.Second

// brokenRoute is the name of the broken scenario's route to brokenSink.
const brokenRoute = "critical"

// holdNames are the values of herald_queue_groups_held's hold label.
var holdNames = []string{"retrying", "throttled", "broken"}

// brokenStats is what the broken scenario measured.
type brokenStats struct {
	// healthy matches the healthy route's webhooks to its fake's messages.
	healthy deliveryStats
	// critical is how many webhooks of the broken route were acknowledged.
	critical int
	// inChat is how many messages the broken fake stored (none: it is down).
	inChat   int
	attempts brokenAttempts
	// herald is what herald's log says about the broken route.
	herald routeRetries
	// loadStart is when the first webhook was sent.
	loadStart time.Time
	// waitThreshold is the shortest wait herald puts between two attempts
	// of a failing notification; waited counts the healthy notifications
	// whose receipt→chat was that long or longer, or that were not
	// delivered at all.
	waitThreshold time.Duration
	waited        int
	// held is herald_queue_groups_held by hold, heldNotifs
	// herald_queue_held_notifications, scrapedAfter when they were read,
	// after the end of the load; scrapeErr the last scrape's failure.
	held         map[string]float64
	heldNotifs   float64
	scrapedAfter time.Duration
	scrapeErr    error
}

// brokenAttempts summarises the requests the broken fake answered: an
// attempt of the Rocket.Chat sink is one request or more (a room lookup,
// then the post).
type brokenAttempts struct {
	requests int
	// distinct counts the load ids the requests' bodies named (the room
	// lookup names none).
	distinct int
	// minGap is the shortest time between two requests naming one load id
	// (0: none was named twice).
	minGap      time.Duration
	first, last time.Time
}

// attemptsOf summarises reqs.
func attemptsOf(reqs []rocketchattest.Request) brokenAttempts {
	var a brokenAttempts
	lastOf := map[int]time.Time{}
	for _, r := range reqs {
		a.requests++
		if a.first.IsZero() || r.At.Before(a.first) {
			a.first = r.At
		}
		if r.At.After(a.last) {
			a.last = r.At
		}
		seen := map[int]bool{}
		for _, sm := range tokenRE.FindAllStringSubmatch(string(r.Body), -1) {
			seq, _ := strconv.Atoi(sm[1])
			if seen[seq] {
				continue
			}
			seen[seq] = true
			if prev, ok := lastOf[seq]; ok {
				if gap := r.At.Sub(prev); a.minGap == 0 || gap < a.minGap {
					a.minGap = gap
				}
			}
			lastOf[seq] = r.At
		}
	}
	a.distinct = len(lastOf)
	return a
}

// routeRetries is what herald's log says about one route's failures.
type routeRetries struct {
	failed int // "delivery attempt failed": requests to a sink that failed
	// retries counts "no sink took the notification; retrying later": a
	// notification handed back to wait, by hold, of notifs notifications.
	retries map[string]int
	notifs  int
	// breakerOpened counts "circuit breaker open" of sink.
	breakerOpened int
}

var (
	logNotifRE = regexp.MustCompile(` notification_id=(\S+)`)
	logHoldRE  = regexp.MustCompile(` hold=(\w+)`)
)

// retriesIn reads herald's text log (log.level warn) for the failures of
// route, whose only sink is sink.
func retriesIn(log, route, sink string) routeRetries {
	rr := routeRetries{retries: map[string]int{}}
	ids := map[string]bool{}
	for _, line := range strings.Split(log, "\n") {
		switch {
		case strings.Contains(line, ` msg="circuit breaker open" `) && strings.Contains(line, " sink="+sink+" "):
			rr.breakerOpened++
		case !strings.Contains(line, " route="+route+" "):
		case strings.Contains(line, ` msg="delivery attempt failed" `):
			rr.failed++
		case strings.Contains(line, ` msg="no sink took the notification; retrying later" `):
			hold := "unknown"
			if m := logHoldRE.FindStringSubmatch(line); m != nil {
				hold = m[1]
			}
			rr.retries[hold]++
			if m := logNotifRE.FindStringSubmatch(line); m != nil {
				ids[m[1]] = true
			}
		}
	}
	rr.notifs = len(ids)
	return rr
}

// waitedAtLeast counts the webhooks of d that reached chat threshold or
// more after they were sent, or not at all.
func waitedAtLeast(d deliveryStats, threshold time.Duration) int {
	n := d.lost
	for _, l := range d.fromSend {
		if l >= threshold {
			n++
		}
	}
	return n
}

// splitLoad returns the part of lr whose webhooks keep(i) selects, i
// counted from lr.spec.firstSeq.
func splitLoad(lr *loadResult, keep func(i int) bool) *loadResult {
	out := &loadResult{spec: lr.spec, elapsed: lr.elapsed, errs: map[string]int{}}
	for _, s := range lr.sent {
		if !keep(s.seq - lr.spec.firstSeq) {
			continue
		}
		out.sent = append(out.sent, s)
		if s.status == http.StatusOK {
			out.ok++
		}
	}
	return out
}

// metricValues returns the samples of metric name in Prometheus text
// exposition, keyed by their labels as written between the braces (""
// for none).
func metricValues(text, name string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" {
			continue
		}
		labels := ""
		switch rest[0] {
		case '{':
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		case ' ':
		default:
			continue // another metric whose name starts with name
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[labels] = v
	}
	return out
}

// scrapeHeld reads herald_queue_groups_held (by hold) and
// herald_queue_held_notifications from herald's /metrics at base.
func scrapeHeld(ctx context.Context, base string) (map[string]float64, float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("/metrics: %s", resp.Status)
	}
	groups := metricValues(string(b), "herald_queue_groups_held")
	held := map[string]float64{}
	for _, h := range holdNames {
		v, ok := groups[`hold="`+h+`"`]
		if !ok {
			return nil, 0, fmt.Errorf("/metrics: no herald_queue_groups_held{hold=%q}", h)
		}
		held[h] = v
	}
	n, ok := metricValues(string(b), "herald_queue_held_notifications")[""]
	if !ok {
		return nil, 0, fmt.Errorf("/metrics: no herald_queue_held_notifications")
	}
	return held, n, nil
}

// watchBroken measures the broken scenario after its load: the healthy
// route's deliveries (as waitDelivered), then what herald holds of the
// broken route, read from its /metrics at base until every acknowledged
// notification of that route is held or heldSettle has passed.
func watchBroken(ctx context.Context, healthy, broken *rocketchattest.Server, base, logPath string, lr *loadResult, timeout time.Duration) *brokenStats {
	loadEnd := time.Now()
	st := &brokenStats{waitThreshold: dispatch.DefaultConfig().QuickBackoff}
	for _, s := range lr.sent {
		if st.loadStart.IsZero() || s.start.Before(st.loadStart) {
			st.loadStart = s.start
		}
	}
	st.critical = splitLoad(lr, toBrokenRoute).ok
	st.healthy = waitDelivered(ctx, healthy, splitLoad(lr, func(i int) bool { return !toBrokenRoute(i) }), timeout)
	st.waited = waitedAtLeast(st.healthy, st.waitThreshold)
	deadline := time.Now().Add(heldSettle)
	for {
		held, n, err := scrapeHeld(ctx, base)
		st.scrapeErr = err
		if err == nil {
			st.held, st.heldNotifs, st.scrapedAfter = held, n, time.Since(loadEnd)
			if int(n) >= st.critical {
				break
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	st.inChat = len(broken.AllMessages())
	st.attempts = attemptsOf(broken.Requests())
	if b, err := os.ReadFile(logPath); err == nil {
		st.herald = retriesIn(string(b), brokenRoute, brokenSink)
	}
	return st
}

func (b *brokenStats) print(w io.Writer, r *scenarioResult) {
	d := b.healthy
	fmt.Fprintf(w, "routes:          severity=\"critical\" (every %dth webhook) → %s, whose fake answers 503 to every request; the rest → %s, healthy; no fallback\n",
		brokenEvery, brokenSink, sinkName)
	fmt.Fprintf(w, "healthy route:   delivered %d of %d acknowledged (%.0f%%), lost %d, duplicated %d (waited %v after the load, drained: %v)%s\n",
		d.delivered, d.acked, 100*ratioOf(d.delivered, d.acked), d.lost, d.dup, d.waited.Round(time.Millisecond), d.drained, r.ceilingNote())
	fmt.Fprintf(w, "receipt→chat:    p50 %s, p99 %s, max %s (healthy route, from sending the webhook)\n",
		ms(percentile(d.fromSend, 50)), ms(percentile(d.fromSend, 99)), ms(percentile(d.fromSend, 100)))
	fmt.Fprintf(w, "200→chat:        p50 %s, p99 %s, max %s (healthy route)\n",
		ms(percentile(d.fromAck, 50)), ms(percentile(d.fromAck, 99)), ms(percentile(d.fromAck, 100)))
	fmt.Fprintf(w, "waited:          %d healthy notifications took %v or more, or were not delivered (%v: dispatch.quick_backoff, the shortest wait herald puts between two attempts of a failing notification)\n",
		b.waited, b.waitThreshold, b.waitThreshold)
	a, h := b.attempts, b.herald
	fmt.Fprintf(w, "broken route:    %d acknowledged, %d stored in its chat; herald's log: %d attempts failed, circuit breaker opened %d time(s), %d notifications handed back to wait %d times (%s)\n",
		b.critical, b.inChat, h.failed, h.breakerOpened, h.notifs, sum(h.retries), holdsString(h.retries))
	fmt.Fprintf(w, "broken fake:     answered %d requests (503)", a.requests)
	if a.requests > 0 {
		fmt.Fprintf(w, ", from %.1f s to %.1f s after the first webhook", a.first.Sub(b.loadStart).Seconds(), a.last.Sub(b.loadStart).Seconds())
	}
	if a.minGap > 0 {
		fmt.Fprintf(w, "; shortest time between two requests for one notification %s", ms(a.minGap))
	}
	fmt.Fprintln(w)
	if b.held != nil {
		fmt.Fprintf(w, "held:            herald_queue_groups_held retrying %.0f, throttled %.0f, broken %.0f; herald_queue_held_notifications %.0f of %d (scraped %v after the load)\n",
			b.held["retrying"], b.held["throttled"], b.held["broken"], b.heldNotifs, b.critical, b.scrapedAfter.Round(time.Millisecond))
	}
	if b.scrapeErr != nil {
		fmt.Fprintf(w, "held:            last scrape failed: %v\n", b.scrapeErr)
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// holdsString prints counts by hold in holdNames order, then any other.
func holdsString(m map[string]int) string {
	var parts []string
	for _, h := range holdNames {
		parts = append(parts, fmt.Sprintf("%s %d", h, m[h]))
	}
	var other []string
	for h := range m {
		if !slices.Contains(holdNames, h) {
			other = append(other, h)
		}
	}
	slices.Sort(other)
	for _, h := range other {
		parts = append(parts, fmt.Sprintf("%s %d", h, m[h]))
	}
	return strings.Join(parts, ", ")
}
