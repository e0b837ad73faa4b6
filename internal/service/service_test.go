package service

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"connectrpc.com/connect"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/store"
	"github.com/herald-notify/herald/internal/store/storetest"
)

func TestIDsSortByReceiptTime(t *testing.T) {
	base := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 50 {
		id := newID(base.Add(time.Duration(i) * time.Millisecond))
		if len(id) != 26 {
			t.Fatalf("id %q has %d characters, want 26", id, len(id))
		}
		ids = append(ids, id)
	}
	if !sort.StringsAreSorted(ids) {
		t.Errorf("ids of increasing receipt times do not sort: %v", ids)
	}
	if a, b := newID(base), newID(base); a == b {
		t.Errorf("two ids in the same millisecond are equal: %s", a)
	}
}

// errStore fails Put with a given error.
type errStore struct {
	store.Store
	err error
}

func (s errStore) Put(context.Context, *heraldv1.Notification) (string, bool, error) {
	return "", false, s.err
}

func TestStoreErrorsMapToCodes(t *testing.T) {
	tests := []struct {
		err  error
		want connect.Code
	}{
		{fmt.Errorf("queue: publish: %w: timeout", store.ErrUnavailable), connect.CodeUnavailable},
		{errors.New("something nobody classified"), connect.CodeUnavailable},
		{fmt.Errorf("queue: 9 MiB: %w", store.ErrTooLarge), connect.CodeInvalidArgument},
		{context.DeadlineExceeded, connect.CodeDeadlineExceeded},
	}
	for _, tt := range tests {
		s := New(errStore{err: tt.err}, Options{})
		_, err := s.Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{Notification: &heraldv1.Notification{
			Source: "t", Title: "x", Severity: heraldv1.Severity_SEVERITY_INFO,
		}}))
		if got := connect.CodeOf(err); got != tt.want {
			t.Errorf("store error %v → %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestPublishAssignsIDAndTime(t *testing.T) {
	now := time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)
	st := storetest.NewMemory()
	s := New(st, Options{Now: func() time.Time { return now }})
	res, err := s.Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{Notification: &heraldv1.Notification{
		Source: "t", Title: "x", Severity: heraldv1.Severity_SEVERITY_INFO,
	}}))
	if err != nil {
		t.Fatal(err)
	}
	got := st.All()[0]
	if got.GetId() != res.Msg.GetId() || !got.GetReceivedAt().AsTime().Equal(now) || got.GetStatus() != heraldv1.Status_STATUS_FIRING {
		t.Errorf("stored %v; want id %s, received_at %v, status defaulted to firing", got, res.Msg.GetId(), now)
	}
}

// TestListSinks answers with what the dispatcher reports, and Unavailable
// where no dispatcher runs.
func TestListSinks(t *testing.T) {
	req := connect.NewRequest(&heraldv1.ListSinksRequest{})
	_, err := New(storetest.NewMemory(), Options{}).ListSinks(context.Background(), req)
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("without a dispatcher: %v, want Unavailable", err)
	}
	want := []*heraldv1.SinkStatus{{Name: "rocketchat", Type: "rocketchat", Breaker: heraldv1.BreakerState_BREAKER_STATE_OPEN, LastErrorClass: "retryable"}}
	svc := New(storetest.NewMemory(), Options{Sinks: func() []*heraldv1.SinkStatus { return want }})
	res, err := svc.ListSinks(context.Background(), req)
	if err != nil || len(res.Msg.GetSinks()) != 1 || res.Msg.GetSinks()[0] != want[0] {
		t.Errorf("ListSinks = %v, %v; want the dispatcher's report", res, err)
	}
}

// TestDuplicateOnTheSpan: the Publish span of a copy says it is one and of
// which notification, so a trace of an HA peer's webhook explains why
// nothing was delivered for it.
func TestDuplicateOnTheSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	svc := New(storetest.NewMemory(), Options{})
	publish := func() string {
		ctx, span := tp.Tracer("test").Start(context.Background(), "Publish")
		defer span.End()
		res, err := svc.Publish(ctx, connect.NewRequest(&heraldv1.PublishRequest{Notification: &heraldv1.Notification{
			Source: "alertmanager", Title: "t", Severity: heraldv1.Severity_SEVERITY_INFO, IdempotencyKey: "k1",
		}}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetId()
	}
	first, again := publish(), publish()
	if first != again {
		t.Fatalf("ids %s and %s", first, again)
	}
	spans := rec.Ended()
	attrs := func(s sdktrace.ReadOnlySpan) map[string]string {
		m := map[string]string{}
		for _, kv := range s.Attributes() {
			m[string(kv.Key)] = kv.Value.String()
		}
		return m
	}
	if a := attrs(spans[0]); a["herald.duplicate"] != "false" || a["herald.notification.id"] != first || len(spans[0].Events()) != 0 {
		t.Errorf("first publish: %v, events %v", a, spans[0].Events())
	}
	if a := attrs(spans[1]); a["herald.duplicate"] != "true" || a["herald.notification.id"] != first {
		t.Errorf("second publish: %v", a)
	}
	if ev := spans[1].Events(); len(ev) != 1 || ev[0].Name != "duplicate" {
		t.Errorf("second publish's events %v, want one duplicate", ev)
	}
}
