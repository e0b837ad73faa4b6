package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/herald-notify/herald/internal/dispatch"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

// scenario is one herald run: a fresh data dir and a fresh fake.
type scenario struct {
	name      string
	dir       string
	templates []*template
	load      loadSpec
	// slowDelay > 0 makes the fake hold every chat.sendMessage that long.
	slowDelay  time.Duration
	partitions int
	// queueURL, when set, points herald at that NATS cluster, with its
	// streams and buckets at queueReplicas replicas.
	queueURL      string
	queueReplicas int
	// logLevel is herald's log.level; "" is warn.
	logLevel string
	// deliveryConc > 0 sets dispatch.max_in_flight_per_sink to it and
	// dispatch.max_in_flight to it times the number of sinks, so that each
	// sink's bound is deliveryConc; 0 keeps herald's defaults.
	deliveryConc int
	// broken gives herald two routes, each with its own fake and no
	// fallback: severity="critical" to one that answers 503 to every
	// request, the rest to a healthy one (see brokenSeverity).
	broken       bool
	drainTimeout time.Duration
	restarts     int
	bare         bool // also measure the bare decode-only handler
	// bareAtRate also drives the bare handler at the scenario's rate for
	// bareRefSpan and measures its CPU: a reference for how fast this
	// machine is right now, which moves by a fifth within a day on a VM
	// that shares its host.
	bareAtRate bool
	// holdSink makes the fake hold every chat post far longer than the
	// sink's timeout: herald then only ingests (its deliveries wait),
	// and deliveries are not counted.
	holdSink bool
	// ceilingConc is the concurrency the load generator's ceiling is
	// measured at.
	ceilingConc int
	bin         string
	profile     string // path prefix of herald's profiles, "" for none
	env         []string
}

// firstSeqOf gives every scenario its own range of load ids.
func firstSeqOf(name string) int {
	return map[string]int{"ingest": 1_000_000, "e2e": 2_000_000, "slow": 3_000_000, "ingest-only": 4_000_000, "broken": 5_000_000, "scale": 6_000_000}[name]
}

func scenarioFor(name string, o *options) *scenario {
	sc := &scenario{
		name: name, partitions: o.partitions, deliveryConc: o.deliveryConc,
		drainTimeout: o.drainTimeout, restarts: o.restarts, bin: o.heraldBin, env: o.heraldEnv,
		ceilingConc: o.concurrency,
	}
	if o.profileDir != "" {
		sc.profile = filepath.Join(o.profileDir, name)
	}
	spec := loadSpec{firstSeq: firstSeqOf(name), timeout: 30 * time.Second, maxInFlight: 256}
	switch name {
	case "ingest":
		spec.concurrency, spec.duration, spec.maxCount = o.concurrency, o.ingestDur, 999_999
		sc.bare = !o.noBare
	case "ingest-only":
		spec.concurrency, spec.duration, spec.maxCount = o.concurrency, o.ingestDur, 999_999
		sc.bare = !o.noBare
		sc.holdSink = true
	case "e2e":
		spec.rate, spec.duration = o.rate, o.e2eDur
		spec.maxCount = min(int(math.Ceil(o.rate*o.e2eDur.Seconds())), 999_999)
		sc.bareAtRate = !o.noBare
	case "slow":
		spec.rate, spec.duration = o.slowRate, o.slowDur
		spec.maxCount = min(int(math.Ceil(o.slowRate*o.slowDur.Seconds())), 999_999)
		sc.slowDelay = o.slowDelay
	case "broken":
		spec.rate, spec.duration = o.brokenRate, o.brokenDur
		spec.maxCount = min(int(math.Ceil(o.brokenRate*o.brokenDur.Seconds())), 999_999)
		sc.broken = true
	}
	sc.load = spec
	return sc
}

// idleSpan is how long herald's idle CPU use is measured.
const idleSpan = 2 * time.Second

