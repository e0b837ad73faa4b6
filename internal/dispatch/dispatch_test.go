package dispatch

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/internal/route"
	"github.com/herald-notify/herald/sinks"
)

const (
	ms = time.Millisecond
	s  = time.Second
)

// hang is a sink that answers only when its attempt's context ends.
func hang(ctx context.Context, _ *heraldv1.Notification, _ sinks.Target) (sinks.Receipt, error) {
	<-ctx.Done()
	return sinks.Receipt{}, ctx.Err()
}

// TestQuickRetries checks when each sink of the chain is called, with the
// default config: 2 quick retries within 5s, backoff 500ms doubling, 10s
// per attempt.
func TestQuickRetries(t *testing.T) {
	type sendFunc = func(context.Context, *heraldv1.Notification, sinks.Target) (sinks.Receipt, error)
	tests := []struct {
		name      string
		cfg       func(*Config)
		rc, slack sendFunc
		wantRC    []time.Duration
		wantSlack []time.Duration
		wantBy    string
	}{{
		name:   "retryable twice then delivered",
		rc:     failing(err503, err503),
		wantRC: []time.Duration{0, 500 * ms, 1500 * ms},
		wantBy: "rc",
	}, {
		name:      "retryable until retries run out, then the fallback",
		rc:        always(err503),
		wantRC:    []time.Duration{0, 500 * ms, 1500 * ms},
		wantSlack: []time.Duration{1500 * ms},
		wantBy:    "slack",
	}, {
		name:      "budget ends the retries before their count",
		cfg:       func(c *Config) { c.QuickRetryBudget = s },
		rc:        always(err503),
		wantRC:    []time.Duration{0, 500 * ms},
		wantSlack: []time.Duration{500 * ms},
		wantBy:    "slack",
	}, {
		name:      "no quick retries",
		cfg:       func(c *Config) { c.QuickRetries = 0 },
		rc:        always(err503),
		wantRC:    []time.Duration{0},
		wantSlack: []time.Duration{0},
		wantBy:    "slack",
	}, {
		name:   "short throttle is waited out",
		rc:     failing(throttled(2 * s)),
		wantRC: []time.Duration{0, 2 * s},
		wantBy: "rc",
	}, {
		name:   "throttle as long as the budget is waited out",
		rc:     failing(throttled(5 * s)),
		wantRC: []time.Duration{0, 5 * s},
		wantBy: "rc",
	}, {
		name:      "throttle longer than the budget moves on at once",
		rc:        always(throttled(6 * s)),
		wantRC:    []time.Duration{0},
		wantSlack: []time.Duration{0},
		wantBy:    "slack",
	}, {
		name:   "throttle then retryable share the retries",
		rc:     failing(throttled(s), err503),
		wantRC: []time.Duration{0, s, 2 * s},
		wantBy: "rc",
	}, {
		name:      "permanent moves on at once",
		rc:        always(err400),
		wantRC:    []time.Duration{0},
		wantSlack: []time.Duration{0},
		wantBy:    "slack",
	}, {
		name:      "a hanging sink is cut at the attempt timeout",
		rc:        hang,
		wantRC:    []time.Duration{0},
		wantSlack: []time.Duration{10 * s},
		wantBy:    "slack",
	}, {
		name:      "a shorter attempt timeout leaves room for retries",
		cfg:       func(c *Config) { c.AttemptTimeout = s },
		rc:        hang,
		wantRC:    []time.Duration{0, 1500 * ms, 3500 * ms},
		wantSlack: []time.Duration{4500 * ms},
		wantBy:    "slack",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig()
				if tt.cfg != nil {
					tt.cfg(&cfg)
				}
				r := newRig(t, cfg)
				r.rc.send, r.slack.send = tt.rc, tt.slack
				start := time.Now()
				m := msg("n1", "g1")
				out := r.d.Handle(t.Context(), m)
				if out.Action != delivery.Ack {
					t.Fatalf("outcome = %+v, want delivery.Ack", out)
				}
				if got := offsets(start, r.rc.Calls()); !equalDurations(got, tt.wantRC) {
					t.Errorf("rc called at %v, want %v", got, tt.wantRC)
				}
				if got := offsets(start, r.slack.Calls()); !equalDurations(got, tt.wantSlack) {
					t.Errorf("slack called at %v, want %v", got, tt.wantSlack)
				}
				rec, _ := r.state.Record(t.Context(), "n1")
				if rec.GetDeliveredBy() != tt.wantBy {
					t.Errorf("delivered_by = %q, want %q", rec.GetDeliveredBy(), tt.wantBy)
				}
			})
		})
	}
}

