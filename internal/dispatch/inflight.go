package dispatch

import (
	"context"
	"slices"
	"sync"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// Bounds on attempts in flight.
//
// Every request to a sink (a Send, or a digest's SendBatch) holds a slot of
// its sink (MaxInFlightPerSink) and one of the dispatcher (MaxInFlight) for
// exactly as long as the request runs: not while its notification sleeps
// before a quick retry, and not while it is parked in a lane. An attempt
// takes its sink's slot first, so that the attempts queueing for a sink at
// its bound hold none of the slots every other sink needs. When slots are
// short, waiters are served by priority (the notification's severity; a
// digest's is its most severe member's), oldest first within a priority.
//
// A sink that paces itself and merges digests also has a pace gate: a
// priority semaphore of one slot that its lane leaders take turns at (see
// lead in digest.go), so that when the pace allows one more post, the lane
// holding the most severe notification posts first.

// priority orders waiters for a slot: higher goes first.
type priority int

const (
	prioUnspecified priority = iota
	prioInfo
	prioWarning
	prioCritical
)

// severityPriority is the priority of a notification of severity sev:
// critical before warning before info before unspecified (and severities
// this build does not know).
func severityPriority(sev heraldv1.Severity) priority {
	switch sev {
	case heraldv1.Severity_SEVERITY_CRITICAL:
		return prioCritical
	case heraldv1.Severity_SEVERITY_WARNING:
		return prioWarning
	case heraldv1.Severity_SEVERITY_INFO:
		return prioInfo
	}
	return prioUnspecified
}

// priorityOf is the priority of a request carrying ns: its most severe
// notification's.
func priorityOf(ns ...*heraldv1.Notification) priority {
	p := prioUnspecified
	for _, n := range ns {
		p = max(p, severityPriority(n.GetSeverity()))
	}
	return p
}

// prioSem is a counting semaphore whose waiters are served highest priority
// first, first come first served within a priority. A waiter may be
// conditional (see enqueue): it is passed over while its condition is
// false, without holding up the waiters behind it. It is safe for
// concurrent use.
type prioSem struct {
	mu   sync.Mutex
	size int
	held int
	seq  uint64
	// waiting is ordered best first: by priority, then by seq.
	waiting []*waiter
	// released, once someone watches, is closed at the next release.
	released chan struct{}
}

// waiter is one caller queued at a prioSem.
type waiter struct {
	prio priority
	seq  uint64
	// ready, when set, says whether the waiter can use a slot now.
	ready func() bool
	// granted is closed once the waiter holds a slot.
	granted chan struct{}
	// holds is set, under the semaphore's lock, when the slot is granted.
	holds bool
}

func newPrioSem(size int) *prioSem { return &prioSem{size: size} }

// acquire waits for a slot and returns the func that gives it back, which
// must be called exactly once. When ctx ends first it returns ctx's error
// and holds no slot, even if one was granted in the same instant.
func (s *prioSem) acquire(ctx context.Context, prio priority) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.held < s.size && len(s.waiting) == 0 {
		s.held++
		s.mu.Unlock()
		return s.release, nil
	}
	s.seq++
	w := s.queueLocked(prio, s.seq, nil)
	s.mu.Unlock()
	select {
	case <-w.granted:
		return s.release, nil
	case <-ctx.Done():
		if s.withdraw(w) {
			// Granted as ctx ended: pass the slot on.
			s.release()
		}
		return nil, ctx.Err()
	}
}

// enqueue queues a waiter with priority prio, ordered by seq within it
// (lower first), that is passed over while ready reports false (nil: never
// passed over), and grants what it can at once. ready is called under the
// semaphore's lock: it must be quick and must not use the semaphore. The
// caller waits for w.granted, calls poke when ready may have turned true,
// and ends its wait with withdraw or, once granted, release.
func (s *prioSem) enqueue(prio priority, seq uint64, ready func() bool) *waiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queueLocked(prio, seq, ready)
}

func (s *prioSem) queueLocked(prio priority, seq uint64, ready func() bool) *waiter {
	w := &waiter{prio: prio, seq: seq, ready: ready, granted: make(chan struct{})}
	i, _ := slices.BinarySearchFunc(s.waiting, w, compareWaiters)
	s.waiting = slices.Insert(s.waiting, i, w)
	s.grantLocked()
	return w
}

// compareWaiters orders the better waiter first.
func compareWaiters(a, b *waiter) int {
	switch {
	case a.prio != b.prio:
		return int(b.prio - a.prio)
	case a.seq < b.seq:
		return -1
	case a.seq > b.seq:
		return 1
	}
	return 0
}

