package dispatch

import (
	"cmp"
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
)

// Digests.
//
// A sink that paces itself and can merge notifications (sinks.Pacer and
// sinks.Batcher, such as a Rocket.Chat incoming webhook limited to 10 posts
// a minute) is reached through a lane per sink, channel, template and
// fallback origin. A notification that finds the sink's pace reached (Wait
// > 0), or others already waiting in its lane, parks there instead of
// waiting alone. When the wait is over, the oldest parked notification (the
// lane's leader) sends every parked one, in arrival order and at most
// MaxDigest, as one digest (a lone one as a plain Send), and each of them
// then goes on as if its own attempt had had the digest's result: success
// is acked, an error takes the usual way of its class (quick retry,
// fallback, Retry). Order per group holds because a parked notification
// still holds its queue partition, and so its group, until its Handle
// returns.
//
// How long a notification may park: as long as a quick retry may wait for
// a throttle (the rest of QuickRetryBudget), or, when the sink is the last
// step of its chain, up to ThrottleHold. A longer wait takes the usual
// path: the next sink of the chain if there is one, else Retry after the
// throttle. Severity changes nothing here: the chain is the operator's order
// of preference, and a critical notification is better posted by the
// fallback now than by a throttled primary a minute later; what the last
// sink holds instead of redelivering it would have held for as long anyway
// (a Retry keeps the partition waiting for the throttle too), but parked it
// rides in the next digest instead of queueing behind the others one post
// at a time.
//
// Severity decides the order of the posts: the leaders of one sink's lanes
// take turns at the sink's pace gate (a priority semaphore of one slot).
// Whenever the gate is free, it goes to the waiting leader whose target the
// sink's pace allows now and whose lane holds the most severe notification,
// the oldest leader among equals; a lane's priority follows its members as
// they join and leave. The leader holds the gate until its request returns,
// so that the next turn is decided on the pace that request left. A digest
// carries the leader and, of the others, the most severe, oldest first.
//
// Backlog: a lane whose sink made a notification wait w is "hot" until w
// plus the longest wait it has seen (a measure of the sink's window) have
// passed. While it is hot, a newcomer joins the lane even when the sink
// could take it at once, and a leader that did not have to wait lingers
// DigestLinger before sending, so that the notifications the queue hands
// out right after a digest ride in the next one instead of each spending
// one of the window's few posts. A lane that has not waited for that long
// is cold again: notifications go out alone, at once.
//
// A digest is one request: it counts once for the sink's breaker, and a
// throttle is never counted as a failure.

// MaxDigest is the most notifications one digest carries, so that it stays
// readable and within a chat message's size; more parked ones wait for the
// next.
const MaxDigest = 20

// DigestLinger is how long the leader of a hot lane that found the sink
// free waits for more notifications before sending.
const DigestLinger = 50 * time.Millisecond

// touchEvery is how often a parked notification tells the queue that it is
// still being worked on.
const touchEvery = 10 * time.Second

// batchPacer is a sink that paces itself and merges digests.
type batchPacer interface {
	sinks.Batcher
	sinks.Pacer
}

// laneKey names a lane: the notifications that can share one digest.
type laneKey struct{ sink, channel, template, fallbackFrom string }

// lanes are the dispatcher's lanes; the zero value is ready for use.
type lanes struct {
	mu sync.Mutex
	m  map[laneKey]*lane
	// seq numbers parked notifications in arrival order.
	seq uint64
}

// lane holds the parked notifications of one key, oldest first. While it
// has a leader, the leader is waiting[0] or is sending a digest.
type lane struct {
	waiting []*parked
	leader  *parked
	// hotUntil ends the backlog; longest is the longest wait seen.
	hotUntil time.Time
	longest  time.Duration
	// turn is the leader's place at gate, its sink's pace gate, while it
	// waits there; nil otherwise.
	turn *waiter
	gate *prioSem
}

func (ln *lane) hot(now time.Time) bool { return now.Before(ln.hotUntil) }

// prioLocked is the lane's priority: its most severe notification's.
func (ln *lane) prioLocked() priority {
	p := prioUnspecified
	for _, m := range ln.waiting {
		p = max(p, m.prio)
	}
	return p
}

