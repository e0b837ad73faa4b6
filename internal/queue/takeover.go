package queue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Takeovers. A partition is pinned to one herald at a time; the pin moves
// when its herald stops pulling (it died, or paused past the pin's TTL) or
// the consumer's leader changes. The herald that gains it must not let a
// group's later notification overtake one the previous herald had in hand,
// and the herald that lost it must stop delivering.

// wholePartition in unsettled holds every group of the partition.
const wholePartition = "*"

// maxUnsettledReads bounds the stream reads of a takeover; past it the
// whole partition waits for ack_wait instead of the groups concerned.
const maxUnsettledReads = 4096

// pinCheck is how often a herald asks whether it still serves a
// partition.
const pinCheck = 2 * time.Second

// watchPin notices that the partition was pinned to another herald (after
// a pause longer than the pin's TTL, or a consumer leader change): it then
// hands back every notification in hand that is not being attempted, so
// the new herald gets them at once, and lets the attempts under way end.
func (pt *part) watchPin(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for sleepCtx(ctx, pinCheck) {
			pt.mu.Lock()
			served, pin := pt.served, pt.pin
			pt.mu.Unlock()
			if !served {
				continue
			}
			info, err := pt.consumer().Info(ctx)
			if err != nil {
				continue
			}
			for _, g := range info.PriorityGroups {
				if g.Group == priorityGroup && g.PinnedClientID != "" && g.PinnedClientID != pin {
					pt.lost(pin)
				}
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// lost gives up a partition whose pin moved on.
func (pt *part) lost(pin string) {
	pt.mu.Lock()
	if !pt.served || pt.pin != pin {
		pt.mu.Unlock()
		return
	}
	pt.served, pt.pin = false, ""
	var back []jetstream.Msg
	for key, g := range pt.active {
		keep := 0
		if g.running || g.parking {
			keep = 1
		}
		for _, h := range g.msgs[keep:] {
			back = append(back, h.msg)
			delete(pt.alive, h.seq)
		}
		g.msgs = g.msgs[:keep]
		if len(g.msgs) == 0 {
			delete(pt.active, key)
		}
	}
	for key, pg := range pt.parked {
		if !pg.running {
			delete(pt.parked, key)
		}
	}
	clear(pt.unsettled)
	// Attempts under way are cut short (the dispatcher records them and
	// releases the message), so the new herald gets them within its hold.
	pt.runCancel()
	pt.runCtx, pt.runCancel = context.WithCancel(pt.consumeCtx)
	pt.mu.Unlock()
	pt.log.Warn("the partition moved to another herald; handing everything back", "handed_back", len(back))
	nakInOrder(back)
}

// takeover notices that this herald (again) serves the partition: msg
// carries a pin id it has not seen. It loads the partition's parked groups
// and schedules a wake-up for each at its due time (replacing the one the
// previous herald scheduled; one lost with it would leave its group
// parked). When JetStream
// counts messages in hand that are not this herald's, the previous
// herald's deliveries may still be in flight; new groups are then held
// for ack_wait (and a second), by when each of those is acknowledged or
// back in this herald's hand (the previous herald hands back what it holds
// once it sees the pin moved, and a dead one's come back after ack_wait),
// so that no group's later notification overtakes one the previous herald
// was delivering.
func (pt *part) takeover(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata) {
	pin := msg.Headers().Get("Nats-Pin-Id")
	pt.mu.Lock()
	if pt.served && pin == pt.pin {
		pt.mu.Unlock()
		return
	}
	first := !pt.served
	pt.served, pt.pin = true, pin
	pt.mu.Unlock()

	q := pt.q
	keys, err := q.parkedKeys(ctx, pt.p)
	if err != nil {
		pt.log.Warn("cannot list the partition's parked groups", "err", err)
	}
	for _, key := range keys {
		_, gk, _ := strings.Cut(key, ".")
		e, rev, err := q.readPark(ctx, key)
		if err != nil || rev == 0 {
			continue
		}
		pt.mu.Lock()
		pg := pt.parked[gk]
		if pg == nil {
			pg = &parkedGroup{key: gk}
			pt.parked[gk] = pg
		}
		if !pg.running {
			pg.e, pg.rev = e, rev
		}
		pt.mu.Unlock()
		if err := q.scheduleWake(ctx, pt.p, gk, e.Due); err != nil {
			pt.log.Warn("cannot schedule a parked group's wake-up", "group", gk, "err", err)
		}
	}
	clean := pt.takeHandoff(ctx, md)
	n := pt.unsettle(ctx, first, clean)
	pt.log.Info("serving partition", "parked_groups", len(keys), "unsettled", n, "first", first, "handed_over", clean)
	switch {
	case n == 0:
		q.m.takeovers.WithLabelValues("none").Inc()
		return
	case n < 0:
		q.m.takeovers.WithLabelValues("partition").Inc()
	default:
		q.m.takeovers.WithLabelValues("groups").Inc()
	}
	start := time.Now()
	pt.runners.Go(func() {
		defer func() {
			pt.mu.Lock()
			clear(pt.unsettled)
			pt.mu.Unlock()
			pt.startWaiting()
			waited := time.Since(start)
			q.m.takeoverWait.Observe(waited.Seconds())
			pt.log.Info("took over the partition; every group flows", "waited", waited.Round(time.Millisecond))
		}()
		for sleepCtx(ctx, 250*time.Millisecond) {
			pt.mu.Lock()
			left := len(pt.unsettled)
			late := time.Now().After(pt.settleBy)
			pt.mu.Unlock()
			if left == 0 || late {
				return
			}
			info, err := pt.consumer().Info(ctx)
			if err != nil {
				continue
			}
			pt.mu.Lock()
			for key, seqs := range pt.unsettled {
				if key == wholePartition {
					continue // ends with settleBy only
				}
				seqs = slices.DeleteFunc(seqs, func(s uint64) bool { return s <= info.AckFloor.Stream })
				if len(seqs) == 0 {
					delete(pt.unsettled, key)
				} else {
					pt.unsettled[key] = seqs
				}
			}
			pt.mu.Unlock()
			pt.startWaiting()
		}
	})
}

// unsettle lists, by group, the partition's notifications between the
// consumer's ack floor and its last delivery: handed out before this
// herald took over and perhaps not acknowledged. They come back (after the
// previous herald handed them back, or after ack_wait), possibly after
// later ones of their group and in any order; until each is back in hand
// or acknowledged, its group waits, at most ack_wait and a second. It
// returns how many it listed.
//
// clean says that the herald before handed the partition over with
// nothing in hand (takeHandoff): then only the groups listed wait, until
// their notifications are back, which is at once.
func (pt *part) unsettle(ctx context.Context, first, clean bool) int {
	q := pt.q
	info, err := pt.consumer().Info(ctx)
	// What a herald held comes back ack_wait after its last progress
	// signal, which JetStream may only notice one ack_wait later.
	settleBy := time.Now().Add(2*q.cfg.AckWait + 2*time.Second)
	un := map[string][]uint64{}
	count := 0
	pt.mu.Lock()
	crashed := pt.pendingAtStart > 0 && !clean
	pt.pendingAtStart = 0
	pt.mu.Unlock()
	if err != nil || crashed {
		// Unknown; or this herald starts where one that died (kill -9, a
		// crash) left messages in hand. After such a restart the
		// consumer's record of its deliveries may lag what it did, and
		// what it held comes back, in any order, up to two ack_waits
		// later: the whole partition waits that long.
		un[wholePartition] = []uint64{0}
	} else {
		reads := 0
		for seq := info.AckFloor.Stream + 1; seq <= info.Delivered.Stream; seq++ {
			if reads++; reads > maxUnsettledReads {
				un = map[string][]uint64{wholePartition: {0}}
				break
			}
			raw, err := q.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(partitionSubject(pt.p)))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				un = map[string][]uint64{wholePartition: {0}}
				break
			}
			if raw.Sequence > info.Delivered.Stream {
				break
			}
			seq = raw.Sequence
			n, err := decodeNotification(raw.Header, raw.Data)
			if err != nil {
				continue
			}
			key := groupHash(n)
			un[key] = append(un[key], seq)
			count++
		}
	}
	if count > 0 && !first && !clean {
		// A consumer leader change (a node lost) or a crash can leave
		// JetStream's record of what was handed out behind what was, so
		// the groups listed may miss some: while anything was in hand
		// elsewhere, the whole partition waits. (At a first start what
		// the scan finds is this herald's own first batch, unless a herald
		// before it died: pendingAtStart, above.)
		un = map[string][]uint64{wholePartition: {0}}
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	// What this herald holds is settled.
	for key, seqs := range un {
		seqs = slices.DeleteFunc(seqs, func(s uint64) bool { _, ok := pt.alive[s]; return ok })
		if len(seqs) == 0 {
			delete(un, key)
		} else {
			un[key] = seqs
		}
	}
	pt.unsettled, pt.settleBy = un, settleBy
	if _, ok := un[wholePartition]; ok {
		return -1
	}
	return count
}

// settleLocked notes that seq of group key is in hand.
func (pt *part) settleLocked(key string, seq uint64) {
	seqs, ok := pt.unsettled[key]
	if !ok {
		return
	}
	seqs = slices.DeleteFunc(seqs, func(s uint64) bool { return s == seq })
	if len(seqs) == 0 {
		delete(pt.unsettled, key)
	} else {
		pt.unsettled[key] = seqs
	}
}

// mayRunLocked reports whether g's head may be attempted: no notification
// of g before it is still unsettled.
func (pt *part) mayRunLocked(g *group) bool {
	if len(pt.unsettled) == 0 {
		return true
	}
	if _, ok := pt.unsettled[wholePartition]; ok {
		return false
	}
	seqs := pt.unsettled[g.key]
	return len(seqs) == 0 || len(g.msgs) > 0 && slices.Min(seqs) > g.msgs[0].seq
}

// startWaiting starts the groups a takeover held back that may run now.
func (pt *part) startWaiting() {
	pt.mu.Lock()
	var start []*group
	for _, g := range pt.active {
		if !g.running && !g.parking && len(g.msgs) > 0 && pt.mayRunLocked(g) {
			g.running = true
			start = append(start, g)
		}
	}
	ctx := pt.runCtx
	pt.mu.Unlock()
	for _, g := range start {
		pt.runners.Go(func() { pt.run(ctx, g) })
	}
}

// handoffKey is the groups bucket's key of partition p's last handover.
func handoffKey(p int) string { return "handoff." + strconv.Itoa(p) }

// handoffEntry says that the herald pinned to a partition gave it up with
// every notification it held acknowledged or handed back, when JetStream
// had handed out Consumer deliveries of it.
type handoffEntry struct {
	Consumer uint64    `json:"consumer"`
	At       time.Time `json:"at"`
}

// handOff gives up a partition that another replica owns now (members.go)
// without cutting attempts short: it hands back the groups waiting, lets
// the attempts under way end (each runner then hands back the rest of its
// group), and tells the next herald so that it need not wait (markHandoff).
func (pt *part) handOff(ctx context.Context) {
	pt.mu.Lock()
	if !pt.served {
		pt.mu.Unlock()
		return
	}
	pin := pt.pin
	pt.served, pt.pin = false, ""
	var back []jetstream.Msg
	for key, g := range pt.active {
		if g.running || g.parking {
			continue // its runner hands it back after the attempt
		}
		for _, h := range g.msgs {
			back = append(back, h.msg)
			delete(pt.alive, h.seq)
		}
		delete(pt.active, key)
	}
	clear(pt.unsettled)
	pt.mu.Unlock()
	nakInOrder(back)
	pt.runners.Wait()
	pt.mu.Lock()
	clear(pt.parked)
	pt.mu.Unlock()
	pt.markHandoff(ctx, pin)
}

// markHandoff, once this herald has nothing of the partition in hand,
// writes the handover entry and unpins the partition, so that the replica
// that owns it now is pinned at its next pull and holds back only the
// groups it gets back. Without the entry the next herald holds the whole
// partition for two ack_waits, as after a crash. The entry is written only
// while this herald is still pinned; the next herald trusts it only when
// its first delivery directly follows (takeHandoff).
func (pt *part) markHandoff(ctx context.Context, pin string) {
	q := pt.q
	if pin == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.cfg.PublishTimeout)
	defer cancel()
	info, err := pt.consumer().Info(ctx)
	if err != nil || pinnedID(info) != pin {
		pt.log.Info("the partition moved on before its handover was recorded; the next herald waits out ack_wait")
		return
	}
	e, _ := json.Marshal(handoffEntry{Consumer: info.Delivered.Consumer, At: time.Now().UTC()})
	if _, err := q.groups.Put(ctx, handoffKey(pt.p), e); err != nil {
		pt.log.Warn("cannot record the partition's handover; the next herald waits out ack_wait", "err", err)
		return
	}
	if err := q.stream.UnpinConsumer(ctx, consumerName(pt.p), priorityGroup); err != nil {
		pt.log.Warn("cannot unpin the partition; the next herald gets it when the pin expires", "err", err)
	}
	pt.log.Info("handed the partition over")
}

// takeHandoff reads and removes the partition's handover entry, and
// reports whether it stands for this takeover: md, the first delivery to
// this herald, directly follows the deliveries the entry counted, so
// nothing was handed to anybody in between.
func (pt *part) takeHandoff(ctx context.Context, md *jetstream.MsgMetadata) bool {
	q := pt.q
	ent, err := q.groups.Get(ctx, handoffKey(pt.p))
	if err != nil {
		return false
	}
	_ = q.groups.Delete(ctx, handoffKey(pt.p), jetstream.LastRevision(ent.Revision()))
	var e handoffEntry
	if json.Unmarshal(ent.Value(), &e) != nil {
		return false
	}
	return md.Sequence.Consumer == e.Consumer+1
}

// pinnedID is the partition's pinned herald, or "".
func pinnedID(info *jetstream.ConsumerInfo) string {
	for _, g := range info.PriorityGroups {
		if g.Group == priorityGroup {
			return g.PinnedClientID
		}
	}
	return ""
}

// nakInOrder hands msgs back in stream order: JetStream hands them out
// again in stream order, so a group's come back in its order.
func nakInOrder(msgs []jetstream.Msg) {
	slices.SortFunc(msgs, func(a, b jetstream.Msg) int { return cmp.Compare(seqOf(a), seqOf(b)) })
	for _, m := range msgs {
		handBackMsg(m)
	}
}

// handBackMsg gives m back for redelivery at once, in a way that outlives
// the NATS server: a plain Nak is kept only in the server's memory, so
// after a restart of the embedded server the message would wait out
// ack_wait from its first delivery; a Nak with a delay is written to the
// consumer's stored state as "due now", and the next herald gets it as
// soon as it pulls. JetStream redelivers the due ones in stream order.
func handBackMsg(m jetstream.Msg) {
	_ = m.NakWithDelay(time.Millisecond)
}
