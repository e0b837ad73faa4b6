package dispatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/internal/route"
	"github.com/herald-notify/herald/sinks"
)

func TestSeverityPriority(t *testing.T) {
	tests := []struct {
		name string
		sevs []heraldv1.Severity
		want priority
	}{
		{"critical", []heraldv1.Severity{heraldv1.Severity_SEVERITY_CRITICAL}, prioCritical},
		{"warning", []heraldv1.Severity{heraldv1.Severity_SEVERITY_WARNING}, prioWarning},
		{"info", []heraldv1.Severity{heraldv1.Severity_SEVERITY_INFO}, prioInfo},
		{"unspecified", []heraldv1.Severity{heraldv1.Severity_SEVERITY_UNSPECIFIED}, prioUnspecified},
		{"unknown to this build", []heraldv1.Severity{heraldv1.Severity(42)}, prioUnspecified},
		{"a digest is its most severe member", []heraldv1.Severity{
			heraldv1.Severity_SEVERITY_INFO, heraldv1.Severity_SEVERITY_WARNING, heraldv1.Severity_SEVERITY_INFO,
		}, prioWarning},
		{"a critical member makes a critical digest", []heraldv1.Severity{
			heraldv1.Severity_SEVERITY_UNSPECIFIED, heraldv1.Severity_SEVERITY_CRITICAL, heraldv1.Severity_SEVERITY_WARNING,
		}, prioCritical},
		{"nothing", nil, prioUnspecified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ns []*heraldv1.Notification
			for _, sev := range tt.sevs {
				ns = append(ns, &heraldv1.Notification{Severity: sev})
			}
			if got := priorityOf(ns...); got != tt.want {
				t.Errorf("priorityOf(%v) = %d, want %d", tt.sevs, got, tt.want)
			}
		})
	}
	if !(prioCritical > prioWarning && prioWarning > prioInfo && prioInfo > prioUnspecified) {
		t.Error("priorities are not ordered critical > warning > info > unspecified")
	}
}

// TestPrioSemOrder fills the semaphore, queues waiters one after the other,
// then frees one slot at a time: each free slot goes to the best waiter,
// by priority, first come first served within a priority.
func TestPrioSemOrder(t *testing.T) {
	const (
		U = prioUnspecified
		I = prioInfo
		W = prioWarning
		C = prioCritical
	)
	tests := []struct {
		name    string
		size    int
		waiters []priority
		want    []int // waiter indexes in the order they get a slot
	}{
		{"one priority: first come first served", 1, []priority{W, W, W, W}, []int{0, 1, 2, 3}},
		{"severity first", 1, []priority{I, W, C, U}, []int{2, 1, 0, 3}},
		{"severity, then arrival", 1, []priority{I, C, I, C, W, U, W}, []int{1, 3, 4, 6, 0, 2, 5}},
		{"several slots", 3, []priority{I, C, I, C, W, U, W}, []int{1, 3, 4, 6, 0, 2, 5}},
		{"a late critical passes every info", 2, []priority{I, I, I, I, C}, []int{4, 0, 1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sem := newPrioSem(tt.size)
				var releases []func() // in the order slots are freed
				for range tt.size {
					rel, err := sem.acquire(t.Context(), prioCritical)
					if err != nil {
						t.Fatal(err)
					}
					releases = append(releases, rel)
				}
				var mu sync.Mutex
				var got []int
				var wg sync.WaitGroup
				for i, p := range tt.waiters {
					wg.Go(func() {
						rel, err := sem.acquire(t.Context(), p)
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						got = append(got, i)
						releases = append(releases, rel)
						mu.Unlock()
					})
					synctest.Wait() // queued before the next one
				}
				mu.Lock()
				if len(got) != 0 {
					t.Fatalf("waiters %v got a slot of a full semaphore", got)
				}
				mu.Unlock()
				for step := 0; ; step++ {
					mu.Lock()
					if step >= len(releases) {
						mu.Unlock()
						break
					}
					rel := releases[step]
					mu.Unlock()
					rel()
					synctest.Wait()
					mu.Lock()
					// One slot freed: exactly one more waiter holds one.
					if want := min(step+1, len(tt.waiters)); len(got) != want {
						t.Fatalf("after freeing %d slots, %d waiters got one, want %d", step+1, len(got), want)
					}
					mu.Unlock()
				}
				wg.Wait()
				if !slices.Equal(got, tt.want) {
					t.Errorf("slots went to %v, want %v", got, tt.want)
				}
				if n := sem.inUse(); n != 0 {
					t.Errorf("%d slots held after every holder released", n)
				}
			})
		})
	}
}

