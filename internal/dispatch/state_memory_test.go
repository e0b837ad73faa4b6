package dispatch

import (
	"testing"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

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
