package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/internal/route"
	"github.com/herald-notify/herald/sinks"
)

var errPaced = errors.New("pace reached")

// request is one request a pacedSink made to its "server".
type request struct {
	at    time.Time
	ids   []string
	to    sinks.Target
	batch bool
}

// pacedSink paces itself like a Rocket.Chat incoming webhook (at most count
// requests in any span of per) and merges digests. As sinks.Pacer says, a
// Send or SendBatch its pace refuses makes no request and returns a
// throttle error with the rest of the wait. send and batch give the
// server's answers (nil: success); a throttle answer blocks the sink until
// its wait is over.
type pacedSink struct {
	name  string
	count int
	per   time.Duration
	send  func(id string) error
	batch func(ids []string) error

	mu       sync.Mutex
	sent     []time.Time
	blocked  time.Time
	requests []request
	refused  int
}

var digestRef = &heraldv1.MessageRef{ChannelId: "C1", MessageId: "digest"}

func (s *pacedSink) Name() string { return s.name }

func (s *pacedSink) Wait(sinks.Target) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waitLocked(time.Now())
}

func (s *pacedSink) waitLocked(now time.Time) time.Duration {
	for len(s.sent) > 0 && !now.Before(s.sent[0].Add(s.per)) {
		s.sent = s.sent[1:]
	}
	var w time.Duration
	if len(s.sent) >= s.count {
		w = s.sent[0].Add(s.per).Sub(now)
	}
	return max(w, s.blocked.Sub(now))
}

// reserve records a request, or refuses it with the wait.
func (s *pacedSink) reserve(ids []string, to sinks.Target, batch bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if w := s.waitLocked(now); w > 0 {
		s.refused++
		return sinks.Throttled(errPaced, w)
	}
	s.sent = append(s.sent, now)
	s.requests = append(s.requests, request{at: now, ids: ids, to: to, batch: batch})
	return nil
}

// block makes the sink wait d, as after a 429.
func (s *pacedSink) block(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked = time.Now().Add(d)
}

func (s *pacedSink) answer(err error) error {
	if w, ok := sinks.ThrottleWait(err); ok {
		s.block(w)
	}
	return err
}

func (s *pacedSink) Send(_ context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
	if err := s.reserve([]string{n.GetId()}, to, false); err != nil {
		return sinks.Receipt{}, err
	}
	if s.send != nil {
		if err := s.answer(s.send(n.GetId())); err != nil {
			return sinks.Receipt{}, err
		}
	}
	ref := &heraldv1.MessageRef{ChannelId: "C1", MessageId: "m-" + n.GetId()}
	return sinks.Receipt{Parent: ref, Message: ref}, nil
}

func (s *pacedSink) SendBatch(_ context.Context, ns []*heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
	ids := make([]string, len(ns))
	for i, n := range ns {
		ids[i] = n.GetId()
	}
	if err := s.reserve(ids, to, true); err != nil {
		return sinks.Receipt{}, err
	}
	if s.batch != nil {
		if err := s.answer(s.batch(ids)); err != nil {
			return sinks.Receipt{}, err
		}
	}
	// As the chat sinks do: the digest stands for the groups it shows
	// that have no message of their own.
	parent := proto.CloneOf(digestRef)
	parent.Digest = true
	return sinks.Receipt{Message: digestRef, Parent: parent}, nil
}

func (s *pacedSink) Requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *pacedSink) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// describe renders requests as "offset:id,id" ("+" marks a digest).
func describe(start time.Time, reqs []request) string {
	var out []string
	for _, r := range reqs {
		kind := ""
		if r.batch {
			kind = "+"
		}
		out = append(out, fmt.Sprintf("%s%v:%s", kind, r.at.Sub(start), strings.Join(r.ids, ",")))
	}
	return strings.Join(out, " ")
}

// routerFunc routes with a function.
type routerFunc func(*heraldv1.Notification) route.Decision

func (f routerFunc) Route(n *heraldv1.Notification) route.Decision { return f(n) }

type digestRig struct {
	d     *Dispatcher
	state *MemoryState
	pc    *pacedSink
	slack *fakeSink
	reg   *prometheus.Registry
}

