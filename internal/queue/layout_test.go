package queue

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/internal/store"
)

// A notification without a record is found by the time in its id: among
// other traffic, across deleted messages, with its id made a second after
// it was stored (clock skew) or seconds before (a slow publish), and while
// a replay has set its record's seq to 0. What is not stored is not found.
func TestGetFindsPendingByIDTime(t *testing.T) {
	e := newTest(t, nil)
	ctx := t.Context()
	var ns []*heraldv1.Notification
	put := func(k int) {
		for range k {
			n := notif("g"+strconv.Itoa(len(ns)%9), heraldv1.Severity_SEVERITY_INFO)
			mustPut(t, e.q, n)
			ns = append(ns, n)
		}
	}
	put(150)
	ahead := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	ahead.Id = testID(time.Now().Add(time.Second), 1<<40)
	slow := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	slow.Id = testID(time.Now().Add(-4*time.Second), 1<<41)
	mustPut(t, e.q, ahead)
	mustPut(t, e.q, slow)
	ns = append(ns, ahead, slow)
	put(50)

	deleted := map[string]bool{}
	for seq := uint64(3); seq <= uint64(len(ns)); seq += 7 {
		raw, err := e.q.stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		deleted[storedID(raw.Header)] = true
		if err := e.q.stream.DeleteMsg(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range ns {
		got, err := e.q.Get(ctx, n.Id)
		if deleted[n.Id] {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get(%s, deleted) = %v, want ErrNotFound", n.Id, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Get(%s) = %v", n.Id, err)
			continue
		}
		if !proto.Equal(got.Notification, n) || got.Delivery.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_PENDING {
			t.Errorf("Get(%s) = %v, want it PENDING", n.Id, got)
		}
	}
	for _, id := range []string{
		testID(time.Now(), 1<<50),
		testID(time.Now().Add(-time.Hour), 1),
		testID(time.Now().Add(time.Hour), 1),
		testID(time.UnixMilli(0), 1),
	} {
		if _, err := e.q.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%s, never stored) = %v, want ErrNotFound", id, err)
		}
	}

	// A replay resets the record to seq 0 before publishing its copy.
	n := ns[10]
	if _, err := e.q.updateRecord(ctx, n.Id, func(r *storedRecord, _ bool) bool {
		r.seq, r.rec = 0, &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_PENDING, Route: "replayed"}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := e.q.Get(ctx, n.Id); err != nil || !proto.Equal(got.Notification, n) || got.Delivery.GetRoute() != "replayed" {
		t.Errorf("Get(%s, record at seq 0) = %v, %v", n.Id, got, err)
	}
}

// The search reads at most findMaxReads messages; a notification beyond
// them is reported not found rather than searched for without end.
func TestGetSearchIsBounded(t *testing.T) {
	e := newTest(t, nil)
	ctx := t.Context()
	early := time.Now()
	for range 100 {
		mustPut(t, e.q, notif("g", heraldv1.Severity_SEVERITY_INFO))
	}
	// Stored after 100 others that came after its id's time.
	n := notif("g", heraldv1.Severity_SEVERITY_INFO)
	n.Id = testID(early, 1<<60)
	mustPut(t, e.q, n)
	e.q.findMaxReads = 30
	if _, err := e.q.Get(ctx, n.Id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get with a budget of 30 reads = %v, want ErrNotFound", err)
	}
	e.q.findMaxReads = defaultFindMaxReads
	if _, err := e.q.Get(ctx, n.Id); err != nil {
		t.Errorf("Get with the default budget = %v", err)
	}
}

// An id the service did not make holds no time: a notification stored
// with one is not found while it has no record, and is found once its
// first delivery attempt wrote one.
func TestGetPendingWithoutIDTime(t *testing.T) {
	e := newTest(t, nil)
	ctx := t.Context()
	n := notif("g", heraldv1.Severity_SEVERITY_INFO)
	n.Id = "01TEST000001"
	mustPut(t, e.q, n)
	if _, err := e.q.Get(ctx, n.Id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(%s) without a record = %v, want ErrNotFound", n.Id, err)
	}
	done := make(chan struct{})
	stop := consume(t, e.q, func(ctx context.Context, m delivery.Message) delivery.Outcome {
		defer close(done)
		if err := e.q.PutRecord(ctx, n.Id, &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_RETRYING}); err != nil {
			t.Error(err)
		}
		return delivery.Outcome{Action: delivery.Retry, Delay: time.Minute}
	})
	recv(t, done)
	stop()
	got, err := e.q.Get(ctx, n.Id)
	if err != nil || !proto.Equal(got.Notification, n) || got.Delivery.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_RETRYING {
		t.Errorf("Get(%s) with a record = %v, %v", n.Id, got, err)
	}
}
