package queue

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/store"
)

// Record returns id's delivery record, or nil if it has none. Failures wrap
// store.ErrUnavailable.
func (q *Queue) Record(ctx context.Context, id string) (*heraldv1.DeliveryRecord, error) {
	if !validID(id) {
		return nil, nil
	}
	sr, found, err := q.loadRecord(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("queue: record %s: %w: %w", id, store.ErrUnavailable, err)
	}
	if !found {
		return nil, nil
	}
	return sr.rec, nil
}

// PutRecord replaces id's delivery record, keeping where its notification
// sits in the stream. Concurrent writers are serialised by compare-and-set;
// the last one wins. Failures wrap store.ErrUnavailable.
func (q *Queue) PutRecord(ctx context.Context, id string, rec *heraldv1.DeliveryRecord) error {
	if !validID(id) {
		return fmt.Errorf("queue: record id %q is not 1-200 of [A-Za-z0-9_=-]", id)
	}
	err := q.updateRecord(ctx, id, func(r *storedRecord, _ bool) bool {
		r.rec = rec
		return true
	})
	if err != nil {
		return fmt.Errorf("queue: put record %s: %w: %w", id, store.ErrUnavailable, err)
	}
	return nil
}

// Parent returns the chat message that stands for groupKey in sink, or nil.
// Failures wrap store.ErrUnavailable.
func (q *Queue) Parent(ctx context.Context, sink, groupKey string) (*heraldv1.MessageRef, error) {
	e, err := q.threads.Get(ctx, threadKey(sink, groupKey))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("queue: parent %s: %w: %w", sink, store.ErrUnavailable, err)
	}
	ref := &heraldv1.MessageRef{}
	if err := proto.Unmarshal(e.Value(), ref); err != nil {
		return nil, fmt.Errorf("queue: parent %s: corrupt entry: %w", sink, err)
	}
	return ref, nil
}

// SetParent records the chat message that stands for groupKey in sink; it
// is kept for retention after its last update. A nil ref forgets it. Failures wrap
// store.ErrUnavailable.
func (q *Queue) SetParent(ctx context.Context, sink, groupKey string, ref *heraldv1.MessageRef) error {
	if ref == nil {
		// Forget the group's message: its next notification starts a new one.
		err := q.retrying(ctx, func(ctx context.Context) error {
			return q.threads.Delete(ctx, threadKey(sink, groupKey))
		}, kvFinal...)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("queue: clear parent %s: %w: %w", sink, store.ErrUnavailable, err)
		}
		return nil
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(ref)
	if err != nil {
		return fmt.Errorf("queue: parent %s: %w", sink, err)
	}
	err = q.retrying(ctx, func(ctx context.Context) error {
		_, err := q.threads.Put(ctx, threadKey(sink, groupKey), b)
		return err
	}, kvFinal...)
	if err != nil {
		return fmt.Errorf("queue: set parent %s: %w: %w", sink, store.ErrUnavailable, err)
	}
	return nil
}