// newDigestRig builds a dispatcher over pc (paced, merges digests, channel
// "#alerts") and the plain fakeSink "slack", routing with router (nil: the
// chain [pc]).
func newDigestRig(t *testing.T, pc *pacedSink, router route.Router, cfg Config, opts ...func(*Options)) *digestRig {
	t.Helper()
	r := &digestRig{state: NewMemoryState(), pc: pc, slack: &fakeSink{name: "slack"}, reg: prometheus.NewPedanticRegistry()}
	if router == nil {
		router = chainRouter{{Sink: "pc", Channel: "#alerts"}}
	}
	o := Options{
		Router:     router,
		Sinks:      map[string]sinks.Sink{"pc": pc, "slack": r.slack},
		State:      r.state,
		Registerer: r.reg,
		Config:     cfg,
	}
	for _, f := range opts {
		f(&o)
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	d.jitter = func(max time.Duration) time.Duration { return max }
	r.d = d
	return r
}

// withFallback is the chain [pc, slack].
var withFallback = chainRouter{{Sink: "pc", Channel: "#alerts"}, {Sink: "slack", Channel: "#alerts-slack"}}

// parkAll starts Handle for each message in turn, each once the one before
// is blocked (so they reach the lane in this order), and returns a wait
// that gives their outcomes.
func parkAll(ctx func(i int) context.Context, d *Dispatcher, ms ...*fakeMsg) func() []delivery.Outcome {
	outs := make([]delivery.Outcome, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() { outs[i] = d.Handle(ctx(i), m) })
		synctest.Wait()
	}
	return func() []delivery.Outcome {
		wg.Wait()
		return outs
	}
}

func msgs(ids ...string) []*fakeMsg {
	out := make([]*fakeMsg, len(ids))
	for i, id := range ids {
		out[i] = msg(id, "g-"+id)
	}
	return out
}

func actions(outs []delivery.Outcome) string {
	var s []string
	for _, o := range outs {
		s = append(s, o.Action.String())
	}
	return strings.Join(s, ",")
}

// TestDigest parks notifications while the sink's pace is reached and sends
// them as one digest, in arrival order, exactly when the wait is over.
func TestDigest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pc := &pacedSink{name: "pc", count: 1, per: time.Minute}
		r := newDigestRig(t, pc, nil, testConfig())
		start := time.Now()
		if out := r.d.Handle(t.Context(), msg("n0", "g0")); out.Action != delivery.Ack {
			t.Fatalf("n0: %+v", out)
		}
		time.Sleep(s)
		ms := msgs("n1", "n2", "n3", "n4", "n5")
		// n3's group has a message of its own.
		own := &heraldv1.MessageRef{ChannelId: "C1", MessageId: "m-own"}
		if err := r.state.SetParent(t.Context(), "pc", "g-n3", own); err != nil {
			t.Fatal(err)
		}
		wait := parkAll(func(int) context.Context { return t.Context() }, r.d, ms...)
		time.Sleep(58 * s)
		synctest.Wait()
		if got := describe(start, pc.Requests()); got != "0s:n0" {
			t.Errorf("requests before the wait is over: %s", got)
		}
		outs := wait()
		if got := actions(outs); got != "ack,ack,ack,ack,ack" {
			t.Errorf("outcomes %s, want all ack", got)
		}
		if got, want := describe(start, pc.Requests()), "0s:n0 +1m0s:n1,n2,n3,n4,n5"; got != want {
			t.Errorf("requests %s, want %s", got, want)
		}
		if n := pc.Refused(); n != 0 {
			t.Errorf("%d sends refused by the pace; the lane should wait for it", n)
		}
		if reqs := pc.Requests(); len(reqs) < 2 {
			t.Fatalf("%d requests", len(reqs))
		}
		if to := pc.Requests()[1].to; to.Channel != "#alerts" || to.Route != "default" || to.Parent != nil || to.Attempt != 1 {
			t.Errorf("digest target %+v", to)
		}
		for _, m := range ms {
			rec, _ := r.state.Record(t.Context(), m.n.GetId())
			sd := rec.GetSinks()[0]
			if rec.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED || rec.GetDeliveredBy() != "pc" ||
				sd.GetAttempts() != 1 || !proto.Equal(sd.GetMessage(), digestRef) || sd.GetDigestSize() != 5 {
				t.Errorf("%s: record %v; want delivered by pc in a digest of 5", m.n.GetId(), rec)
			}
			// The digest became the message of each group that had none;
			// n3's group keeps its own.
			p, _ := r.state.Parent(t.Context(), "pc", m.n.GetGroupKey())
			switch {
			case m.n.GetId() == "n3":
				if p.GetMessageId() != "m-own" || p.GetDigest() {
					t.Errorf("n3: group parent %v, want its own message kept", p)
				}
			case p.GetMessageId() != digestRef.GetMessageId() || !p.GetDigest() || p.GetContent() == "":
				t.Errorf("%s: group parent %v, want the digest, marked digest, with the group's content", m.n.GetId(), p)
			}
			// Parked for 59s: the queue heard from it every 10s.
			if n := len(m.InProgressCalls()); n < 5 {
				t.Errorf("%s: %d InProgress calls while parked 59s, want at least 5", m.n.GetId(), n)
			}
		}
		if got := value(t, r.d.m.digests.WithLabelValues("pc", "delivered")); got != 1 {
			t.Errorf("herald_digests_total{delivered} = %v, want 1", got)
		}
		if h := histogram(t, r.reg, "herald_digest_notifications", "pc"); h.GetSampleCount() != 1 || h.GetSampleSum() != 5 {
			t.Errorf("herald_digest_notifications: %d samples, sum %v; want one of 5", h.GetSampleCount(), h.GetSampleSum())
		}
	})
}