// scenarioResult is everything one scenario measured.
type scenarioResult struct {
	sc            *scenario
	readyCold     time.Duration
	readyRestarts []time.Duration
	idleRSS       int64
	peakRSS       int64
	load          *loadResult
	bare          *loadResult
	cpu           time.Duration
	selfCPU       time.Duration // this process (generator and fake) meanwhile
	idleCPU       time.Duration // herald's CPU during idleSpan before the load
	delivery      deliveryStats
	// deliveryConc is the bound on posts in flight to one sink:
	// dispatch.max_in_flight_per_sink, or max_in_flight if lower.
	deliveryConc int
	// broken is what the broken scenario measured; delivery is then its
	// healthy route's.
	broken *brokenStats
	// ceiling is the load generator against a server that does nothing.
	ceiling *loadResult
	// bareRef is the bare handler driven at the scenario's rate, and
	// bareRefCPU its CPU meanwhile (bareAtRate).
	bareRef    *loadResult
	bareRefCPU time.Duration
}

// bareRefSpan is how long the bare handler is driven at a scenario's rate.
const bareRefSpan = 10 * time.Second

// ceilingSpan is how long the load generator's ceiling is measured.
const ceilingSpan = 3 * time.Second

// deliveryBound is the bound on posts in flight to one sink that herald
// runs with when heraldload sets dispatch.max_in_flight_per_sink to conc
// (and max_in_flight to at least that): conc, or for 0 herald's defaults.
func deliveryBound(conc int) int {
	if conc > 0 {
		return conc
	}
	d := dispatch.DefaultConfig()
	return min(d.MaxInFlightPerSink, d.MaxInFlight)
}

// Names of the sinks in herald's config. brokenSink is the broken
// scenario's sink that answers 503.
const (
	sinkName   = "rocketchat"
	brokenSink = "rocketchat-broken"
)

// perThousand is cpu per 1,000 of the ok webhooks, 0 without any.
func perThousand(cpu time.Duration, ok int) float64 {
	if ok == 0 {
		return 0
	}
	return cpu.Seconds() * 1000 / float64(ok)
}

// config is herald's config file: fakeURL is the (healthy) fake, brokenURL
// the broken scenario's other one.
func (sc *scenario) config(fakeURL, brokenURL string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by heraldload\nlog:\n  level: %s\n", cmp.Or(sc.logLevel, "warn"))
	if sc.partitions > 0 || sc.queueURL != "" {
		b.WriteString("queue:\n")
	}
	if sc.queueURL != "" {
		fmt.Fprintf(&b, "  url: %s\n  replicas: %d\n", sc.queueURL, sc.queueReplicas)
	}
	if sc.partitions > 0 {
		fmt.Fprintf(&b, "  partitions: %d\n", sc.partitions)
	}
	sinkCount := 1
	if sc.broken {
		sinkCount = 2
	}
	if sc.deliveryConc > 0 {
		fmt.Fprintf(&b, "dispatch:\n  max_in_flight: %d\n  max_in_flight_per_sink: %d\n", sc.deliveryConc*sinkCount, sc.deliveryConc)
	}
	sink := func(name, url string) {
		fmt.Fprintf(&b, `  - name: %s
    rocketchat:
      url: %s
      mode: rest
      user_id: %s
      token: %s
      channel: "#alerts"
`, name, url, rocketchattest.DefaultUserID, rocketchattest.DefaultToken)
	}
	b.WriteString("sinks:\n")
	sink(sinkName, fakeURL)
	if sc.broken {
		sink(brokenSink, brokenURL)
	}
	b.WriteString("routes:\n")
	if sc.broken {
		fmt.Fprintf(&b, "  - name: %s\n    matchers: ['severity=\"critical\"']\n    chain: [%s]\n", brokenRoute, brokenSink)
	}
	fmt.Fprintf(&b, "  - name: default\n    chain: [%s]\n", sinkName)
	return b.String()
}

