package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/internal/store"
)

// ErrTooLarge: the notification exceeds the NATS server's max_payload
// (8 MiB on the embedded server). Retrying cannot help; it is the caller's
// input that must shrink.
var ErrTooLarge = store.ErrTooLarge

// Put stores n in its partition. It returns nil only after JetStream
// acknowledged the write (see Config.Sync for what that survives). It writes
// nothing else: a notification without a delivery record is PENDING, and
// its record is created by its first delivery attempt, so storing costs one
// JetStream write. The JetStream message id is the idempotency key
// (the id when there is none), so a publish repeated within
// duplicate_window stores nothing and returns the first notification's id
// with duplicate=true. Every storage failure wraps store.ErrUnavailable; a
// retry after one is safe. A notification over the server's payload limit
// gives ErrTooLarge instead.
func (q *Queue) Put(ctx context.Context, n *heraldv1.Notification) (string, bool, error) {
	id := n.GetId()
	if !validID(id) {
		// The service assigns ids; this is a bug, not an outage.
		return "", false, fmt.Errorf("queue: notification id %q is not 1-200 of [A-Za-z0-9_=-]", id)
	}
	msg := &nats.Msg{
		Subject: partitionSubject(Partition(delivery.GroupKey(n), id, q.cfg.Partitions)),
		Header:  nats.Header{},
	}
	data, release, err := encodeNotification(n, msg.Header)
	if err != nil {
		return "", false, fmt.Errorf("queue: marshal notification %s: %w", id, err)
	}
	// The client copies the message into its write buffer; once publish
	// has returned, the payload is not needed.
	defer release()
	msg.Data = data
	msg.Header.Set(hdrID, id)
	msg.Header.Set(jetstream.MsgIDHeader, dedupID(n))
	q.inject(ctx, msg.Header)

	ack, err := q.publish(ctx, msg)
	if errors.Is(err, nats.ErrMaxPayload) {
		q.m.publishes.WithLabelValues("error").Inc()
		return "", false, fmt.Errorf("queue: notification %s is %d bytes: %w", id, len(data), ErrTooLarge)
	}
	if err != nil {
		q.m.publishes.WithLabelValues("error").Inc()
		q.suspectStorage()
		return "", false, fmt.Errorf("queue: publish %s: %w: %w", id, store.ErrUnavailable, err)
	}
	dup := false
	if ack.Duplicate {
		orig, err := q.loadNotification(ctx, q.stream, ack.Sequence)
		if err != nil {
			q.m.publishes.WithLabelValues("error").Inc()
			return "", false, fmt.Errorf("queue: load original of duplicate %s (seq %d): %w: %w", id, ack.Sequence, store.ErrUnavailable, err)
		}
		// Our own earlier attempt (a retry after a lost ack) is not a
		// duplicate for the caller.
		dup = orig.GetId() != id
		id = orig.GetId()
	}
	if dup {
		q.m.publishes.WithLabelValues("duplicate").Inc()
	} else {
		q.m.publishes.WithLabelValues("stored").Inc()
	}
	return id, dup, nil
}

// dedupID is the JetStream message id of a notification: its idempotency
// key, or its id when it has none. Keys that are not plain printable ASCII
// are hashed so they are safe in a header.
func dedupID(n *heraldv1.Notification) string {
	k := n.GetIdempotencyKey()
	if k == "" {
		return "i:" + n.GetId()
	}
	if r := n.GetRoute(); r != "" {
		// Each fan-out copy is stored once.
		k += "\x00" + r
	}
	if len(k) <= 128 && printableASCII(k) {
		return "k:" + k
	}
	h := sha256.Sum256([]byte(k))
	return "k#" + hex.EncodeToString(h[:])
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// publish publishes to a herald stream and waits for the acknowledgement,
// retrying transient failures (reconnects, leader elections) until
// publish_timeout. Retrying is safe: every message carries a message id.
func (q *Queue) publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	var ack *jetstream.PubAck
	err := q.retrying(ctx, func(ctx context.Context) error {
		var err error
		ack, err = q.js.PublishMsg(ctx, msg)
		return err
	}, nats.ErrConnectionClosed, nats.ErrMaxPayload)
	return ack, err
}