// reprioritizeLocked moves a leader waiting at the gate to the lane's
// priority after members joined or left.
func (ln *lane) reprioritizeLocked() {
	if ln.turn != nil {
		ln.gate.reprioritize(ln.turn, ln.prioLocked())
	}
}

// parked is one Handle waiting in a lane.
type parked struct {
	h  *handling
	to sinks.Target
	// prio is the notification's priority, seq its place in arrival order.
	prio priority
	seq  uint64
	// deadline is when it leaves the lane if the sink still cannot take it.
	deadline time.Time
	// promote is signalled (once) when it becomes the lane's leader.
	promote chan struct{}
	// done is closed once res holds the result of the digest it was in.
	done chan struct{}
	res  attemptResult
}

// attemptResult is what one attempt came to.
type attemptResult struct {
	rcpt sinks.Receipt
	err  error
	// size is the number of notifications of the request: above one, a
	// digest whose breaker outcome is already counted.
	size int
	// span is the digest's attempt span.
	span trace.SpanContext
	// release gives back the in-flight slots the request held; nil when
	// no request was made. Each notification the result is for calls done
	// once, after it has recorded the outcome.
	release func()
}

// done gives back the request's in-flight slots once every notification
// of its result has called it.
func (r attemptResult) done() {
	if r.release != nil {
		r.release()
	}
}

// releaseAfter returns a func that calls release on its n-th call.
func releaseAfter(n int, release func()) func() {
	var calls atomic.Int64
	return func() {
		if calls.Add(1) == int64(n) {
			release()
		}
	}
}

// shared reports whether the result is a digest's.
func (r attemptResult) shared() bool { return r.size > 1 }

// laned reports whether s is reached through lanes.
func laned(s sinks.Sink) bool {
	_, ok := s.(batchPacer)
	return ok
}

// laneTarget is the target a lane's digest and its pace are about: the
// channel, without any group's parent.
func laneTarget(to sinks.Target) sinks.Target {
	to.Parent = nil
	return to
}

// holdFor is how long a notification may wait for sink s at step idx of
// its chain before it moves on: the rest of the quick retry budget, or, for
// a sink that merges digests and ends the chain, up to ThrottleHold.
func (d *Dispatcher) holdFor(h *handling, idx int, s sinks.Sink, deadline time.Time) time.Duration {
	hold := time.Until(deadline)
	if laned(s) && idx == len(h.dec.Chain)-1 {
		hold = max(hold, h.g.cfg.ThrottleHold)
	}
	return hold
}

// paced reports whether s's own pace already covers a throttle it returned,
// so that the lane, rather than a sleep, waits it out.
func paced(s sinks.Sink, to sinks.Target) bool {
	bp, ok := s.(batchPacer)
	return ok && bp.Wait(laneTarget(to)) > 0
}

