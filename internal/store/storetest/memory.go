// Package storetest holds a store.Store in memory for the tests of the
// packages above the store.
package storetest

import (
	"context"
	"slices"
	"strconv"
	"sync"

	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/store"
)

// Memory is a Store that keeps everything in memory. It is for tests: it
// loses everything on exit and never delivers. It implements the same
// dedup, ordering and paging rules as the durable store.
type Memory struct {
	mu     sync.Mutex
	items  []*heraldv1.NotificationSummary // in Put order
	byID   map[string]int
	byKey  map[string]string
	failed error
}

var _ store.Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{byID: map[string]int{}, byKey: map[string]string{}}
}

// FailWith makes every later call fail with err wrapped in ErrUnavailable
// (nil restores normal service), to test how callers handle an outage.
func (m *Memory) FailWith(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failed = err
}

// SetDelivery replaces a notification's delivery record, standing in for
// the dispatcher.
func (m *Memory) SetDelivery(id string, rec *heraldv1.DeliveryRecord) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i, ok := m.byID[id]; ok {
		m.items[i].Delivery = proto.Clone(rec).(*heraldv1.DeliveryRecord)
	}
}

// All returns copies of every stored notification in Put order.
func (m *Memory) All() []*heraldv1.Notification {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*heraldv1.Notification, len(m.items))
	for i, it := range m.items {
		out[i] = proto.Clone(it.Notification).(*heraldv1.Notification)
	}
	return out
}

func (m *Memory) check() error {
	if m.failed != nil {
		return &unavailable{m.failed}
	}
	return nil
}

type unavailable struct{ err error }

func (e *unavailable) Error() string   { return "storage unavailable: " + e.err.Error() }
func (e *unavailable) Unwrap() []error { return []error{store.ErrUnavailable, e.err} }

func (m *Memory) Put(_ context.Context, n *heraldv1.Notification) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return "", false, err
	}
	if k := n.GetIdempotencyKey(); k != "" {
		if id, ok := m.byKey[k]; ok {
			return id, true, nil
		}
		m.byKey[k] = n.GetId()
	}
	m.byID[n.GetId()] = len(m.items)
	m.items = append(m.items, &heraldv1.NotificationSummary{
		Notification: proto.Clone(n).(*heraldv1.Notification),
		Delivery:     &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_PENDING},
	})
	return n.GetId(), false, nil
}

func (m *Memory) Get(_ context.Context, id string) (*heraldv1.NotificationSummary, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return nil, err
	}
	i, ok := m.byID[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	return proto.Clone(m.items[i]).(*heraldv1.NotificationSummary), nil
}

func (m *Memory) List(_ context.Context, q store.Query) (store.Page, error) {
	return m.page(q.PageSize, q.PageToken, func(s *heraldv1.NotificationSummary) bool {
		return (q.State == heraldv1.DeliveryState_DELIVERY_STATE_UNSPECIFIED || s.GetDelivery().GetState() == q.State) &&
			(q.Severity == heraldv1.Severity_SEVERITY_UNSPECIFIED || s.GetNotification().GetSeverity() == q.Severity)
	})
}

func (m *Memory) ListDeadLetters(_ context.Context, pageSize int, token string) (store.Page, error) {
	return m.page(pageSize, token, isDead)
}

func isDead(s *heraldv1.NotificationSummary) bool {
	return s.GetDelivery().GetState() == heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED
}

// page walks newest first; the token is the index to continue below.
func (m *Memory) page(size int, token string, keep func(*heraldv1.NotificationSummary) bool) (store.Page, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return store.Page{}, err
	}
	start := len(m.items) - 1
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 || n >= len(m.items) {
			return store.Page{}, store.ErrBadPageToken
		}
		start = n
	}
	var p store.Page
	for i := start; i >= 0; i-- {
		if !keep(m.items[i]) {
			continue
		}
		if len(p.Items) == size {
			p.NextPageToken = strconv.Itoa(i)
			break
		}
		p.Items = append(p.Items, proto.Clone(m.items[i]).(*heraldv1.NotificationSummary))
	}
	return p, nil
}

func (m *Memory) ReplayDeadLetters(_ context.Context, ids []string, all bool) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return nil, err
	}
	var idx []int
	if all {
		for i, it := range m.items {
			if isDead(it) {
				idx = append(idx, i)
			}
		}
	}
	for _, id := range ids {
		i, ok := m.byID[id]
		if !ok || !isDead(m.items[i]) {
			return nil, store.ErrNotFound
		}
		if !slices.Contains(idx, i) {
			idx = append(idx, i)
		}
	}
	var out []string
	for _, i := range idx {
		m.items[i].Delivery = &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_PENDING}
		out = append(out, m.items[i].GetNotification().GetId())
	}
	return out, nil
}
