package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
)

// Parking.
//
// A group that must wait (its head is to be retried later, its sink is
// throttled, its chain is broken) leaves the partition: its waiting
// notifications are listed, by stream sequence, in the groups bucket under
// "<partition>.<group hash>", and their JetStream messages are acknowledged,
// so they neither occupy max_in_hand nor hold anything else back. The
// notifications themselves stay where they are in the stream. The group's
// timer is a JetStream message schedule (herald.s.<partition>.<group>, one
// per group, a new one replacing the last): when it is due JetStream
// stores a wake-up on herald.w.<partition>, which reaches whichever herald
// serves the partition then, and nothing waits in hand meanwhile.
// Notifications of the group that arrive while it is parked are added to
// its list. The group's list is then worked off from its head, in order,
// and once it is empty the group is deleted from the bucket and flows
// through the partition again.

// hdrGroup names the parked group a wake-up message is for.
const hdrGroup = "Herald-Group"

// parkItem is one waiting notification of a parked group.
type parkItem struct {
	// Seq is the stream sequence of its current copy.
	Seq uint64 `json:"seq"`
	// Order is its place in the group's order: its sequence, or for a
	// replayed dead letter the sequence of the copy that was dead-lettered.
	Order uint64 `json:"order"`
}

// parkEntry is a parked group as kept in the groups bucket.
type parkEntry struct {
	// Items wait in order; Items[0] is the head.
	Items []parkItem `json:"items"`
	// Attempts counts the head's failed deliveries.
	Attempts int `json:"attempts"`
	// Due is when the head is tried again.
	Due time.Time `json:"due"`
	// Hold says why the group waits: retrying, throttled or broken.
	Hold string `json:"hold"`
	// Route is the head's route, for metrics.
	Route string `json:"route,omitempty"`
	// Since is when the head was received: the oldest waiting time.
	Since time.Time `json:"since"`
	// Reason is the head's last failure, for logs and operators.
	Reason string `json:"reason,omitempty"`
}

// insert adds it in order, unless its sequence is listed already.
func (e *parkEntry) insert(it parkItem) bool {
	if slices.ContainsFunc(e.Items, func(x parkItem) bool { return x.Seq == it.Seq }) {
		return false
	}
	i, _ := slices.BinarySearchFunc(e.Items, it, func(a, b parkItem) int {
		if a.Order != b.Order {
			if a.Order < b.Order {
				return -1
			}
			return 1
		}
		if a.Seq < b.Seq {
			return -1
		}
		if a.Seq > b.Seq {
			return 1
		}
		return 0
	})
	e.Items = slices.Insert(e.Items, i, it)
	return true
}

// groupHash names a group in keys and headers: a notification's group key,
// or its id when it has none (it is then a group of its own).
func groupHash(n *heraldv1.Notification) string {
	id := "g:" + delivery.GroupKey(n)
	if n.GetGroupKey() == "" {
		id = "i:" + n.GetId()
	}
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:16])
}

func parkKey(p int, group string) string { return strconv.Itoa(p) + "." + group }

func wakeSubject(p int) string { return wakePrefix + strconv.Itoa(p) }

func scheduleSubject(p int, group string) string {
	return schedulePrefix + strconv.Itoa(p) + "." + group
}

func isWake(subject string) bool { return strings.HasPrefix(subject, wakePrefix) }

// readPark returns a parked group's entry and revision; revision 0 when the
// group is not parked.
func (q *Queue) readPark(ctx context.Context, key string) (parkEntry, uint64, error) {
	var kve jetstream.KeyValueEntry
	err := q.retrying(ctx, func(ctx context.Context) error {
		var err error
		kve, err = q.groups.Get(ctx, key)
		return err
	}, kvFinal...)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return parkEntry{}, 0, nil
	}
	if err != nil {
		return parkEntry{}, 0, err
	}
	var e parkEntry
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		return parkEntry{}, 0, fmt.Errorf("parked group %s: %w", key, err)
	}
	return e, kve.Revision(), nil
}

