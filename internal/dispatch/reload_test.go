package dispatch

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/sinks"
)

// TestReloadKeepsBreakersOfUnchangedSinks: a reload keeps the open breaker
// of a sink it does not reset, closes the one of a sink it resets, and
// gives a new sink a closed one.
func TestReloadKeepsBreakersOfUnchangedSinks(t *testing.T) {
	r := newRig(t, testConfig())
	for _, b := range r.d.gen.Load().breakers {
		openBreaker(t, b)
	}
	old := r.d.gen.Load().breakers["slack"]
	webhook := &fakeSink{name: "webhook"}
	err := r.d.Reload(Reload{
		Router: chainRouter{{Sink: "rc"}, {Sink: "slack"}, {Sink: "webhook"}},
		Sinks:  map[string]sinks.Sink{"rc": r.rc, "slack": &fakeSink{name: "slack"}, "webhook": webhook},
		Config: testConfig(),
		Reset:  map[string]bool{"slack": true},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := r.d.Breakers()
	want := map[string]BreakerState{"rc": BreakerOpen, "slack": BreakerClosed, "webhook": BreakerClosed}
	for name, st := range want {
		if got[name] != st {
			t.Errorf("breaker of %s: %v, want %v", name, got[name], st)
		}
	}
	if len(got) != len(want) {
		t.Errorf("breakers %v, want those of %v", got, want)
	}
	if got := breakerGauges(t, r); got["rc"] != float64(BreakerOpen) || got["slack"] != float64(BreakerClosed) {
		t.Errorf("herald_breaker_state %v, want rc open and slack closed", got)
	}

	// The replaced slack breaker, still open, changes while a delivery that
	// started with it finishes: the gauge follows the breaker in effect.
	old.success(t.Context())
	openBreaker(t, old)
	if got := breakerGauges(t, r); got["slack"] != float64(BreakerClosed) {
		t.Errorf("a replaced breaker moved the gauge: %v", got)
	}

	// A sink removed while its breaker is open leaves no series behind:
	// HeraldBreakerOpen would fire for it until the next start.
	if err := r.d.Reload(Reload{
		Router: chainRouter{{Sink: "slack"}},
		Sinks:  map[string]sinks.Sink{"slack": &fakeSink{name: "slack"}},
		Config: testConfig(),
	}); err != nil {
		t.Fatal(err)
	}
	if got := breakerGauges(t, r); len(got) != 1 || got["slack"] != float64(BreakerClosed) {
		t.Errorf("herald_breaker_state after removing rc and webhook: %v, want slack alone", got)
	}
}

// breakerGauges returns herald_breaker_state by sink.
func breakerGauges(t *testing.T, r *rig) map[string]float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "herald_breaker_state" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return out
}

// TestReloadRefusesBadSettings: a reload that New would refuse changes
// nothing.
func TestReloadRefusesBadSettings(t *testing.T) {
	r := newRig(t, testConfig())
	bad := testConfig()
	bad.MaxInFlight = -1
	tests := map[string]Reload{
		"no router":     {Sinks: map[string]sinks.Sink{"rc": r.rc}, Config: testConfig()},
		"no sinks":      {Router: chainRouter{{Sink: "rc"}}, Config: testConfig()},
		"misnamed sink": {Router: chainRouter{{Sink: "rc"}}, Sinks: map[string]sinks.Sink{"x": r.rc}, Config: testConfig()},
		"bad settings":  {Router: chainRouter{{Sink: "rc"}}, Sinks: map[string]sinks.Sink{"rc": r.rc}, Config: bad},
	}
	before := r.d.gen.Load()
	for name, rl := range tests {
		if err := r.d.Reload(rl); err == nil {
			t.Errorf("%s: reload accepted", name)
		}
		if r.d.gen.Load() != before {
			t.Fatalf("%s: a refused reload changed the dispatcher", name)
		}
	}
}

// TestReloadWhileDelivering: a Handle under way when the routes change
// finishes with the sink it started with; the next one takes the new route.
// Nothing is lost or sent twice.
func TestReloadWhileDelivering(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, testConfig())
		entered := make(chan struct{})
		unblock := make(chan struct{})
		var once sync.Once
		r.rc.send = func(ctx context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
			once.Do(func() { close(entered) })
			select {
			case <-unblock:
				return sinks.Receipt{}, nil
			case <-ctx.Done():
				return sinks.Receipt{}, ctx.Err()
			}
		}
		var first delivery.Outcome
		done := make(chan struct{})
		go func() {
			defer close(done)
			first = r.d.Handle(t.Context(), msg("n1", "g1"))
		}()
		<-entered
		webhook := &fakeSink{name: "webhook"}
		if err := r.d.Reload(Reload{
			Router: chainRouter{{Sink: "webhook"}},
			Sinks:  map[string]sinks.Sink{"webhook": webhook},
			Config: testConfig(),
		}); err != nil {
			t.Fatal(err)
		}
		second := r.d.Handle(t.Context(), msg("n2", "g2"))
		close(unblock)
		<-done
		if first.Action != delivery.Ack || second.Action != delivery.Ack {
			t.Fatalf("outcomes %v and %v, want both acked", first.Action, second.Action)
		}
		if got := r.rc.Calls(); len(got) != 1 || got[0].id != "n1" {
			t.Errorf("old sink got %v, want n1 alone", got)
		}
		if got := webhook.Calls(); len(got) != 1 || got[0].id != "n2" {
			t.Errorf("new sink got %v, want n2 alone", got)
		}
		if _, ok := r.d.Breakers()["rc"]; ok {
			t.Error("a sink no longer configured still has a breaker")
		}
	})
}

// TestReloadResizesInFlight: a larger per-sink bound lets a waiting
// request go at once; requests under way keep their slots.
func TestReloadResizesInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxInFlightPerSink = 1
		r := newRig(t, cfg)
		release := make(chan struct{})
		var mu sync.Mutex
		inside := 0
		r.rc.send = func(ctx context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
			mu.Lock()
			inside++
			mu.Unlock()
			<-release
			return sinks.Receipt{}, nil
		}
		var wg sync.WaitGroup
		for _, id := range []string{"n1", "n2"} {
			wg.Go(func() { r.d.Handle(t.Context(), msg(id, "g-"+id)) })
		}
		synctest.Wait()
		mu.Lock()
		if inside != 1 {
			t.Fatalf("%d requests inside with a bound of 1", inside)
		}
		mu.Unlock()
		bigger := testConfig()
		bigger.MaxInFlightPerSink = 2
		if err := r.d.Reload(Reload{
			Router: chainRouter{{Sink: "rc", Channel: "#alerts"}, {Sink: "slack", Channel: "#alerts-slack"}},
			Sinks:  map[string]sinks.Sink{"rc": r.rc, "slack": r.slack},
			Config: bigger,
		}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		mu.Lock()
		if inside != 2 {
			t.Errorf("%d requests inside after raising the bound to 2", inside)
		}
		mu.Unlock()
		close(release)
		wg.Wait()
		if got := r.d.Config().MaxInFlightPerSink; got != 2 {
			t.Errorf("Config().MaxInFlightPerSink = %d after the reload", got)
		}
	})
}

// openBreaker fails b until it opens, as deliveries would.
func openBreaker(t *testing.T, b *breaker) {
	t.Helper()
	for i := 0; b.current() != BreakerOpen; i++ {
		if i > 100 {
			t.Fatal("the breaker does not open")
		}
		b.failure(t.Context(), false, "x")
	}
}