func TestFallbackTargets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, testConfig())
		r.rc.send = always(err503)
		if out := r.d.Handle(t.Context(), msg("n1", "g1")); out.Action != delivery.Ack {
			t.Fatalf("outcome = %+v, want delivery.Ack", out)
		}
		for i, c := range r.rc.Calls() {
			want := sinks.Target{Channel: "#alerts", Route: "default", Attempt: i + 1}
			if c.to != want {
				t.Errorf("rc call %d target = %+v, want %+v", i, c.to, want)
			}
		}
		calls := r.slack.Calls()
		if len(calls) != 1 {
			t.Fatalf("slack got %d calls, want 1", len(calls))
		}
		want := sinks.Target{
			Channel:        "#alerts-slack",
			Route:          "default",
			Attempt:        1,
			FallbackReason: "rc: HTTP 503 Service Unavailable",
			FallbackFrom:   "rc",
		}
		if calls[0].to != want {
			t.Errorf("slack target = %+v, want %+v", calls[0].to, want)
		}
	})
}

// TestFallbackOrder checks that a three-sink chain is tried in order and
// that the reason names every sink that did not take the notification.
func TestFallbackOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var order []string
		sink := func(name string, err error) *fakeSink {
			return &fakeSink{name: name, send: func(context.Context, *heraldv1.Notification, sinks.Target) (sinks.Receipt, error) {
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				return sinks.Receipt{}, err
			}}
		}
		a, b, c := sink("a", err400), sink("b", throttled(time.Hour)), sink("c", nil)
		state := NewMemoryState()
		d, err := New(Options{
			Router: chainRouter{{Sink: "a"}, {Sink: "b"}, {Sink: "c", Channel: "#c"}},
			Sinks:  map[string]sinks.Sink{"a": a, "b": b, "c": c},
			State:  state,
			Config: testConfig(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if out := d.Handle(t.Context(), msg("n1", "g")); out.Action != delivery.Ack {
			t.Fatalf("outcome = %+v, want delivery.Ack", out)
		}
		if got := strings.Join(order, ","); got != "a,b,c" {
			t.Errorf("order = %s, want a,b,c", got)
		}
		to := c.Calls()[0].to
		wantReason := "a: HTTP 400: invalid attachment; b: HTTP 429 Too Many Requests (throttled for 1h0m0s)"
		if to.FallbackReason != wantReason || to.FallbackFrom != "a" {
			t.Errorf("c target reason %q from %q, want %q from a", to.FallbackReason, to.FallbackFrom, wantReason)
		}
		rec, _ := state.Record(t.Context(), "n1")
		if rec.GetFallbackReason() != wantReason || rec.GetDeliveredBy() != "c" {
			t.Errorf("record fallback_reason %q delivered_by %q", rec.GetFallbackReason(), rec.GetDeliveredBy())
		}
	})
}

// TestRetryDelay checks the redelivery delay of a notification no sink took:
// exponential from 5s, capped at 5m, equal jitter, and never shorter than the
// longest throttle wait.
func TestRetryDelay(t *testing.T) {
	tests := []struct {
		name      string
		delivered int
		jitterMax bool
		slackErr  error
		want      time.Duration
	}{
		{"first, most jitter", 1, true, err503, 5 * s},
		{"first, least jitter", 1, false, err503, 2500 * ms},
		{"second", 2, true, err503, 10 * s},
		{"third", 3, true, err503, 20 * s},
		{"sixth", 6, true, err503, 160 * s},
		{"seventh hits the cap", 7, true, err503, 5 * time.Minute},
		{"seventh, least jitter", 7, false, err503, 150 * s},
		{"far beyond the cap", 1000, true, err503, 5 * time.Minute},
		{"throttle longer than the backoff", 1, true, throttled(7 * time.Minute), 7 * time.Minute},
		{"throttle shorter than the backoff", 3, true, throttled(6 * s), 20 * s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig()
				cfg.QuickRetries = 0
				r := newRig(t, cfg)
				if !tt.jitterMax {
					r.d.jitter = func(time.Duration) time.Duration { return 0 }
				}
				r.rc.send, r.slack.send = always(err503), always(tt.slackErr)
				m := msg("n1", "g1")
				m.delivered = tt.delivered
				out := r.d.Handle(t.Context(), m)
				if out.Action != delivery.Retry || out.Delay != tt.want {
					t.Errorf("outcome = %v after %v, want delivery.Retry after %v", out.Action, out.Delay, tt.want)
				}
				if !strings.HasPrefix(out.Reason, "rc: HTTP 503") {
					t.Errorf("reason = %q, want it to start with rc's error", out.Reason)
				}
			})
		})
	}
}

