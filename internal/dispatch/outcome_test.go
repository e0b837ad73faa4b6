package dispatch

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/internal/route"
	"github.com/herald-notify/herald/sinks"
)

func TestDeadLetter(t *testing.T) {
	tests := []struct {
		name       string
		rc, slack  error
		receivedAt time.Duration // before now; negative: unset
		replayedAt time.Duration // before now; 0: not replayed
		want       delivery.Action
		wantReason string
		wantKind   string
	}{{
		name: "every sink refuses for good",
		rc:   err400, slack: err400,
		want:       delivery.DeadLetter,
		wantReason: "no sink can take it: rc: HTTP 400: invalid attachment; slack: HTTP 400: invalid attachment",
		wantKind:   "permanent",
	}, {
		name: "one permanent, one retryable: retry",
		rc:   err400, slack: err503,
		want: delivery.Retry,
	}, {
		name: "budget spent",
		rc:   err503, slack: err503,
		receivedAt: 24 * time.Hour,
		want:       delivery.DeadLetter,
		wantReason: "retry budget of 24h0m0s spent: rc: HTTP 503 Service Unavailable; slack: HTTP 503 Service Unavailable",
		wantKind:   "budget",
	}, {
		name: "budget nearly spent",
		rc:   err503, slack: err503,
		receivedAt: 24*time.Hour - s,
		want:       delivery.Retry,
	}, {
		name: "a replay restarts the budget",
		rc:   err503, slack: err503,
		receivedAt: 72 * time.Hour,
		replayedAt: time.Hour,
		want:       delivery.Retry,
	}, {
		name: "a copy stored before received_at does not stretch the budget",
		rc:   err503, slack: err503,
		receivedAt: 25 * time.Hour,
		replayedAt: 26 * time.Hour,
		want:       delivery.DeadLetter,
		wantKind:   "budget",
	}, {
		name: "no received_at: kept",
		rc:   err503, slack: err503,
		receivedAt: -1,
		want:       delivery.Retry,
	}, {
		name: "no received_at, replayed: counted from the replay",
		rc:   err503, slack: err503,
		receivedAt: -1,
		replayedAt: 25 * time.Hour,
		want:       delivery.DeadLetter,
		wantKind:   "budget",
	}, {
		name: "a replayed budget runs out too",
		rc:   err503, slack: err503,
		receivedAt: 72 * time.Hour,
		replayedAt: 25 * time.Hour,
		want:       delivery.DeadLetter,
		wantKind:   "budget",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig()
				cfg.QuickRetries = 0
				r := newRig(t, cfg)
				r.rc.send, r.slack.send = always(tt.rc), always(tt.slack)
				fm := msg("n1", "g1")
				fm.n.ReceivedAt = timestamppb.New(time.Now().Add(-tt.receivedAt))
				if tt.receivedAt < 0 {
					fm.n.ReceivedAt = nil
				}
				var m delivery.Message = fm
				if tt.replayedAt > 0 {
					m = replayedMsg{fm, time.Now().Add(-tt.replayedAt)}
				}
				out := r.d.Handle(t.Context(), m)
				if out.Action != tt.want {
					t.Fatalf("outcome = %+v, want %v", out, tt.want)
				}
				if tt.wantReason != "" && out.Reason != tt.wantReason {
					t.Errorf("reason = %q, want %q", out.Reason, tt.wantReason)
				}
				if len(r.rc.Calls()) != 1 || len(r.slack.Calls()) != 1 {
					t.Errorf("rc got %d calls, slack %d; want 1 each", len(r.rc.Calls()), len(r.slack.Calls()))
				}
				rec, _ := r.state.Record(t.Context(), "n1")
				wantState := heraldv1.DeliveryState_DELIVERY_STATE_RETRYING
				if tt.want == delivery.DeadLetter {
					wantState = heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED
				}
				if rec.GetState() != wantState {
					t.Errorf("record state = %v, want %v", rec.GetState(), wantState)
				}
				if tt.wantKind != "" {
					if got := value(t, r.d.m.deadLetters.WithLabelValues(tt.wantKind)); got != 1 {
						t.Errorf("herald_dead_letters_total{reason=%q} = %v, want 1", tt.wantKind, got)
					}
				}
			})
		})
	}
}

