package dispatch

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/sinks"
)

// threading answers like a chat sink in bot mode: a new parent without a
// Target.Parent, a thread reply under it otherwise.
func threading(sink string) func(context.Context, *heraldv1.Notification, sinks.Target) (sinks.Receipt, error) {
	return func(_ context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
		if to.Parent != nil {
			return sinks.Receipt{Parent: to.Parent, Message: &heraldv1.MessageRef{MessageId: sink + "-reply-" + n.GetId()}}, nil
		}
		p := &heraldv1.MessageRef{ChannelId: "C", MessageId: sink + "-parent-" + n.GetId()}
		return sinks.Receipt{Parent: p, Message: p}, nil
	}
}

// TestGroupLifecycleStaysWhereItStarted: a group that started in the
// fallback while the primary was down keeps its updates and its resolve
// there after the primary recovers; the group's next firing after the
// resolve starts over in the primary.
func TestGroupLifecycleStaysWhereItStarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.QuickRetries = 0
		r := newRig(t, cfg)
		rcDown := true
		rcUp := threading("rc")
		r.rc.send = func(ctx context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
			if rcDown {
				return sinks.Receipt{}, err503
			}
			return rcUp(ctx, n, to)
		}
		r.slack.send = threading("slack")

		handle := func(id string, status heraldv1.Status) *heraldv1.DeliveryRecord {
			m := msg(id, "G")
			m.n.Status = status
			if out := r.d.Handle(t.Context(), m); out.Action != delivery.Ack {
				t.Fatalf("%s: %+v", id, out)
			}
			rec, _ := r.state.Record(t.Context(), id)
			return rec
		}
		if rec := handle("f1", heraldv1.Status_STATUS_FIRING); rec.GetDeliveredBy() != "slack" {
			t.Fatalf("f1 during the outage delivered by %q", rec.GetDeliveredBy())
		}
		rcDown = false
		time.Sleep(cfg.Breaker.OpenFor + time.Second)

		// The group continues in Slack: update and reply under the first message.
		if rec := handle("f2", heraldv1.Status_STATUS_FIRING); rec.GetDeliveredBy() != "slack" || rec.GetFallbackReason() != "" {
			t.Errorf("f2 after recovery: delivered by %q, fallback reason %q; want slack, none", rec.GetDeliveredBy(), rec.GetFallbackReason())
		}
		if rec := handle("r1", heraldv1.Status_STATUS_RESOLVED); rec.GetDeliveredBy() != "slack" {
			t.Errorf("resolve delivered by %q, want slack (where the group started)", rec.GetDeliveredBy())
		}
		slackCalls := r.slack.Calls()
		if n := len(slackCalls); n != 3 || slackCalls[1].to.Parent.GetMessageId() != "slack-parent-f1" || slackCalls[2].to.Parent.GetMessageId() != "slack-parent-f1" {
			t.Errorf("slack calls: %d, parents %v", n, slackCalls)
		}
		for _, s := range []string{"rc", "slack"} {
			if p, _ := r.state.Parent(t.Context(), s, "G"); p != nil {
				t.Errorf("resolved group still has a %s message: %v", s, p)
			}
		}

		// A new firing of the group after its resolve starts over in the primary.
		if rec := handle("f3", heraldv1.Status_STATUS_FIRING); rec.GetDeliveredBy() != "rc" {
			t.Errorf("firing after the resolve delivered by %q, want rc", rec.GetDeliveredBy())
		}
		rcCalls := r.rc.Calls()
		if last := rcCalls[len(rcCalls)-1]; last.id != "f3" || last.to.Parent != nil {
			t.Errorf("f3 went to rc as %+v; want a new message", last)
		}
	})
}

// TestLifecycleFallsBackWhenItsHomeFails: a group kept in the fallback still
// reaches people through the primary when the fallback fails.
func TestLifecycleFallsBackWhenItsHomeFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.QuickRetries = 0
		r := newRig(t, cfg)
		r.rc.send = threading("rc")
		r.slack.send = always(err503)
		if err := r.state.SetParent(t.Context(), "slack", "G", &heraldv1.MessageRef{MessageId: "slack-parent"}); err != nil {
			t.Fatal(err)
		}
		m := msg("f2", "G")
		if out := r.d.Handle(t.Context(), m); out.Action != delivery.Ack {
			t.Fatalf("%+v", out)
		}
		rec, _ := r.state.Record(t.Context(), "f2")
		if rec.GetDeliveredBy() != "rc" || !strings.Contains(rec.GetFallbackReason(), "slack") {
			t.Errorf("delivered by %q, fallback reason %q; want rc after slack failed", rec.GetDeliveredBy(), rec.GetFallbackReason())
		}
		if calls := r.slack.Calls(); len(calls) != 1 {
			t.Errorf("slack (the group's home) tried %d times, want first and once", len(calls))
		}
	})
}