// TestJitterBounds checks the real jitter: delays stay within [base/2,
// base] and are not all the same.
func TestJitterBounds(t *testing.T) {
	d, err := New(Options{
		Router: chainRouter{{Sink: "rc"}},
		Sinks:  map[string]sinks.Sink{"rc": &fakeSink{name: "rc"}},
		State:  NewMemoryState(),
		Config: testConfig(),
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[time.Duration]bool{}
	for range 1000 {
		got := d.backoff(3)
		if got < 10*s || got > 20*s {
			t.Fatalf("backoff(3) = %v, want within [10s, 20s]", got)
		}
		seen[got] = true
	}
	if len(seen) < 100 {
		t.Errorf("1000 backoffs gave only %d distinct delays", len(seen))
	}
}

// spyState is a MemoryState that keeps a copy of every record put.
type spyState struct {
	*MemoryState
	mu   sync.Mutex
	puts []*heraldv1.DeliveryRecord
}

func (s *spyState) PutRecord(ctx context.Context, id string, rec *heraldv1.DeliveryRecord) error {
	s.mu.Lock()
	s.puts = append(s.puts, proto.CloneOf(rec))
	s.mu.Unlock()
	return s.MemoryState.PutRecord(ctx, id, rec)
}

func checkRecord(t *testing.T, what string, got, want *heraldv1.DeliveryRecord) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, prototext.Format(got), prototext.Format(want))
	}
}

// TestDeliveryRecord checks the record after every attempt, and that a
// redelivery continues the attempt counts.
func TestDeliveryRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		state := &spyState{MemoryState: NewMemoryState()}
		rc := &fakeSink{name: "rc", send: always(err503)}
		ref := &heraldv1.MessageRef{ChannelId: "C1", MessageId: "m1"}
		slack := &fakeSink{name: "slack", send: func(context.Context, *heraldv1.Notification, sinks.Target) (sinks.Receipt, error) {
			return sinks.Receipt{Parent: ref, Message: ref}, nil
		}}
		d, err := New(Options{
			Router: chainRouter{{Sink: "rc", Channel: "#alerts"}, {Sink: "slack", Channel: "#alerts-slack"}},
			Sinks:  map[string]sinks.Sink{"rc": rc, "slack": slack},
			State:  state,
			Config: testConfig(),
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(start.Add(d)) }
		if out := d.Handle(t.Context(), msg("n1", "g")); out.Action != delivery.Ack {
			t.Fatalf("outcome = %+v", out)
		}
		rcFailed := func(attempts uint32, when time.Duration) *heraldv1.SinkDelivery {
			return &heraldv1.SinkDelivery{
				Sink: "rc", State: heraldv1.DeliveryState_DELIVERY_STATE_RETRYING, Attempts: attempts,
				LastError: "HTTP 503 Service Unavailable", ErrorClass: "retryable",
				Channel: "#alerts", UpdatedAt: at(when),
			}
		}
		retrying := func(sds ...*heraldv1.SinkDelivery) *heraldv1.DeliveryRecord {
			return &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_RETRYING, Route: "default", Sinks: sds}
		}
		want := []*heraldv1.DeliveryRecord{
			retrying(rcFailed(1, 0)),
			retrying(rcFailed(2, 500*ms)),
			retrying(rcFailed(3, 1500*ms)),
			{
				State: heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, Route: "default",
				DeliveredBy: "slack", FallbackReason: "rc: HTTP 503 Service Unavailable",
				Sinks: []*heraldv1.SinkDelivery{rcFailed(3, 1500*ms), {
					Sink: "slack", State: heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, Attempts: 1,
					Message: ref, Channel: "#alerts-slack", UpdatedAt: at(1500 * ms),
				}},
			},
		}
		if len(state.puts) != len(want) {
			for _, p := range state.puts {
				t.Log(prototext.Format(p))
			}
			t.Fatalf("%d records put, want %d (one per attempt)", len(state.puts), len(want))
		}
		for i := range want {
			checkRecord(t, "put "+string(rune('1'+i)), state.puts[i], want[i])
		}
		if p, _ := state.Parent(t.Context(), "slack", "g"); !sameMessage(p, ref) || p.GetPostedAt() == nil {
			t.Errorf("slack parent of g = %v, want %v", p, ref)
		}

	})
}