// TestDigestOfOne checks that a lone parked notification goes out as a
// plain Send with its own target, its group's parent included.
func TestDigestOfOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pc := &pacedSink{name: "pc", count: 1, per: time.Minute}
		r := newDigestRig(t, pc, nil, testConfig())
		start := time.Now()
		r.d.Handle(t.Context(), msg("n0", "g"))
		if out := r.d.Handle(t.Context(), msg("n1", "g")); out.Action != delivery.Ack {
			t.Fatalf("n1: %+v", out)
		}
		reqs := pc.Requests()
		if got, want := describe(start, reqs), "0s:n0 1m0s:n1"; got != want {
			t.Fatalf("requests %s, want %s", got, want)
		}
		if p := reqs[1].to.Parent; p.GetMessageId() != "m-n0" {
			t.Errorf("n1 sent with parent %v, want n0's message", p)
		}
		if rec, _ := r.state.Record(t.Context(), "n1"); rec.GetSinks()[0].GetDigestSize() != 0 {
			t.Errorf("a lone notification's record says digest_size %d", rec.GetSinks()[0].GetDigestSize())
		}
		if got := value(t, r.d.m.digests.WithLabelValues("pc", "delivered")); got != 0 {
			t.Errorf("herald_digests_total = %v for a lone notification", got)
		}
	})
}

// TestDigestHold pins down how long a notification waits for a throttled
// sink that merges digests. Severity changes nothing (these are critical):
// beyond the quick retry budget the fallback takes it at once; the last
// sink of a chain holds it for the next digest, up to throttle_hold; beyond
// that it is retried later.
func TestDigestHold(t *testing.T) {
	tests := []struct {
		name      string
		router    route.Router
		per       time.Duration
		hold      time.Duration
		want      delivery.Action
		wantDelay time.Duration
		wantPC    string
		wantSlack []time.Duration
	}{{
		name:      "a wait beyond the quick budget goes to the fallback",
		router:    withFallback,
		per:       time.Minute,
		want:      delivery.Ack,
		wantPC:    "0s:n0",
		wantSlack: []time.Duration{s},
	}, {
		name:   "the last sink holds it for the next digest",
		per:    time.Minute,
		want:   delivery.Ack,
		wantPC: "0s:n0 +1m0s:n1,n2",
	}, {
		name:   "a wait within the quick budget is waited even with a fallback",
		router: withFallback,
		per:    4 * s,
		want:   delivery.Ack,
		wantPC: "0s:n0 +4s:n1,n2",
	}, {
		name:      "a wait beyond throttle_hold is retried later",
		per:       time.Minute,
		hold:      30 * s,
		want:      delivery.Retry,
		wantDelay: 59 * s,
		wantPC:    "0s:n0",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pc := &pacedSink{name: "pc", count: 1, per: tt.per}
				cfg := testConfig()
				cfg.ThrottleHold = tt.hold
				r := newDigestRig(t, pc, tt.router, cfg)
				start := time.Now()
				r.d.Handle(t.Context(), msg("n0", "g0"))
				time.Sleep(s)
				outs := parkAll(func(int) context.Context { return t.Context() }, r.d, msgs("n1", "n2")...)()
				for i, out := range outs {
					if out.Action != tt.want || out.Delay != tt.wantDelay {
						t.Errorf("n%d: %v after %v, want %v after %v", i+1, out.Action, out.Delay, tt.want, tt.wantDelay)
					}
				}
				if got := describe(start, pc.Requests()); got != tt.wantPC {
					t.Errorf("pc requests %s, want %s", got, tt.wantPC)
				}
				var slackAt []time.Duration
				for _, c := range r.slack.Calls() {
					slackAt = append(slackAt, c.at.Sub(start))
				}
				if len(tt.wantSlack) > 0 {
					tt.wantSlack = append(tt.wantSlack, tt.wantSlack...) // n1 and n2
				}
				if !equalDurations(slackAt, tt.wantSlack) {
					t.Errorf("slack called at %v, want %v", slackAt, tt.wantSlack)
				}
				if len(slackAt) > 0 {
					if reason := r.slack.Calls()[0].to.FallbackReason; !strings.Contains(reason, "pace reached (throttled for 59s)") {
						t.Errorf("fallback reason %q", reason)
					}
				}
			})
		})
	}
}