// attempt makes one attempt at s for h: a plain Send, or through the
// target's lane when s merges digests and cannot take the notification at
// once or others already wait. hold bounds the time spent in the lane. A
// probe of a half-open breaker is always a plain Send.
func (d *Dispatcher) attempt(ctx context.Context, h *handling, s sinks.Sink, to sinks.Target, probe bool, hold time.Duration) attemptResult {
	bp, ok := s.(batchPacer)
	if !ok || probe {
		return d.plain(ctx, s, h.n, to)
	}
	key := laneKey{sink: s.Name(), channel: to.Channel, template: to.Template, fallbackFrom: to.FallbackFrom}
	p := &parked{
		h:        h,
		to:       to,
		prio:     priorityOf(h.n),
		deadline: time.Now().Add(hold),
		promote:  make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	if !d.lanes.join(key, p, bp.Wait(laneTarget(to)), hold) {
		return d.plain(ctx, s, h.n, to)
	}
	res, ok := d.park(ctx, bp, key, p)
	if !ok {
		// The sink's wait outgrew the hold: the Send is refused without
		// a request and takes the usual way of a throttle.
		return d.plain(ctx, s, h.n, to)
	}
	if res.shared() {
		d.notedDigest(ctx, h, s.Name(), to, res)
	}
	return res
}

func (d *Dispatcher) plain(ctx context.Context, s sinks.Sink, n *heraldv1.Notification, to sinks.Target) attemptResult {
	rcpt, release, err := d.send(ctx, s, n, to)
	return attemptResult{rcpt: rcpt, err: err, size: 1, release: release}
}

// join parks p in key's lane, unless the sink can take it now and the lane
// is idle and cold, or it would have to wait longer than hold. The first in
// an idle lane leads it.
func (l *lanes) join(key laneKey, p *parked, wait, hold time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	ln := l.m[key]
	if wait <= 0 && (ln == nil || len(ln.waiting) == 0 && !ln.hot(now)) {
		return false
	}
	if wait > hold {
		return false
	}
	if ln == nil {
		if l.m == nil {
			l.m = map[laneKey]*lane{}
		}
		ln = &lane{}
		l.m[key] = ln
	}
	if wait > 0 {
		ln.longest = max(ln.longest, wait)
		if until := now.Add(wait + ln.longest); until.After(ln.hotUntil) {
			ln.hotUntil = until
		}
	}
	l.seq++
	p.seq = l.seq
	ln.waiting = append(ln.waiting, p)
	if ln.leader == nil {
		ln.promoteLocked()
	}
	ln.reprioritizeLocked()
	return true
}

// promoteLocked makes the oldest waiting notification the leader.
func (ln *lane) promoteLocked() {
	ln.leader = nil
	if len(ln.waiting) == 0 {
		return
	}
	ln.leader = ln.waiting[0]
	select {
	case ln.leader.promote <- struct{}{}:
	default:
	}
}

// leave takes p out of its lane; false if p is already in a digest.
func (l *lanes) leave(key laneKey, p *parked) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.m[key]
	if ln == nil {
		return false
	}
	i := slices.Index(ln.waiting, p)
	if i < 0 {
		return false
	}
	ln.waiting = slices.Delete(ln.waiting, i, i+1)
	if ln.leader == p {
		ln.promoteLocked()
	}
	ln.reprioritizeLocked()
	l.tidyLocked(key, ln)
	return true
}

// queue puts the leader of key's lane in line at gate, at the lane's
// priority and in the leader's arrival order, passed over while ready
// says the sink cannot post for it.
func (l *lanes) queue(key laneKey, gate *prioSem, ready func() bool) *waiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.m[key]
	ln.gate = gate
	ln.turn = gate.enqueue(ln.prioLocked(), ln.leader.seq, ready)
	return ln.turn
}

// unqueue takes the leader of key's lane out of line at its gate; true if
// its turn had come, which it must then release or use.
func (l *lanes) unqueue(key laneKey, w *waiter) (holds bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.m[key]
	ln.turn = nil
	return ln.gate.withdraw(w)
}

// take removes the leader p and up to n-1 other waiting notifications for
// a digest, the most severe first and the oldest among equals, and returns
// them in arrival order. It ends p's wait at the gate.
func (l *lanes) take(key laneKey, p *parked, n int) []*parked {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.m[key]
	ln.turn = nil
	others := slices.DeleteFunc(slices.Clone(ln.waiting), func(m *parked) bool { return m == p })
	slices.SortStableFunc(others, func(a, b *parked) int { return int(b.prio - a.prio) })
	batch := append([]*parked{p}, others[:min(n-1, len(others))]...)
	slices.SortFunc(batch, func(a, b *parked) int { return cmp.Compare(a.seq, b.seq) })
	ln.waiting = slices.DeleteFunc(ln.waiting, func(m *parked) bool { return slices.Contains(batch, m) })
	return batch
}

// handOver ends a leader's turn once its digest is sent.
func (l *lanes) handOver(key laneKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.m[key]
	ln.promoteLocked()
	l.tidyLocked(key, ln)
}

// tidyLocked forgets an idle lane once it is cold.
func (l *lanes) tidyLocked(key laneKey, ln *lane) {
	if len(ln.waiting) == 0 && ln.leader == nil && !ln.hot(time.Now()) {
		delete(l.m, key)
	}
}

// hot reports whether key's lane is under backlog.
func (l *lanes) hot(key laneKey) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.m[key]
	return ln != nil && ln.hot(time.Now())
}

