package queue

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/dispatch"
)

// Handler decides what becomes of one message. ctx carries the trace
// context from the message headers and is cancelled at shutdown, when the
// handler should answer dispatch.Release.
type Handler func(ctx context.Context, m dispatch.Message) dispatch.Outcome

// Message is the queue's dispatch.Message. Besides the contract it tells
// where the message sits and when its current copy was stored.
type Message struct {
	msg       jetstream.Msg
	n         *heraldv1.Notification
	delivered int
	enqueued  time.Time
	seq       uint64
	partition int
}

var (
	_ dispatch.Message    = (*Message)(nil)
	_ dispatch.Replayable = (*Message)(nil)
)

// Notification returns the decoded notification; do not modify it.
func (m *Message) Notification() *heraldv1.Notification { return m.n }

// Delivered counts how often JetStream handed out this copy, from 1.
func (m *Message) Delivered() int { return m.delivered }

// InProgress resets the message's ack_wait so it is not handed out again
// while a delivery attempt runs long.
func (m *Message) InProgress(context.Context) error { return m.msg.InProgress() }

// Enqueued is when the current copy was stored: the publish, or the latest
// replay from the dead letters. A retry budget counted from it starts afresh
// on replay; received_at does not change.
func (m *Message) Enqueued() time.Time { return m.enqueued }

// Sequence is the copy's stream sequence.
func (m *Message) Sequence() uint64 { return m.seq }

// Partition is the ordered lane the message belongs to.
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

// pullBatch is the batch of each partition's pull requests.
const pullBatch = 2

// deadLetterRetry is how long a message waits when moving it to the dead
// letters failed; it stays in its partition meanwhile, never lost.
const deadLetterRetry = 5 * time.Second

// Consume hands messages to handle until ctx is cancelled, then waits for
// the handlers in flight and returns nil. Each partition is consumed by one
// loop and holds at most one unacknowledged message cluster-wide, so
// messages of a partition reach handle one at a time in publish order, and a
// Retry keeps the rest of its partition waiting. At most
// Config.Concurrency handlers run at once. The outcome is applied as:
// Ack → acknowledged (a lost ack is guarded by the DELIVERED record the
// dispatcher wrote first); Retry → NakWithDelay(Delay); DeadLetter → stored in the dead-letter stream, then acknowledged (if that
// store fails, the message is retried later instead); Release → Nak.
// A payload that is not a Notification is dead-lettered as raw bytes and
// terminated; handle never sees it.
func (q *Queue) Consume(ctx context.Context, handle Handler) error {
	sem := make(chan struct{}, q.cfg.Concurrency)
	var wg sync.WaitGroup
	for p := range q.cfg.Partitions {
		wg.Go(func() { q.consumePartition(ctx, p, handle, sem) })
	}
	wg.Wait()
	return nil
}

func (q *Queue) consumePartition(ctx context.Context, p int, handle Handler, sem chan struct{}) {
	log := q.log.With("partition", p)
	cons := q.consumers[p]
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			// The iterator ended without shutdown: the consumer may have
			// been deleted, or its stream moved. Make sure it exists.
			c, err := q.ensureConsumer(ctx, p)
			if err != nil {
				log.Warn("cannot recreate the partition's consumer; retrying", "err", err)
				sleepCtx(ctx, time.Second)
				continue
			}
			cons = c
		}
		// Two, not one: the consumer's MaxAckPending of 1 still hands out
		// one message at a time, but the pull request for the next one is
		// then already waiting at the server when the current one is
		// acked. With a batch of 1 the next pull was sent only after the
		// ack, and now and then the server left it unanswered until it
		// expired, holding the partition for pullExpiry (10s); see
		// BenchmarkConsume. It also halves the pull requests.
		it, err := cons.Messages(jetstream.PullMaxMessages(pullBatch), jetstream.PullExpiry(q.pullExpiry))
		if err != nil {
			log.Warn("cannot consume partition; retrying", "err", err)
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
				log.Debug("consume", "err", err)
				continue
			}
			// Before a message is handed back (shutdown), stop the
			// iterator: its pull request, still open at the server for
			// the rest of its batch, would otherwise get the message
			// again at once. Nothing else can be buffered (one
			// unacknowledged message per partition), so Stop loses
			// nothing; once it is closed, the unsubscription is on the
			// wire ahead of the Nak.
			q.handleMsg(ctx, p, msg, handle, sem, func() { stopIterator(it) })
		}
		// Hand back what arrived after the last Next, so the partition does
		// not wait out ack_wait.
		it.Drain()
		for {
			msg, err := it.Next(jetstream.NextMaxWait(100 * time.Millisecond))
			if err != nil {
				break
			}
			_ = msg.Nak()
		}
		if ctx.Err() == nil {
			sleepCtx(ctx, 100*time.Millisecond)
		}
	}
}