// TestPrioSemCancel checks that a waiter whose context ends leaves the
// queue at once with ctx's error, holding nothing, and that the others
// keep their order.
func TestPrioSemCancel(t *testing.T) {
	tests := []struct {
		name    string
		waiters []priority
		cancel  int   // the waiter whose context ends
		want    []int // the others, in the order they get the slot
	}{
		{"the next in line", []priority{prioInfo, prioInfo, prioInfo}, 0, []int{1, 2}},
		{"in the middle", []priority{prioInfo, prioInfo, prioInfo}, 1, []int{0, 2}},
		{"the best", []priority{prioInfo, prioCritical, prioWarning}, 1, []int{2, 0}},
		{"the last", []priority{prioWarning, prioInfo, prioUnspecified}, 2, []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sem := newPrioSem(1)
				hold, _ := sem.acquire(t.Context(), prioCritical)
				ctx, cancel := context.WithCancel(t.Context())
				var mu sync.Mutex
				var got []int
				var canceledErr error
				var wg sync.WaitGroup
				for i, p := range tt.waiters {
					wg.Go(func() {
						c := t.Context()
						if i == tt.cancel {
							c = ctx
						}
						rel, err := sem.acquire(c, p)
						mu.Lock()
						defer mu.Unlock()
						if i == tt.cancel {
							canceledErr = err
							if rel != nil {
								t.Error("a canceled acquire returned a release func")
							}
							return
						}
						if err != nil {
							t.Errorf("waiter %d: %v", i, err)
							return
						}
						got = append(got, i)
						rel()
					})
					synctest.Wait()
				}
				time.Sleep(time.Minute)
				cancel()
				synctest.Wait()
				mu.Lock()
				if !errors.Is(canceledErr, context.Canceled) {
					t.Errorf("canceled waiter got %v, want context.Canceled", canceledErr)
				}
				if len(got) != 0 {
					t.Errorf("waiters %v got a slot while it was held", got)
				}
				mu.Unlock()
				hold()
				wg.Wait()
				if !slices.Equal(got, tt.want) {
					t.Errorf("slot went to %v, want %v", got, tt.want)
				}
				if n := sem.inUse(); n != 0 {
					t.Errorf("%d slots held at the end", n)
				}
			})
		})
	}
	t.Run("already canceled", func(t *testing.T) {
		sem := newPrioSem(1)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := sem.acquire(ctx, prioCritical); !errors.Is(err, context.Canceled) {
			t.Errorf("acquire with a canceled context: %v", err)
		}
		if n := sem.inUse(); n != 0 {
			t.Errorf("%d slots held after a canceled acquire", n)
		}
	})
}

// TestPrioSemGrantedAsCanceled is the race of a slot granted in the
// instant the waiter's context ends: withdraw says the waiter holds the
// slot, and acquire passes it on instead of keeping or losing it.
func TestPrioSemGrantedAsCanceled(t *testing.T) {
	t.Run("withdraw after the grant", func(t *testing.T) {
		sem := newPrioSem(1)
		hold, _ := sem.acquire(t.Context(), prioInfo)
		w := sem.enqueue(prioInfo, 1, nil)
		hold() // w gets the slot
		if !sem.withdraw(w) {
			t.Fatal("withdraw of a granted waiter says it holds nothing")
		}
		sem.release()
		if n := sem.inUse(); n != 0 {
			t.Errorf("%d slots held", n)
		}
		if sem.withdraw(sem.enqueue(prioInfo, 2, func() bool { return false })) {
			t.Error("withdraw of a waiting waiter says it holds a slot")
		}
	})
	// Holders release and waiters' contexts end at the same fake instants,
	// many times over: no slot is ever lost or kept by a canceled waiter.
	t.Run("at the same instant", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			const size, workers, rounds = 3, 24, 40
			sem := newPrioSem(size)
			var mu sync.Mutex
			held, most, canceled := 0, 0, 0
			var wg sync.WaitGroup
			for i := range workers {
				wg.Go(func() {
					for r := range rounds {
						// Every deadline and every hold ends on a whole
						// millisecond, so that releases and cancellations
						// keep meeting.
						ctx, cancel := context.WithTimeout(t.Context(), time.Duration(1+(i+r)%3)*ms)
						rel, err := sem.acquire(ctx, priority(i%4))
						cancel()
						if err != nil {
							mu.Lock()
							canceled++
							mu.Unlock()
							continue
						}
						mu.Lock()
						held++
						most = max(most, held)
						mu.Unlock()
						time.Sleep(time.Duration(1+(i*r)%2) * ms)
						mu.Lock()
						held--
						mu.Unlock()
						rel()
					}
				})
			}
			wg.Wait()
			if most > size {
				t.Errorf("%d holders at once, want at most %d", most, size)
			}
			if canceled == 0 {
				t.Error("no acquire was canceled: the test does not exercise the race")
			}
			if n := sem.inUse(); n != 0 {
				t.Errorf("%d slots held after everyone left (a slot leaked)", n)
			}
			// Every slot is usable again.
			for range size {
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				if _, err := sem.acquire(ctx, prioInfo); err != nil {
					t.Errorf("acquire after the storm: %v", err)
				}
				cancel()
			}
		})
	})
}

