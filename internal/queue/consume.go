package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
)

// Handler decides what becomes of one message. ctx carries the trace
// context from the message headers and is cancelled at shutdown, when the
// handler should answer delivery.Release.
type Handler func(ctx context.Context, m delivery.Message) delivery.Outcome

// Message is the queue's delivery.Message. Besides the contract it tells
// where the message sits and when its current copy was stored.
type Message struct {
	// progress is the message whose ack_wait InProgress resets: the
	// notification's own, or its parked group's wake-up.
	progress  jetstream.Msg
	n         *heraldv1.Notification
	delivered int
	enqueued  time.Time
	seq       uint64
	partition int
}

var (
	_ delivery.Message    = (*Message)(nil)
	_ delivery.Replayable = (*Message)(nil)
)

// Notification returns the decoded notification; do not modify it.
func (m *Message) Notification() *heraldv1.Notification { return m.n }

// Delivered counts how often JetStream handed out this copy, from 1.
func (m *Message) Delivered() int { return m.delivered }

// InProgress resets the message's ack_wait so it is not handed out again
// while a delivery attempt runs long.
func (m *Message) InProgress(context.Context) error {
	if m.progress == nil {
		return nil
	}
	return m.progress.InProgress()
}

// Enqueued is when the current copy was stored: the publish, or the latest
// replay from the dead letters. A retry budget counted from it starts afresh
// on replay; received_at does not change.
func (m *Message) Enqueued() time.Time { return m.enqueued }

// Sequence is the copy's stream sequence.
func (m *Message) Sequence() uint64 { return m.seq }

// Partition is the partition the message belongs to.
func (m *Message) Partition() int { return m.partition }

// stopIterator stops it and waits (briefly) until it has unsubscribed.
func stopIterator(it jetstream.MessagesContext) {
	it.Stop()
	c, ok := it.(interface{ Closed() <-chan struct{} })
	if !ok {
		return
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-c.Closed():
	case <-t.C:
	}
}

// deadLetterRetry is how long a group waits when moving its head to the
// dead letters failed; the head stays at the group's front meanwhile.
const deadLetterRetry = 5 * time.Second

// Defaults of the partitions' pull requests and pins.
const (
	defaultPullExpiry = time.Second
	defaultPinnedTTL  = 3 * time.Second
)

// ConsumeOption tunes Consume.
type ConsumeOption func(*consumeOpts)

type consumeOpts struct {
	routeOf func(*heraldv1.Notification) string
}

// WithRouteOf names the route of a notification, for the metric of the
// oldest waiting notification per route.
func WithRouteOf(f func(*heraldv1.Notification) string) ConsumeOption {
	return func(o *consumeOpts) { o.routeOf = f }
}

// Consume hands notifications to handle until ctx is cancelled, then waits
// for the handlers in flight and returns. What fails meanwhile (JetStream
// unreachable, a consumer gone) is logged and tried again.
//
// Order is kept per group (group key, or the notification alone when it
// has none), and nothing else waits: each partition is pinned to one
// herald at a time (a JetStream priority group), which holds up to
// max_in_hand of its notifications, and runs each group's notifications
// one after the other, in publish order, while other groups run in
// parallel. handle is called for a group's head only. Its outcome:
// Ack → acknowledged, the group's next goes (a lost ack is guarded by the
// DELIVERED record the dispatcher wrote first); Retry → the group is
// parked with everything behind it until Delay has passed (see park.go),
// holding back nothing else; DeadLetter → stored in the dead-letter
// stream, then acknowledged, the group's next goes; Release → handed back
// for redelivery, with the rest of the group (shutdown). A payload that
// is not a Notification is dead-lettered as raw bytes; handle never sees
// it. How many attempts run at once is the dispatcher's to bound.
func (q *Queue) Consume(ctx context.Context, handle Handler, opts ...ConsumeOption) {
	var o consumeOpts
	for _, f := range opts {
		f(&o)
	}
	var mem *members
	var wg sync.WaitGroup
	if q.membersKV != nil {
		mem = newMembers(q.membersKV, q.cfg.Partitions, q.log)
		wg.Go(func() { mem.run(ctx) })
	}
	parts := make([]*part, q.cfg.Partitions)
	for p := range parts {
		parts[p] = q.newPart(p, handle, o)
		parts[p].members = mem
	}
	q.parts.Store(&parts)
	defer q.parts.Store(nil)
	for _, pt := range parts {
		wg.Go(func() { pt.consume(ctx) })
	}
	wg.Wait()
}