// TestAttemptsAcrossRedeliveries checks that attempt counts go on when the
// queue hands the notification out again, and the record after each.
func TestAttemptsAcrossRedeliveries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.QuickRetries = 0
		r := newRig(t, cfg)
		r.rc.send, r.slack.send = always(err503), failing(throttled(time.Hour))
		start := time.Now()
		at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(start.Add(d)) }
		out := r.d.Handle(t.Context(), msg("n1", "g"))
		if out.Action != delivery.Retry || out.Delay != time.Hour {
			t.Fatalf("first delivery: %+v, want delivery.Retry after the 1h throttle", out)
		}
		rcFailed := func(attempts uint32, when time.Duration) *heraldv1.SinkDelivery {
			return &heraldv1.SinkDelivery{
				Sink: "rc", State: heraldv1.DeliveryState_DELIVERY_STATE_RETRYING, Attempts: attempts,
				LastError: "HTTP 503 Service Unavailable", ErrorClass: "retryable",
				Channel: "#alerts", UpdatedAt: at(when),
			}
		}
		got, _ := r.state.Record(t.Context(), "n1")
		checkRecord(t, "after the first delivery", got, &heraldv1.DeliveryRecord{
			State: heraldv1.DeliveryState_DELIVERY_STATE_RETRYING, Route: "default",
			Sinks: []*heraldv1.SinkDelivery{rcFailed(1, 0), {
				Sink: "slack", State: heraldv1.DeliveryState_DELIVERY_STATE_RETRYING, Attempts: 1,
				LastError: "HTTP 429 Too Many Requests (throttled for 1h0m0s)", ErrorClass: "throttled",
				Channel: "#alerts-slack", UpdatedAt: at(0),
			}},
		})

		time.Sleep(time.Hour)
		m := msg("n1", "g")
		m.delivered = 2
		if out := r.d.Handle(t.Context(), m); out.Action != delivery.Ack {
			t.Fatalf("redelivery: %+v", out)
		}
		if a, b := r.rc.Calls()[1].to.Attempt, r.slack.Calls()[1].to.Attempt; a != 2 || b != 2 {
			t.Errorf("attempts on redelivery: rc %d, slack %d; want 2, 2", a, b)
		}
		got, _ = r.state.Record(t.Context(), "n1")
		checkRecord(t, "after the redelivery", got, &heraldv1.DeliveryRecord{
			State: heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, Route: "default",
			DeliveredBy: "slack", FallbackReason: "rc: HTTP 503 Service Unavailable",
			Sinks: []*heraldv1.SinkDelivery{rcFailed(2, time.Hour), {
				Sink: "slack", State: heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, Attempts: 2,
				Channel: "#alerts-slack", UpdatedAt: at(time.Hour),
			}},
		})
	})
}

// TestParents checks that each sink gets its group's message and that a
// new one is stored.
func TestParents(t *testing.T) {
	r := newRig(t, testConfig())
	r.rc.send = func(_ context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
		if to.Parent != nil {
			return sinks.Receipt{Parent: to.Parent, Message: &heraldv1.MessageRef{ChannelId: "C", MessageId: "reply-" + n.GetId(), ThreadId: to.Parent.GetMessageId()}}, nil
		}
		p := &heraldv1.MessageRef{ChannelId: "C", MessageId: "parent-" + n.GetId()}
		return sinks.Receipt{Parent: p, Message: p}, nil
	}
	for _, m := range []*fakeMsg{msg("a1", "A"), msg("a2", "A"), msg("b1", "B"), msg("x1", "")} {
		if out := r.d.Handle(t.Context(), m); out.Action != delivery.Ack {
			t.Fatalf("%s: %+v", m.n.GetId(), out)
		}
	}
	var got []string
	for _, c := range r.rc.Calls() {
		got = append(got, c.id+"<"+c.to.Parent.GetMessageId())
	}
	if want := "a1<,a2<parent-a1,b1<,x1<"; strings.Join(got, ",") != want {
		t.Errorf("parents given = %s, want %s", strings.Join(got, ","), want)
	}
	rec, _ := r.state.Record(t.Context(), "a2")
	if m := rec.GetSinks()[0].GetMessage(); m.GetMessageId() != "reply-a2" || m.GetThreadId() != "parent-a1" {
		t.Errorf("a2's message in its record: %v", m)
	}
	if p, _ := r.state.Parent(t.Context(), "slack", "A"); p != nil {
		t.Errorf("slack has a parent for A: %v", p)
	}
}