// attemptTimeout bounds one request to JetStream inside retrying. A request
// sent to a node that died is never answered; a new leader is elected in
// well under a second, so the request is sent again after this.
const attemptTimeout = time.Second

// retrying runs op until it succeeds, returns one of the final errors, or
// publish_timeout passes. Each try gets at most attemptTimeout, so a request
// lost with a dead cluster node is sent again to the new leader instead of
// using up the whole deadline. op must be safe to repeat.
func (q *Queue) retrying(ctx context.Context, op func(context.Context) error, final ...error) error {
	// The overall deadline is kept as a time, not a context: nearly every
	// op succeeds at once, and one context per try is enough.
	deadline := time.Now().Add(q.cfg.PublishTimeout)
	wait := 20 * time.Millisecond
	for {
		actx, acancel := context.WithTimeout(ctx, min(attemptTimeout, time.Until(deadline)))
		err := op(actx)
		acancel()
		if err == nil {
			return nil
		}
		for _, f := range final {
			if errors.Is(err, f) {
				return err
			}
		}
		if ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		left := time.Until(deadline)
		if left <= 0 {
			return errors.Join(err, context.DeadlineExceeded)
		}
		t := time.NewTimer(min(wait, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// kvFinal are the key-value answers that are results, not failures: they
// are never retried by retrying.
var kvFinal = []error{jetstream.ErrKeyNotFound, jetstream.ErrKeyExists, jetstream.ErrKeyRevisionMismatch, nats.ErrConnectionClosed}

// pinRecord makes id's record point at seq, its current copy, unless the
// dispatcher got there first.
func (q *Queue) pinRecord(ctx context.Context, id string, seq uint64) error {
	_, err := q.updateRecord(ctx, id, func(r *storedRecord, exists bool) bool {
		switch {
		case !exists:
			r.seq = seq
			r.rec = &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_PENDING}
			return true
		case r.seq == 0:
			r.seq = seq
			return true
		}
		return false
	})
	return err
}

// updateRecord applies f to id's record with compare-and-set, retrying on
// concurrent writers. f reports whether to write. It returns the record's
// revision after the write (or as read, when f wrote nothing; 0 when there
// is no record).
func (q *Queue) updateRecord(ctx context.Context, id string, f func(r *storedRecord, exists bool) bool) (uint64, error) {
	for range 32 {
		r, rev, err := q.readRecord(ctx, id)
		if err != nil {
			return 0, err
		}
		if r.rec == nil && rev != 0 {
			r.rec = &heraldv1.DeliveryRecord{}
		}
		if !f(&r, rev != 0) {
			return rev, nil
		}
		if r.rec == nil {
			r.rec = &heraldv1.DeliveryRecord{}
		}
		// A write that timed out may still have been applied: its retry
		// then meets ErrKeyExists or a revision mismatch, and the loop reads
		// the record again and lets f decide afresh.
		rev, err = q.writeRecord(ctx, id, r, rev)
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		return rev, err
	}
	return 0, fmt.Errorf("record %s: too many concurrent updates", id)
}

// readRecord returns id's record and its revision, retrying transient
// failures; revision 0 means there is none.
func (q *Queue) readRecord(ctx context.Context, id string) (storedRecord, uint64, error) {
	var e jetstream.KeyValueEntry
	err := q.retrying(ctx, func(ctx context.Context) error {
		var err error
		e, err = q.records.Get(ctx, id)
		return err
	}, kvFinal...)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return storedRecord{}, 0, nil
	case err != nil:
		return storedRecord{}, 0, err
	}
	r, err := decodeRecord(e.Value())
	if err != nil {
		return storedRecord{}, 0, fmt.Errorf("record %s: %w", id, err)
	}
	return r, e.Revision(), nil
}

// writeRecord stores r as id's record if its revision is still rev (0: if
// there is none yet) and returns the new revision. Another writer in
// between gives ErrKeyExists or ErrKeyRevisionMismatch.
func (q *Queue) writeRecord(ctx context.Context, id string, r storedRecord, rev uint64) (uint64, error) {
	b, err := encodeRecord(r)
	if err != nil {
		return 0, err
	}
	var next uint64
	err = q.retrying(ctx, func(ctx context.Context) error {
		var err error
		if rev == 0 {
			next, err = q.records.Create(ctx, id, b)
		} else {
			next, err = q.records.Update(ctx, id, b, rev)
		}
		return err
	}, kvFinal...)
	return next, err
}

// loadRecord returns id's stored record; found is false when there is none.
func (q *Queue) loadRecord(ctx context.Context, id string) (storedRecord, bool, error) {
	r, rev, err := q.readRecord(ctx, id)
	return r, rev != 0, err
}

func (q *Queue) loadNotification(ctx context.Context, s jetstream.Stream, seq uint64) (*heraldv1.Notification, error) {
	raw, err := s.GetMsg(ctx, seq)
	if err != nil {
		return nil, err
	}
	n, err := decodeNotification(raw.Header, raw.Data)
	if err != nil {
		return nil, fmt.Errorf("seq %d: %w", seq, err)
	}
	return n, nil
}

// Get returns a notification with its delivery record. A notification whose
// record does not say where it sits (none yet: it is pending, and its record
// is written by its first delivery attempt; or seq 0 during a replay) is
// searched for by the time in its id: see find.
func (q *Queue) Get(ctx context.Context, id string) (*heraldv1.NotificationSummary, error) {
	if !validID(id) {
		return nil, store.ErrNotFound
	}
	sr, found, err := q.loadRecord(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("queue: get %s: %w: %w", id, store.ErrUnavailable, err)
	}
	var raw *jetstream.RawStreamMsg
	if found && sr.seq != 0 {
		raw, err = q.stream.GetMsg(ctx, sr.seq)
	} else {
		raw, err = q.find(ctx, id)
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		if found && sr.rec.GetState() == heraldv1.DeliveryState_DELIVERY_STATE_LOST {
			// Its stored copy is gone (see checkDamage): say so.
			return &heraldv1.NotificationSummary{Notification: &heraldv1.Notification{Id: id}, Delivery: sr.rec}, nil
		}
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("queue: get %s: %w: %w", id, store.ErrUnavailable, err)
	}
	n, err := decodeNotification(raw.Header, raw.Data)
	if err != nil {
		return nil, fmt.Errorf("queue: notification %s (seq %d) is corrupt: %w", id, raw.Sequence, err)
	}
	rec := sr.rec
	if rec == nil {
		rec = &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_PENDING}
	}
	return &heraldv1.NotificationSummary{Notification: n, Delivery: rec}, nil
}

// Bounds of find's search around the time in an id.
const (
	// findSkew allows for the stream leader's clock and that of the
	// replica that made the id disagreeing.
	findSkew = 2 * time.Second
	// findLate allows, beyond publish_timeout, for a publish that reached
	// the server after Put stopped waiting for it.
	findLate = 5 * time.Second
	// defaultFindMaxReads bounds the stream reads of one search.
	defaultFindMaxReads = 4096
)

// find looks for a copy of notification id in the stream without knowing
// its sequence. An id the service made holds its receipt time, and the
// notification was stored within publish_timeout of it. A search over the
// stream's sequences by message time, galloping down from the newest (so a
// recent id touches only recent blocks) and then bisecting, finds the first
// message stored at that time; from there the copy is looked for forward,
// comparing ids, until findLate past publish_timeout, then backward down to
// findSkew before the id's time. Each step reads one message: the search
// costs about 2·log2 of the messages stored since the id's time, plus those
// stored in the id's millisecond before it (one or two at herald's usual
// rates), and never more than findMaxReads (4,096): an id of a busy window
// that was never stored costs them all. An id without a time (not made by
// the service) gives ErrMsgNotFound until its record is written.
func (q *Queue) find(ctx context.Context, id string) (*jetstream.RawStreamMsg, error) {
	if at, ok := idTime(id); ok {
		raw, err := q.findByTime(ctx, id, at)
		switch {
		case errors.Is(err, errFindBudget):
			q.log.Warn("gave up searching for a notification by the time in its id", "id", id, "reads", q.findMaxReads)
		case raw != nil || err != nil:
			return raw, err
		}
	}
	return nil, jetstream.ErrMsgNotFound
}

// findByTime is find's search by time; it returns nil, nil when id is not
// stored around at, and errFindBudget after q.findMaxReads reads.
func (q *Queue) findByTime(ctx context.Context, id string, at time.Time) (*jetstream.RawStreamMsg, error) {
	info, err := q.stream.Info(ctx)
	if err != nil {
		return nil, err
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	if info.State.Msgs == 0 || first == 0 {
		return nil, nil
	}
	from, to := at.Add(-findSkew), at.Add(q.cfg.PublishTimeout+findLate+findSkew)
	reads := 0
	// get reads seq; with next, the first message at or after it. A
	// message that is not there (deleted, expired) is nil.
	get := func(seq uint64, next bool) (*jetstream.RawStreamMsg, error) {
		if reads >= q.findMaxReads {
			return nil, errFindBudget
		}
		reads++
		var opts []jetstream.GetMsgOpt
		if next {
			opts = append(opts, jetstream.WithGetMsgSubject(">"))
		}
		raw, err := q.stream.GetMsg(ctx, seq, opts...)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, nil
		}
		return raw, err
	}
	// hi becomes the first sequence whose next message was stored at or
	// after at (last+1 when none was), head that message: gallop down
	// from the end, then bisect. Everything before lo is older than at.
	lo, hi := first, last+1
	var head *jetstream.RawStreamMsg
	for d := uint64(1); ; d *= 2 {
		p := first
		if hi > first+d {
			p = hi - d
		}
		m, err := get(p, true)
		if err != nil {
			return nil, err
		}
		if m != nil && m.Time.Before(at) {
			lo = m.Sequence + 1
			break
		}
		hi, head = p, m
		if p == first {
			break
		}
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := get(mid, true)
		if err != nil {
			return nil, err
		}
		if m != nil && m.Time.Before(at) {
			lo = m.Sequence + 1
		} else {
			hi, head = mid, m
		}
	}
	// Forward from there: the copy is almost always among the first few.
	for m := head; m != nil && !m.Time.After(to); {
		if storedID(m.Header) == id {
			return m, nil
		}
		if m, err = get(m.Sequence+1, true); err != nil {
			return nil, err
		}
	}
	// Backward over what was stored just before at (clock skew).
	for seq := hi; seq > first; {
		seq--
		m, err := get(seq, false)
		if err != nil {
			return nil, err
		}
		if m == nil {
			continue
		}
		if m.Time.Before(from) {
			break
		}
		if storedID(m.Header) == id {
			return m, nil
		}
	}
	return nil, nil
}

var errFindBudget = errors.New("search budget spent")

// maxScan bounds how many stream messages one List page looks at, so a
// rare filter cannot make one call walk the whole stream. A page may then
// hold fewer items than asked for, with a token to go on.
func maxScan(pageSize int) int { return max(1000, 20*pageSize) }

// List returns notifications newest first, walking the stream downward from
// the page token's sequence. The token is opaque; a foreign one gives
// store.ErrBadPageToken.
func (q *Queue) List(ctx context.Context, qu store.Query) (store.Page, error) {
	pageSize := max(qu.PageSize, 1)
	var page store.Page
	err := q.walk(ctx, q.stream, qu.PageToken, pageSize, &page, func(raw *jetstream.RawStreamMsg) (*heraldv1.NotificationSummary, error) {
		n, err := decodeNotification(raw.Header, raw.Data)
		if err != nil {
			q.log.Warn("skipping undecodable notification", "seq", raw.Sequence, "err", err)
			return nil, nil
		}
		if qu.Severity != heraldv1.Severity_SEVERITY_UNSPECIFIED && n.GetSeverity() != qu.Severity {
			return nil, nil
		}
		sr, found, err := q.loadRecord(ctx, n.GetId())
		if err != nil {
			return nil, err
		}
		if found && sr.seq != 0 && sr.seq != raw.Sequence {
			return nil, nil // an older copy of a replayed notification
		}
		rec := sr.rec
		if rec == nil {
			rec = &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_PENDING}
		}
		if qu.State != heraldv1.DeliveryState_DELIVERY_STATE_UNSPECIFIED && rec.GetState() != qu.State {
			return nil, nil
		}
		return &heraldv1.NotificationSummary{Notification: n, Delivery: rec}, nil
	})
	return page, err
}