// TestDigestErrors checks that a failed digest gives each of its
// notifications the outcome its own failed attempt would have, and that it
// counts once for the breaker.
func TestDigestErrors(t *testing.T) {
	tests := []struct {
		name       string
		router     route.Router
		per        time.Duration
		batch      func([]string) error
		want       string
		wantBy     string
		wantReason string
		wantPC     string
	}{{
		name:       "retryable, no fallback: retried later",
		per:        time.Minute,
		batch:      func([]string) error { return err503 },
		want:       "retry,retry,retry",
		wantReason: "pc: HTTP 503 Service Unavailable",
		wantPC:     "0s:n0 +1m0s:n1,n2,n3",
	}, {
		name:       "permanent, no fallback: dead letters",
		per:        time.Minute,
		batch:      func([]string) error { return err400 },
		want:       "dead_letter,dead_letter,dead_letter",
		wantReason: "no sink can take it: pc: HTTP 400: invalid attachment",
		wantPC:     "0s:n0 +1m0s:n1,n2,n3",
	}, {
		name:   "retryable with a fallback: each to the fallback",
		router: withFallback,
		per:    4 * s,
		batch:  func([]string) error { return err503 },
		want:   "ack,ack,ack",
		wantBy: "slack",
		wantPC: "0s:n0 +4s:n1,n2,n3",
	}, {
		name: "throttled by the server: parked again for the next digest",
		per:  time.Minute,
		batch: failingBatch(
			sinks.ClassifyStatus(429, "", 30*s),
		),
		want:   "ack,ack,ack",
		wantBy: "pc",
		// The failed digest took the window's slot: the next goes at 2m.
		wantPC: "0s:n0 +1m0s:n1,n2,n3 +2m0s:n1,n2,n3",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pc := &pacedSink{name: "pc", count: 1, per: tt.per, batch: tt.batch}
				r := newDigestRig(t, pc, tt.router, testConfig())
				start := time.Now()
				r.d.Handle(t.Context(), msg("n0", "g0"))
				time.Sleep(s)
				ms := msgs("n1", "n2", "n3")
				outs := parkAll(func(int) context.Context { return t.Context() }, r.d, ms...)()
				if got := actions(outs); got != tt.want {
					t.Errorf("outcomes %s, want %s", got, tt.want)
				}
				for i, out := range outs {
					if tt.wantReason != "" && out.Reason != tt.wantReason {
						t.Errorf("n%d reason %q, want %q", i+1, out.Reason, tt.wantReason)
					}
				}
				reqs := pc.Requests()
				if len(reqs) == 3 {
					// Back from the same digest at once, they rejoin the
					// lane in any order.
					slices.Sort(reqs[2].ids)
				}
				got := describe(start, reqs)
				if got != tt.wantPC {
					t.Errorf("pc requests %s, want %s", got, tt.wantPC)
				}
				for _, m := range ms {
					rec, _ := r.state.Record(t.Context(), m.n.GetId())
					if rec.GetDeliveredBy() != tt.wantBy {
						t.Errorf("%s delivered by %q, want %q", m.n.GetId(), rec.GetDeliveredBy(), tt.wantBy)
					}
				}
				// One failed request is one failure, whatever its size.
				if f := r.d.gen.Load().breakers["pc"].failures; f > 1 {
					t.Errorf("breaker counted %d failures for one digest", f)
				}
				if b := r.d.Breakers()["pc"]; b != BreakerClosed {
					t.Errorf("breaker %v after one failed digest", b)
				}
			})
		})
	}
}

// failingBatch answers digests with errs in turn, then success.
func failingBatch(errs ...error) func([]string) error {
	var mu sync.Mutex
	return func([]string) error {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) == 0 {
			return nil
		}
		err := errs[0]
		errs = errs[1:]
		return err
	}
}