// part is what this herald knows of one partition while it serves it.
type part struct {
	q      *Queue
	p      int
	handle Handler
	opts   consumeOpts
	log    *slog.Logger

	// members says whether this herald owns the partition; nil on the
	// embedded server, where it owns every one.
	members *members
	// cons is the partition's consumer (recreated when it vanished).
	cons jetstream.Consumer
	// runners are the goroutines working off groups.
	runners sync.WaitGroup

	mu sync.Mutex
	// active are the groups with notifications in hand, by group hash.
	active map[string]*group
	// parked are the partition's parked groups, by group hash.
	parked map[string]*parkedGroup
	// alive are the messages in hand, kept alive with InProgress.
	alive map[uint64]jetstream.Msg
	// pin is the pin id of the last message; a new one means this herald
	// (again) took over the partition.
	pin    string
	served bool
	// unsettled are, after a takeover, the partition's notifications that
	// were handed out before and not acknowledged as far as this herald
	// knows, by group: a group whose head comes after one of its own
	// unsettled notifications waits until that one is back in hand or
	// acknowledged (see takeover).
	unsettled map[string][]uint64
	// pendingAtStart is how many messages the consumer had in hand
	// before this herald first pulled: a herald before it died.
	pendingAtStart int
	// settleBy ends the wait for unsettled notifications.
	settleBy time.Time
	// releasing are handed back at shutdown, after the iterator stopped.
	releasing []jetstream.Msg
	// runCtx is the runners' context: Consume's, cancelled early when the
	// partition moves to another herald.
	runCtx     context.Context
	runCancel  context.CancelFunc
	consumeCtx context.Context
}

// group is an active group: its notifications in hand, in order.
type group struct {
	key     string
	msgs    []*inHand
	running bool
	// parking: its runner is moving it to the groups bucket; arrivals
	// still queue here and are moved along.
	parking bool
}

// inHand is a notification handed out by JetStream and not answered yet.
type inHand struct {
	msg   jetstream.Msg
	n     *heraldv1.Notification
	md    *jetstream.MsgMetadata
	seq   uint64
	order uint64
}

// parkedGroup is a parked group of a partition this herald serves.
type parkedGroup struct {
	key string
	e   parkEntry
	rev uint64
	// wake is the wake-up message in hand while the group runs.
	wake    jetstream.Msg
	running bool
}

func (q *Queue) newPart(p int, handle Handler, o consumeOpts) *part {
	return &part{
		q:         q,
		p:         p,
		handle:    handle,
		opts:      o,
		log:       q.log.With("partition", p),
		active:    map[string]*group{},
		unsettled: map[string][]uint64{},
		parked:    map[string]*parkedGroup{},
		alive:     map[uint64]jetstream.Msg{},
	}
}