// TestPrioSemConditional checks the pace gate's use of the semaphore: a
// waiter that is not ready is passed over without holding up the others,
// gets the slot once it is ready and poked, and moves when its priority
// changes.
func TestPrioSemConditional(t *testing.T) {
	granted := func(w *waiter) bool {
		select {
		case <-w.granted:
			return true
		default:
			return false
		}
	}
	sem := newPrioSem(1)
	hold, _ := sem.acquire(t.Context(), prioInfo)
	var mu sync.Mutex
	critReady := false
	crit := sem.enqueue(prioCritical, 1, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return critReady
	})
	info := sem.enqueue(prioInfo, 2, func() bool { return true })
	warn := sem.enqueue(prioWarning, 3, func() bool { return true })
	released := sem.watch()
	hold()
	select {
	case <-released:
	default:
		t.Error("release did not tell the watchers")
	}
	if granted(crit) || granted(info) || !granted(warn) {
		t.Fatalf("granted: critical %v, info %v, warning %v; want the warning (the critical is not ready)",
			granted(crit), granted(info), granted(warn))
	}
	mu.Lock()
	critReady = true
	mu.Unlock()
	sem.poke()
	if granted(crit) {
		t.Fatal("a poke granted a slot that is held")
	}
	sem.release() // the warning is done
	if !granted(crit) || granted(info) {
		t.Fatalf("granted: critical %v, info %v; want the critical, ready now", granted(crit), granted(info))
	}
	sem.release()
	if !granted(info) {
		t.Fatal("the info never got the slot")
	}
	sem.release()

	// Raised while it waits, a waiter passes those it now outranks.
	hold, _ = sem.acquire(t.Context(), prioInfo)
	a := sem.enqueue(prioWarning, 10, nil)
	b := sem.enqueue(prioInfo, 11, nil)
	sem.reprioritize(b, prioCritical)
	hold()
	if !granted(b) || granted(a) {
		t.Errorf("granted: raised %v, other %v; want the raised one", granted(b), granted(a))
	}
	sem.release()
	if !granted(a) {
		t.Error("the other never got the slot")
	}
	sem.release()
	if n := sem.inUse(); n != 0 {
		t.Errorf("%d slots held at the end", n)
	}
}

// TestPrioSemCapacity runs many holders at once: never more than the
// semaphore's size hold a slot.
func TestPrioSemCapacity(t *testing.T) {
	for _, size := range []int{1, 4, 32} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sem := newPrioSem(size)
				var mu sync.Mutex
				held, most := 0, 0
				var wg sync.WaitGroup
				for i := range 200 {
					wg.Go(func() {
						rel, err := sem.acquire(t.Context(), priority(i%4))
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						held++
						most = max(most, held)
						mu.Unlock()
						time.Sleep(time.Second)
						mu.Lock()
						held--
						mu.Unlock()
						rel()
					})
				}
				wg.Wait()
				if most != size {
					t.Errorf("at most %d holders at once, want %d", most, size)
				}
			})
		})
	}
}

// blocker is a fakeSink send func whose calls each wait for one value on
// unblock (or their context's end), then succeed.
func blocker(unblock chan struct{}) func(context.Context, *heraldv1.Notification, sinks.Target) (sinks.Receipt, error) {
	return func(ctx context.Context, _ *heraldv1.Notification, _ sinks.Target) (sinks.Receipt, error) {
		select {
		case <-unblock:
			return sinks.Receipt{}, nil
		case <-ctx.Done():
			return sinks.Receipt{}, ctx.Err()
		}
	}
}

// withSeverity returns a message for a notification of severity sev.
func withSeverity(id string, sev heraldv1.Severity) *fakeMsg {
	m := msg(id, "g-"+id)
	m.n.Severity = sev
	return m
}

// ids lists the notification ids of calls.
func ids(calls []call) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.id
	}
	return out
}