// TestDigestRelease checks that parked notifications are released when
// their context ends, and that the others of the lane go on without a
// leader that left.
func TestDigestRelease(t *testing.T) {
	t.Run("all", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pc := &pacedSink{name: "pc", count: 1, per: time.Minute}
			r := newDigestRig(t, pc, nil, testConfig())
			start := time.Now()
			r.d.Handle(t.Context(), msg("n0", "g0"))
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(10*s, cancel)
			ms := msgs("n1", "n2", "n3")
			outs := parkAll(func(int) context.Context { return ctx }, r.d, ms...)()
			if got := actions(outs); got != "release,release,release" {
				t.Errorf("outcomes %s", got)
			}
			if got := time.Since(start); got != 10*s {
				t.Errorf("released after %v, want 10s", got)
			}
			time.Sleep(time.Hour)
			if got := describe(start, pc.Requests()); got != "0s:n0" {
				t.Errorf("requests %s", got)
			}
			rec, _ := r.state.Record(t.Context(), "n2")
			if sd := rec.GetSinks()[0]; sd.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_RETRYING || sd.GetLastError() != "interrupted by shutdown" {
				t.Errorf("record after release: %v", rec)
			}
		})
	})
	t.Run("the leader", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pc := &pacedSink{name: "pc", count: 1, per: time.Minute}
			r := newDigestRig(t, pc, nil, testConfig())
			start := time.Now()
			r.d.Handle(t.Context(), msg("n0", "g0"))
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(10*s, cancel)
			outs := parkAll(func(i int) context.Context {
				if i == 0 {
					return ctx
				}
				return t.Context()
			}, r.d, msgs("n1", "n2", "n3")...)()
			if got := actions(outs); got != "release,ack,ack" {
				t.Errorf("outcomes %s, want release,ack,ack", got)
			}
			if got, want := describe(start, pc.Requests()), "0s:n0 +1m0s:n2,n3"; got != want {
				t.Errorf("requests %s, want %s", got, want)
			}
		})
	})
}

// TestDigestLeavesLane checks that a parked notification whose wait
// outgrows its hold (here: a rate limit another sender ran into) leaves
// the lane at its deadline for its fallback, while one the last sink holds
// stays.
func TestDigestLeavesLane(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pc := &pacedSink{name: "pc", count: 1, per: 4 * s}
		router := routerFunc(func(n *heraldv1.Notification) route.Decision {
			if strings.HasPrefix(n.GetGroupKey(), "fb") {
				return route.Decision{Route: "fb", Chain: withFallback}
			}
			return route.Decision{Route: "default", Chain: []route.Step{{Sink: "pc", Channel: "#alerts"}}}
		})
		r := newDigestRig(t, pc, router, testConfig())
		start := time.Now()
		r.d.Handle(t.Context(), msg("n0", "g0"))
		time.Sleep(s)
		held := msg("n1", "hold")
		var wg sync.WaitGroup
		var heldOut, fbOut delivery.Outcome
		wg.Go(func() { heldOut = r.d.Handle(t.Context(), held) })
		synctest.Wait()
		time.Sleep(s)
		wg.Go(func() { fbOut = r.d.Handle(t.Context(), msg("n2", "fb")) })
		synctest.Wait()
		time.Sleep(s)
		pc.block(time.Minute) // until 1m3s
		wg.Wait()
		if heldOut.Action != delivery.Ack || fbOut.Action != delivery.Ack {
			t.Fatalf("outcomes %v, %v; want ack, ack", heldOut, fbOut)
		}
		calls := r.slack.Calls()
		if len(calls) != 1 || calls[0].id != "n2" || calls[0].at.Sub(start) != 7*s {
			t.Errorf("slack calls %v, want n2 at 7s (its 5s quick budget from 2s)", calls)
		}
		if got, want := describe(start, pc.Requests()), "0s:n0 1m3s:n1"; got != want {
			t.Errorf("pc requests %s, want %s", got, want)
		}
	})
}

// TestDigestGroupOrder runs groups the way the queue does, each group's
// notifications one after the other and the groups in parallel, through a
// sink that takes 2 requests per 10s: every notification is delivered once,
// each group in its order, without a request the pace would refuse.
func TestDigestGroupOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pc := &pacedSink{name: "pc", count: 2, per: 10 * s}
		r := newDigestRig(t, pc, nil, testConfig())
		var wg sync.WaitGroup
		groups := []string{"A", "B", "C", "D", "E"}
		for _, g := range groups {
			wg.Go(func() {
				for i := range 6 {
					id := fmt.Sprintf("%s%d", g, i)
					if out := r.d.Handle(t.Context(), msg(id, g)); out.Action != delivery.Ack {
						t.Errorf("%s: %+v", id, out)
					}
				}
			})
		}
		wg.Wait()
		seen := map[string]int{}
		got := map[string][]string{}
		reqs := pc.Requests()
		for _, req := range reqs {
			for _, id := range req.ids {
				seen[id]++
				got[id[:1]] = append(got[id[:1]], id)
			}
		}
		for _, g := range groups {
			want := []string{g + "0", g + "1", g + "2", g + "3", g + "4", g + "5"}
			if !slices.Equal(got[g], want) {
				t.Errorf("group %s delivered %v, want %v", g, got[g], want)
			}
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("%s delivered %d times", id, n)
			}
		}
		// A send refused by the pace (a race between Wait and the send)
		// made no request, and is counted here only as a hint.
		if len(reqs) >= 30 {
			t.Errorf("%d requests for 30 notifications: nothing was merged", len(reqs))
		}
		t.Logf("30 notifications in %d requests (%d refused by the pace): %s", len(reqs), pc.Refused(), describe(reqs[0].at, reqs))
	})
}