// walk visits the messages of s from the token's sequence (the last one
// when empty) downward, adding what visit returns to page until pageSize.
func (q *Queue) walk(ctx context.Context, s jetstream.Stream, token string, pageSize int, page *store.Page,
	visit func(*jetstream.RawStreamMsg) (*heraldv1.NotificationSummary, error),
) error {
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("queue: %w: %w", store.ErrUnavailable, err)
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	start := last
	if token != "" {
		seq, ok := decodePageToken(token)
		if !ok {
			return store.ErrBadPageToken
		}
		start = min(seq, last)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	scanned := 0
	seq := start
	for ; seq >= first && seq > 0; seq-- {
		if len(page.Items) == pageSize || scanned == maxScan(pageSize) {
			break
		}
		scanned++
		raw, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted or expired
		}
		if err != nil {
			return fmt.Errorf("queue: read seq %d: %w: %w", seq, store.ErrUnavailable, err)
		}
		item, err := visit(raw)
		if err != nil {
			return fmt.Errorf("queue: seq %d: %w: %w", seq, store.ErrUnavailable, err)
		}
		if item != nil {
			page.Items = append(page.Items, item)
		}
	}
	if seq >= first && seq > 0 {
		page.NextPageToken = encodePageToken(seq)
	}
	return nil
}