func TestInvalidMessages(t *testing.T) {
	t.Run("no notification", func(t *testing.T) {
		r := newRig(t, testConfig())
		out := r.d.Handle(t.Context(), &fakeMsg{})
		if out.Action != delivery.DeadLetter {
			t.Errorf("outcome = %+v, want delivery.DeadLetter", out)
		}
	})
	t.Run("unknown sink in the chain", func(t *testing.T) {
		for _, slackErr := range []error{nil, err400} {
			slack := &fakeSink{name: "slack", send: always(slackErr)}
			d, err := New(Options{
				Router: chainRouter{{Sink: "ghost"}, {Sink: "slack"}},
				Sinks:  map[string]sinks.Sink{"slack": slack},
				State:  NewMemoryState(),
				Config: testConfig(),
			})
			if err != nil {
				t.Fatal(err)
			}
			out := d.Handle(t.Context(), msg("n1", "g"))
			want := delivery.Ack
			if slackErr != nil {
				want = delivery.DeadLetter
			}
			if out.Action != want {
				t.Errorf("slack error %v: outcome = %+v, want %v", slackErr, out, want)
			}
			if got := slack.Calls()[0].to.FallbackReason; got != "ghost: not configured" {
				t.Errorf("fallback reason = %q", got)
			}
		}
	})
}

// TestBreaker walks rc's breaker through open, probe, reopen and close, with
// one attempt per sink so that each notification counts one failure.
func TestBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.QuickRetries = 0
		r := newRig(t, cfg)
		r.rc.send = always(err503)
		n := 0
		handle := func() *fakeMsg {
			t.Helper()
			n++
			m := msg("n"+string(rune('0'+n)), "g")
			if out := r.d.Handle(t.Context(), m); out.Action != delivery.Ack {
				t.Fatalf("notification %d: outcome = %+v, want delivery.Ack", n, out)
			}
			return m
		}
		check := func(wantRCCalls int, want BreakerState) {
			t.Helper()
			if got := len(r.rc.Calls()); got != wantRCCalls {
				t.Errorf("after notification %d: rc got %d calls, want %d", n, got, wantRCCalls)
			}
			if got := r.d.Breakers()["rc"]; got != want {
				t.Errorf("after notification %d: breaker %v, want %v", n, got, want)
			}
			if got := value(t, r.d.m.breakerState.WithLabelValues("rc")); got != float64(want) {
				t.Errorf("after notification %d: herald_breaker_state = %v, want %v", n, got, float64(want))
			}
		}

		handle()
		handle()
		check(2, BreakerClosed)
		handle()
		check(3, BreakerOpen)

		// Open: rc is skipped, the fallback says why.
		handle()
		check(3, BreakerOpen)
		slackCalls := r.slack.Calls()
		if got := slackCalls[len(slackCalls)-1].to.FallbackReason; got != "rc: circuit open" {
			t.Errorf("fallback reason while open = %q, want %q", got, "rc: circuit open")
		}
		rec, _ := r.state.Record(t.Context(), "n4")
		if rc := rec.GetSinks()[0]; rc.GetAttempts() != 0 || rc.GetLastError() != "circuit open" {
			t.Errorf("record of a skipped sink: %v", rc)
		}
		time.Sleep(29 * s)
		handle()
		check(3, BreakerOpen)

		// 30s after opening: one probe, which fails: open again.
		time.Sleep(s)
		handle()
		check(4, BreakerOpen)
		handle()
		check(4, BreakerOpen)

		// 30s later rc is back: the probe closes the breaker.
		time.Sleep(30 * s)
		r.rc.send = nil
		handle()
		check(5, BreakerClosed)
		rec, _ = r.state.Record(t.Context(), "n8")
		if rec.GetDeliveredBy() != "rc" || rec.GetFallbackReason() != "" {
			t.Errorf("after failback: delivered_by %q, fallback_reason %q", rec.GetDeliveredBy(), rec.GetFallbackReason())
		}
		handle()
		check(6, BreakerClosed)

		for _, tr := range []struct {
			to   string
			want float64
		}{{"open", 2}, {"half-open", 2}, {"closed", 1}} {
			if got := value(t, r.d.m.breakerTransitions.WithLabelValues("rc", tr.to)); got != tr.want {
				t.Errorf("transitions to %s = %v, want %v", tr.to, got, tr.want)
			}
		}
	})
}

