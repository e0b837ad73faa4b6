package dispatch

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/sinks"
)

// BenchmarkHandle measures one notification delivered by the first sink at
// the first attempt, with a parent message, and a state that serializes
// records as a key-value store would but keeps nothing (so every iteration
// is a first delivery): the dispatcher's own cost per notification.
//
//	go test -run '^$' -bench BenchmarkHandle -benchmem ./internal/dispatch/
func BenchmarkHandle(b *testing.B) {
	ref := &heraldv1.MessageRef{ChannelId: "C1", MessageId: "m1"}
	rc := &benchSink{name: "rc", rcpt: sinks.Receipt{Parent: ref, Message: ref}}
	d, err := New(Options{
		Router: chainRouter{{Sink: "rc", Channel: "#alerts"}, {Sink: "slack", Channel: "#alerts"}},
		Sinks:  map[string]sinks.Sink{"rc": rc, "slack": &benchSink{name: "slack"}},
		State:  benchState{parent: ref},
		Config: DefaultConfig(),
	})
	if err != nil {
		b.Fatal(err)
	}
	m := msg("n1", "group")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if out := d.Handle(ctx, m); out.Action != delivery.Ack {
			b.Fatal(out)
		}
	}
}

// benchState answers like a state that has no record yet and the group's
// parent, and marshals what it is given.
type benchState struct{ parent *heraldv1.MessageRef }

func (benchState) Record(context.Context, string) (*heraldv1.DeliveryRecord, error) {
	return nil, nil
}

func (benchState) PutRecord(_ context.Context, _ string, rec *heraldv1.DeliveryRecord) error {
	_, err := proto.Marshal(rec)
	return err
}

func (s benchState) Parent(context.Context, string, string) (*heraldv1.MessageRef, error) {
	return s.parent, nil
}

func (benchState) SetParent(_ context.Context, _, _ string, ref *heraldv1.MessageRef) error {
	_, err := proto.Marshal(ref)
	return err
}

// benchSink is a fakeSink without the call log.
type benchSink struct {
	name string
	rcpt sinks.Receipt
}

func (s *benchSink) Name() string { return s.name }
func (s *benchSink) Send(context.Context, *heraldv1.Notification, sinks.Target) (sinks.Receipt, error) {
	return s.rcpt, nil
}
