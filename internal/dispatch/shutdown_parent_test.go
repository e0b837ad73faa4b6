package dispatch

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/sinks"
)

// ctxState fails, as the queue's key-value buckets do, once ctx is done.
type ctxState struct{ State }

func (s ctxState) PutRecord(ctx context.Context, id string, rec *heraldv1.DeliveryRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.State.PutRecord(ctx, id, rec)
}

func (s ctxState) SetParent(ctx context.Context, sink, groupKey string, ref *heraldv1.MessageRef) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.State.SetParent(ctx, sink, groupKey, ref)
}

// Shutdown begins just as the sink accepts a group's first notification:
// the delivery is still recorded, and so is the group's message, so that
// the group's next notification goes into its thread rather than posting
// a second message.
func TestShutdownAfterAcceptKeepsGroupMessage(t *testing.T) {
	mem := NewMemoryState()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ref := &heraldv1.MessageRef{ChannelId: "C", MessageId: "parent-a1"}
	rc := &fakeSink{name: "rc", send: func(context.Context, *heraldv1.Notification, sinks.Target) (sinks.Receipt, error) {
		cancel() // SIGTERM arrives while the answer is on its way
		return sinks.Receipt{Parent: ref, Message: ref}, nil
	}}
	d, err := New(Options{
		Router:     chainRouter{{Sink: "rc", Channel: "#alerts"}},
		Sinks:      map[string]sinks.Sink{"rc": rc},
		State:      ctxState{mem},
		Registerer: prometheus.NewPedanticRegistry(),
		Config:     DefaultConfig(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if out := d.Handle(ctx, msg("a1", "A")); out.Action != delivery.Ack {
		t.Fatalf("outcome %+v, want Ack: the sink took it", out)
	}
	rec, _ := mem.Record(t.Context(), "a1")
	if rec.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED {
		t.Errorf("record state %v, want DELIVERED", rec.GetState())
	}
	p, _ := mem.Parent(t.Context(), "rc", "A")
	if !sameMessage(p, ref) {
		t.Errorf("group A's message = %v, want %v", p, ref)
	}
}