// TestDigestSpans checks that each notification of a digest notes it on its
// own span, and that the digest's attempt span lists them.
func TestDigestSpans(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		pc := &pacedSink{name: "pc", count: 1, per: time.Minute}
		r := newDigestRig(t, pc, nil, testConfig(), func(o *Options) { o.TracerProvider = rec })
		r.d.Handle(t.Context(), msg("n0", "g0"))
		parkAll(func(int) context.Context { return t.Context() }, r.d, msgs("n1", "n2")...)()
		var handles int
		var digest []string
		for _, sp := range rec.spans {
			switch {
			case sp.name == "herald.dispatch" && sp.attr("herald.notification.id") != "n0":
				handles++
				if want := "digest herald.sink=pc herald.channel=#alerts"; !slices.Contains(sp.events, want) {
					t.Errorf("%s: events %q, want %q", sp.attr("herald.notification.id"), sp.events, want)
				}
			case sp.name == "herald.dispatch.attempt" && len(sp.events) > 0:
				digest = append(digest, sp.events...)
			}
		}
		if handles != 2 {
			t.Errorf("%d handle spans for n1, n2", handles)
		}
		if want := `digest herald.notification.id=["n1","n2"]`; !slices.Equal(digest, []string{want}) {
			t.Errorf("digest attempt span events %q, want %q", digest, want)
		}
	})
}

// TestDigestBacklog checks that a lane that had to wait stays under backlog
// for a while: notifications arriving right after a digest, while the sink
// has room, are gathered into the next digest instead of each spending a
// post; once the lane is cold a notification goes out alone at once.
func TestDigestBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pc := &pacedSink{name: "pc", count: 2, per: 10 * s}
		r := newDigestRig(t, pc, nil, testConfig())
		start := time.Now()
		bg := func(int) context.Context { return t.Context() }
		for _, m := range msgs("n0", "n1") {
			r.d.Handle(t.Context(), m)
		}
		// Pace reached: n2 and n3 wait 10s; the lane is hot until 20s.
		wait := parkAll(bg, r.d, msgs("n2", "n3")...)
		time.Sleep(10*s + ms)
		// One post of the window is free, but the lane is hot.
		after := parkAll(bg, r.d, msgs("n4")...)
		time.Sleep(20 * ms)
		after2 := parkAll(bg, r.d, msgs("n5")...)
		wait()
		after()
		after2()
		time.Sleep(30*s - time.Since(start))
		r.d.Handle(t.Context(), msg("n6", "g-n6"))
		want := "0s:n0 0s:n1 +10s:n2,n3 +10.051s:n4,n5 30s:n6"
		if got := describe(start, pc.Requests()); got != want {
			t.Errorf("requests %s, want %s", got, want)
		}
	})
}

// TestDigestMax checks that a digest carries at most MaxDigest
// notifications, the oldest, and that the rest go in the next one.
func TestDigestMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pc := &pacedSink{name: "pc", count: 1, per: time.Minute}
		r := newDigestRig(t, pc, nil, testConfig())
		start := time.Now()
		r.d.Handle(t.Context(), msg("n0", "g0"))
		var ms []*fakeMsg
		for i := range MaxDigest + 3 {
			ms = append(ms, msg(fmt.Sprintf("m%02d", i), fmt.Sprintf("g%02d", i)))
		}
		outs := parkAll(func(int) context.Context { return t.Context() }, r.d, ms...)()
		for i, out := range outs {
			if out.Action != delivery.Ack {
				t.Errorf("m%02d: %+v", i, out)
			}
		}
		reqs := pc.Requests()
		if len(reqs) != 3 {
			t.Fatalf("requests %s, want n0 and two digests", describe(start, reqs))
		}
		var first, second []string
		for i := range MaxDigest {
			first = append(first, fmt.Sprintf("m%02d", i))
		}
		for i := MaxDigest; i < MaxDigest+3; i++ {
			second = append(second, fmt.Sprintf("m%02d", i))
		}
		if !slices.Equal(reqs[1].ids, first) || reqs[1].at.Sub(start) != time.Minute {
			t.Errorf("first digest at %v: %v, want the oldest %d at 1m", reqs[1].at.Sub(start), reqs[1].ids, MaxDigest)
		}
		if !slices.Equal(reqs[2].ids, second) || reqs[2].at.Sub(start) != 2*time.Minute {
			t.Errorf("second digest at %v: %v, want %v at 2m", reqs[2].at.Sub(start), reqs[2].ids, second)
		}
	})
}