// TestInFlightBound checks that no more than max_in_flight attempts run at
// once, that the attempts waiting for a slot get it most severe first and
// in arrival order within a severity, and what the metrics say.
func TestInFlightBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxInFlight = 2
		r := newRig(t, cfg)
		unblock := make(chan struct{})
		r.rc.send = blocker(unblock)
		const (
			info = heraldv1.Severity_SEVERITY_INFO
			warn = heraldv1.Severity_SEVERITY_WARNING
			crit = heraldv1.Severity_SEVERITY_CRITICAL
		)
		var wg sync.WaitGroup
		for _, m := range []*fakeMsg{
			withSeverity("i1", info), withSeverity("i2", info), // in flight
			withSeverity("i3", info), withSeverity("i4", info), withSeverity("c1", crit),
			withSeverity("i5", info), withSeverity("w1", warn), withSeverity("c2", crit),
		} {
			wg.Go(func() {
				if out := r.d.Handle(t.Context(), m); out.Action != delivery.Ack {
					t.Errorf("%s: %+v", m.n.GetId(), out)
				}
			})
			synctest.Wait()
		}
		if got := ids(r.rc.Calls()); !slices.Equal(got, []string{"i1", "i2"}) {
			t.Fatalf("rc calls %v with 2 slots, want i1 and i2", got)
		}
		if got := value(t, r.d.m.attemptsInFlight.WithLabelValues("rc")); got != 2 {
			t.Errorf("herald_dispatch_attempts_in_flight{rc} = %v, want 2", got)
		}
		for range 8 {
			time.Sleep(s)
			unblock <- struct{}{}
			synctest.Wait()
		}
		wg.Wait()
		want := []string{"i1", "i2", "c1", "c2", "w1", "i3", "i4", "i5"}
		if got := ids(r.rc.Calls()); !slices.Equal(got, want) {
			t.Errorf("rc calls in order %v, want %v", got, want)
		}
		if len(r.slack.Calls()) != 0 {
			t.Errorf("slack called %d times: waiting for a slot is not a failure", len(r.slack.Calls()))
		}
		if got := value(t, r.d.m.attemptsInFlight.WithLabelValues("rc")); got != 0 {
			t.Errorf("herald_dispatch_attempts_in_flight{rc} = %v after all, want 0", got)
		}
		// c1 waited 1s for its slot, c2 2s, w1 3s, i3 4s, i4 5s, i5 6s.
		h := histogram(t, r.reg, "herald_dispatch_slot_wait_seconds", "rc")
		if h.GetSampleCount() != 8 || h.GetSampleSum() != 21 {
			t.Errorf("herald_dispatch_slot_wait_seconds{rc}: %d samples, sum %v; want 8 summing to 21",
				h.GetSampleCount(), h.GetSampleSum())
		}
	})
}

// TestInFlightPerSink checks that a sink at its own bound holds up neither
// the other sinks nor the overall slots: the attempts queueing for it wait
// for its slot before they take one of max_in_flight.
func TestInFlightPerSink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc, slack := &fakeSink{name: "rc"}, &fakeSink{name: "slack"}
		unblock := make(chan struct{})
		rc.send = blocker(unblock)
		d, err := New(Options{
			Router: routerFunc(func(n *heraldv1.Notification) route.Decision {
				if strings.HasPrefix(n.GetId(), "s") {
					return route.Decision{Route: "slack", Chain: []route.Step{{Sink: "slack"}}}
				}
				return route.Decision{Route: "rc", Chain: []route.Step{{Sink: "rc"}}}
			}),
			Sinks:  map[string]sinks.Sink{"rc": rc, "slack": slack},
			State:  NewMemoryState(),
			Config: Config{MaxInFlight: 2, MaxInFlightPerSink: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, id := range []string{"r1", "r2", "r3"} {
			wg.Go(func() { d.Handle(t.Context(), msg(id, "g-"+id)) })
			synctest.Wait()
		}
		if n := len(rc.Calls()); n != 1 {
			t.Errorf("rc got %d calls at once, want 1 (max_in_flight_per_sink)", n)
		}
		var s1 delivery.Outcome
		wg.Go(func() { s1 = d.Handle(t.Context(), msg("s1", "g-s1")) })
		synctest.Wait()
		if n := len(slack.Calls()); n != 1 {
			t.Errorf("slack got %d calls while rc is at its bound, want 1: the attempts queueing for rc hold overall slots", n)
		}
		for range 3 {
			unblock <- struct{}{}
		}
		wg.Wait()
		if s1.Action != delivery.Ack {
			t.Errorf("s1: %+v", s1)
		}
		if got := ids(rc.Calls()); !slices.Equal(got, []string{"r1", "r2", "r3"}) {
			t.Errorf("rc calls %v", got)
		}
	})
}