// writePark stores e under key if its revision is still rev (0: if the
// group is not parked) and returns the new revision.
func (q *Queue) writePark(ctx context.Context, key string, e parkEntry, rev uint64) (uint64, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return 0, err
	}
	var next uint64
	err = q.retrying(ctx, func(ctx context.Context) error {
		var err error
		if rev == 0 {
			next, err = q.groups.Create(ctx, key, b)
		} else {
			next, err = q.groups.Update(ctx, key, b, rev)
		}
		return err
	}, kvFinal...)
	return next, err
}

// deletePark removes a parked group whose revision is still rev.
func (q *Queue) deletePark(ctx context.Context, key string, rev uint64) error {
	return q.retrying(ctx, func(ctx context.Context) error {
		return q.groups.Delete(ctx, key, jetstream.LastRevision(rev))
	}, kvFinal...)
}

// parkedKeys lists the parked groups of partition p.
func (q *Queue) parkedKeys(ctx context.Context, p int) ([]string, error) {
	lister, err := q.groups.ListKeysFiltered(ctx, strconv.Itoa(p)+".*")
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}

// scheduleWake has JetStream store a wake-up for a parked group of
// partition p at due (to the second; at once when it has passed). It
// replaces the group's earlier schedule.
func (q *Queue) scheduleWake(ctx context.Context, p int, group string, due time.Time) error {
	m := &nats.Msg{Subject: scheduleSubject(p, group), Header: nats.Header{}}
	m.Header.Set(hdrGroup, group)
	// Schedules are to the second: round up, never early.
	at := due.Truncate(time.Second)
	if at.Before(due) {
		at = at.Add(time.Second)
	}
	if now := time.Now(); at.Before(now) {
		at = now.Truncate(time.Second)
	}
	m.Header.Set(jetstream.ScheduleHeader, "@at "+at.UTC().Format(time.RFC3339))
	m.Header.Set(jetstream.ScheduleTargetHeader, wakeSubject(p))
	m.Header.Set(jetstream.MsgIDHeader, "s:"+group+":"+strconv.FormatInt(time.Now().UnixNano(), 36))
	_, err := q.publish(ctx, m)
	return err
}

// wakeParked schedules a wake-up for each parked group of the partition
// at its due time: one lost when the herald that parked it stopped would
// leave it parked. One too many is harmless.
func (pt *part) wakeParked(ctx context.Context) {
	keys, err := pt.q.parkedKeys(ctx, pt.p)
	if err != nil {
		pt.log.Warn("cannot list the partition's parked groups", "err", err)
		return
	}
	for _, key := range keys {
		_, gk, _ := strings.Cut(key, ".")
		e, rev, err := pt.q.readPark(ctx, key)
		if err != nil || rev == 0 {
			continue
		}
		if err := pt.q.scheduleWake(ctx, pt.p, gk, e.Due); err != nil {
			pt.log.Warn("cannot schedule a parked group's wake-up", "group", gk, "err", err)
		}
	}
}

