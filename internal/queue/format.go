package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// What herald keeps in JetStream: data format 1. This is the whole of it;
// the embedded server keeps it in <data_dir>/jetstream, a cluster in its
// own stores. Open checks the format (checkFormat) and refuses any other.
//
// Stream HERALD_NOTIFICATIONS (limits retention, queue.retention):
//   - herald.n.<p>: a notification of partition p (Partition: FNV-1a of
//     the group key, or of the id without one, modulo queue.partitions).
//     Payload: the protobuf herald.v1.Notification, S2-compressed when the
//     header Herald-Encoding is "s2" (payload.go). Headers: Herald-Id (the
//     id), Nats-Msg-Id (the idempotency key, or the id: deduplication
//     within queue.duplicate_window), the trace context, and for a replayed
//     dead letter Herald-Replay and Herald-Order (its place in its group).
//   - herald.w.<p>: a wake-up of a parked group of partition p (header
//     Herald-Group), stored by the schedule herald.s.<p>.<group> (@at).
//   - One durable consumer per partition, herald-part-<p>, on herald.n.<p>
//     and herald.w.<p>, with the priority group "herald" (pinned client).
//
// Stream HERALD_DEADLETTERS: herald.dlq.<id>, one per notification (the
// last kept), the payload and headers as stored, plus Herald-Reason,
// Herald-Source-Seq and, for a payload that is not a Notification,
// Herald-Undecodable.
//
// Key-value buckets:
//   - herald_records: <id> → the protobuf herald.v1.DeliveryRecord
//     (record.go), written by the dispatcher; TTL queue.retention.
//   - herald_threads: <sink>.<hash of the group key> → the chat message
//     that stands for the group (herald.v1.MessageRef); TTL queue.retention.
//   - herald_groups: <p>.<group hash> → a parked group (park.go, JSON);
//     handoff.<p> → the last handover of partition p (takeover.go);
//     meta.stream → the stream's mark (damage.go); meta.format → this
//     format's version.
//   - herald_members (on a cluster only, in memory): <replica id> → the
//     replicas sharing the partitions (members.go).

// FormatVersion is the version of what herald keeps in JetStream, above.
const FormatVersion = 1

// formatKey holds FormatVersion in the groups bucket.
const formatKey = "meta.format"

// checkFormat refuses a queue written in another format, and marks a new
// one (or one written before the mark existed, which is format 1) with
// this one.
func (q *Queue) checkFormat(ctx context.Context) error {
	want := strconv.Itoa(FormatVersion)
	e, err := q.groups.Get(ctx, formatKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		_, err = q.groups.Create(ctx, formatKey, []byte(want))
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
		// Another replica starting at the same time wrote it.
		e, err = q.groups.Get(ctx, formatKey)
	}
	if err != nil {
		return fmt.Errorf("read the queue's format: %w", err)
	}
	if have := string(e.Value()); have != want {
		return fmt.Errorf("%w: the queue holds data format %q, and this herald reads format %s only: run the herald version that wrote it, or start on an empty data dir (or cluster)",
			ErrIncompatible, have, want)
	}
	return nil
}
