package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// Damage.
//
// A damaged data dir (a block file overwritten or emptied by a disk fault
// or an operator) loses stored notifications, and JetStream recovers
// without them. herald notices at start: JetStream reports what it found
// corrupt (StreamState.Lost), and herald compares the stream with a mark
// of it kept every markEvery (its last sequence, its first notification):
// notifications never leave the stream except by age, so a stream that
// ends earlier, or whose first notification is later than age explains,
// lost them. The count is of stored messages, wake-ups among them. Those that were not yet delivered (after the lowest
// ack floor of the partitions) are reported: an error log with their
// sequences and, where a delivery record names them, their ids;
// herald_queue_lost_total; and their records set to LOST. Parked
// notifications are reported when their turn comes (runParked).

// markKey holds the stream's mark in the groups bucket (parked groups are
// "<partition>.<group>").
const markKey = "meta.stream"

// markEvery is how often the stream's mark is kept.
const markEvery = 10 * time.Second

// streamMark is what herald last saw of the notification stream.
type streamMark struct {
	// FirstSeq and FirstTime are the first notification's (wake-ups and
	// schedules come and go; notifications leave only by age).
	FirstSeq  uint64    `json:"first_seq"`
	FirstTime time.Time `json:"first_time"`
	LastSeq   uint64    `json:"last_seq"`
	At        time.Time `json:"at"`
}

// keepMarks writes the stream's mark every markEvery until stop, and once
// more at stop.
func (q *Queue) keepMarks() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for sleepCtx(ctx, markEvery) {
			if err := q.writeMark(ctx); err != nil {
				q.log.Debug("cannot keep the stream's mark", "err", err)
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = q.writeMark(ctx)
	}
}

func (q *Queue) writeMark(ctx context.Context) error {
	info, err := q.stream.Info(ctx)
	if err != nil {
		return err
	}
	st := info.State
	m := streamMark{LastSeq: st.LastSeq, At: time.Now()}
	if raw, err := q.firstNotification(ctx); err == nil {
		m.FirstSeq, m.FirstTime = raw.Sequence, raw.Time
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = q.groups.Put(ctx, markKey, b)
	return err
}

// firstNotification is the stream's first notification.
func (q *Queue) firstNotification(ctx context.Context) (*jetstream.RawStreamMsg, error) {
	return q.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subjectPrefix+">"))
}

// checkDamage reports the notifications the stream lost since herald last
// saw it (see Damage). It changes nothing but their records.
func (q *Queue) checkDamage(ctx context.Context) error {
	info, err := q.stream.Info(ctx)
	if err != nil {
		return err
	}
	st := info.State
	var lost []uint64
	if st.Lost != nil {
		lost = append(lost, st.Lost.Msgs...)
	}
	if e, err := q.groups.Get(ctx, markKey); err == nil {
		var m streamMark
		if json.Unmarshal(e.Value(), &m) == nil {
			if st.LastSeq < m.LastSeq {
				for s := max(st.LastSeq+1, m.FirstSeq); s <= m.LastSeq; s++ {
					lost = append(lost, s)
				}
			}
			// Age removes the oldest first; a first notification younger
			// than retention at the mark cannot have aged out since.
			first := st.LastSeq + 1
			if raw, err := q.firstNotification(ctx); err == nil {
				first = raw.Sequence
			}
			if m.FirstSeq > 0 && first > m.FirstSeq && time.Since(m.FirstTime) < q.cfg.Retention {
				for s := m.FirstSeq; s < first && s <= m.LastSeq; s++ {
					lost = append(lost, s)
				}
			}
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	slices.Sort(lost)
	lost = slices.Compact(lost)
	// What every partition acknowledged was delivered (or is parked, and
	// reported at its turn).
	floor := uint64(1<<64 - 1)
	for _, c := range q.consumers {
		ci, err := c.Info(ctx)
		if err != nil {
			return err
		}
		floor = min(floor, ci.AckFloor.Stream)
	}
	lost = slices.DeleteFunc(lost, func(s uint64) bool { return s <= floor })
	if len(lost) == 0 {
		return nil
	}
	ids := q.markLost(ctx, lost)
	q.m.lost.Add(float64(len(lost)))
	q.log.Error("the data dir lost stored notifications that were not delivered yet; herald cannot deliver them",
		"count", len(lost), "seqs", seqRanges(lost), "ids", ids, "store_dir", q.storeDir)
	return nil
}

// markLost sets the records of the notifications at seqs to LOST and
// returns their ids (at most 100). Records are read for at most 30s.
func (q *Queue) markLost(ctx context.Context, seqs []uint64) []string {
	if len(seqs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w, err := q.records.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil
	}
	defer w.Stop()
	set := make(map[uint64]bool, len(seqs))
	for _, s := range seqs {
		set[s] = true
	}
	var ids []string
	for e := range w.Updates() {
		if e == nil {
			break // all current entries seen
		}
		r, err := decodeRecord(e.Value())
		if err != nil || !set[r.seq] {
			continue
		}
		switch r.rec.GetState() {
		case heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED:
			continue
		}
		if err := q.setState(ctx, e.Key(), r.seq, heraldv1.DeliveryState_DELIVERY_STATE_LOST); err != nil {
			q.log.Warn("cannot mark a lost notification's record", "id", e.Key(), "err", err)
		}
		if len(ids) < 100 {
			ids = append(ids, e.Key())
		}
	}
	return ids
}

// seqRanges writes seqs (sorted) as "1-5,9,12-14", at most 20 ranges.
func seqRanges(seqs []uint64) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if n == 20 {
			fmt.Fprintf(&b, ",…")
			break
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(seqs[i], 10))
		if j > i {
			b.WriteString("-" + strconv.FormatUint(seqs[j], 10))
		}
		n++
		i = j + 1
	}
	return b.String()
}
