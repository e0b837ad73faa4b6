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
// SendBatch makes one attempt, like Send, with the same error classes.
// Success delivers every notification of ns; an error delivers none of
// them. A sink whose messages have threads returns the digest as the
// Receipt's Parent, marked Digest: it becomes the message of each group it
// shows that has none yet, so that the group's later notifications (its
// resolve) reply in the digest's thread; a group with a message of its own
// keeps it. A Send whose Target.Parent is a digest replies in its thread
// and never edits it. Without threads the Parent is nil.
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