// park waits in the lane until p's digest is sent (ok), p leads the lane,
// ctx ends (a result carrying ctx's error, unless p is already in a digest
// under way, whose result it then waits for: it may have been posted), or
// the sink's wait outlasts p's deadline (not ok).
func (d *Dispatcher) park(ctx context.Context, bp batchPacer, key laneKey, p *parked) (attemptResult, bool) {
	touch := time.NewTicker(touchEvery)
	defer touch.Stop()
	expire := time.NewTimer(time.Until(p.deadline))
	defer expire.Stop()
	for {
		select {
		case <-p.done:
			return p.res, true
		case <-p.promote:
			return d.lead(ctx, bp, key, p)
		case <-ctx.Done():
			if d.lanes.leave(key, p) {
				return attemptResult{err: ctx.Err(), size: 1}, true
			}
			<-p.done
			return p.res, true
		case <-touch.C:
			p.h.touch(ctx)
		case <-expire.C:
			// At the deadline a digest about to go still takes p.
			if bp.Wait(laneTarget(p.to)) > 0 && d.lanes.leave(key, p) {
				return attemptResult{}, false
			}
		}
	}
}

// lead waits, as the lane's leader, for its turn at the sink (see the pace
// gate above), then sends the digest of the lane's waiting notifications,
// p first, and hands each its result. Until it takes its digest, a leader
// is waiting[0]: leave always finds it.
func (d *Dispatcher) lead(ctx context.Context, bp batchPacer, key laneKey, p *parked) (attemptResult, bool) {
	lt := laneTarget(p.to)
	if bp.Wait(lt) <= 0 && d.lanes.hot(key) {
		// Free at once, but under backlog: gather the others first.
		if time.Now().Add(DigestLinger).After(p.deadline) {
			d.lanes.leave(key, p)
			return attemptResult{}, false
		}
		if !sleep(ctx, DigestLinger) {
			d.lanes.leave(key, p)
			return attemptResult{err: ctx.Err(), size: 1}, true
		}
	}
	gate := p.h.g.gates[bp.Name()]
	turn := d.lanes.queue(key, gate, func() bool { return bp.Wait(lt) <= 0 })
	touch := time.NewTicker(touchEvery)
	defer touch.Stop()
	pace := time.NewTimer(0)
	defer pace.Stop()
	// At its deadline a leader leaves unless the sink is free for it.
	expire := time.NewTimer(time.Until(p.deadline))
	defer expire.Stop()
wait:
	for {
		released := gate.watch()
		select {
		case <-turn.granted:
			break wait
		default:
		}
		w := bp.Wait(lt)
		if time.Now().Add(w).After(p.deadline) {
			if d.lanes.unqueue(key, turn) {
				break wait // its turn came just now: the sink is free
			}
			d.lanes.leave(key, p)
			return attemptResult{}, false
		}
		var paced <-chan time.Time
		if w > 0 {
			pace.Reset(w)
			paced = pace.C
		} else {
			// The sink is free for p: its turn comes once no better
			// leader can post and the gate is free.
			pace.Stop()
			gate.poke()
		}
		select {
		case <-turn.granted:
			break wait
		case <-released:
		case <-paced:
		case <-expire.C:
		case <-touch.C:
			p.h.touch(ctx)
		case <-ctx.Done():
			if d.lanes.unqueue(key, turn) {
				gate.release()
			}
			d.lanes.leave(key, p)
			return attemptResult{err: ctx.Err(), size: 1}, true
		}
	}
	batch := d.lanes.take(key, p, MaxDigest)
	res := d.sendDigest(ctx, bp, batch)
	gate.release()
	for _, m := range batch {
		if m != p {
			m.res = res
			close(m.done)
		}
	}
	d.lanes.handOver(key)
	return res, true
}