// grantLocked hands free slots to the best waiters that are ready.
func (s *prioSem) grantLocked() {
	for s.held < s.size {
		i := slices.IndexFunc(s.waiting, func(w *waiter) bool { return w.ready == nil || w.ready() })
		if i < 0 {
			return
		}
		w := s.waiting[i]
		s.waiting = slices.Delete(s.waiting, i, i+1)
		s.held++
		w.holds = true
		close(w.granted)
	}
}

// withdraw takes w out of the queue. It reports whether w already holds a
// slot, which the caller must then release.
func (s *prioSem) withdraw(w *waiter) (holds bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.holds {
		return true
	}
	if i := slices.Index(s.waiting, w); i >= 0 {
		s.waiting = slices.Delete(s.waiting, i, i+1)
	}
	return false
}

// reprioritize moves w, while it waits, to priority prio.
func (s *prioSem) reprioritize(w *waiter, prio priority) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.Index(s.waiting, w)
	if i < 0 || w.prio == prio {
		return
	}
	s.waiting = slices.Delete(s.waiting, i, i+1)
	w.prio = prio
	i, _ = slices.BinarySearchFunc(s.waiting, w, compareWaiters)
	s.waiting = slices.Insert(s.waiting, i, w)
	s.grantLocked()
}

// poke grants free slots to waiters whose condition may have turned true.
func (s *prioSem) poke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grantLocked()
}

// release gives a slot back and hands it to the best ready waiter.
func (s *prioSem) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held--
	if s.released != nil {
		close(s.released)
		s.released = nil
	}
	s.grantLocked()
}

// watch returns a channel closed at the next release, for conditional
// waiters that were passed over to look at their condition again.
func (s *prioSem) watch() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released == nil {
		s.released = make(chan struct{})
	}
	return s.released
}

// resize makes size the number of slots, granting waiters any it adds.
func (s *prioSem) resize(size int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.size = size
	s.grantLocked()
}

// inUse is the number of slots held.
func (s *prioSem) inUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// inflight bounds the dispatcher's requests to sinks: MaxInFlight in all,
// MaxInFlightPerSink per sink.
type inflight struct {
	all *prioSem
	m   *metrics

	mu   sync.Mutex // guards sink
	sink map[string]*prioSem
}

func newInflight(cfg Config, sinkNames []string, m *metrics) *inflight {
	f := &inflight{all: newPrioSem(cfg.MaxInFlight), sink: make(map[string]*prioSem, len(sinkNames)), m: m}
	f.resize(cfg, sinkNames)
	return f
}

// resize applies cfg's bounds: to the overall one, and to each sink of
// sinkNames, which gets a semaphore if it has none. Slots held stay held;
// a smaller bound takes effect as they are given back. A sink that is no
// longer configured keeps its semaphore for the requests still under way.
func (f *inflight) resize(cfg Config, sinkNames []string) {
	f.all.resize(cfg.MaxInFlight)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, name := range sinkNames {
		if s := f.sink[name]; s != nil {
			s.resize(cfg.MaxInFlightPerSink)
			continue
		}
		f.sink[name] = newPrioSem(cfg.MaxInFlightPerSink)
		f.m.attemptsInFlight.WithLabelValues(name).Set(0)
	}
}

// acquire waits for a slot of sink and one of the dispatcher, in that order,
// for a request of priority prio, and returns the func that gives both
// back. When ctx ends first it returns ctx's error and holds nothing. The
// wait is observed in herald_dispatch_slot_wait_seconds either way.
func (f *inflight) acquire(ctx context.Context, sink string, prio priority) (release func(), err error) {
	start := time.Now()
	defer func() { f.m.slotWait.WithLabelValues(sink).Observe(time.Since(start).Seconds()) }()
	// New gives every sink it accepts a semaphore; a sink it does not know
	// is held to the overall bound alone.
	releaseOwn := func() {}
	f.mu.Lock()
	own := f.sink[sink]
	f.mu.Unlock()
	if own != nil {
		if releaseOwn, err = own.acquire(ctx, prio); err != nil {
			return nil, err
		}
	}
	releaseAll, err := f.all.acquire(ctx, prio)
	if err != nil {
		releaseOwn()
		return nil, err
	}
	gauge := f.m.attemptsInFlight.WithLabelValues(sink)
	gauge.Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			gauge.Dec()
			releaseAll()
			releaseOwn()
		})
	}, nil
}