// consume serves the partition while this herald owns it (see
// members.go), until ctx ends; then it hands back what it holds and waits
// for its runners.
func (pt *part) consume(ctx context.Context) {
	pt.consumeCtx = ctx
	pt.runCtx, pt.runCancel = context.WithCancel(ctx)
	defer func() { pt.runCancel() }()
	pt.mu.Lock()
	pt.cons = pt.q.consumers[pt.p]
	pt.mu.Unlock()
	stopAlive := pt.keepAlive()
	defer stopAlive()
	defer pt.handBack()
	stopWatch := pt.watchPin(ctx)
	defer stopWatch()
	for ctx.Err() == nil {
		owned, changed := pt.members.owns(pt.p)
		if !owned {
			select {
			case <-ctx.Done():
			case <-changed:
			}
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		if changed != nil {
			wg.Go(func() {
				for {
					select {
					case <-sctx.Done():
						return
					case <-changed:
					}
					var owned bool
					if owned, changed = pt.members.owns(pt.p); !owned {
						cancel()
						return
					}
				}
			})
		}
		pt.pull(sctx)
		cancel()
		wg.Wait()
		if ctx.Err() == nil {
			pt.handOff(ctx)
		}
	}
}

// pull pulls the partition's messages until ctx ends.
func (pt *part) pull(ctx context.Context) {
	q := pt.q
	cons := pt.consumer()
	// Before the first pull: what a herald before this one left in hand.
	if ci, err := cons.Info(ctx); err == nil {
		pt.mu.Lock()
		pt.pendingAtStart = ci.NumAckPending
		pt.mu.Unlock()
	}
	pt.wakeParked(ctx)
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			// The iterator ended without shutdown: the consumer may have
			// been deleted, or its stream moved. Make sure it exists.
			c, err := q.ensureConsumer(ctx, pt.p)
			if err != nil {
				pt.log.Warn("cannot recreate the partition's consumer; retrying", "err", err)
				sleepCtx(ctx, time.Second)
				continue
			}
			cons = c
			pt.mu.Lock()
			pt.cons = c
			pt.mu.Unlock()
		}
		it, err := cons.Messages(
			jetstream.PullMaxMessages(min(q.cfg.MaxInHand, 64)),
			jetstream.PullExpiry(q.pullExpiry),
			jetstream.PullPriorityGroup(priorityGroup),
		)
		if err != nil {
			pt.log.Warn("cannot consume partition; retrying", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		for {
			msg, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) ||
					errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
					// No heartbeat: the pull went nowhere (consumer gone,
					// or its leader moved); start over.
					errors.Is(err, jetstream.ErrNoHeartbeat) {
					break
				}
				pt.log.Debug("consume", "err", err)
				continue
			}
			pt.receive(ctx, msg)
		}
		// Hand back what arrived after the last Next, so it does not wait
		// out ack_wait.
		stopIterator(it)
		for {
			msg, err := it.Next(jetstream.NextMaxWait(50 * time.Millisecond))
			if err != nil {
				break
			}
			handBackMsg(msg)
		}
		if ctx.Err() == nil {
			sleepCtx(ctx, 100*time.Millisecond)
		}
	}
}

// handBack waits for the runners, then hands back what they released and
// what is still in hand: groups that never ran (a takeover's hold).
func (pt *part) handBack() {
	pt.runners.Wait()
	pt.mu.Lock()
	msgs := pt.releasing
	pt.releasing = nil
	for _, g := range pt.active {
		for _, h := range g.msgs {
			msgs = append(msgs, h.msg)
		}
	}
	clear(pt.active)
	clear(pt.alive)
	pin := pt.pin
	if !pt.served {
		pin = ""
	}
	pt.served, pt.pin = false, ""
	pt.mu.Unlock()
	nakInOrder(msgs)
	// Shutdown: the replica that takes the partition over need not wait.
	pt.markHandoff(pt.consumeCtx, pin)
}

// consumer returns the partition's consumer.
func (pt *part) consumer() jetstream.Consumer {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.cons
}

// serving reports whether this herald still serves the partition.
func (pt *part) serving() bool {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.served
}