// TestBreakerOneProbe checks that while a probe is under way every other
// notification skips the sink.
func TestBreakerOneProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, testConfig())
		r.rc.send = always(err503)
		// One notification's three attempts open the breaker.
		r.d.Handle(t.Context(), msg("n1", "a"))
		if got := r.d.Breakers()["rc"]; got != BreakerOpen {
			t.Fatalf("breaker after 3 failed attempts: %v", got)
		}
		time.Sleep(30 * s)
		release := make(chan struct{})
		r.rc.send = func(context.Context, *heraldv1.Notification, sinks.Target) (sinks.Receipt, error) {
			<-release
			return sinks.Receipt{}, nil
		}
		done := make(chan delivery.Outcome)
		go func() { done <- r.d.Handle(t.Context(), msg("probe", "a")) }()
		synctest.Wait()
		if got := r.d.Breakers()["rc"]; got != BreakerHalfOpen {
			t.Errorf("breaker during the probe: %v", got)
		}
		if out := r.d.Handle(t.Context(), msg("other", "b")); out.Action != delivery.Ack {
			t.Errorf("other notification: %+v", out)
		}
		if got := len(r.rc.Calls()); got != 4 {
			t.Errorf("rc got %d calls, want 4 (3 failures and the probe)", got)
		}
		rec, _ := r.state.Record(t.Context(), "other")
		if rec.GetDeliveredBy() != "slack" || rec.GetFallbackReason() != "rc: circuit open" {
			t.Errorf("other: delivered_by %q reason %q", rec.GetDeliveredBy(), rec.GetFallbackReason())
		}
		close(release)
		if out := <-done; out.Action != delivery.Ack {
			t.Errorf("probe: %+v", out)
		}
		if got := r.d.Breakers()["rc"]; got != BreakerClosed {
			t.Errorf("breaker after the probe: %v", got)
		}
	})
}

// TestBreakerErrorKinds checks which errors count towards opening the
// breaker: a refused payload does not, refused credentials do, and a rate
// limit shows the sink is up.
func TestBreakerErrorKinds(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want BreakerState
	}{
		{"retryable", err503, BreakerOpen},
		{"bad payload", err400, BreakerClosed},
		{"bad credentials", err401, BreakerOpen},
		{"forbidden", sinks.ClassifyStatus(403, "", 0), BreakerOpen},
		{"marked broken (a deleted hook)", sinks.Broken(sinks.ClassifyStatus(404, "", 0)), BreakerOpen},
		{"not found, not marked", sinks.ClassifyStatus(404, "", 0), BreakerClosed},
		{"throttled", throttled(time.Hour), BreakerClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig()
				cfg.QuickRetries = 0
				r := newRig(t, cfg)
				r.rc.send = always(tt.err)
				for i := range 5 {
					r.d.Handle(t.Context(), msg("n"+string(rune('0'+i)), "g"))
				}
				if got := r.d.Breakers()["rc"]; got != tt.want {
					t.Errorf("breaker = %v, want %v", got, tt.want)
				}
				wantCalls := 5
				if tt.want == BreakerOpen {
					wantCalls = 3
				}
				if got := len(r.rc.Calls()); got != wantCalls {
					t.Errorf("rc got %d calls, want %d", got, wantCalls)
				}
			})
		})
	}
}