func runScenario(ctx context.Context, sc *scenario, logw io.Writer) (*scenarioResult, error) {
	if err := os.MkdirAll(sc.dir, 0o700); err != nil {
		return nil, err
	}
	fake := rocketchattest.NewServer(rocketchattest.WithRooms("alerts"), rocketchattest.WithBotRole(true))
	defer fake.Close()
	if sc.slowDelay > 0 {
		fake.Inject(rocketchattest.Fault{Endpoint: "chat.sendMessage", Delay: sc.slowDelay})
	}
	if sc.holdSink {
		fake.Inject(rocketchattest.Fault{Endpoint: "chat.sendMessage", Delay: time.Hour})
	}
	var brokenFake *rocketchattest.Server
	brokenURL := ""
	if sc.broken {
		brokenFake = rocketchattest.NewServer(rocketchattest.WithRooms("alerts"), rocketchattest.WithBotRole(true))
		defer brokenFake.Close()
		brokenFake.SetDown(true)
		brokenURL = brokenFake.URL
	}
	cfgPath := filepath.Join(sc.dir, "herald.yml")
	if err := os.WriteFile(cfgPath, []byte(sc.config(fake.URL, brokenURL)), 0o600); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	h := &herald{bin: sc.bin, config: cfgPath, dataDir: filepath.Join(sc.dir, "data"),
		logPath: filepath.Join(sc.dir, "herald.log"), addr: addr, profile: sc.profile, env: sc.env}
	res := &scenarioResult{sc: sc, deliveryConc: deliveryBound(sc.deliveryConc)}
	if res.readyCold, err = h.start(30 * time.Second); err != nil {
		return nil, err
	}
	defer h.stop()
	// Let start-up garbage settle before reading the idle footprint, then
	// read what herald spends doing nothing for idleSpan.
	time.Sleep(time.Second)
	if res.idleRSS, _, err = memStatus(h.pid()); err != nil {
		return nil, err
	}
	idle0, err := cpuTime(h.pid())
	if err != nil {
		return nil, err
	}
	time.Sleep(idleSpan)
	cpu0, err := cpuTime(h.pid())
	if err != nil {
		return nil, err
	}
	res.idleCPU = cpu0 - idle0
	self0 := selfCPU()

	spec := sc.load
	spec.url = "http://" + addr + "/webhooks/alertmanager"
	spec.templates = sc.templates
	res.load = runLoad(ctx, spec)
	if sc.profile != "" {
		_ = h.cmd.Process.Signal(syscall.SIGUSR1)
	}
	fmt.Fprintf(logw, "  sent %d, acknowledged %d in %v; waiting for deliveries ...\n", len(res.load.sent), res.load.ok, res.load.elapsed.Round(time.Millisecond))

	switch {
	case sc.broken:
		res.broken = watchBroken(ctx, fake, brokenFake, "http://"+addr, h.logPath, res.load, sc.drainTimeout)
		res.delivery = res.broken.healthy
	case !sc.holdSink:
		res.delivery = waitDelivered(ctx, fake, res.load, sc.drainTimeout)
	}
	cpu1, err := cpuTime(h.pid())
	if err != nil {
		return nil, err
	}
	res.cpu = cpu1 - cpu0
	res.selfCPU = selfCPU() - self0
	if _, res.peakRSS, err = memStatus(h.pid()); err != nil {
		return nil, err
	}
	if err := h.stop(); err != nil {
		return nil, fmt.Errorf("stopping herald: %w", err)
	}

	for range sc.restarts {
		h2 := *h
		h2.cmd, h2.profile = nil, ""
		d, err := h2.start(30 * time.Second)
		if err != nil {
			return nil, fmt.Errorf("restart: %w", err)
		}
		res.readyRestarts = append(res.readyRestarts, d)
		if err := h2.stop(); err != nil {
			return nil, fmt.Errorf("stopping restarted herald: %w", err)
		}
	}

	if sc.bare {
		if res.bare, _, err = runBare(ctx, spec, "bare-server"); err != nil {
			return nil, err
		}
	}
	if sc.bareAtRate {
		bspec := spec
		bspec.duration = min(bspec.duration, bareRefSpan)
		bspec.maxCount = min(bspec.maxCount, int(math.Ceil(bspec.rate*bspec.duration.Seconds())))
		if res.bareRef, res.bareRefCPU, err = runBare(ctx, bspec, "bare-server"); err != nil {
			return nil, err
		}
	}
	cspec := loadSpec{concurrency: sc.ceilingConc, duration: ceilingSpan, maxCount: 999_999,
		firstSeq: spec.firstSeq, templates: spec.templates, timeout: spec.timeout}
	if res.ceiling, _, err = runBare(ctx, cspec, "null-server"); err != nil {
		return nil, err
	}
	return res, nil
}