// park moves g, whose head m must wait, out of the partition: its
// notifications are listed in the groups bucket, a wake-up is stored for
// when it is due, and their messages are acknowledged. Until the listing
// is stored the messages stay in hand; a failure to store it is retried
// until shutdown, which hands them back.
func (pt *part) park(ctx context.Context, g *group, m *Message, out delivery.Outcome) {
	q := pt.q
	pt.mu.Lock()
	g.parking = true
	g.running = false
	taken := slices.Clone(g.msgs)
	pt.mu.Unlock()

	e := parkEntry{
		Attempts: m.Delivered(),
		Due:      time.Now().Add(out.Delay),
		Hold:     out.Hold.String(),
		Route:    out.Route,
		Since:    receivedAt(m.n, m.enqueued),
		Reason:   truncate(out.Reason, 300),
	}
	for _, h := range taken {
		e.insert(parkItem{Seq: h.seq, Order: h.order})
	}
	key := parkKey(pt.p, g.key)
	var rev uint64
	for {
		var err error
		if rev, err = pt.storePark(ctx, key, &e); err == nil {
			break
		}
		pt.log.Warn("cannot park a waiting group; retrying", "group", g.key, "err", err)
		if !sleepCtx(ctx, time.Second) {
			pt.mu.Lock()
			g.parking = false
			pt.mu.Unlock()
			pt.release(g)
			return
		}
	}
	// Arrivals while parking queued on g: list them too, then move over.
	pg := &parkedGroup{key: g.key}
	for {
		pt.mu.Lock()
		extra := g.msgs[len(taken):]
		if len(extra) == 0 || ctx.Err() != nil {
			pg.e, pg.rev = e, rev
			pt.parked[g.key] = pg
			delete(pt.active, g.key)
			for _, h := range g.msgs {
				delete(pt.alive, h.seq)
			}
			rest := g.msgs[len(taken):]
			g.msgs = nil
			// What arrived during a shutdown goes back; it is listed
			// when it comes again.
			for _, h := range rest {
				pt.releasing = append(pt.releasing, h.msg)
			}
			pt.mu.Unlock()
			break
		}
		pt.mu.Unlock()
		next := e
		next.Items = slices.Clone(e.Items)
		for _, h := range extra {
			next.insert(parkItem{Seq: h.seq, Order: h.order})
		}
		nrev, err := q.writePark(ctx, key, next, rev)
		if err != nil {
			pt.log.Warn("cannot add to a parked group; retrying", "group", g.key, "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		e, rev = next, nrev
		taken = append(taken, extra...)
	}
	// Parked before its wake-up is stored, so that the wake-up finds it.
	for ctx.Err() == nil {
		if err := q.scheduleWake(ctx, pt.p, g.key, e.Due); err == nil {
			break
		} else {
			pt.log.Warn("cannot store a parked group's wake-up; retrying", "group", g.key, "err", err)
		}
		sleepCtx(ctx, time.Second)
	}
	for _, h := range taken {
		if err := h.msg.Ack(); err != nil {
			// It comes back after ack_wait and is found listed.
			pt.log.Debug("cannot acknowledge a parked notification", "id", h.n.GetId(), "err", err)
		}
	}
	q.m.parked.WithLabelValues(e.Hold).Inc()
	pt.log.Warn("group held back", "group", g.key, "hold", e.Hold, "route", e.Route,
		"waiting", len(e.Items), "due_in", out.Delay.Round(time.Millisecond), "reason", e.Reason)
}

// storePark creates a group's entry; an entry already there (a takeover
// raced with an arrival) is merged with it.
func (pt *part) storePark(ctx context.Context, key string, e *parkEntry) (uint64, error) {
	rev, err := pt.q.writePark(ctx, key, *e, 0)
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return rev, err
	}
	old, orev, err := pt.q.readPark(ctx, key)
	if err != nil {
		return 0, err
	}
	for _, it := range old.Items {
		e.insert(it)
	}
	return pt.q.writePark(ctx, key, *e, orev)
}

// addParkedLocked lists h in its parked group.
func (pt *part) addParkedLocked(ctx context.Context, pg *parkedGroup, h *inHand) error {
	next := pg.e
	next.Items = slices.Clone(pg.e.Items)
	if !next.insert(parkItem{Seq: h.seq, Order: h.order}) {
		return nil
	}
	if next.Items[0].Seq == h.seq && !pg.running {
		// A replay went to the front: the head's count starts afresh.
		next.Attempts = 0
		next.Since = receivedAt(h.n, h.md.Timestamp)
	}
	rev, err := pt.q.writePark(ctx, parkKey(pt.p, pg.key), next, pg.rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		// Written by another herald that served the partition before.
		if e, r, rerr := pt.q.readPark(ctx, parkKey(pt.p, pg.key)); rerr == nil && r != 0 {
			pg.e, pg.rev = e, r
			return pt.addParkedLocked(ctx, pg, h)
		}
	}
	if err != nil {
		return err
	}
	pg.e, pg.rev = next, rev
	return nil
}

// wake takes a parked group's wake-up: it runs the group if it is due, or
// schedules another for when it is.
func (pt *part) wake(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata) {
	key := msg.Headers().Get(hdrGroup)
	pt.mu.Lock()
	pg := pt.parked[key]
	switch {
	case pg == nil:
		// The group was released; a wake-up too many.
		pt.mu.Unlock()
		_ = msg.Ack()
		return
	case pg.running:
		if pg.wake != nil && msg.Subject() == pg.wake.Subject() && sameSeq(pg.wake, md) {
			pg.wake = msg // its own wake-up, redelivered
			pt.alive[md.Sequence.Stream] = msg
			pt.mu.Unlock()
			return
		}
		pt.mu.Unlock()
		_ = msg.Ack()
		return
	}
	if due := pg.e.Due; time.Until(due) > 0 {
		// Early: the group's due time moved after this was scheduled.
		pt.mu.Unlock()
		if err := pt.q.scheduleWake(ctx, pt.p, key, due); err != nil {
			_ = msg.NakWithDelay(time.Until(due))
			return
		}
		_ = msg.Ack()
		return
	}
	pg.running, pg.wake = true, msg
	pt.alive[md.Sequence.Stream] = msg
	rctx := pt.runCtx
	pt.mu.Unlock()
	pt.runners.Go(func() { pt.runParked(rctx, pg) })
}

func sameSeq(m jetstream.Msg, md *jetstream.MsgMetadata) bool {
	omd, err := m.Metadata()
	return err == nil && omd.Sequence.Stream == md.Sequence.Stream
}

// runParked works off a due parked group from its head until it is empty
// (and flows through the partition again), must wait again, or shutdown.
func (pt *part) runParked(ctx context.Context, pg *parkedGroup) {
	q := pt.q
	for {
		if ctx.Err() != nil || !pt.serving() {
			pt.stopParked(pg, 0)
			return
		}
		pt.mu.Lock()
		it := pg.e.Items[0]
		attempts := pg.e.Attempts
		wake := pg.wake
		pt.mu.Unlock()
		raw, err := q.stream.GetMsg(ctx, it.Seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			q.m.lost.Inc()
			pt.log.Error("a parked notification is no longer in the stream (expired or damaged); it is lost", "group", pg.key, "seq", it.Seq)
			if pt.popParked(ctx, pg) {
				return
			}
			continue
		}
		if err != nil {
			pt.log.Warn("cannot read a parked notification; retrying", "group", pg.key, "seq", it.Seq, "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		n, err := decodeNotification(raw.Header, raw.Data)
		if err != nil {
			id := storedID(raw.Header)
			if !validID(id) {
				id = "seq-" + strconv.FormatUint(raw.Sequence, 10)
			}
			if derr := q.deadLetterRaw(ctx, raw.Data, raw.Header, raw.Sequence, id, "undecodable payload: "+err.Error(), true); derr != nil {
				pt.stopParked(pg, deadLetterRetry)
				return
			}
			if pt.popParked(ctx, pg) {
				return
			}
			continue
		}
		m := &Message{
			progress:  wake,
			n:         n,
			delivered: attempts + 1,
			enqueued:  raw.Time,
			seq:       raw.Sequence,
			partition: pt.p,
		}
		out := pt.call(ctx, m, raw.Header)
		switch out.Action {
		case delivery.Ack:
		case delivery.DeadLetter:
			if err := q.deadLetterRaw(ctx, raw.Data, raw.Header, raw.Sequence, n.GetId(), out.Reason, false); err != nil {
				pt.log.Error("cannot move to the dead letters; retrying later", "id", n.GetId(), "err", err)
				pt.retryParked(ctx, pg, m, delivery.Outcome{Delay: deadLetterRetry, Hold: delivery.HoldRetrying, Route: out.Route, Reason: "cannot move to the dead letters"})
				return
			}
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.cfg.PublishTimeout)
			if serr := q.setState(actx, n.GetId(), raw.Sequence, heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED); serr != nil {
				pt.log.Warn("dead-lettered, but the record was not updated", "id", n.GetId(), "err", serr)
			}
			cancel()
		case delivery.Release:
			pt.stopParked(pg, 0)
			return
		default: // Retry, or an unknown outcome
			if out.Action != delivery.Retry {
				out.Delay, out.Hold = deadLetterRetry, delivery.HoldRetrying
			}
			pt.retryParked(ctx, pg, m, out)
			return
		}
		if pt.popParked(ctx, pg) {
			return
		}
	}
}

// popParked removes a parked group's head. It reports whether the group is
// empty and flows through the partition again. The bucket is written under
// the partition's lock, so an arrival is never lost between.
func (pt *part) popParked(ctx context.Context, pg *parkedGroup) (released bool) {
	q := pt.q
	key := parkKey(pt.p, pg.key)
	actx := context.WithoutCancel(ctx)
	for {
		pt.mu.Lock()
		next := pg.e
		next.Items = slices.Clone(pg.e.Items[1:])
		next.Attempts = 0
		var err error
		if len(next.Items) == 0 {
			err = q.deletePark(actx, key, pg.rev)
			if err == nil {
				delete(pt.parked, pg.key)
				delete(pt.alive, seqOf(pg.wake))
				wake := pg.wake
				pg.wake, pg.running = nil, false
				pt.mu.Unlock()
				if wake != nil {
					_ = wake.Ack()
				}
				pt.log.Info("group flows again", "group", pg.key, "waited", time.Since(pg.e.Since).Round(time.Second))
				return true
			}
		} else {
			if n, ok := pt.nextSince(ctx, next.Items[0].Seq); ok {
				next.Since = n
			}
			var rev uint64
			rev, err = q.writePark(actx, key, next, pg.rev)
			if err == nil {
				pg.e, pg.rev = next, rev
				pt.mu.Unlock()
				return false
			}
		}
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			if e, r, rerr := q.readPark(actx, key); rerr == nil && r != 0 {
				pg.e, pg.rev = e, r
			}
		}
		pt.mu.Unlock()
		pt.log.Warn("cannot update a parked group; retrying", "group", pg.key, "err", err)
		if !sleepCtx(ctx, time.Second) {
			return true
		}
	}
}

// nextSince is when the notification at seq was stored, for the group's
// oldest waiting time.
func (pt *part) nextSince(ctx context.Context, seq uint64) (time.Time, bool) {
	raw, err := pt.q.stream.GetMsg(ctx, seq)
	if err != nil {
		return time.Time{}, false
	}
	return raw.Time, true
}

// retryParked records that a parked group's head must wait again and
// schedules its next wake-up.
func (pt *part) retryParked(ctx context.Context, pg *parkedGroup, m *Message, out delivery.Outcome) {
	pt.mu.Lock()
	next := pg.e
	next.Attempts = m.Delivered()
	next.Due = time.Now().Add(out.Delay)
	next.Hold = out.Hold.String()
	next.Route = out.Route
	next.Reason = truncate(out.Reason, 300)
	rev, err := pt.q.writePark(context.WithoutCancel(ctx), parkKey(pt.p, pg.key), next, pg.rev)
	if err == nil {
		pg.e, pg.rev = next, rev
	} else {
		// The wake-up still comes after the delay; the head is then tried
		// again with the attempt count it had.
		pt.log.Warn("cannot update a parked group", "group", pg.key, "err", err)
	}
	pt.mu.Unlock()
	if err := pt.q.scheduleWake(context.WithoutCancel(ctx), pt.p, pg.key, next.Due); err != nil {
		// The wake-up in hand is handed back instead, due after the delay.
		pt.log.Warn("cannot schedule a parked group's wake-up", "group", pg.key, "err", err)
		pt.stopParked(pg, out.Delay)
		return
	}
	pt.stopParked(pg, -1)
}

// stopParked ends a parked group's run: its wake-up in hand is handed back
// due after delay (at once for 0), or acknowledged for a negative delay (a
// new one is scheduled).
func (pt *part) stopParked(pg *parkedGroup, delay time.Duration) {
	pt.mu.Lock()
	wake := pg.wake
	delete(pt.alive, seqOf(wake))
	pg.wake, pg.running = nil, false
	pt.mu.Unlock()
	switch {
	case wake == nil:
	case delay < 0:
		_ = wake.Ack()
	case delay > 0:
		_ = wake.NakWithDelay(delay)
	default:
		_ = wake.Nak()
	}
}

func seqOf(m jetstream.Msg) uint64 {
	if m == nil {
		return 0
	}
	md, err := m.Metadata()
	if err != nil {
		return 0
	}
	return md.Sequence.Stream
}