// sendDigest sends batch as one digest, or a lone notification as a plain
// Send with its own target, and counts a digest once for the breaker.
func (d *Dispatcher) sendDigest(ctx context.Context, bp batchPacer, batch []*parked) attemptResult {
	if len(batch) == 1 {
		return d.plain(ctx, bp, batch[0].h.n, batch[0].to)
	}
	ns := make([]*heraldv1.Notification, len(batch))
	to := laneTarget(batch[0].to)
	for i, m := range batch {
		ns[i] = m.h.n
		to.Attempt = max(to.Attempt, m.to.Attempt)
	}
	rcpt, sc, release, err := d.sendBatch(ctx, bp, ns, to)
	br := batch[0].h.g.breakers[bp.Name()]
	class := sinks.Classify(err)
	switch {
	case class == sinks.ClassNone, class == sinks.ClassThrottled:
		br.success(ctx)
	case class == sinks.ClassPermanent && !sinkFault(err):
		br.success(ctx)
	case ctx.Err() != nil:
		// Cut short by shutdown: says nothing about the sink.
	default:
		br.failure(ctx, false, err.Error())
	}
	result := "delivered"
	if err != nil {
		result = class.String()
	}
	d.m.digests.WithLabelValues(bp.Name(), result).Inc()
	d.m.digestSize.WithLabelValues(bp.Name()).Observe(float64(len(ns)))
	return attemptResult{rcpt: rcpt, err: err, size: len(ns), span: sc, release: releaseAfter(len(ns), release)}
}

// sendBatch makes one SendBatch attempt, like send: holding in-flight
// slots (by its most severe notification) until the caller releases them,
// bounded by AttemptTimeout, in its own span, a panic turned into a
// retryable error.
func (d *Dispatcher) sendBatch(ctx context.Context, bp batchPacer, ns []*heraldv1.Notification, to sinks.Target) (rcpt sinks.Receipt, sc trace.SpanContext, release func(), err error) {
	release, err = d.inflight.acquire(ctx, bp.Name(), priorityOf(ns...))
	if err != nil {
		return sinks.Receipt{}, sc, func() {}, err
	}
	rcpt, sc, err = d.sendBatchHeld(ctx, bp, ns, to)
	return rcpt, sc, release, err
}

func (d *Dispatcher) sendBatchHeld(ctx context.Context, bp batchPacer, ns []*heraldv1.Notification, to sinks.Target) (rcpt sinks.Receipt, sc trace.SpanContext, err error) {
	// outer ends only at shutdown; ctx also at the attempt timeout, which
	// is the sink's failure, not shutdown's.
	outer := ctx
	ctx, cancel := context.WithTimeout(ctx, d.config().AttemptTimeout)
	defer cancel()
	ctx, span := d.tracer.Start(ctx, "herald.dispatch.attempt", trace.WithAttributes(
		attribute.String("herald.sink", bp.Name()),
		attribute.String("herald.channel", to.Channel),
		attribute.Int("herald.attempt", to.Attempt),
	))
	span.AddEvent("digest", trace.WithAttributes(notificationIDs(ns)))
	sc = span.SpanContext()
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			d.log.ErrorContext(ctx, "sink panicked", "sink", bp.Name(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			rcpt, err = sinks.Receipt{}, fmt.Errorf("sink %s panicked", bp.Name())
		}
		d.m.attemptSeconds.WithLabelValues(bp.Name()).Observe(time.Since(start).Seconds())
		d.health.note(outer, bp.Name(), err)
		if err != nil {
			span.SetAttributes(attribute.String("herald.error.class", sinks.Classify(err).String()))
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	rcpt, err = bp.SendBatch(ctx, ns, to)
	return rcpt, sc, err
}

// notificationIDs lists the ids of a digest's notifications.
func notificationIDs(ns []*heraldv1.Notification) attribute.KeyValue {
	ids := make([]string, len(ns))
	for i, n := range ns {
		ids[i] = n.GetId()
	}
	return attribute.StringSlice("herald.notification.id", ids)
}

// notedDigest marks on h's span that its attempt was a digest, linking the
// digest's attempt span (in the leader's trace), and logs a delivered one.
func (d *Dispatcher) notedDigest(ctx context.Context, h *handling, sink string, to sinks.Target, res attemptResult) {
	span := trace.SpanFromContext(ctx)
	if res.span.IsValid() && res.span.TraceID() != span.SpanContext().TraceID() {
		span.AddLink(trace.Link{SpanContext: res.span})
	}
	span.AddEvent("digest", trace.WithAttributes(
		attribute.String("herald.sink", sink),
		attribute.String("herald.channel", to.Channel),
	))
	if res.err == nil {
		h.log.InfoContext(ctx, "delivered in a digest", "sink", sink, "digest_size", res.size)
	}
}