// runBare drives a fresh `heraldload mode` child (bare-server: the bare
// decode-only handler; null-server: a server that does nothing) with spec
// (its url replaced) and returns the load's result and the child's CPU
// meanwhile.
func runBare(ctx context.Context, spec loadSpec, mode string) (*loadResult, time.Duration, error) {
	b, err := startBare(mode)
	if err != nil {
		return nil, 0, err
	}
	defer b.stop()
	spec.url = "http://" + b.addr + "/webhooks/alertmanager"
	c0, err0 := cpuTime(b.cmd.Process.Pid)
	res := runLoad(ctx, spec)
	c1, err1 := cpuTime(b.cmd.Process.Pid)
	if err := errors.Join(err0, err1); err != nil {
		return nil, 0, fmt.Errorf("%s's CPU: %w", mode, err)
	}
	return res, c1 - c0, nil
}

// deliveryStats matches webhooks to the chat messages they produced.
type deliveryStats struct {
	acked     int
	delivered int // acknowledged webhooks with at least one message
	lost      int // acknowledged webhooks with none after the drain
	dup       int // webhooks with more than one message
	unacked   int // messages of webhooks that were not answered 200
	fromSend  []time.Duration
	fromAck   []time.Duration
	first     time.Time
	last      time.Time
	drained   bool
	waited    time.Duration
}

var tokenRE = regexp.MustCompile(idPrefix + `(\d{` + strconv.Itoa(idWidth) + `})` + idSuffix)