// toChannel returns a message of severity sev that the channelRouter sends
// to channel.
func toChannel(id, channel string, sev heraldv1.Severity) *fakeMsg {
	m := msg(id, "g-"+id)
	m.n.Severity = sev
	m.n.Labels = map[string]string{"channel": channel}
	return m
}

// channelRouter sends a notification to sink pc, channel of its label
// "channel".
var channelRouter = routerFunc(func(n *heraldv1.Notification) route.Decision {
	return route.Decision{Route: "default", Chain: []route.Step{{Sink: "pc", Channel: n.GetLabels()["channel"]}}}
})

const (
	sevInfo = heraldv1.Severity_SEVERITY_INFO
	sevWarn = heraldv1.Severity_SEVERITY_WARNING
	sevCrit = heraldv1.Severity_SEVERITY_CRITICAL
)

// TestPaceGateCriticalFirst is a Rocket.Chat incoming webhook shared by
// two channels and limited to one post per 6s: 30 info notifications wait
// for #alerts-info when a critical one arrives for #alerts-critical. The
// critical is the next post, before any further info digest.
func TestPaceGateCriticalFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pc := &pacedSink{name: "pc", count: 1, per: 6 * s}
		r := newDigestRig(t, pc, channelRouter, testConfig())
		start := time.Now()
		r.d.Handle(t.Context(), toChannel("i00", "#alerts-info", sevInfo)) // the window's post
		time.Sleep(s)
		var infos []*fakeMsg
		for i := range 30 {
			infos = append(infos, toChannel(fmt.Sprintf("i%02d", i+1), "#alerts-info", sevInfo))
		}
		bg := func(int) context.Context { return t.Context() }
		waitInfos := parkAll(bg, r.d, infos...)
		time.Sleep(s)
		waitCrit := parkAll(bg, r.d, toChannel("crit", "#alerts-critical", sevCrit))
		if got := actions(waitCrit()); got != "ack" {
			t.Errorf("critical: %s", got)
		}
		if got := actions(waitInfos()); got != strings.TrimSuffix(strings.Repeat("ack,", 30), ",") {
			t.Errorf("infos: %s", got)
		}
		reqs := pc.Requests()
		if len(reqs) < 2 || !slices.Equal(reqs[1].ids, []string{"crit"}) || reqs[1].to.Channel != "#alerts-critical" {
			t.Fatalf("requests %s; want the critical next after i00", describe(start, reqs))
		}
		if got := reqs[1].at.Sub(start); got != 6*s {
			t.Errorf("critical posted at %v, want 6s, when the pace allowed the next post", got)
		}
		want := "0s:i00 6s:crit +12s:" + msgIDs(infos[:MaxDigest]) + " +18s:" + msgIDs(infos[MaxDigest:])
		if got := describe(start, reqs); got != want {
			t.Errorf("requests\n%s\nwant\n%s", got, want)
		}
		if n := pc.Refused(); n != 0 {
			t.Errorf("%d sends refused by the pace: leaders raced for the post", n)
		}
	})
}

// msgIDs joins the messages' notification ids with commas.
func msgIDs(ms []*fakeMsg) string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.n.GetId()
	}
	return strings.Join(out, ",")
}

