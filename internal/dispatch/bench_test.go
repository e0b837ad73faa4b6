package dispatch

import (
	"context"
	"testing"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
)

// BenchmarkHandle measures one notification delivered by the first sink at
// the first attempt, with a parent message and an in-memory state: the
// dispatcher's own cost per notification.
//
//	go test -run '^$' -bench BenchmarkHandle -benchmem ./internal/dispatch/
func BenchmarkHandle(b *testing.B) {
	ref := &heraldv1.MessageRef{ChannelId: "C1", MessageId: "m1"}
	rc := &benchSink{name: "rc", rcpt: sinks.Receipt{Parent: ref, Message: ref}}
	d, err := New(Options{
		Router: chainRouter{{Sink: "rc", Channel: "#alerts"}, {Sink: "slack", Channel: "#alerts"}},
		Sinks:  map[string]sinks.Sink{"rc": rc, "slack": &benchSink{name: "slack"}},
		State:  NewMemoryState(),
		Config: DefaultConfig(),
	})
	if err != nil {
		b.Fatal(err)
	}
	m := msg("n1", "group")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if out := d.Handle(ctx, m); out.Action != Ack {
			b.Fatal(out)
		}
	}
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