func TestRelease(t *testing.T) {
	t.Run("during an attempt", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, testConfig())
			r.rc.send = hang
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(s, cancel)
			if out := r.d.Handle(ctx, msg("n1", "g")); out.Action != delivery.Release {
				t.Fatalf("outcome = %+v, want delivery.Release", out)
			}
			if len(r.slack.Calls()) != 0 {
				t.Error("the fallback was tried during shutdown")
			}
			rec, _ := r.state.Record(t.Context(), "n1")
			rc := rec.GetSinks()[0]
			if rc.GetAttempts() != 1 || rc.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_RETRYING {
				t.Errorf("record after release: %v", rc)
			}
			// The interrupted attempt counts for the sink's next attempt,
			// but not against the breaker.
			r.rc.send = nil
			if out := r.d.Handle(t.Context(), msg("n1", "g")); out.Action != delivery.Ack {
				t.Fatalf("redelivery: %+v", out)
			}
			if got := r.rc.Calls()[1].to.Attempt; got != 2 {
				t.Errorf("attempt after release = %d, want 2", got)
			}
			if f := r.d.gen.Load().breakers["rc"].failures; f != 0 {
				t.Errorf("breaker counted %d failures", f)
			}
		})
	})
	t.Run("while waiting to retry", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, testConfig())
			r.rc.send = always(err503)
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(200*ms, cancel)
			if out := r.d.Handle(ctx, msg("n1", "g")); out.Action != delivery.Release {
				t.Fatalf("outcome = %+v, want delivery.Release", out)
			}
			if len(r.rc.Calls()) != 1 || len(r.slack.Calls()) != 0 {
				t.Errorf("rc got %d calls, slack %d; want 1 and 0", len(r.rc.Calls()), len(r.slack.Calls()))
			}
		})
	})
	t.Run("during a probe", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRig(t, testConfig())
			r.rc.send = always(err503)
			r.d.Handle(t.Context(), msg("n1", "g"))
			time.Sleep(30 * s)
			r.rc.send = hang
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(s, cancel)
			if out := r.d.Handle(ctx, msg("n2", "g")); out.Action != delivery.Release {
				t.Fatalf("outcome = %+v, want delivery.Release", out)
			}
			if got := r.d.Breakers()["rc"]; got != BreakerOpen {
				t.Errorf("breaker after an abandoned probe: %v", got)
			}
			// The next notification probes at once.
			r.rc.send = nil
			r.d.Handle(t.Context(), msg("n3", "g"))
			if got := r.d.Breakers()["rc"]; got != BreakerClosed {
				t.Errorf("breaker after the next probe: %v", got)
			}
		})
	})
	t.Run("before anything", func(t *testing.T) {
		r := newRig(t, testConfig())
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if out := r.d.Handle(ctx, msg("n1", "g")); out.Action != delivery.Release {
			t.Errorf("outcome = %+v, want delivery.Release", out)
		}
		if len(r.rc.Calls()) != 0 {
			t.Error("a sink was called after shutdown")
		}
	})
	t.Run("delivered as shutdown began", func(t *testing.T) {
		r := newRig(t, testConfig())
		ctx, cancel := context.WithCancel(t.Context())
		r.rc.send = func(context.Context, *heraldv1.Notification, sinks.Target) (sinks.Receipt, error) {
			cancel()
			return sinks.Receipt{}, nil
		}
		if out := r.d.Handle(ctx, msg("n1", "g")); out.Action != delivery.Ack {
			t.Errorf("outcome = %+v, want Ack: the chat server took it", out)
		}
	})
}

func TestInProgressWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, testConfig())
		r.rc.send = failing(err503, throttled(3*s))
		start := time.Now()
		m := msg("n1", "g")
		if out := r.d.Handle(t.Context(), m); out.Action != delivery.Ack {
			t.Fatalf("outcome = %+v", out)
		}
		// Before each wait, and before each attempt after the first.
		want := []time.Duration{0, 500 * ms, 500 * ms, 3500 * ms}
		var got []time.Duration
		for _, at := range m.InProgressCalls() {
			got = append(got, at.Sub(start))
		}
		if !equalDurations(got, want) {
			t.Errorf("InProgress at %v, want %v", got, want)
		}
	})
}

func TestPanickingSink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.QuickRetries = 0
		r := newRig(t, cfg)
		r.rc.send = func(context.Context, *heraldv1.Notification, sinks.Target) (sinks.Receipt, error) {
			panic("nil map")
		}
		if out := r.d.Handle(t.Context(), msg("n1", "g")); out.Action != delivery.Ack {
			t.Fatalf("outcome = %+v", out)
		}
		rec, _ := r.state.Record(t.Context(), "n1")
		if rec.GetDeliveredBy() != "slack" || !strings.Contains(rec.GetFallbackReason(), "panicked") {
			t.Errorf("delivered_by %q, fallback_reason %q", rec.GetDeliveredBy(), rec.GetFallbackReason())
		}
	})
}

