package dispatch

import (
	"context"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// MemoryState is a State kept in memory, for tests. Like the queue's
// buckets it stores copies, so callers may keep changing what they passed
// in or got back; it is safe for concurrent use.
type MemoryState struct {
	mu      sync.Mutex
	records map[string]*heraldv1.DeliveryRecord
	parents map[parentKey]*heraldv1.MessageRef
}

type parentKey struct{ sink, group string }

// NewMemoryState returns an empty MemoryState.
func NewMemoryState() *MemoryState {
	return &MemoryState{
		records: map[string]*heraldv1.DeliveryRecord{},
		parents: map[parentKey]*heraldv1.MessageRef{},
	}
}

var _ State = (*MemoryState)(nil)

// Record returns a copy of the notification's delivery record, or nil.
func (s *MemoryState) Record(_ context.Context, id string) (*heraldv1.DeliveryRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[id]
	if !ok {
		return nil, nil
	}
	return proto.CloneOf(r), nil
}

// PutRecord stores a copy of rec.
func (s *MemoryState) PutRecord(_ context.Context, id string, rec *heraldv1.DeliveryRecord) error {
	c := proto.CloneOf(rec)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[id] = c
	return nil
}

// Parent returns a copy of the group's message in sink, or nil.
func (s *MemoryState) Parent(_ context.Context, sink, groupKey string) (*heraldv1.MessageRef, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.parents[parentKey{sink, groupKey}]
	if !ok {
		return nil, nil
	}
	return proto.CloneOf(r), nil
}

// SetParent stores a copy of ref, with posted_at set to now unless ref has
// one; a nil ref forgets the group's message.
func (s *MemoryState) SetParent(_ context.Context, sink, groupKey string, ref *heraldv1.MessageRef) error {
	c := proto.CloneOf(ref)
	if c != nil && c.PostedAt == nil {
		c.PostedAt = timestamppb.Now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ref == nil {
		delete(s.parents, parentKey{sink, groupKey})
		return nil
	}
	s.parents[parentKey{sink, groupKey}] = c
	return nil
}

func TestMemoryStateCopies(t *testing.T) {
	ctx := t.Context()
	s := NewMemoryState()
	if r, err := s.Record(ctx, "x"); r != nil || err != nil {
		t.Errorf("unknown record: %v, %v", r, err)
	}
	rec := &heraldv1.DeliveryRecord{DeliveredBy: "rc"}
	if err := s.PutRecord(ctx, "x", rec); err != nil {
		t.Fatal(err)
	}
	rec.DeliveredBy = "changed after put"
	got, _ := s.Record(ctx, "x")
	if got.GetDeliveredBy() != "rc" {
		t.Errorf("stored record changed with the caller's: %q", got.GetDeliveredBy())
	}
	got.DeliveredBy = "changed after get"
	if again, _ := s.Record(ctx, "x"); again.GetDeliveredBy() != "rc" {
		t.Errorf("stored record changed with a returned one: %q", again.GetDeliveredBy())
	}

	ref := &heraldv1.MessageRef{MessageId: "m1"}
	if err := s.SetParent(ctx, "rc", "g", ref); err != nil {
		t.Fatal(err)
	}
	ref.MessageId = "changed"
	if p, _ := s.Parent(ctx, "rc", "g"); p.GetMessageId() != "m1" {
		t.Errorf("parent = %v, want m1", p)
	}
	if p, _ := s.Parent(ctx, "slack", "g"); p != nil {
		t.Errorf("parent in another sink: %v", p)
	}
	if err := s.SetParent(ctx, "rc", "g", nil); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Parent(ctx, "rc", "g"); p != nil {
		t.Errorf("parent after forgetting: %v", p)
	}
}