// ListDeadLetters returns dead letters newest first.
func (q *Queue) ListDeadLetters(ctx context.Context, pageSize int, pageToken string) (store.Page, error) {
	var page store.Page
	err := q.walk(ctx, q.dlq, pageToken, max(pageSize, 1), &page, func(raw *jetstream.RawStreamMsg) (*heraldv1.NotificationSummary, error) {
		return q.deadLetterSummary(ctx, raw)
	})
	return page, err
}

func (q *Queue) deadLetterSummary(ctx context.Context, raw *jetstream.RawStreamMsg) (*heraldv1.NotificationSummary, error) {
	id := idFromSubject(raw.Subject)
	var n *heraldv1.Notification
	if raw.Header.Get(hdrUndecodable) == "" {
		n, _ = decodeNotification(raw.Header, raw.Data)
	}
	if n == nil {
		n = &heraldv1.Notification{Id: id, Title: "undecodable payload"}
	}
	sr, _, err := q.loadRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	rec := sr.rec
	if rec == nil {
		rec = &heraldv1.DeliveryRecord{}
	}
	if rec.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED {
		rec = proto.CloneOf(rec)
		rec.State = heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED
	}
	return &heraldv1.NotificationSummary{Notification: n, Delivery: rec}, nil
}

// ReplayDeadLetters queues dead letters for delivery again. Each goes to
// the end of its partition as a new copy with the same notification id and
// the message id "<id>/replay/<n>", so repeating a replay that failed
// half-way stores nothing twice. Its record is reset to PENDING and its retry
// budget starts again at the new copy's stream time (Message.Enqueued). The
// dead letter is deleted once the copy is stored. Dead letters whose payload
// is not a notification are skipped by all and refused by id.
func (q *Queue) ReplayDeadLetters(ctx context.Context, ids []string, all bool) ([]string, error) {
	var raws []*jetstream.RawStreamMsg
	if all {
		var err error
		if raws, err = q.allDeadLetters(ctx); err != nil {
			return nil, err
		}
	} else {
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			if !validID(id) {
				return nil, fmt.Errorf("queue: dead letter %q: %w", id, store.ErrNotFound)
			}
			raw, err := q.dlq.GetLastMsgForSubject(ctx, dlqPrefix+id)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return nil, fmt.Errorf("queue: dead letter %s: %w", id, store.ErrNotFound)
			}
			if err != nil {
				return nil, fmt.Errorf("queue: dead letter %s: %w: %w", id, store.ErrUnavailable, err)
			}
			if raw.Header.Get(hdrUndecodable) != "" {
				return nil, fmt.Errorf("queue: dead letter %s holds an undecodable payload and cannot be replayed", id)
			}
			raws = append(raws, raw)
		}
	}
	var done []string
	for _, raw := range raws {
		if raw.Header.Get(hdrUndecodable) != "" {
			continue
		}
		id, err := q.replay(ctx, raw)
		if err != nil {
			return done, err
		}
		done = append(done, id)
	}
	return done, nil
}

