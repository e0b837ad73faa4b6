// Package store defines where the service keeps notifications and their
// delivery records. The JetStream queue (internal/queue) is the durable
// implementation; storetest.Memory serves tests.
package store

import (
	"context"
	"errors"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

var (
	// ErrNotFound: no notification has that id.
	ErrNotFound = errors.New("notification not found")
	// ErrUnavailable wraps every failure to reach durable storage. A caller
	// that sees it must be told to retry (HTTP 503, Connect Unavailable).
	ErrUnavailable = errors.New("storage unavailable")
	// ErrTooLarge: the notification is larger than the store can hold. It
	// will never succeed, so callers get InvalidArgument (HTTP 400), not a
	// retry.
	ErrTooLarge = errors.New("notification too large to store")
	// ErrBadPageToken: the page token was not made by this store.
	ErrBadPageToken = errors.New("invalid page token")
)

// Store keeps notifications durably and answers questions about them.
type Store interface {
	// Put stores n, whose id and received_at are already set, for delivery.
	// When it returns nil the notification survives a crash of herald. When a
	// notification with the same non-empty idempotency key was stored before,
	// Put stores nothing and returns that notification's id and
	// duplicate=true. Failures to store wrap ErrUnavailable.
	Put(ctx context.Context, n *heraldv1.Notification) (id string, duplicate bool, err error)
	// Get returns a notification and its delivery record, or ErrNotFound.
	Get(ctx context.Context, id string) (*heraldv1.NotificationSummary, error)
	// List returns notifications newest first.
	List(ctx context.Context, q Query) (Page, error)
	// ListDeadLetters returns dead-lettered notifications, newest first.
	ListDeadLetters(ctx context.Context, pageSize int, pageToken string) (Page, error)
	// ReplayDeadLetters queues the named dead letters (all of them when all
	// is true) for delivery again with a fresh retry budget, and returns the
	// ids it queued. Unknown ids give ErrNotFound and replay nothing.
	ReplayDeadLetters(ctx context.Context, ids []string, all bool) ([]string, error)
}

// Query selects notifications for List.
type Query struct {
	// PageSize is at least 1; the service clamps it.
	PageSize  int
	PageToken string
	// State and Severity filter when not UNSPECIFIED.
	State    heraldv1.DeliveryState
	Severity heraldv1.Severity
}

// Page is one page of results.
type Page struct {
	Items []*heraldv1.NotificationSummary
	// NextPageToken is empty on the last page.
	NextPageToken string
}