// countingState counts Parent reads.
type countingState struct {
	*MemoryState
	mu    sync.Mutex
	reads map[string]int
}

func (s *countingState) Parent(ctx context.Context, sink, groupKey string) (*heraldv1.MessageRef, error) {
	s.mu.Lock()
	s.reads[sink]++
	s.mu.Unlock()
	return s.MemoryState.Parent(ctx, sink, groupKey)
}

// TestParentReadOncePerSink: choosing the chain and delivering read each
// sink's message for the group once, not twice.
func TestParentReadOncePerSink(t *testing.T) {
	st := &countingState{MemoryState: NewMemoryState(), reads: map[string]int{}}
	rc, slack := &fakeSink{name: "rc", send: threading("rc")}, &fakeSink{name: "slack"}
	d, err := New(Options{
		Router: chainRouter{{Sink: "rc", Channel: "#a"}, {Sink: "slack", Channel: "#a"}},
		Sinks:  map[string]sinks.Sink{"rc": rc, "slack": slack},
		State:  st,
		Config: testConfig(),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"f1", "f2"} {
		if out := d.Handle(t.Context(), msg(id, "G")); out.Action != delivery.Ack {
			t.Fatalf("%s: %+v", id, out)
		}
	}
	// f1: rc and slack have no message (2 reads, rc cached for delivery);
	// f2: rc has one, so slack is not read.
	if st.reads["rc"] != 2 || st.reads["slack"] != 1 {
		t.Errorf("parent reads %v, want rc 2, slack 1", st.reads)
	}
}

// TestLifecycleHoldEnds: a group that started in the fallback stays there
// while it is younger than fallback_hold, and goes back to the head of the
// chain, with a new message, once it is older (a group that never sends
// resolved would otherwise stay in the fallback for the whole retention).
func TestLifecycleHoldEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.QuickRetries = 0
		cfg.FallbackHold = 6 * time.Hour
		r := newRig(t, cfg)
		r.rc.send = threading("rc")
		r.slack.send = threading("slack")
		if err := r.state.SetParent(t.Context(), "slack", "G", &heraldv1.MessageRef{ChannelId: "C", MessageId: "slack-parent"}); err != nil {
			t.Fatal(err)
		}
		handle := func(id string) *heraldv1.DeliveryRecord {
			if out := r.d.Handle(t.Context(), msg(id, "G")); out.Action != delivery.Ack {
				t.Fatalf("%s: %+v", id, out)
			}
			rec, _ := r.state.Record(t.Context(), id)
			return rec
		}
		time.Sleep(cfg.FallbackHold - time.Minute)
		if rec := handle("f2"); rec.GetDeliveredBy() != "slack" {
			t.Errorf("f2 inside the hold delivered by %q, want slack", rec.GetDeliveredBy())
		}
		time.Sleep(2 * time.Minute)
		if rec := handle("f3"); rec.GetDeliveredBy() != "rc" || rec.GetFallbackReason() != "" {
			t.Errorf("f3 past the hold: delivered by %q, fallback reason %q; want rc, none", rec.GetDeliveredBy(), rec.GetFallbackReason())
		}
		if calls := r.rc.Calls(); len(calls) != 1 || calls[0].to.Parent != nil {
			t.Errorf("rc calls %+v; want one new message", calls)
		}
		// From then on the group lives at the head of the chain.
		if rec := handle("f4"); rec.GetDeliveredBy() != "rc" {
			t.Errorf("f4 delivered by %q, want rc", rec.GetDeliveredBy())
		}
		if calls := r.rc.Calls(); len(calls) != 2 || calls[1].to.Parent.GetMessageId() != "rc-parent-f3" {
			t.Errorf("rc calls %+v; want f4 as a reply under rc-parent-f3", calls)
		}
	})
}
