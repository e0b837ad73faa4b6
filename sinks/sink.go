// Package sinks defines what herald delivers notifications to: the Sink
// interface and the classification of delivery errors. Each sink type is a
// package below it; internal/app builds the configured ones.
package sinks

import (
	"context"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// A Sink delivers one notification in one attempt. It never retries, sleeps
// or waits for a rate limit: it returns a classified error (see Permanent and
// Throttled; any other error is retryable) and the dispatcher decides what
// happens next. Send must honour ctx's deadline and cancellation, and no error
// it returns may contain a token, password or secret URL.
type Sink interface {
	// Name is the configured name of the sink, unique in a config.
	Name() string
	Send(ctx context.Context, n *heraldv1.Notification, to Target) (Receipt, error)
}

// Target says where and in which context a notification is delivered.
type Target struct {
	// Channel is the channel or room the route chose for this sink, such as
	// "#alerts-critical". Empty means the sink's default.
	Channel string
	// Route is the name of the route that matched, for templates and logs.
	Route string
	// Parent is the message this notification's group already has in this
	// sink, if any: the sink updates it and replies in its thread instead of
	// posting a new message. Nil for the first notification of a group.
	Parent *heraldv1.MessageRef
	// Attempt counts this sink's attempts for this notification, from 1.
	Attempt int
	// FallbackReason is set when this sink is not the first of the chain: it
	// says in a few words why the earlier sinks did not take the notification.
	FallbackReason string
	// FallbackFrom is the display name of the sink that failed, when
	// FallbackReason is set.
	FallbackFrom string
	// Reminder counts, from 1, the notifications of the group with the
	// same content as the one that last changed the group's message
	// (Alertmanager repeating it after its repeat_interval): the sink may
	// post a short reminder instead of the whole message, and leave the
	// group's message as it is. Zero when the content changed, or the
	// group has no message in this sink.
	Reminder int
	// Template is the file of message templates the route chose for this
	// sink (route.Decision.Templates), overriding the sink's own; empty for
	// the sink's default.
	Template string
}

// Receipt is what a sink reports after a successful delivery.
type Receipt struct {
	// Parent is the message that stands for the notification's group in this
	// sink from now on (new, or the Target's Parent). Nil when the sink cannot
	// address messages (incoming webhooks).
	Parent *heraldv1.MessageRef
	// Message is the message posted by this delivery (the parent itself, or a
	// thread reply). Nil when the chat server did not say.
	Message *heraldv1.MessageRef
}
