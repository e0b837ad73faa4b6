package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

func TestParseReplicas(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
	}{{"1,2,3", []int{1, 2, 3}}, {" 3, 1 ", []int{3, 1}}, {"2", []int{2}}} {
		got, err := parseReplicas(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("parseReplicas(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "0", "1,,2", "1,1", "10", "x", "-1"} {
		if got, err := parseReplicas(in); err == nil {
			t.Errorf("parseReplicas(%q) = %v, want an error", in, got)
		}
	}
}

// TestScaleIsNotInAll: scale needs a nats-server binary, so "all" keeps
// the five scenarios that need none.
func TestScaleIsNotInAll(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(o.scenarios, "scale") || len(o.scenarios) != 5 {
		t.Errorf("all = %v", o.scenarios)
	}
	o, err = parseFlags([]string{"-scenario", "scale", "-scale-replicas", "1,3", "-delivery-concurrency", "8", "-scale-rate", "150"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.scenarios, []string{"scale"}) || !slices.Equal(o.scaleReplicas, []int{1, 3}) || o.scaleRate != 150 || o.deliveryConc != 8 {
		t.Errorf("options %+v", o)
	}
	for _, args := range [][]string{
		{"-scale-replicas", "0"},
		{"-scale-duration", "5s", "-scale-warmup", "4s"}, // nothing left after the warm-up and the cool-down
		{"-scale-rate", "0"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q parsed", args)
		}
	}
}

// TestScaleConfig checks that the replicas' config file is valid and
// points herald at the cluster with replicated streams.
func TestScaleConfig(t *testing.T) {
	sc := &scenario{partitions: 16, deliveryConc: 8, queueURL: "nats://127.0.0.1:4222,nats://127.0.0.1:4223", queueReplicas: 3, logLevel: "info"}
	cfg, err := config.Parse("scale.yml", []byte(sc.config("http://127.0.0.1:1", "")))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Queue.URL != sc.queueURL || cfg.Queue.Replicas != 3 || cfg.Queue.Partitions != 16 {
		t.Errorf("queue %+v", cfg.Queue)
	}
	if cfg.Dispatch.MaxInFlightPerSink != 8 || cfg.Log.Level != "info" {
		t.Errorf("per sink %d, log level %q", cfg.Dispatch.MaxInFlightPerSink, cfg.Log.Level)
	}
	plain, err := config.Parse("slow.yml", []byte((&scenario{}).config("http://127.0.0.1:1", "")))
	if err != nil {
		t.Fatal(err)
	}
	if plain.Queue.URL != "" || plain.Log.Level != "warn" {
		t.Errorf("without a queue URL: url %q, log level %q", plain.Queue.URL, plain.Log.Level)
	}
}

func TestSpread(t *testing.T) {
	for _, c := range []struct {
		served []int
		want   bool
	}{
		{[]int{16}, true},
		{[]int{5, 5, 6}, true},
		{[]int{16, 0}, false},    // one replica has none yet
		{[]int{8, 7}, false},     // a partition nobody serves (handed over)
		{[]int{8, 9}, false},     // one served twice for a moment
		{[]int{1, 1, 14}, true},  // uneven, but every replica has some
		{[]int{0, 0, 0}, false},  // an idle queue: nothing counted yet
		{[]int{-1, 17}, false},   // nonsense
		{[]int{6, 5, 5}, true},   // the order of the replicas does not matter
		{[]int{10, 6, 0}, false}, // a replica that never took any
	} {
		if got := spread(c.served, 16); got != c.want {
			t.Errorf("spread(%v, 16) = %v, want %v", c.served, got, c.want)
		}
	}
}

// TestSteadyWindowCounts checks the window deliveries are counted in and
// the rate over it: the first warm and the last scaleCool are left out,
// the window is half-open.
func TestSteadyWindowCounts(t *testing.T) {
	begin := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	from, to := steadyWindow(begin, 20*time.Second, 5*time.Second)
	if !from.Equal(begin.Add(5*time.Second)) || !to.Equal(begin.Add(19*time.Second)) {
		t.Fatalf("window %v to %v", from.Sub(begin), to.Sub(begin))
	}
	var times []time.Time
	// 10 a second over the whole 20 s load, then a drain of 100 at once.
	for i := range 200 {
		times = append(times, begin.Add(time.Duration(i)*100*time.Millisecond))
	}
	for range 100 {
		times = append(times, begin.Add(25*time.Second))
	}
	n := countIn(times, from, to)
	if n != 140 { // 5.0 s … 18.9 s
		t.Errorf("countIn = %d, want 140", n)
	}
	if got := perSec(n, from, to); got != 10 {
		t.Errorf("perSec = %v, want 10", got)
	}
	if perSec(5, to, from) != 0 || perSec(5, from, from) != 0 {
		t.Error("an empty window has no rate")
	}
}

func TestFirstDeliveries(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	msg := func(at time.Duration, seqs ...int) rocketchattest.Message {
		var b strings.Builder
		for _, s := range seqs {
			b.WriteString("*[FIRING:1] X loadid=" + loadToken(s) + "* `loadid=" + loadToken(s) + "` ")
		}
		return rocketchattest.Message{Text: b.String(), Created: t0.Add(at)}
	}
	first, dup := firstDeliveries([]rocketchattest.Message{
		msg(3*time.Second, 1),
		msg(time.Second, 1), // an earlier copy, stored later in the list
		msg(2*time.Second, 2, 3),
		msg(4*time.Second, 4),
	})
	want := map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 2 * time.Second, 4: 4 * time.Second}
	if len(first) != len(want) {
		t.Fatalf("first = %v", first)
	}
	for seq, at := range want {
		if !first[seq].Equal(t0.Add(at)) {
			t.Errorf("first[%d] = %v, want %v", seq, first[seq].Sub(t0), at)
		}
	}
	if dup != 1 {
		t.Errorf("dup = %d, want 1", dup)
	}
}

func TestParseProcStat(t *testing.T) {
	stat := "cpu  100 5 50 800 20 3 2 20 0 0\ncpu0 50 2 25 400 10 1 1 10 0 0\nintr 12345\n"
	s, err := parseProcStat(strings.NewReader(stat))
	if err != nil {
		t.Fatal(err)
	}
	if s != (procStat{busy: 160, idle: 820, steal: 20}) {
		t.Errorf("got %+v", s)
	}
	later := procStat{busy: 160 + 90, idle: 820 + 5, steal: 20 + 5}
	if got := share(s, later, func(p procStat) uint64 { return p.busy }); got != 0.9 {
		t.Errorf("busy share = %v, want 0.9", got)
	}
	if share(s, s, func(p procStat) uint64 { return p.busy }) != 0 {
		t.Error("no ticks should give 0")
	}
	for _, bad := range []string{"intr 1\n", "cpu 1 2 3\n", "cpu a b c d e f g h\n"} {
		if _, err := parseProcStat(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestSplitCPU(t *testing.T) {
	a := []time.Duration{1, 2, 3, 10, 20}
	b := []time.Duration{2, 4, 6, 15, 20}
	h, n := splitCPU(a, b)
	if n != 6 || h != 5 {
		t.Errorf("herald %v, nats %v; want 5, 6", h, n)
	}
}

func TestRetryWait(t *testing.T) {
	for _, c := range []struct {
		n        int
		r        float64
		min, max time.Duration
	}{
		{0, 0, 250 * time.Millisecond, 250 * time.Millisecond},
		{0, 0.999, 740 * time.Millisecond, 750 * time.Millisecond},
		{1, 0.5, 750 * time.Millisecond, 750 * time.Millisecond},
		{2, 0.5, 1125 * time.Millisecond, 1125 * time.Millisecond},
		{50, 0.5, time.Minute, time.Minute}, // capped
	} {
		if got := retryWait(c.n, c.r); got < c.min || got > c.max {
			t.Errorf("retryWait(%d, %v) = %v, want %v to %v", c.n, c.r, got, c.min, c.max)
		}
	}
}

// TestRunLoadRoundRobinAndRetries sends to two servers that answer 503 to
// the first attempt of each webhook whose id ends in 0, 3, 6 or 9: each
// server gets every other webhook, and every webhook is acknowledged in
// the end, the refused ones after one retry, timed from their first
// attempt.
func TestRunLoadRoundRobinAndRetries(t *testing.T) {
	ts, err := makeTemplates(8, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	at := map[string][]int{}
	handler := func(id int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			m := tokenRE.FindStringSubmatch(string(b))
			mu.Lock()
			seen[m[1]]++
			n := seen[m[1]]
			at[m[1]] = append(at[m[1]], id)
			mu.Unlock()
			if n == 1 && refusedFirst(m[1]) {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
	}
	a, b := httptest.NewServer(handler(0)), httptest.NewServer(handler(1))
	defer a.Close()
	defer b.Close()
	spec := loadSpec{urls: []string{a.URL, b.URL}, concurrency: 4, duration: 10 * time.Second, maxCount: 20,
		firstSeq: 100, templates: ts, timeout: 10 * time.Second, retry5xx: true}
	res := runLoad(context.Background(), spec)
	if len(res.sent) != 20 || res.ok != 20 {
		t.Fatalf("sent %d, ok %d, errors %v; want 20 acknowledged", len(res.sent), res.ok, res.errs)
	}
	retried, want := 0, 0
	for _, s := range res.sent {
		if refusedFirst(pad(s.seq)) {
			want++
		}
		tok := pad(s.seq)
		if want := (s.seq - 100) % 2; at[tok][0] != want || !slices.Equal(at[tok], slices.Repeat([]int{want}, len(at[tok]))) {
			t.Errorf("webhook %d went to %v, want server %d every time", s.seq, at[tok], want)
		}
		if s.retries > 0 {
			retried++
			if s.acked.Sub(s.start) < 250*time.Millisecond {
				t.Errorf("webhook %d: retried, yet acknowledged %v after its first attempt", s.seq, s.acked.Sub(s.start))
			}
		}
	}
	if retried != want || want != 8 {
		t.Errorf("%d webhooks retried, want %d (8)", retried, want)
	}
}

// refusedFirst: the id's last digit is 0, 3, 6 or 9.
func refusedFirst(id string) bool { return (id[len(id)-1]-'0')%3 == 0 }

func TestCPUBound(t *testing.T) {
	for _, c := range []struct {
		reached, busy float64
		want          bool
	}{{0.98, 0.9, false}, {0.73, 0.97, true}, {0.73, 0.5, false}, {0.89, 0.85, true}} {
		if got := cpuBound(c.reached, c.busy); got != c.want {
			t.Errorf("cpuBound(%v, %v) = %v, want %v", c.reached, c.busy, got, c.want)
		}
	}
}
