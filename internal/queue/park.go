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
)

// Parking.
//
// A group that must wait (its head is to be retried later, its sink is
// throttled, its chain is broken) leaves the partition: its waiting
// notifications are listed, by stream sequence, in the groups bucket under
// "<partition>.<group hash>", and their JetStream messages are acknowledged,
// so they neither occupy max_in_hand nor hold anything else back. The
// notifications themselves stay where they are in the stream. A wake-up
// message on herald.w.<partition> stands for the group's timer: it is
// handed out (NakWithDelay) when the group is due, to whichever herald
// serves the partition then. Notifications of the group that arrive while
// it is parked are added to its list. The group's list is then worked off
// from its head, in order, and once it is empty the group is deleted from
// the bucket and flows through the partition again.

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
	id := "g:" + n.GetGroupKey()
	if n.GetGroupKey() == "" {
		id = "i:" + n.GetId()
	}
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:16])
}

func parkKey(p int, group string) string { return strconv.Itoa(p) + "." + group }

func wakeSubject(p int) string { return wakePrefix + strconv.Itoa(p) }

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

// publishWake stores the wake-up message of a parked group of partition p.
func (q *Queue) publishWake(ctx context.Context, p int, group string) error {
	m := &nats.Msg{Subject: wakeSubject(p), Header: nats.Header{}}
	m.Header.Set(hdrGroup, group)
	// Unique per call: a wake-up too many is harmless (see part.wake),
	// one too few would leave the group parked until the partition's
	// next takeover.
	m.Header.Set(jetstream.MsgIDHeader, "w:"+group+":"+strconv.FormatInt(time.Now().UnixNano(), 36))
	_, err := q.publish(ctx, m)
	return err
}