// TestGroupOrder runs two groups the way the queue does: each group's
// notifications sequentially, the groups in parallel. A slow group keeps its
// order and does not hold up the other.
func TestGroupOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, testConfig())
		var mu sync.Mutex
		delivered := map[string][]string{}
		var bDone time.Time
		r.rc.send = func(_ context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
			if n.GetGroupKey() == "A" && to.Attempt == 1 {
				return sinks.Receipt{}, err503
			}
			mu.Lock()
			delivered[n.GetGroupKey()] = append(delivered[n.GetGroupKey()], n.GetId())
			mu.Unlock()
			return sinks.Receipt{}, nil
		}
		start := time.Now()
		var wg sync.WaitGroup
		for _, g := range []string{"A", "B"} {
			wg.Go(func() {
				for i := range 3 {
					id := g + string(rune('1'+i))
					if out := r.d.Handle(t.Context(), msg(id, g)); out.Action != delivery.Ack {
						t.Errorf("%s: %+v", id, out)
					}
				}
				if g == "B" {
					bDone = time.Now()
				}
			})
		}
		wg.Wait()
		if got := strings.Join(delivered["A"], ","); got != "A1,A2,A3" {
			t.Errorf("group A delivered %s", got)
		}
		if got := strings.Join(delivered["B"], ","); got != "B1,B2,B3" {
			t.Errorf("group B delivered %s", got)
		}
		if got := bDone.Sub(start); got != 0 {
			t.Errorf("group B finished after %v; group A's retries held it up", got)
		}
		if got := time.Since(start); got != 1500*ms {
			t.Errorf("group A finished after %v, want 1.5s (three 500ms retries)", got)
		}
	})
}

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, testConfig())
		r.rc.send = failing(err503, err503, err503, throttled(2*s))
		r.d.Handle(t.Context(), msg("n1", "g"))
		time.Sleep(s)
		r.d.Handle(t.Context(), msg("n2", "g"))
		m := r.d.m
		for _, c := range []struct {
			name string
			c    prometheus.Collector
			want float64
		}{
			{"attempts rc retryable", m.attempts.WithLabelValues("rc", "retryable"), 3},
			{"attempts rc throttled", m.attempts.WithLabelValues("rc", "throttled"), 0},
			{"attempts slack success", m.attempts.WithLabelValues("slack", "success"), 2},
			{"deliveries rc failed", m.deliveries.WithLabelValues("rc", "failed"), 1},
			{"deliveries rc skipped", m.deliveries.WithLabelValues("rc", "skipped"), 1},
			{"deliveries slack delivered", m.deliveries.WithLabelValues("slack", "delivered"), 2},
			{"fallbacks rc to slack", m.fallbacks.WithLabelValues("rc", "slack"), 2},
			{"outcomes ack", m.outcomes.WithLabelValues("ack"), 2},
		} {
			if got := value(t, c.c); got != c.want {
				t.Errorf("%s = %v, want %v", c.name, got, c.want)
			}
		}
		// Latency from received_at: n1 took 1.5s of retries, n2 none.
		h := histogram(t, r.reg, "herald_delivery_latency_seconds", "slack")
		if h.GetSampleCount() != 2 || h.GetSampleSum() != 1.5 {
			t.Errorf("latency: %d samples, sum %v; want 2, 1.5", h.GetSampleCount(), h.GetSampleSum())
		}
		if h := histogram(t, r.reg, "herald_delivery_latency_seconds", "rc"); h != nil {
			t.Errorf("latency for rc, which delivered nothing: %v", h)
		}
	})
}

func TestNewRejects(t *testing.T) {
	rc := &fakeSink{name: "rc"}
	ok := Options{
		Router: chainRouter{{Sink: "rc"}},
		Sinks:  map[string]sinks.Sink{"rc": rc},
		State:  NewMemoryState(),
		Config: testConfig(),
	}
	tests := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"no router", func(o *Options) { o.Router = nil }, "router is required"},
		{"no state", func(o *Options) { o.State = nil }, "state is required"},
		{"no sinks", func(o *Options) { o.Sinks = nil }, "at least one sink"},
		{"misnamed sink", func(o *Options) { o.Sinks = map[string]sinks.Sink{"slack": rc} }, `sink "slack" calls itself "rc"`},
		{"bad config", func(o *Options) { o.Config.QuickRetries = -1 }, "quick_retries"},
	}
	for _, tt := range tests {
		o := ok
		tt.change(&o)
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
	reg := prometheus.NewRegistry()
	ok.Registerer = reg
	if _, err := New(ok); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ok); err == nil {
		t.Error("a second dispatcher on the same registry: no error")
	}
	var _ route.Router = chainRouter(nil)
}