func (q *Queue) allDeadLetters(ctx context.Context) ([]*jetstream.RawStreamMsg, error) {
	info, err := q.dlq.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: %w: %w", store.ErrUnavailable, err)
	}
	var raws []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := q.dlq.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("queue: read dead letter %d: %w: %w", seq, store.ErrUnavailable, err)
		}
		raws = append(raws, raw)
	}
	return raws, nil
}

func (q *Queue) replay(ctx context.Context, raw *jetstream.RawStreamMsg) (string, error) {
	n, err := decodeNotification(raw.Header, raw.Data)
	if err != nil {
		return "", fmt.Errorf("queue: dead letter seq %d is corrupt: %w", raw.Sequence, err)
	}
	id := n.GetId()
	count, _ := strconv.Atoi(raw.Header.Get(hdrReplay))
	count++
	source, _ := strconv.ParseUint(raw.Header.Get(hdrSourceSeq), 10, 64)
	// Reset the record before publishing: once published, the dispatcher
	// may write DELIVERED at any moment, and that must not be overwritten.
	// seq 0 makes Get search for a copy meanwhile (see find). A record at
	// seq 0 or past the dead-lettered copy means an earlier replay of this
	// dead letter got that far; its copy may be delivered already, so the
	// record is left alone.
	_, err = q.updateRecord(ctx, id, func(r *storedRecord, exists bool) bool {
		if exists && source != 0 && (r.seq == 0 || r.seq > source) {
			return false
		}
		r.seq = 0
		r.rec = &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_PENDING}
		return true
	})
	if err != nil {
		return "", fmt.Errorf("queue: replay %s: record: %w: %w", id, store.ErrUnavailable, err)
	}
	msg := &nats.Msg{
		Subject: partitionSubject(Partition(delivery.GroupKey(n), id, q.cfg.Partitions)),
		Header:  nats.Header{},
		Data:    raw.Data,
	}
	carryHeaders(msg.Header, raw.Header)
	// A dead letter of an older version has no id header.
	msg.Header.Set(hdrID, id)
	msg.Header.Set(hdrReplay, strconv.Itoa(count))
	if msg.Header.Get(hdrOrder) == "" && source != 0 {
		// Its group's later notifications that still wait go after it.
		msg.Header.Set(hdrOrder, strconv.FormatUint(source, 10))
	}
	msg.Header.Set(jetstream.MsgIDHeader, id+"/replay/"+strconv.Itoa(count))
	ack, err := q.publish(ctx, msg)
	if err != nil {
		if rerr := q.setState(ctx, id, 0, heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED); rerr != nil {
			q.log.Warn("could not restore dead-letter state", "id", id, "err", rerr)
		}
		return "", fmt.Errorf("queue: replay %s: %w: %w", id, store.ErrUnavailable, err)
	}
	if err := q.pinRecord(ctx, id, ack.Sequence); err != nil {
		return "", fmt.Errorf("queue: replay %s: record: %w: %w", id, store.ErrUnavailable, err)
	}
	if err := q.dlq.DeleteMsg(ctx, raw.Sequence); err != nil {
		// The deletion error does not say "not found" in a typed way;
		// look: a dead letter already gone is what we wanted.
		if _, gerr := q.dlq.GetMsg(ctx, raw.Sequence); !errors.Is(gerr, jetstream.ErrMsgNotFound) {
			return "", fmt.Errorf("queue: replay %s: delete dead letter: %w: %w", id, store.ErrUnavailable, err)
		}
	}
	return id, nil
}

// setState changes only the overall state of id's record; a record that
// does not say where its notification sits learns seq (0: unknown).
func (q *Queue) setState(ctx context.Context, id string, seq uint64, st heraldv1.DeliveryState) error {
	_, err := q.updateRecord(ctx, id, func(r *storedRecord, _ bool) bool {
		if r.rec.GetState() == st && (r.seq != 0 || seq == 0) {
			return false
		}
		if r.seq == 0 {
			r.seq = seq
		}
		if r.rec == nil {
			r.rec = &heraldv1.DeliveryRecord{}
		}
		r.rec.State = st
		return true
	})
	return err
}