// waitDelivered polls the fake until every acknowledged webhook has a
// message or timeout passes, then matches messages to webhooks. Messages
// are parsed once each, as they arrive.
func waitDelivered(ctx context.Context, fake *rocketchattest.Server, lr *loadResult, timeout time.Duration) deliveryStats {
	begin := time.Now()
	deadline := begin.Add(timeout)
	st := deliveryStats{acked: lr.ok}
	acked := make(map[int]bool, lr.ok)
	for _, s := range lr.sent {
		if s.status == http.StatusOK {
			acked[s.seq] = true
		}
	}
	got := map[int][]time.Time{} // messages per load id
	found, parsed := 0, 0
	for {
		msgs := fake.TopLevel("alerts")
		for _, m := range msgs[parsed:] {
			for seq := range tokensOf(m) {
				if len(got[seq]) == 0 && acked[seq] {
					found++
				}
				got[seq] = append(got[seq], m.Created)
			}
			if st.first.IsZero() || m.Created.Before(st.first) {
				st.first = m.Created
			}
			if m.Created.After(st.last) {
				st.last = m.Created
			}
		}
		parsed = len(msgs)
		if found >= lr.ok {
			st.drained = true
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	st.waited = time.Since(begin)
	for _, s := range lr.sent {
		if s.status != http.StatusOK {
			continue
		}
		ts := got[s.seq]
		if len(ts) == 0 {
			st.lost++
			continue
		}
		st.delivered++
		if len(ts) > 1 {
			st.dup++
		}
		first := slices.MinFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		st.fromSend = append(st.fromSend, first.Sub(s.start))
		st.fromAck = append(st.fromAck, first.Sub(s.acked))
	}
	for seq := range got {
		if !acked[seq] {
			st.unacked++
		}
	}
	return st
}

// tokensOf returns the load ids a message names, in its text or its
// attachments; a message naming one id several times counts once.
func tokensOf(m rocketchattest.Message) map[int]bool {
	seen := map[int]bool{}
	texts := []string{m.Text}
	for _, a := range m.Attachments {
		texts = append(texts, a.Title, a.Text)
	}
	for _, t := range texts {
		for _, sm := range tokenRE.FindAllStringSubmatch(t, -1) {
			seq, _ := strconv.Atoi(sm[1])
			seen[seq] = true
		}
	}
	return seen
}

func (d deliveryStats) throughput() float64 {
	span := d.last.Sub(d.first).Seconds()
	if span <= 0 {
		return 0
	}
	return float64(d.delivered-1) / span
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func median(d []time.Duration) time.Duration { return percentile(slices.Clone(d), 50) }

func (r *scenarioResult) print(w io.Writer) {
	l := r.load
	lat := l.latencies()
	fmt.Fprintf(w, "\n== scenario %s\n", r.sc.name)
	if l.spec.rate > 0 {
		fmt.Fprintf(w, "load:            %.0f webhooks/s for %v (%d sent, %d skipped: %d in flight)\n",
			l.spec.rate, l.spec.duration, len(l.sent), l.behind, l.spec.maxInFlight)
	} else {
		fmt.Fprintf(w, "load:            %d concurrent senders for %v (%d sent)\n", l.spec.concurrency, l.spec.duration, len(l.sent))
	}
	if r.sc.slowDelay > 0 {
		fmt.Fprintf(w, "fake chat:       every chat.sendMessage answered after %v\n", r.sc.slowDelay)
	}
	fmt.Fprintf(w, "ingest:          %.0f webhooks/s acknowledged, p50 %s, p99 %s, max in flight %d\n",
		l.throughput(), ms(percentile(lat, 50)), ms(percentile(lat, 99)), l.inflight)
	if len(l.errs) > 0 {
		fmt.Fprintf(w, "refused:         %v\n", l.errs)
	}
	if c := r.ceiling; c != nil {
		cl := c.latencies()
		fmt.Fprintf(w, "load generator:  %.0f webhooks/s against a server that does nothing (%d senders, %v), p50 %s, p99 %s: its own ceiling\n",
			c.throughput(), c.spec.concurrency, c.spec.duration, ms(percentile(cl, 50)), ms(percentile(cl, 99)))
	}
	if r.bare != nil {
		bl := r.bare.latencies()
		fmt.Fprintf(w, "bare decode:     %.0f webhooks/s, p50 %s, p99 %s\n", r.bare.throughput(), ms(percentile(bl, 50)), ms(percentile(bl, 99)))
		if bt := r.bare.throughput(); bt > 0 {
			fmt.Fprintf(w, "ingest ratio:    herald/bare = %.2f%s\n", l.throughput()/bt, r.ceilingNote())
		}
	}
	d := r.delivery
	if r.broken != nil {
		r.broken.print(w, r)
		printCost(w, r)
		return
	}
	if r.sc.holdSink {
		fmt.Fprintf(w, "delivery:        held (the fake holds every post; herald only ingests)\n")
		printCost(w, r)
		return
	}
	fmt.Fprintf(w, "delivered:       %d of %d acknowledged, lost %d, duplicated %d, messages of unacknowledged webhooks %d (waited %v after the load, drained: %v)\n",
		d.delivered, d.acked, d.lost, d.dup, d.unacked, d.waited.Round(time.Millisecond), d.drained)
	fmt.Fprintf(w, "send→chat:       p50 %s, p99 %s, max %s\n", ms(percentile(d.fromSend, 50)), ms(percentile(d.fromSend, 99)), ms(percentile(d.fromSend, 100)))
	fmt.Fprintf(w, "200→chat:        p50 %s, p99 %s\n", ms(percentile(d.fromAck, 50)), ms(percentile(d.fromAck, 99)))
	fmt.Fprintf(w, "delivery rate:   %.0f messages/s (first to last message)", d.throughput())
	if r.sc.slowDelay > 0 {
		bound := r.slowBound()
		fmt.Fprintf(w, "; bound: concurrency %d (dispatch.max_in_flight_per_sink) / %v = %.0f/s, reached %.0f%%; posts in flight on average %.1f%s",
			r.deliveryConc, r.sc.slowDelay, bound, 100*d.throughput()/bound, d.throughput()*r.sc.slowDelay.Seconds(), r.ceilingNote())
	}
	fmt.Fprintln(w)
	printCost(w, r)
}

// slowBound is the delivery rate the slow scenario's bound allows:
// deliveryConc posts in flight, each held slowDelay by the fake.
func (r *scenarioResult) slowBound() float64 {
	return float64(r.deliveryConc) / r.sc.slowDelay.Seconds()
}

// ceilingNote is the load generator's own ceiling, printed beside every
// ratio: a ratio whose parts come near it measures the generator, not
// herald.
func (r *scenarioResult) ceilingNote() string {
	if r.ceiling == nil {
		return ""
	}
	return fmt.Sprintf(" [load generator's ceiling, against a server that does nothing: %.0f webhooks/s]", r.ceiling.throughput())
}

// ratioOf is n/of, 0 when of is 0.
func ratioOf(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

func printCost(w io.Writer, r *scenarioResult) {
	l := r.load
	if l.ok > 0 {
		span := "ingest to last delivery"
		if r.sc.holdSink {
			span = "ingest only"
		}
		fmt.Fprintf(w, "herald CPU:      %.2f s total, %.3f CPU-s per 1,000 webhooks (%s); load generator and fake chat meanwhile %.2f s\n",
			r.cpu.Seconds(), r.cpu.Seconds()*1000/float64(l.ok), span, r.selfCPU.Seconds())
	}
	if b := r.bareRef; b != nil && b.ok > 0 && l.ok > 0 {
		ref := perThousand(r.bareRefCPU, b.ok)
		fmt.Fprintf(w, "machine now:     the bare decode-only handler at the same rate for %v: %.3f CPU-s per 1,000 webhooks; herald/bare = %.1f%s\n",
			b.spec.duration, ref, perThousand(r.cpu, l.ok)/ref, r.ceilingNote())
	}
	fmt.Fprintf(w, "herald idle:     %.1f%% of a CPU before the load\n", 100*r.idleCPU.Seconds()/idleSpan.Seconds())
	fmt.Fprintf(w, "herald RSS:      idle %s, peak %s\n", mb(r.idleRSS), mb(r.peakRSS))
	fmt.Fprintf(w, "ready to serve:  %s on a fresh data dir; restarted on the used one: median %s of %v\n",
		ms(r.readyCold), ms(median(r.readyRestarts)), roundAll(r.readyRestarts))
}

func roundAll(d []time.Duration) []time.Duration {
	out := make([]time.Duration, len(d))
	for i, v := range d {
		out[i] = v.Round(100 * time.Microsecond)
	}
	return out
}

// printTargets compares the results with issue 8's targets.
func printTargets(w io.Writer, rs []*scenarioResult) {
	fmt.Fprintf(w, "\n== targets (issue 8)\n")
	check := func(ok bool, format string, args ...any) {
		mark := "MET   "
		if !ok {
			mark = "MISSED"
		}
		fmt.Fprintf(w, "%s %s\n", mark, fmt.Sprintf(format, args...))
	}
	for _, r := range rs {
		l := r.load
		lat := l.latencies()
		switch r.sc.name {
		case "ingest", "ingest-only":
			if r.bare != nil && r.bare.throughput() > 0 {
				ratio := l.throughput() / r.bare.throughput()
				check(ratio >= 0.5, "%s c=%d at least 50%% of bare decode: %.0f%% (%.0f vs %.0f/s)%s", r.sc.name, l.spec.concurrency, 100*ratio, l.throughput(), r.bare.throughput(), r.ceilingNote())
			}
			check(percentile(lat, 99) < 20*time.Millisecond, "%s c=%d p99 under 20 ms: %s", r.sc.name, l.spec.concurrency, ms(percentile(lat, 99)))
		case "e2e":
			achieved := l.throughput()
			check(achieved >= 0.98*l.spec.rate, "%.0f webhooks/s sustained for %v: %.0f/s acknowledged", l.spec.rate, l.spec.duration, achieved)
			check(percentile(r.delivery.fromSend, 99) < 50*time.Millisecond, "receipt→chat p99 under 50 ms: %s (from sending the webhook)", ms(percentile(r.delivery.fromSend, 99)))
			check(r.delivery.lost == 0 && r.delivery.dup == 0 && r.delivery.acked == len(l.sent), "nothing lost, nothing duplicated: lost %d, duplicated %d, refused %d",
				r.delivery.lost, r.delivery.dup, len(l.sent)-r.delivery.acked)
		case "slow":
			check(percentile(lat, 99) < 20*time.Millisecond, "slow chat: ingest unaffected (p99 %s, p50 %s)", ms(percentile(lat, 99)), ms(percentile(lat, 50)))
			if r.sc.slowDelay > 0 {
				bound := r.slowBound()
				check(r.delivery.throughput() >= 0.8*bound, "slow chat: delivery limited only by concurrency: %.0f/s of %.0f/s possible (%d / %v), %.0f%%%s",
					r.delivery.throughput(), bound, r.deliveryConc, r.sc.slowDelay, 100*r.delivery.throughput()/bound, r.ceilingNote())
			}
		case "broken":
			b := r.broken
			check(percentile(lat, 99) < 20*time.Millisecond, "broken route: ingest unaffected (p99 %s, p50 %s)", ms(percentile(lat, 99)), ms(percentile(lat, 50)))
			check(b.healthy.lost == 0 && b.healthy.dup == 0 && b.healthy.acked > 0, "broken route: healthy route delivered everything: %d of %d (%.0f%%), lost %d, duplicated %d%s",
				b.healthy.delivered, b.healthy.acked, 100*ratioOf(b.healthy.delivered, b.healthy.acked), b.healthy.lost, b.healthy.dup, r.ceilingNote())
			check(b.waited == 0, "broken route: no healthy notification waited for it: %d took %v or more or were not delivered (max of the delivered %s)",
				b.waited, b.waitThreshold, ms(percentile(b.healthy.fromSend, 100)))
			check(b.inChat == 0, "broken route: nothing posted to its sink: %d", b.inChat)
		}
		if l.ok > 0 {
			per := r.cpu.Seconds() * 1000 / float64(l.ok)
			check(per <= 0.6, "%s: at most 0.6 CPU-s per 1,000 webhooks: %.3f", r.sc.name, per)
		}
		check(r.idleRSS < 40<<20, "%s: RSS idle under 40 MB: %s", r.sc.name, mb(r.idleRSS))
		check(r.peakRSS < 120<<20, "%s: RSS peak under 120 MB: %s", r.sc.name, mb(r.peakRSS))
		if len(r.readyRestarts) > 0 {
			m := median(r.readyRestarts)
			check(m < 300*time.Millisecond, "%s: ready within 300 ms on an existing data dir: median %s", r.sc.name, ms(m))
		}
	}
}