// handleMsg decodes msg, runs handle on it and applies the outcome.
// beforeRelease runs before msg is handed back with a Nak because of
// shutdown or a Release outcome.
func (q *Queue) handleMsg(ctx context.Context, p int, msg jetstream.Msg, handle Handler, sem chan struct{}, beforeRelease func()) {
	md, err := msg.Metadata()
	if err != nil {
		q.log.Error("message without metadata", "subject", msg.Subject(), "err", err)
		_ = msg.Nak()
		return
	}
	if !q.acquire(ctx, sem, msg) {
		beforeRelease()
		_ = msg.Nak()
		return
	}
	defer func() { <-sem }()

	n, err := decodeNotification(msg.Headers(), msg.Data())
	if err != nil {
		q.deadLetterUndecodable(ctx, msg, md, err)
		return
	}
	m := &Message{
		msg:       msg,
		n:         n,
		delivered: int(md.NumDelivered),
		enqueued:  md.Timestamp,
		seq:       md.Sequence.Stream,
		partition: p,
	}
	q.flights.begin(n.GetId(), m.seq)
	defer q.flights.end(n.GetId())
	stop := q.keepAlive(msg)
	out := q.call(q.extract(ctx, msg.Headers()), handle, m)
	stop()
	if out.Action == dispatch.Release {
		beforeRelease()
	}
	q.apply(ctx, m, out)
}

// acquire takes a concurrency slot, keeping msg alive while it waits.
func (q *Queue) acquire(ctx context.Context, sem chan struct{}, msg jetstream.Msg) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
	}
	t := time.NewTicker(q.cfg.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case sem <- struct{}{}:
			return true
		case <-t.C:
			_ = msg.InProgress()
		case <-ctx.Done():
			return false
		}
	}
}

// keepAlive tells JetStream every third of ack_wait that msg is still being
// handled, so a slow delivery is never handed to another replica meanwhile
// (which would post twice and break the partition's order). A handler that
// hangs therefore holds its partition; herald_queue_oldest_pending_age_seconds
// shows it.
func (q *Queue) keepAlive(msg jetstream.Msg) (stop func()) {
	// A timer, not a goroutine with a ticker: nearly every delivery ends
	// long before the first tick, and a goroutine per message was a wake-up
	// and a stack for nothing.
	every := q.cfg.AckWait / 3
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	// Held until t is set, so the first tick cannot find it nil.
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		_ = msg.InProgress()
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// call runs handle, turning a panic into a delayed retry so one bad
// notification cannot take herald down.
func (q *Queue) call(ctx context.Context, handle Handler, m *Message) (out dispatch.Outcome) {
	defer func() {
		if r := recover(); r != nil {
			q.log.Error("dispatcher panicked; retrying later", "id", m.n.GetId(), "panic", r, "stack", string(debug.Stack()))
			out = dispatch.Outcome{Action: dispatch.Retry, Delay: q.cfg.AckWait}
		}
	}()
	return handle(ctx, m)
}

// apply carries out the handler's verdict. Acks and dead letters are sent
// even after ctx is cancelled: the work is done and must not be repeated.
func (q *Queue) apply(ctx context.Context, m *Message, out dispatch.Outcome) {
	log := q.log.With("id", m.n.GetId(), "seq", m.seq)
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.cfg.PublishTimeout)
	defer cancel()
	var err error
	switch out.Action {
	case dispatch.Ack:
		// A plain ack, not one the server confirms: an ack lost on the way
		// (a connection or a cluster node gone) only means the message is
		// handed out again after ack_wait, and the dispatcher then finds
		// its DELIVERED record, written before this ack, and does not post
		// twice. Waiting for a confirmation would not change that, since
		// nothing could be done but log it, and it cost a round trip per
		// notification.
		err = m.msg.Ack()
	case dispatch.Retry:
		if out.Delay > 0 {
			err = m.msg.NakWithDelay(out.Delay)
		} else {
			err = m.msg.Nak()
		}
	case dispatch.DeadLetter:
		if derr := q.deadLetter(actx, m.msg, m.seq, m.n.GetId(), out.Reason, false); derr != nil {
			log.Error("cannot move to the dead letters; retrying later", "err", derr)
			err = m.msg.NakWithDelay(deadLetterRetry)
			break
		}
		if serr := q.setState(actx, m.n.GetId(), m.seq, heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED); serr != nil {
			log.Warn("dead-lettered, but the record was not updated", "err", serr)
		}
		err = m.msg.DoubleAck(actx)
	case dispatch.Release:
		err = m.msg.Nak()
	default:
		log.Error("unknown outcome; retrying later", "action", int(out.Action))
		err = m.msg.NakWithDelay(deadLetterRetry)
	}
	if err != nil {
		// The message stays unacknowledged and comes back after ack_wait.
		log.Warn("cannot answer JetStream", "action", int(out.Action), "err", err)
	}
}

// deadLetterUndecodable keeps a payload that is not a Notification in the
// dead letters as raw bytes and terminates it.
func (q *Queue) deadLetterUndecodable(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, decodeErr error) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.cfg.PublishTimeout)
	defer cancel()
	id := storedID(msg.Headers(), msg.Subject())
	named := validID(id)
	if !named {
		// Not published by herald (no id, or one that cannot be a subject
		// token): keep it under its sequence.
		id = "seq-" + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	q.log.Error("undecodable notification; moving it to the dead letters", "id", id, "seq", md.Sequence.Stream, "err", decodeErr)
	reason := "undecodable payload: " + decodeErr.Error()
	if err := q.deadLetter(actx, msg, md.Sequence.Stream, id, reason, true); err != nil {
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

// deadLetter stores msg's payload in the dead-letter stream and waits for
// the acknowledgement. Its message id is derived from the source sequence,
// so a repeat after a lost ack stores nothing twice.
func (q *Queue) deadLetter(ctx context.Context, msg jetstream.Msg, seq uint64, id, reason string, undecodable bool) error {
	dm := &nats.Msg{Subject: dlqPrefix + id, Header: nats.Header{}, Data: msg.Data()}
	carryHeaders(dm.Header, msg.Headers())
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

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
