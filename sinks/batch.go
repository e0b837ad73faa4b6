package sinks

import (
	"context"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// Batcher is implemented by sinks that can merge several notifications for
// one target into a single digest message. The dispatcher uses it under
// backlog: when a sink is throttled (see Pacer and ThrottledError), the
// notifications pending for the same sink and channel are sent together
// once the wait is over, instead of each waiting its turn.
//
// SendBatch makes one attempt, like Send, with the same error classes. A
// digest stands for no group: its Receipt has a nil Parent, so the groups
// it contains keep (or still lack) their own parent message. Success
// delivers every notification of ns; an error delivers none of them.
type Batcher interface {
	Sink
	SendBatch(ctx context.Context, ns []*heraldv1.Notification, to Target) (Receipt, error)
}

// Pacer is implemented by sinks that pace their own requests (for example
// to an incoming webhook's rate limit). Wait says how long until the sink
// can send one more message to the target without being throttled; zero
// means now. It never blocks and never makes a request. A Send made before
// the wait is over returns a ThrottledError carrying the remaining wait
// without contacting the server.
type Pacer interface {
	Wait(to Target) time.Duration
}
