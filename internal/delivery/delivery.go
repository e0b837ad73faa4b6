// Package delivery is the contract between the queue, which hands out
// stored notifications in order, and the dispatcher, which delivers them:
// what a handler gets (Message) and what it answers (Outcome).
package delivery

import (
	"context"
	"strconv"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// Message is one queued notification handed to the dispatcher. The queue
// (internal/queue) implements it over a JetStream message.
type Message interface {
	Notification() *heraldv1.Notification
	// Delivered counts how often the queue has handed out this message, from 1.
	Delivered() int
	// InProgress tells the queue the message is still being worked on, so it
	// is not redelivered while a delivery attempt runs long.
	InProgress(ctx context.Context) error
}

// Action is what the queue does with a message once Handle returns.
type Action int

const (
	// Ack: done (delivered, or moved to the dead letters by the queue).
	Ack Action = iota + 1
	// Retry: attempt the message again after Outcome.Delay, keeping its
	// place in its group's order; the group's later messages wait with it.
	Retry
	// DeadLetter: move the message to the dead-letter store, then ack it.
	DeadLetter
	// Release: herald is shutting down mid-delivery; hand the message out
	// again at once to whoever consumes next (Nak without delay).
	Release
)

// String is the action's name in logs, spans and metrics.
func (a Action) String() string {
	switch a {
	case Ack:
		return "ack"
	case Retry:
		return "retry"
	case DeadLetter:
		return "dead_letter"
	case Release:
		return "release"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Outcome is the dispatcher's verdict on one message.
type Outcome struct {
	Action Action
	// Delay is how long to wait before a Retry.
	Delay time.Duration
	// Reason says why, for dead letters and logs; never contains secrets.
	Reason string
	// Hold says why the group waits, with Retry; HoldNone otherwise.
	Hold Hold
	// Route is the name of the notification's route, on every outcome of
	// a message that holds a notification.
	Route string
}

// Replayable is optionally implemented by a Message that knows when its
// current copy was stored: at publish, or at its latest replay from the dead
// letters. The retry budget counts from the later of that time and the
// notification's received_at, so a replayed dead letter gets a fresh budget.
type Replayable interface {
	Enqueued() time.Time
}

// Hold says why a group waits after a Retry outcome.
type Hold int

const (
	// HoldNone: the outcome is not a Retry.
	HoldNone Hold = iota
	// HoldRetrying: a sink of the chain failed in a way worth retrying.
	HoldRetrying
	// HoldThrottled: the wait is a sink's rate limit: Delay is the longest
	// throttle a sink of the chain asked for, no shorter than the backoff.
	HoldThrottled
	// HoldBroken: no sink of the chain could even be tried: each was
	// skipped, its breaker open (or, for a stale router, not configured).
	HoldBroken
)

// String is the hold's name in metrics and logs.
func (h Hold) String() string {
	switch h {
	case HoldRetrying:
		return "retrying"
	case HoldThrottled:
		return "throttled"
	case HoldBroken:
		return "broken"
	}
	return "none"
}
