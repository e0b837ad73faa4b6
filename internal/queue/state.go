package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/store"
)

// Record returns id's delivery record, or nil if it has none. Failures wrap
// store.ErrUnavailable.
func (q *Queue) Record(ctx context.Context, id string) (*heraldv1.DeliveryRecord, error) {
	if !validID(id) {
		return nil, nil
	}
	sr, rev, err := q.readRecord(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("queue: record %s: %w: %w", id, store.ErrUnavailable, err)
	}
	q.flights.seen(id, sr.seq, rev)
	if rev == 0 {
		return nil, nil
	}
	return sr.rec, nil
}

// PutRecord replaces id's delivery record, keeping where its notification
// sits in the stream. Concurrent writers are serialised by compare-and-set;
// the last one wins. While the message is being handled, the revision its
// handler last read or wrote is known, and the write goes straight out;
// otherwise (or when another writer came between) the record is read
// first. Failures wrap store.ErrUnavailable.
func (q *Queue) PutRecord(ctx context.Context, id string, rec *heraldv1.DeliveryRecord) error {
	if !validID(id) {
		return fmt.Errorf("queue: record id %q is not 1-200 of [A-Za-z0-9_=-]", id)
	}
	f := q.flights.get(id)
	if f.known {
		rev, err := q.writeRecord(ctx, id, storedRecord{seq: f.seq, rec: rec}, f.rev)
		if err == nil {
			q.flights.seen(id, f.seq, rev)
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			q.flights.forget(id)
			return fmt.Errorf("queue: put record %s: %w: %w", id, store.ErrUnavailable, err)
		}
	}
	var seq uint64
	rev, err := q.updateRecord(ctx, id, func(r *storedRecord, _ bool) bool {
		if r.seq == 0 {
			r.seq = f.seq
		}
		seq = r.seq
		r.rec = rec
		return true
	})
	if err != nil {
		q.flights.forget(id)
		return fmt.Errorf("queue: put record %s: %w: %w", id, store.ErrUnavailable, err)
	}
	q.flights.seen(id, seq, rev)
	return nil
}

// Parent returns the chat message that stands for groupKey in sink, or nil.
// Its posted_at is when it was stored (the key-value entry's time) unless
// the stored reference says otherwise. Failures wrap store.ErrUnavailable.
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
	if ref.PostedAt == nil {
		ref.PostedAt = timestamppb.New(e.Created())
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

// flights knows, for each message being handled, where its record stands:
// the stream sequence the record points at and the record's revision as
// its handler last read or wrote it. It spares the dispatcher's record
// writes a read each. Only messages between begin and end are tracked.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	// seq is the stream sequence the record points at: the record's own,
	// else the handled copy's.
	seq uint64
	// rev is the record's revision, 0 for none; valid only when known.
	rev   uint64
	known bool
	// handlers counts begins without end: a replayed copy and the old one
	// can in rare cases be handled at once.
	handlers int
}

// begin starts tracking id's record for the copy at seq.
func (fs *flights) begin(id string, seq uint64) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.m == nil {
		fs.m = map[string]*flight{}
	}
	f := fs.m[id]
	if f == nil {
		f = &flight{seq: seq}
		fs.m[id] = f
	} else {
		// Two copies at once: trust nothing cached.
		f.known = false
	}
	f.handlers++
}

// end stops tracking id once its last handler is done.
func (fs *flights) end(id string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f := fs.m[id]; f != nil {
		if f.handlers--; f.handlers <= 0 {
			delete(fs.m, id)
		}
	}
}

// get returns a copy of what is known about id; the zero flight when it is
// not being handled.
func (fs *flights) get(id string) flight {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f := fs.m[id]; f != nil {
		return *f
	}
	return flight{}
}

// seen notes that id's record is at revision rev (0: none) and points at
// seq (0: at the handled copy).
func (fs *flights) seen(id string, seq, rev uint64) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f := fs.m[id]
	if f == nil || f.handlers > 1 {
		return
	}
	if seq != 0 {
		f.seq = seq
	}
	f.rev, f.known = rev, true
}

// forget drops what is known about id's record after a failed write: it
// may or may not have been applied.
func (fs *flights) forget(id string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f := fs.m[id]; f != nil {
		f.known = false
	}
}
