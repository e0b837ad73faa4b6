package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/shim"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

func TestTemplatesAreWebhooksWithUniqueGroups(t *testing.T) {
	ts, err := makeTemplates(64, 20, 7)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	sizes := map[int]bool{}
	for i, tp := range ts {
		for _, seq := range []int{i, i + 1000} {
			m, err := shim.Decode(bytes.NewReader(tp.stamp(seq)))
			if err != nil {
				t.Fatalf("template %d: %v", i, err)
			}
			if n := len(m.Alerts); n < 1 || n > 20 {
				t.Errorf("template %d: %d alerts", i, n)
			}
			sizes[len(m.Alerts)] = true
			if keys[m.GroupKey] {
				t.Errorf("group key %q repeats", m.GroupKey)
			}
			keys[m.GroupKey] = true
			ns, err := shim.Convert(m)
			if err != nil {
				t.Fatal(err)
			}
			// The token is what the chat message is matched by: it must be
			// in the title every sink renders.
			if got := tokenRE.FindStringSubmatch(ns[0].GetTitle()); got == nil || got[1] != pad(seq) {
				t.Errorf("title %q: token of %d not found (got %v)", ns[0].GetTitle(), seq, got)
			}
		}
		if bytes.Contains(tp.stamp(i), []byte(placeholder)) {
			t.Errorf("template %d: a placeholder was left", i)
		}
	}
	if len(sizes) < 10 {
		t.Errorf("only %d distinct alert counts in 64 webhooks", len(sizes))
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and a parenthesis, as comm may hold.
	stat := "4242 (her ald) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 9 0 12345 800000000 9000 18446744073709551615"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3800 * time.Millisecond; got != want {
		t.Errorf("cpu = %v, want %v", got, want)
	}
	if _, err := parseStatCPU("4242 (x) S 1 2"); err == nil {
		t.Error("a short line parsed")
	}
}

func TestParseStatusMem(t *testing.T) {
	status := "Name:\therald\nVmPeak:\t 1300000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   30720 kB\nThreads:\t9\n"
	rss, hwm, err := parseStatusMem(bufio.NewScanner(strings.NewReader(status)))
	if err != nil {
		t.Fatal(err)
	}
	if rss != 30<<20 || hwm != 50<<20 {
		t.Errorf("rss, hwm = %d, %d", rss, hwm)
	}
	if _, _, err := parseStatusMem(bufio.NewScanner(strings.NewReader("Name:\tx\n"))); err == nil {
		t.Error("status without VmRSS parsed")
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if percentile(nil, 99) != 0 {
		t.Error("no samples should give 0")
	}
}

// TestRunLoadCountsEveryWebhook runs both modes against the bare handler
// wrapped to fail some requests, and checks that every webhook is
// accounted for exactly once with its own id.
func TestRunLoadCountsEveryWebhook(t *testing.T) {
	ts, err := makeTemplates(8, 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	bare := bareHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(r.Body)
		tok := tokenRE.FindString(buf.String())
		mu.Lock()
		seen[tok]++
		n := len(seen)
		mu.Unlock()
		if n%10 == 0 {
			http.Error(w, "injected", http.StatusServiceUnavailable)
			return
		}
		r.Body = httptestBody(buf.Bytes())
		bare.ServeHTTP(w, r)
	}))
	defer srv.Close()

	for _, spec := range []loadSpec{
		{concurrency: 4, duration: 10 * time.Second, maxCount: 50},
		{rate: 2000, maxInFlight: 64, duration: 10 * time.Second, maxCount: 50},
	} {
		clear(seen)
		spec.url, spec.templates, spec.timeout, spec.firstSeq = srv.URL, ts, 5*time.Second, 100
		res := runLoad(context.Background(), spec)
		if len(res.sent) != 50 {
			t.Fatalf("%+v: %d sent, want 50", spec, len(res.sent))
		}
		if res.ok != 45 || res.errs["HTTP 503"] != 5 {
			t.Errorf("ok %d, errors %v; want 45 ok and 5 HTTP 503", res.ok, res.errs)
		}
		if len(seen) != 50 {
			t.Errorf("server saw %d distinct ids, want 50", len(seen))
		}
		for tok, n := range seen {
			if n != 1 {
				t.Errorf("%s sent %d times", tok, n)
			}
		}
		if got := len(res.latencies()); got != 45 {
			t.Errorf("%d latencies, want 45", got)
		}
	}
}

