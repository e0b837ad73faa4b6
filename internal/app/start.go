package app

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/dispatch"
	"github.com/herald-notify/herald/internal/queue"
	"github.com/herald-notify/herald/internal/store"
)

// Backoff between attempts to open the queue on a cluster.
const (
	openBackoffMin = 500 * time.Millisecond
	openBackoffMax = 10 * time.Second
)

// pendingQueue is the queue as the service, the dispatcher and /readyz see
// it: until the queue is open every call fails with store.ErrUnavailable
// and says why, so a caller retries (Alertmanager on the 503) and
// /readyz reports not ready.
type pendingQueue struct {
	q atomic.Pointer[queue.Queue]

	mu sync.Mutex
	// why the queue is not open yet.
	why error
}

var (
	_ store.Store    = (*pendingQueue)(nil)
	_ dispatch.State = (*pendingQueue)(nil)
	_ dispatch.State = (*queue.Queue)(nil)
)

func newPendingQueue() *pendingQueue {
	return &pendingQueue{why: errors.New("connecting")}
}

// set makes q the queue every call goes to from now on.
func (p *pendingQueue) set(q *queue.Queue) { p.q.Store(q) }

// waiting notes why the queue is not open yet.
func (p *pendingQueue) waiting(err error) {
	p.mu.Lock()
	p.why = err
	p.mu.Unlock()
}

// get returns the open queue, or an error wrapping store.ErrUnavailable.
func (p *pendingQueue) get() (*queue.Queue, error) {
	if q := p.q.Load(); q != nil {
		return q, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return nil, fmt.Errorf("queue: starting: %w: %w", store.ErrUnavailable, p.why)
}

// Ready is the queue's readiness, or why it is not open yet.
func (p *pendingQueue) Ready(ctx context.Context) error {
	q, err := p.get()
	if err != nil {
		return err
	}
	return q.Ready(ctx)
}

func (p *pendingQueue) Put(ctx context.Context, n *heraldv1.Notification) (string, bool, error) {
	q, err := p.get()
	if err != nil {
		return "", false, err
	}
	return q.Put(ctx, n)
}

func (p *pendingQueue) Get(ctx context.Context, id string) (*heraldv1.NotificationSummary, error) {
	q, err := p.get()
	if err != nil {
		return nil, err
	}
	return q.Get(ctx, id)
}

func (p *pendingQueue) List(ctx context.Context, query store.Query) (store.Page, error) {
	q, err := p.get()
	if err != nil {
		return store.Page{}, err
	}
	return q.List(ctx, query)
}

func (p *pendingQueue) ListDeadLetters(ctx context.Context, pageSize int, pageToken string) (store.Page, error) {
	q, err := p.get()
	if err != nil {
		return store.Page{}, err
	}
	return q.ListDeadLetters(ctx, pageSize, pageToken)
}

func (p *pendingQueue) ReplayDeadLetters(ctx context.Context, ids []string, all bool) ([]string, error) {
	q, err := p.get()
	if err != nil {
		return nil, err
	}
	return q.ReplayDeadLetters(ctx, ids, all)
}

func (p *pendingQueue) Record(ctx context.Context, id string) (*heraldv1.DeliveryRecord, error) {
	q, err := p.get()
	if err != nil {
		return nil, err
	}
	return q.Record(ctx, id)
}

func (p *pendingQueue) PutRecord(ctx context.Context, id string, rec *heraldv1.DeliveryRecord) error {
	q, err := p.get()
	if err != nil {
		return err
	}
	return q.PutRecord(ctx, id, rec)
}

func (p *pendingQueue) Parent(ctx context.Context, sink, groupKey string) (*heraldv1.MessageRef, error) {
	q, err := p.get()
	if err != nil {
		return nil, err
	}
	return q.Parent(ctx, sink, groupKey)
}

func (p *pendingQueue) SetParent(ctx context.Context, sink, groupKey string, ref *heraldv1.MessageRef) error {
	q, err := p.get()
	if err != nil {
		return err
	}
	return q.SetParent(ctx, sink, groupKey, ref)
}

// openPatiently opens the queue on a cluster, again and again with
// backoff, until it opens, ctx ends, or it fails for a reason that will
// not pass by itself (queue.ErrIncompatible). Replicas starting together
// on a fresh cluster, or during a leader election, fail their first
// attempts with timeouts; those pass. Meanwhile pending says why herald
// is not ready.
func (a *App) openPatiently(ctx context.Context) (*queue.Queue, error) {
	wait := openBackoffMin
	for attempt := 1; ; attempt++ {
		q, err := a.openQueue(ctx)
		if err == nil {
			if attempt > 1 {
				a.logger.Info("queue open", "attempts", attempt)
			}
			return q, nil
		}
		if errors.Is(err, queue.ErrIncompatible) || ctx.Err() != nil {
			return nil, err
		}
		a.pending.waiting(fmt.Errorf("attempt %d: %w", attempt, err))
		// Jitter keeps replicas that started together from retrying in
		// step.
		d := wait/2 + rand.N(wait)
		a.logger.Warn("cannot open the queue yet; retrying", "attempt", attempt, "retry_in", d.Round(time.Millisecond), "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, openBackoffMax)
	}
}

// openQueue makes one attempt to open the queue.
func (a *App) openQueue(ctx context.Context) (*queue.Queue, error) {
	return queue.Open(ctx, a.cfg.Queue, queue.Options{
		DataDir:      a.cfg.DataDir,
		Logger:       a.logger,
		Registerer:   a.registry,
		MaxBodyBytes: a.cfg.Webhook.MaxBodyBytes,
	})
}
