package dispatch

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/sinks"
)

// TestHealth: a sink's failure is shown with its class and time, the
// fallback's success with its time, both through Health and the metrics,
// and a sink that was never tried shows nothing.
func TestHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, testConfig())
		r.rc.send = always(err401)
		if h := r.d.Health(); len(h) != 2 || h[0].Name != "rc" || !h[0].LastErrorAt.IsZero() || !h[1].LastSuccessAt.IsZero() {
			t.Fatalf("before any delivery: %+v", h)
		}
		if out := r.d.Handle(t.Context(), msg("n1", "g1")); out.Action != delivery.Ack {
			t.Fatalf("outcome %+v, want the fallback to take it", out)
		}
		h := r.d.Health()
		rc, slack := h[0], h[1]
		if rc.LastErrorClass != "permanent" || !strings.Contains(rc.LastError, "401") || rc.LastErrorAt.IsZero() || !rc.LastSuccessAt.IsZero() {
			t.Errorf("rc: %+v, want its 401 as the last error", rc)
		}
		for i := 0; r.d.Breakers()["rc"] != BreakerOpen; i++ {
			if i == 50 {
				t.Fatal("rc's breaker never opened")
			}
			r.d.Handle(t.Context(), msg(fmt.Sprintf("m%d", i), "g2"))
		}
		if h := r.d.Health(); h[0].Breaker != BreakerOpen || h[1].Breaker != BreakerClosed {
			t.Errorf("breakers %v and %v, want rc open and slack closed", h[0].Breaker, h[1].Breaker)
		}
		if slack.LastSuccessAt.IsZero() || slack.LastErrorClass != "" {
			t.Errorf("slack: %+v, want a success and no error", slack)
		}
		want := `
# HELP herald_sink_last_error_timestamp_seconds When a request to the sink last failed, Unix seconds, labelled with that failure's class; absent until one has.
# TYPE herald_sink_last_error_timestamp_seconds gauge
herald_sink_last_error_timestamp_seconds{class="permanent",sink="rc"} 9.466848e+08
`
		if err := testutil.GatherAndCompare(r.reg, strings.NewReader(want), "herald_sink_last_error_timestamp_seconds"); err != nil {
			t.Error(err)
		}
		if n, err := testutil.GatherAndCount(r.reg, "herald_sink_last_success_timestamp_seconds"); err != nil || n != 1 {
			t.Errorf("%d last-success series (%v), want slack's only", n, err)
		}
	})
}

// TestRuleSeriesStartAtZero: every series an alerting rule reads exists at
// 0 before the first event, so that increase() after a restart sees the
// first dead letter (deploy/prometheus/herald-rules.test.yml).
func TestRuleSeriesStartAtZero(t *testing.T) {
	r := newRig(t, testConfig())
	for _, name := range []string{"herald_dead_letters_total", "herald_delivery_attempts_total"} {
		n, err := testutil.GatherAndCount(r.reg, name)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{"herald_dead_letters_total": 3, "herald_delivery_attempts_total": 2 * 5}[name]; n != want {
			t.Errorf("%s: %d series at start, want %d", name, n, want)
		}
	}
	want := `
# HELP herald_dead_letters_total Notifications the dispatcher sent to the dead letters, by reason: permanent, budget or invalid.
# TYPE herald_dead_letters_total counter
herald_dead_letters_total{reason="budget"} 0
herald_dead_letters_total{reason="invalid"} 0
herald_dead_letters_total{reason="permanent"} 0
`
	if err := testutil.GatherAndCompare(r.reg, strings.NewReader(want), "herald_dead_letters_total"); err != nil {
		t.Error(err)
	}
}

// TestHealthTimeout: a sink that hangs until the attempt timeout is shown
// as failing (a hanging chat server is what an operator looks for), while
// an attempt cut short by shutdown is not.
func TestHealthTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.AttemptTimeout = time.Second
		r := newRig(t, cfg)
		r.rc.send = func(ctx context.Context, _ *heraldv1.Notification, _ sinks.Target) (sinks.Receipt, error) {
			<-ctx.Done()
			return sinks.Receipt{}, ctx.Err()
		}
		r.d.Handle(t.Context(), msg("n1", "g1"))
		if h := r.d.Health()[0]; h.Name != "rc" || h.LastErrorClass != "retryable" || !strings.Contains(h.LastError, "deadline") {
			t.Errorf("after a timeout: %+v, want the timeout as rc's last error", h)
		}

		r2 := newRig(t, cfg)
		r2.rc.send = r.rc.send
		ctx, cancel := context.WithCancel(t.Context())
		go func() { time.Sleep(100 * time.Millisecond); cancel() }()
		r2.d.Handle(ctx, msg("n2", "g2"))
		if h := r2.d.Health()[0]; !h.LastErrorAt.IsZero() {
			t.Errorf("after shutdown cut an attempt short: %+v, want no error", h)
		}
	})
}