// TestPaceGateOrder pins down which lane of a paced sink (one post per 6s,
// taken at 0s) posts next when several wait: the lane holding the most
// severe notification, the oldest leader among equals.
func TestPaceGateOrder(t *testing.T) {
	type arrival struct {
		at      time.Duration
		id      string
		channel string
		sev     heraldv1.Severity
	}
	many := func(at time.Duration, prefix, channel string, sev heraldv1.Severity, n int) []arrival {
		var out []arrival
		for i := range n {
			out = append(out, arrival{at, fmt.Sprintf("%s%02d", prefix, i+1), channel, sev})
		}
		return out
	}
	tests := []struct {
		name     string
		arrivals []arrival
		want     string // requests after the first, at 0s
	}{{
		name: "critical, then warning, then info",
		arrivals: []arrival{
			{s, "i1", "#info", sevInfo},
			{2 * s, "w1", "#warning", sevWarn},
			{3 * s, "c1", "#critical", sevCrit},
		},
		want: "6s:c1 12s:w1 18s:i1",
	}, {
		name: "equal severity: the oldest leader",
		arrivals: []arrival{
			{s, "w1", "#b", sevWarn},
			{2 * s, "w2", "#a", sevWarn},
			{3 * s, "i1", "#c", sevInfo},
		},
		want: "6s:w1 12s:w2 18s:i1",
	}, {
		name: "a lane's priority follows a member that joins",
		arrivals: []arrival{
			{s, "i1", "#info", sevInfo},
			{2 * s, "w1", "#warning", sevWarn},
			{3 * s, "c1", "#info", sevCrit},
		},
		want: "+6s:i1,c1 12s:w1",
	}, {
		name: "the member that made a lane critical rides in its next digest",
		arrivals: append(many(s, "i", "#info", sevInfo, MaxDigest+5),
			arrival{2 * s, "c1", "#info", sevCrit}),
		want: "+6s:i01,i02,i03,i04,i05,i06,i07,i08,i09,i10,i11,i12,i13,i14,i15,i16,i17,i18,i19,c1 " +
			"+12s:i20,i21,i22,i23,i24,i25",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pc := &pacedSink{name: "pc", count: 1, per: 6 * s}
				r := newDigestRig(t, pc, channelRouter, testConfig())
				start := time.Now()
				r.d.Handle(t.Context(), toChannel("n0", "#info", sevInfo))
				var wg sync.WaitGroup
				for _, a := range tt.arrivals {
					time.Sleep(time.Until(start.Add(a.at)))
					wg.Go(func() {
						if out := r.d.Handle(t.Context(), toChannel(a.id, a.channel, a.sev)); out.Action != delivery.Ack {
							t.Errorf("%s: %+v", a.id, out)
						}
					})
					synctest.Wait()
				}
				wg.Wait()
				reqs := pc.Requests()
				if got := describe(start, reqs[1:]); got != tt.want {
					t.Errorf("requests\n%s\nwant\n%s", got, tt.want)
				}
			})
		})
	}
}

// channelPaced is a sink paced per channel, as Slack's bot mode is: one
// pacedSink per channel, each with its own window.
type channelPaced struct {
	name string
	per  map[string]time.Duration // one post per this, by channel

	mu    sync.Mutex
	chans map[string]*pacedSink
}

func (c *channelPaced) Name() string { return c.name }

func (c *channelPaced) channel(to sinks.Target) *pacedSink {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.chans == nil {
		c.chans = map[string]*pacedSink{}
	}
	ps := c.chans[to.Channel]
	if ps == nil {
		ps = &pacedSink{name: c.name, count: 1, per: c.per[to.Channel]}
		c.chans[to.Channel] = ps
	}
	return ps
}

func (c *channelPaced) Wait(to sinks.Target) time.Duration { return c.channel(to).Wait(to) }

func (c *channelPaced) Send(ctx context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
	return c.channel(to).Send(ctx, n, to)
}

func (c *channelPaced) SendBatch(ctx context.Context, ns []*heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
	return c.channel(to).SendBatch(ctx, ns, to)
}

// Requests are every channel's requests, in time order, by channel at the
// same instant.
func (c *channelPaced) Requests() []request {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []request
	for _, ps := range c.chans {
		out = append(out, ps.Requests()...)
	}
	slices.SortStableFunc(out, func(a, b request) int {
		return cmp.Or(a.at.Compare(b.at), strings.Compare(a.to.Channel, b.to.Channel))
	})
	return out
}

// TestPaceGateChannels checks that turns at the gate go only to leaders
// the sink's pace allows: a critical waiting for its own channel's window
// does not hold up a lane whose channel is free.
func TestPaceGateChannels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pc := &channelPaced{name: "pc", per: map[string]time.Duration{"#slow": time.Minute, "#fast": 10 * s}}
		d, err := New(Options{
			Router: channelRouter,
			Sinks:  map[string]sinks.Sink{"pc": pc},
			State:  NewMemoryState(),
			Config: testConfig(),
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		d.Handle(t.Context(), toChannel("slow0", "#slow", sevInfo))
		d.Handle(t.Context(), toChannel("fast0", "#fast", sevInfo))
		time.Sleep(s)
		bg := func(int) context.Context { return t.Context() }
		outs := parkAll(bg, d, toChannel("slow1", "#slow", sevCrit), toChannel("fast1", "#fast", sevInfo))()
		if got := actions(outs); got != "ack,ack" {
			t.Errorf("outcomes %s", got)
		}
		want := "0s:fast0 0s:slow0 10s:fast1 1m0s:slow1"
		if got := describe(start, pc.Requests()); got != want {
			t.Errorf("requests %s, want %s", got, want)
		}
	})
}
