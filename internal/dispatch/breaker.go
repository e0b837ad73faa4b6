package dispatch

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// BreakerState is where a sink's circuit breaker stands.
type BreakerState int

const (
	// BreakerClosed: the sink is tried for every notification.
	BreakerClosed BreakerState = iota
	// BreakerHalfOpen: one probe attempt is under way; every other
	// notification skips the sink until it ends.
	BreakerHalfOpen
	// BreakerOpen: the sink failed repeatedly; notifications skip it until
	// the open period ends and a probe is let through.
	BreakerOpen
)

// String is the state's name as used in logs and spans.
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return "breaker(" + strconv.Itoa(int(s)) + ")"
}

// breaker is one sink's circuit breaker. It counts consecutive failed
// attempts; Failures of them open it; after OpenFor one probe attempt is let
// through: success closes it, failure opens it for another OpenFor. It is
// safe for concurrent use: Handle runs concurrently for different groups.
type breaker struct {
	cfg BreakerConfig
	// changed is called, outside the lock, after every state change.
	changed func(ctx context.Context, from, to BreakerState, why string)

	mu       sync.Mutex
	state    BreakerState
	failures int
	openedAt time.Time
}

// setConfig makes cfg the breaker's settings from now on; its state and
// count of failures stay.
func (b *breaker) setConfig(cfg BreakerConfig) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cfg = cfg
}

// acquire says whether an attempt may go to the sink now, and whether that
// attempt is the half-open probe. A probe must end with success, failure or
// abandon.
func (b *breaker) acquire(ctx context.Context) (ok, probe bool) {
	b.mu.Lock()
	switch b.state {
	case BreakerClosed:
		b.mu.Unlock()
		return true, false
	case BreakerOpen:
		if time.Since(b.openedAt) >= b.cfg.OpenFor {
			b.state = BreakerHalfOpen
			b.mu.Unlock()
			b.changed(ctx, BreakerOpen, BreakerHalfOpen, "probing")
			return true, true
		}
	}
	b.mu.Unlock()
	return false, false
}

// success records an attempt the sink answered: the breaker closes.
func (b *breaker) success(ctx context.Context) {
	b.mu.Lock()
	from := b.state
	b.state, b.failures = BreakerClosed, 0
	b.mu.Unlock()
	if from != BreakerClosed {
		b.changed(ctx, from, BreakerClosed, "sink answered")
	}
}

// failure records a failed attempt. It reports whether the breaker is open
// afterwards, so that the caller stops trying the sink.
func (b *breaker) failure(ctx context.Context, probe bool, why string) (open bool) {
	b.mu.Lock()
	from := b.state
	switch {
	case probe && b.state == BreakerHalfOpen:
		b.state, b.openedAt = BreakerOpen, time.Now()
	case b.state == BreakerClosed:
		b.failures++
		if b.failures >= b.cfg.Failures {
			b.state, b.openedAt = BreakerOpen, time.Now()
		}
	}
	to := b.state
	b.mu.Unlock()
	if from != to {
		b.changed(ctx, from, to, why)
	}
	return to != BreakerClosed
}

// abandon ends a probe that never got an answer (shutdown): the breaker is
// open again, and the next notification may probe at once.
func (b *breaker) abandon(ctx context.Context, probe bool) {
	if !probe {
		return
	}
	b.mu.Lock()
	from := b.state
	if b.state == BreakerHalfOpen {
		b.state = BreakerOpen
	}
	to := b.state
	b.mu.Unlock()
	if from != to {
		b.changed(ctx, from, to, "probe abandoned")
	}
}

func (b *breaker) current() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