// TestBreakerCountsConsecutive checks that only consecutive failures open
// the breaker: a rate limit in between shows the sink is up.
func TestBreakerCountsConsecutive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.QuickRetries = 0
		r := newRig(t, cfg)
		r.rc.send = failing(err503, err503, throttled(time.Hour), err503, err503, err400, err503, err503)
		for i := range 8 {
			r.d.Handle(t.Context(), msg("n"+string(rune('0'+i)), "g"))
		}
		if got := r.d.Breakers()["rc"]; got != BreakerClosed {
			t.Errorf("breaker = %v after failures interrupted by a throttle and a refused payload", got)
		}
		r.d.Handle(t.Context(), msg("n9", "g"))
		if got := r.d.Breakers()["rc"]; got != BreakerClosed {
			t.Errorf("breaker = %v after a success", got)
		}
	})
}

// TestAlreadyDelivered checks that a copy handed out again after its
// delivery (herald died before the ack) is acked without a second post.
func TestAlreadyDelivered(t *testing.T) {
	r := newRig(t, testConfig())
	if out := r.d.Handle(t.Context(), msg("n1", "g")); out.Action != delivery.Ack {
		t.Fatal(out)
	}
	m := msg("n1", "g")
	m.delivered = 2
	out := r.d.Handle(t.Context(), m)
	if out.Action != delivery.Ack || out.Reason != "already delivered by rc" {
		t.Errorf("redelivered copy: %+v", out)
	}
	if got := len(r.rc.Calls()); got != 1 {
		t.Errorf("rc got %d calls, want 1", got)
	}
	if got := value(t, r.d.m.alreadyDelivered); got != 1 {
		t.Errorf("herald_already_delivered_total = %v", got)
	}
	// A dead letter replayed is sent again.
	rec, _ := r.state.Record(t.Context(), "n1")
	rec.State = heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED
	r.state.PutRecord(t.Context(), "n1", rec)
	if out := r.d.Handle(t.Context(), msg("n1", "g")); out.Action != delivery.Ack || len(r.rc.Calls()) != 2 {
		t.Errorf("replayed dead letter: %+v, rc calls %d", out, len(r.rc.Calls()))
	}
}

// TestOutcomeHold checks the reason a Retry gives for holding the group
// back, and that only a Retry gives one.
func TestOutcomeHold(t *testing.T) {
	open := func(b *breaker) {
		b.state, b.openedAt = BreakerOpen, time.Now()
	}
	tests := []struct {
		name      string
		rc, slack error // answers; nil delivers
		rcOpen    bool
		slackOpen bool
		want      delivery.Action
		wantHold  delivery.Hold
		wantDelay time.Duration
	}{{
		name: "delivered",
		want: delivery.Ack, wantHold: delivery.HoldNone,
	}, {
		name: "every sink refuses for good",
		rc:   err400, slack: err400,
		want: delivery.DeadLetter, wantHold: delivery.HoldNone,
	}, {
		name: "sinks fail",
		rc:   err503, slack: err503,
		want: delivery.Retry, wantHold: delivery.HoldRetrying, wantDelay: 5 * s,
	}, {
		name: "one refuses, one fails",
		rc:   err400, slack: err503,
		want: delivery.Retry, wantHold: delivery.HoldRetrying, wantDelay: 5 * s,
	}, {
		name: "rate limits longer than the backoff",
		rc:   throttled(time.Minute), slack: throttled(2 * time.Minute),
		want: delivery.Retry, wantHold: delivery.HoldThrottled, wantDelay: 2 * time.Minute,
	}, {
		name: "a rate limit as long as the backoff",
		rc:   err503, slack: throttled(5 * s),
		want: delivery.Retry, wantHold: delivery.HoldThrottled, wantDelay: 5 * s,
	}, {
		name: "a rate limit longer than the backoff, and a failure",
		rc:   throttled(30 * s), slack: err503,
		want: delivery.Retry, wantHold: delivery.HoldThrottled, wantDelay: 30 * s,
	}, {
		name: "a rate limit shorter than the backoff",
		rc:   err503, slack: throttled(2 * s),
		want: delivery.Retry, wantHold: delivery.HoldRetrying, wantDelay: 5 * s,
	}, {
		name:   "every breaker open",
		rcOpen: true, slackOpen: true,
		want: delivery.Retry, wantHold: delivery.HoldBroken, wantDelay: 5 * s,
	}, {
		name:   "the primary's breaker open, the fallback fails",
		rcOpen: true, slack: err503,
		want: delivery.Retry, wantHold: delivery.HoldRetrying, wantDelay: 5 * s,
	}, {
		name:   "the primary's breaker open, the fallback throttled",
		rcOpen: true, slack: throttled(time.Hour),
		want: delivery.Retry, wantHold: delivery.HoldThrottled, wantDelay: time.Hour,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig()
				cfg.QuickRetries = 0
				r := newRig(t, cfg)
				r.rc.send, r.slack.send = always(tt.rc), always(tt.slack)
				if tt.rcOpen {
					open(r.d.gen.Load().breakers["rc"])
				}
				if tt.slackOpen {
					open(r.d.gen.Load().breakers["slack"])
				}
				out := r.d.Handle(t.Context(), msg("n1", "g1"))
				if out.Action != tt.want || out.Hold != tt.wantHold {
					t.Errorf("outcome %v hold %v (%+v), want %v hold %v", out.Action, out.Hold, out, tt.want, tt.wantHold)
				}
				if tt.want == delivery.Retry && out.Delay != tt.wantDelay {
					t.Errorf("delay %v, want %v", out.Delay, tt.wantDelay)
				}
			})
		})
	}
}

