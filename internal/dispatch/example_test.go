package dispatch_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/dispatch"
	"github.com/herald-notify/herald/internal/route"
	"github.com/herald-notify/herald/sinks"
)

// down is a sink whose server answers 503.
type down struct{ name string }

func (s down) Name() string { return s.name }
func (s down) Send(context.Context, *heraldv1.Notification, sinks.Target) (sinks.Receipt, error) {
	return sinks.Receipt{}, sinks.ClassifyStatus(503, "", 0)
}

// up is a sink that takes everything and says why it got it.
type up struct{ name string }

func (s up) Name() string { return s.name }
func (s up) Send(_ context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
	fmt.Printf("%s got %s in %s (via fallback from %s: %s)\n", s.name, n.GetId(), to.Channel, to.FallbackFrom, to.FallbackReason)
	return sinks.Receipt{}, nil
}

// message is the simplest delivery.Message; the queue provides the real one.
type message struct{ n *heraldv1.Notification }

func (m message) Notification() *heraldv1.Notification { return m.n }
func (m message) Delivered() int                       { return 1 }
func (m message) InProgress(context.Context) error     { return nil }

func ExampleDispatcher_Handle() {
	router, err := route.New([]route.Config{{
		Name:     "default",
		Chain:    []string{"rocketchat", "slack"},
		Channels: map[string]string{"rocketchat": "#alerts-critical", "slack": "#alerts"},
	}})
	if err != nil {
		log.Fatal(err)
	}
	cfg := dispatch.DefaultConfig() // decode the YAML section into this
	cfg.QuickRetries = 0
	state := dispatch.NewMemoryState()
	d, err := dispatch.New(dispatch.Options{
		Router: router,
		Sinks:  map[string]sinks.Sink{"rocketchat": down{"rocketchat"}, "slack": up{"slack"}},
		State:  state,
		Config: cfg,
	})
	if err != nil {
		log.Fatal(err)
	}
	n := &heraldv1.Notification{Id: "01J", GroupKey: "g", ReceivedAt: timestamppb.New(time.Now())}
	out := d.Handle(context.Background(), message{n})
	rec, _ := state.Record(context.Background(), "01J")
	fmt.Println(out.Action, rec.GetState(), rec.GetDeliveredBy())
	// Output:
	// slack got 01J in #alerts (via fallback from rocketchat: rocketchat: HTTP 503 Service Unavailable)
	// ack DELIVERY_STATE_DELIVERED slack
}