type bodyReader struct{ *bytes.Reader }

func (bodyReader) Close() error { return nil }

func httptestBody(b []byte) bodyReader { return bodyReader{bytes.NewReader(b)} }

// TestWaitDeliveredMatchesMessages posts chat messages to the fake the way
// the sink would and checks the counts: one webhook delivered once, one
// twice, one never, and a message for a webhook that was refused.
func TestWaitDeliveredMatchesMessages(t *testing.T) {
	fake := rocketchattest.NewServer(rocketchattest.WithRooms("alerts"))
	defer fake.Close()
	post := func(text string) {
		t.Helper()
		body := fmt.Sprintf(`{"channel":"#alerts","text":%q}`, text)
		req, _ := http.NewRequest(http.MethodPost, fake.URL+"/api/v1/chat.postMessage", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-User-Id", fake.UserID())
		req.Header.Set("X-Auth-Token", fake.Token())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("post: %d", resp.StatusCode)
		}
	}
	start := time.Now()
	lr := &loadResult{sent: []sent{
		{seq: 1, start: start, acked: start.Add(time.Millisecond), status: http.StatusOK},
		{seq: 2, start: start, acked: start.Add(time.Millisecond), status: http.StatusOK},
		{seq: 3, start: start, acked: start.Add(time.Millisecond), status: http.StatusOK},
		{seq: 4, start: start, status: http.StatusServiceUnavailable},
	}, ok: 3}
	// The token appears several times in one message (title and labels):
	// that is still one message.
	post("*[FIRING:1] HighLatency loadid=" + loadToken(1) + "* `loadid=" + loadToken(1) + "`")
	post("*[FIRING:2] X loadid=" + loadToken(2) + "*")
	post("*[FIRING:2] X loadid=" + loadToken(2) + "* again")
	post("*[FIRING:1] Y loadid=" + loadToken(4) + "*")
	st := waitDelivered(context.Background(), fake, lr, 300*time.Millisecond)
	if st.acked != 3 || st.delivered != 2 || st.lost != 1 || st.dup != 1 || st.unacked != 1 {
		t.Errorf("acked %d delivered %d lost %d dup %d unacked %d; want 3 2 1 1 1", st.acked, st.delivered, st.lost, st.dup, st.unacked)
	}
	if st.drained {
		t.Error("drained although webhook 3 never arrived")
	}
	if len(st.fromSend) != 2 || st.fromSend[0] <= 0 {
		t.Errorf("latencies %v", st.fromSend)
	}
}

func TestSummaryJSON(t *testing.T) {
	start := time.Now()
	mk := func(n int, per time.Duration) *loadResult {
		lr := &loadResult{elapsed: time.Second, errs: map[string]int{}}
		for i := range n {
			lr.sent = append(lr.sent, sent{seq: i, start: start, acked: start.Add(per), status: http.StatusOK})
		}
		lr.ok = n
		return lr
	}
	r := &scenarioResult{
		sc:   &scenario{name: "ingest-only", holdSink: true},
		load: mk(300, 2*time.Millisecond), bare: mk(600, time.Millisecond),
		cpu: 150 * time.Millisecond, idleRSS: 32 << 20, peakRSS: 100 << 20,
		readyRestarts: []time.Duration{90 * time.Millisecond, 80 * time.Millisecond, 100 * time.Millisecond},
	}
	path := t.TempDir() + "/s.json"
	if err := writeSummary(path, []*scenarioResult{r}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"scenario": "ingest-only", "ingest_per_sec": 300.0, "bare_per_sec": 600.0, "ingest_ratio": 0.5,
		"ingest_p99_ms": 2.0, "cpu_sec_per_1000": 0.5, "rss_peak_mib": 100.0, "ready_restart_median_ms": 90.0,
	}
	for k, v := range want {
		if got[0][k] != v {
			t.Errorf("%s = %v, want %v", k, got[0][k], v)
		}
	}
	if _, ok := got[0]["lost"]; ok {
		t.Error("a held sink reports no deliveries, so no lost count")
	}
}