func TestHoldString(t *testing.T) {
	for h, want := range map[delivery.Hold]string{
		delivery.HoldNone: "none", delivery.HoldRetrying: "retrying", delivery.HoldThrottled: "throttled", delivery.HoldBroken: "broken",
	} {
		if got := h.String(); got != want {
			t.Errorf("Hold(%d).String() = %q, want %q", int(h), got, want)
		}
	}
}

// TestOutcomeRoute checks that every outcome of a routed notification names
// its route, and that RouteOf names the same one.
func TestOutcomeRoute(t *testing.T) {
	router := routerFunc(func(n *heraldv1.Notification) route.Decision {
		return route.Decision{Route: "team-" + n.GetLabels()["team"], Chain: []route.Step{{Sink: "rc"}}}
	})
	labelled := func(id, team string) *fakeMsg {
		m := msg(id, "g-"+id)
		m.n.Labels = map[string]string{"team": team}
		return m
	}
	tests := []struct {
		name  string
		rc    error
		ctx   func(context.Context) context.Context
		team  string
		want  delivery.Action
		twice bool // handled a second time: already delivered
	}{
		{name: "ack", team: "db", want: delivery.Ack},
		{name: "already delivered", team: "db", want: delivery.Ack, twice: true},
		{name: "retry", rc: err503, team: "web", want: delivery.Retry},
		{name: "dead letter", rc: err400, team: "web", want: delivery.DeadLetter},
		{name: "release", team: "ops", want: delivery.Release, ctx: func(ctx context.Context) context.Context {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			return ctx
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &fakeSink{name: "rc", send: always(tt.rc)}
			d, err := New(Options{
				Router: router,
				Sinks:  map[string]sinks.Sink{"rc": rc},
				State:  NewMemoryState(),
				Config: Config{QuickRetries: 0, QuickBackoff: time.Nanosecond},
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx(ctx)
			}
			m := labelled("n1", tt.team)
			out := d.Handle(ctx, m)
			if tt.twice {
				out = d.Handle(ctx, m)
			}
			if out.Action != tt.want || out.Route != "team-"+tt.team {
				t.Errorf("outcome %v route %q, want %v route %q", out.Action, out.Route, tt.want, "team-"+tt.team)
			}
			if got := d.RouteOf(m.n); got != "team-"+tt.team {
				t.Errorf("RouteOf = %q, want %q", got, "team-"+tt.team)
			}
		})
	}
	t.Run("no notification", func(t *testing.T) {
		r := newRig(t, testConfig())
		if out := r.d.Handle(t.Context(), &fakeMsg{}); out.Route != "" {
			t.Errorf("route %q for a message without a notification", out.Route)
		}
	})
}