// keepAlive tells JetStream every third of ack_wait that the messages in
// hand are still being worked on, so none is handed to another herald
// meanwhile (which would break its group's order).
func (pt *part) keepAlive() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(pt.q.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			pt.mu.Lock()
			msgs := make([]jetstream.Msg, 0, len(pt.alive))
			for _, m := range pt.alive {
				msgs = append(msgs, m)
			}
			pt.mu.Unlock()
			for _, m := range msgs {
				_ = m.InProgress()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// receive takes one message from the partition's consumer.
func (pt *part) receive(ctx context.Context, msg jetstream.Msg) {
	q := pt.q
	md, err := msg.Metadata()
	if err != nil {
		pt.log.Error("message without metadata", "subject", msg.Subject(), "err", err)
		_ = msg.Nak()
		return
	}
	pt.takeover(ctx, msg, md)
	if isWake(msg.Subject()) {
		pt.wake(ctx, msg, md)
		return
	}
	n, err := decodeNotification(msg.Headers(), msg.Data())
	if err != nil {
		q.deadLetterUndecodable(ctx, msg, md, err)
		return
	}
	h := &inHand{msg: msg, n: n, md: md, seq: md.Sequence.Stream, order: md.Sequence.Stream}
	if src, err := strconv.ParseUint(msg.Headers().Get(hdrOrder), 10, 64); err == nil && src > 0 && src < h.order {
		// A replayed dead letter takes its place among what of its
		// group still waits.
		h.order = src
	}
	key := groupHash(n)

	pt.mu.Lock()
	if pg := pt.parked[key]; pg != nil {
		err := pt.addParkedLocked(ctx, pg, h)
		pt.mu.Unlock()
		if err != nil {
			pt.log.Warn("cannot add a notification to its parked group; retrying", "id", n.GetId(), "err", err)
			_ = msg.NakWithDelay(time.Second)
			return
		}
		_ = msg.Ack()
		return
	}
	g := pt.active[key]
	if g == nil {
		g = &group{key: key}
		pt.active[key] = g
	}
	g.insert(h, g.parking)
	pt.alive[h.seq] = msg
	pt.settleLocked(g.key, h.seq)
	start := !g.running && !g.parking && pt.mayRunLocked(g)
	if start {
		g.running = true
	}
	rctx := pt.runCtx
	pt.mu.Unlock()
	if start {
		pt.runners.Go(func() { pt.run(rctx, g) })
	}
}

// insert queues h in order of stream sequence (or of the dead-lettered
// copy, for a replay): a notification the previous herald of the partition
// had in hand comes back after later ones of its group and goes before
// them. At the end when last, as while the group is being parked. A
// redelivered copy replaces the one in hand.
func (g *group) insert(h *inHand, last bool) {
	for i, x := range g.msgs {
		if x.seq == h.seq {
			g.msgs[i].msg, g.msgs[i].md = h.msg, h.md
			return
		}
	}
	i := len(g.msgs)
	if last {
		g.msgs = append(g.msgs, h)
		return
	}
	first := 0
	if g.running {
		first = 1 // never before a head being attempted
	}
	for i > first && g.msgs[i-1].order > h.order {
		i--
	}
	g.msgs = slices.Insert(g.msgs, i, h)
}

// run works off an active group until it is empty, parked or released.
func (pt *part) run(ctx context.Context, g *group) {
	q := pt.q
	for {
		pt.mu.Lock()
		if len(g.msgs) == 0 {
			delete(pt.active, g.key)
			pt.mu.Unlock()
			return
		}
		h := g.msgs[0]
		served := pt.served
		// insert replaces h's msg and md, under the lock, when a copy of
		// it is handed out again meanwhile: read them under it.
		msg, md := h.msg, h.md
		pt.mu.Unlock()
		if ctx.Err() != nil || !served {
			pt.release(g)
			return
		}
		m := &Message{
			progress:  msg,
			n:         h.n,
			delivered: int(md.NumDelivered),
			enqueued:  md.Timestamp,
			seq:       h.seq,
			partition: pt.p,
		}
		out := pt.call(ctx, m, msg.Headers())
		// Settle the copy handed out last: the server ignores an ack of a
		// delivery it has handed out again.
		pt.mu.Lock()
		msg = h.msg
		pt.mu.Unlock()
		switch out.Action {
		case delivery.Ack:
			// A plain ack, not one the server confirms: an ack lost on
			// the way only means the message is handed out again after
			// ack_wait, and the dispatcher then finds its DELIVERED
			// record, written before this ack, and does not post twice.
			if err := msg.Ack(); err != nil {
				pt.log.Warn("cannot acknowledge", "id", h.n.GetId(), "err", err)
			}
		case delivery.DeadLetter:
			if err := q.deadLetterDelivered(ctx, msg, h.seq, h.n.GetId(), out.Reason); err != nil {
				pt.log.Error("cannot move to the dead letters; retrying later", "id", h.n.GetId(), "err", err)
				pt.park(ctx, g, m, delivery.Outcome{Action: delivery.Retry, Delay: deadLetterRetry, Hold: delivery.HoldRetrying, Route: out.Route, Reason: "cannot move to the dead letters"})
				return
			}
		case delivery.Release:
			pt.release(g)
			return
		case delivery.Retry:
			pt.park(ctx, g, m, out)
			return
		default:
			pt.log.Error("unknown outcome; retrying later", "action", int(out.Action))
			out.Delay, out.Hold = deadLetterRetry, delivery.HoldRetrying
			pt.park(ctx, g, m, out)
			return
		}
		pt.mu.Lock()
		g.msgs = g.msgs[1:]
		delete(pt.alive, h.seq)
		pt.mu.Unlock()
	}
}

// call runs handle on m with the trace context of its headers.
func (pt *part) call(ctx context.Context, m *Message, h nats.Header) delivery.Outcome {
	q := pt.q
	q.flights.begin(m.n.GetId(), m.seq)
	defer q.flights.end(m.n.GetId())
	return q.call(q.extract(ctx, h), pt.handle, m)
}

// release hands g's messages back for redelivery: at shutdown once the
// partition's iterator has stopped, so that they are not handed straight
// back to this herald; at once when the partition moved to another herald.
func (pt *part) release(g *group) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	for _, h := range g.msgs {
		delete(pt.alive, h.seq)
		if pt.served {
			pt.releasing = append(pt.releasing, h.msg)
		} else {
			handBackMsg(h.msg)
		}
	}
	g.msgs = nil
	g.running = false
	delete(pt.active, g.key)
}

// receivedAt is when a notification was received, or else when it was
// stored.
func receivedAt(n *heraldv1.Notification, stored time.Time) time.Time {
	if ra := n.GetReceivedAt(); ra != nil {
		return ra.AsTime()
	}
	return stored
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// call runs handle, turning a panic into a delayed retry so one bad
// notification cannot take herald down.
func (q *Queue) call(ctx context.Context, handle Handler, m *Message) (out delivery.Outcome) {
	defer func() {
		if r := recover(); r != nil {
			q.log.Error("dispatcher panicked; retrying later", "id", m.n.GetId(), "panic", r, "stack", string(debug.Stack()))
			out = delivery.Outcome{Action: delivery.Retry, Delay: q.cfg.AckWait, Hold: delivery.HoldRetrying, Reason: "dispatcher panicked"}
		}
	}()
	return handle(ctx, m)
}

// deadLetterDelivered moves a message in hand to the dead letters, records
// it and acknowledges it. Sent even after ctx is cancelled: the work is
// done and must not be repeated.
func (q *Queue) deadLetterDelivered(ctx context.Context, msg jetstream.Msg, seq uint64, id, reason string) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.cfg.PublishTimeout)
	defer cancel()
	if err := q.deadLetterRaw(actx, msg.Data(), msg.Headers(), seq, id, reason, false); err != nil {
		return err
	}
	if serr := q.setState(actx, id, seq, heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED); serr != nil {
		q.log.Warn("dead-lettered, but the record was not updated", "id", id, "err", serr)
	}
	if err := msg.DoubleAck(actx); err != nil {
		q.log.Warn("dead-lettered, but cannot acknowledge", "id", id, "err", err)
	}
	return nil
}

