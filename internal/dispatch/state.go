package dispatch

import (
	"context"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// State is the durable state the dispatcher shares with the service and with
// other herald replicas: delivery records and each group's chat message per
// sink. The queue's key-value buckets implement it.
type State interface {
	// Record returns the notification's delivery record, or nil if none.
	Record(ctx context.Context, id string) (*heraldv1.DeliveryRecord, error)
	PutRecord(ctx context.Context, id string, rec *heraldv1.DeliveryRecord) error
	// Parent returns the message that stands for groupKey in sink, or nil.
	Parent(ctx context.Context, sink, groupKey string) (*heraldv1.MessageRef, error)
	SetParent(ctx context.Context, sink, groupKey string, ref *heraldv1.MessageRef) error
}