// TestInFlightOnlyDuringRequests checks that a notification holds its
// slot only while its request runs: not while it sleeps before a quick
// retry, and not while it is parked in a lane.
func TestInFlightOnlyDuringRequests(t *testing.T) {
	t.Run("between quick retries", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxInFlight = 1
			r := newRig(t, cfg)
			r.rc.send = func(_ context.Context, n *heraldv1.Notification, _ sinks.Target) (sinks.Receipt, error) {
				if n.GetId() == "a" && len(r.rc.Calls()) == 1 {
					return sinks.Receipt{}, err503
				}
				return sinks.Receipt{}, nil
			}
			start := time.Now()
			var wg sync.WaitGroup
			wg.Go(func() { r.d.Handle(t.Context(), msg("a", "ga")) })
			time.Sleep(100 * ms) // a sleeps until 500ms before its retry
			if out := r.d.Handle(t.Context(), msg("b", "gb")); out.Action != delivery.Ack {
				t.Errorf("b: %+v", out)
			}
			wg.Wait()
			got := offsets(start, r.rc.Calls())
			if want := []time.Duration{0, 100 * ms, 500 * ms}; !equalDurations(got, want) {
				t.Errorf("rc called at %v (%v), want %v: b must not wait for a's retry", got, ids(r.rc.Calls()), want)
			}
		})
	})
	t.Run("parked in a lane", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pc := &pacedSink{name: "pc", count: 1, per: time.Minute}
			router := routerFunc(func(n *heraldv1.Notification) route.Decision {
				if n.GetId() == "fast" {
					return route.Decision{Route: "fast", Chain: []route.Step{{Sink: "slack", Channel: "#fast"}}}
				}
				return route.Decision{Route: "default", Chain: []route.Step{{Sink: "pc", Channel: "#alerts"}}}
			})
			cfg := testConfig()
			cfg.MaxInFlight = 1
			r := newDigestRig(t, pc, router, cfg)
			start := time.Now()
			r.d.Handle(t.Context(), msg("n0", "g0"))
			wait := parkAll(func(int) context.Context { return t.Context() }, r.d, msgs("n1", "n2")...)
			if out := r.d.Handle(t.Context(), msg("fast", "gf")); out.Action != delivery.Ack {
				t.Errorf("fast: %+v", out)
			}
			if got := offsets(start, r.slack.Calls()); !equalDurations(got, []time.Duration{0}) {
				t.Errorf("slack called at %v, want at once: parked notifications hold no slot", got)
			}
			if got := actions(wait()); got != "ack,ack" {
				t.Errorf("parked: %s", got)
			}
			if got, want := describe(start, pc.Requests()), "0s:n0 +1m0s:n1,n2"; got != want {
				t.Errorf("pc requests %s, want %s", got, want)
			}
		})
	})
}

// TestInFlightShutdown checks that an attempt waiting for a slot gives up
// when its context ends: the message is released, the sink never called
// for it, and no slot is lost.
func TestInFlightShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxInFlight = 1
		r := newRig(t, cfg)
		unblock := make(chan struct{})
		r.rc.send = blocker(unblock)
		var wg sync.WaitGroup
		wg.Go(func() { r.d.Handle(t.Context(), msg("n1", "g1")) })
		synctest.Wait()
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(s, cancel)
		if out := r.d.Handle(ctx, msg("n2", "g2")); out.Action != delivery.Release {
			t.Errorf("n2 canceled while waiting for a slot: %+v, want delivery.Release", out)
		}
		if got := ids(r.rc.Calls()); !slices.Equal(got, []string{"n1"}) {
			t.Errorf("rc calls %v, want n1 only", got)
		}
		if len(r.slack.Calls()) != 0 {
			t.Error("the fallback was tried during shutdown")
		}
		if f := r.d.gen.Load().breakers["rc"].failures; f != 0 {
			t.Errorf("breaker counted %d failures for a wait for a slot", f)
		}
		unblock <- struct{}{}
		wg.Wait()
		// The slot came back: the next one goes at once.
		go func() { unblock <- struct{}{} }()
		if out := r.d.Handle(t.Context(), msg("n3", "g3")); out.Action != delivery.Ack {
			t.Errorf("n3: %+v", out)
		}
		if got := value(t, r.d.m.attemptsInFlight.WithLabelValues("rc")); got != 0 {
			t.Errorf("herald_dispatch_attempts_in_flight{rc} = %v at rest", got)
		}
	})
}