// deadLetterUndecodable keeps a payload that is not a Notification in the
// dead letters as raw bytes and terminates it.
func (q *Queue) deadLetterUndecodable(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, decodeErr error) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.cfg.PublishTimeout)
	defer cancel()
	id := storedID(msg.Headers())
	named := validID(id)
	if !named {
		// Not published by herald (no id, or one that cannot be a subject
		// token): keep it under its sequence.
		id = "seq-" + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	q.log.Error("undecodable notification; moving it to the dead letters", "id", id, "seq", md.Sequence.Stream, "err", decodeErr)
	reason := "undecodable payload: " + decodeErr.Error()
	if err := q.deadLetterRaw(actx, msg.Data(), msg.Headers(), md.Sequence.Stream, id, reason, true); err != nil {
		q.log.Error("cannot move to the dead letters; retrying later", "id", id, "err", err)
		_ = msg.NakWithDelay(deadLetterRetry)
		return
	}
	if named {
		_ = q.setState(actx, id, md.Sequence.Stream, heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED)
	}
	if err := msg.TermWithReason(cleanReason(reason)); err != nil {
		q.log.Warn("cannot terminate undecodable message", "id", id, "err", err)
	}
}

// deadLetterRaw stores a notification's payload in the dead-letter stream
// and waits for the acknowledgement. Its message id is derived from the
// source sequence, so a repeat after a lost ack stores nothing twice.
func (q *Queue) deadLetterRaw(ctx context.Context, data []byte, hdr nats.Header, seq uint64, id, reason string, undecodable bool) error {
	dm := &nats.Msg{Subject: dlqPrefix + id, Header: nats.Header{}, Data: data}
	carryHeaders(dm.Header, hdr)
	dm.Header.Set(hdrReason, cleanReason(reason))
	dm.Header.Set(hdrSourceSeq, strconv.FormatUint(seq, 10))
	if undecodable {
		dm.Header.Set(hdrUndecodable, "true")
	}
	dm.Header.Set(jetstream.MsgIDHeader, "dlq:"+strconv.FormatUint(seq, 10))
	if _, err := q.publish(ctx, dm); err != nil {
		return fmt.Errorf("publish dead letter: %w", err)
	}
	q.m.deadLetters.Inc()
	return nil
}

// sleepCtx waits for d or until ctx ends; it reports whether it waited.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
