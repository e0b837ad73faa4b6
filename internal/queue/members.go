package queue

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"hash/fnv"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Replicas share the partitions. Each herald consuming from a cluster
// writes a key to the members bucket every memberBeat and watches the
// others' keys; every replica derives the same assignment from the same
// list of members, and pulls only the partitions assigned to it. The
// assignment spreads load; it does not guard order. That is the pin's
// job: while views of the members differ, two replicas may pull one
// partition, and JetStream still hands it to one of them only.

// MembersBucket holds one key per herald replica consuming from the
// cluster.
const MembersBucket = "herald_members"

const (
	// memberBeat is how often a replica says it is there.
	memberBeat = time.Second
	// memberTTL is how long a replica not heard from keeps its
	// partitions: then the others take them over.
	memberTTL = 4 * time.Second
)

// members is this replica's view of the replicas and the partitions it
// owns.
type members struct {
	kv    jetstream.KeyValue
	self  string
	parts int
	log   *slog.Logger

	mu sync.Mutex
	// seen is when each member's key was last written, by this replica's
	// clock.
	seen map[string]time.Time
	// owners is the current assignment, partition to member.
	owners []string
	// changed is closed, and replaced, when owners changes.
	changed chan struct{}
	// settled: the members' keys were read and the replicas starting at
	// the same time had a beat to show up. Before, this replica owns no
	// partition: one it served for a moment and then handed on would
	// cost its next owner a takeover's wait.
	settled bool
	// loaded is closed once the watch delivered the keys there were.
	loaded     chan struct{}
	loadedOnce sync.Once
}

// memberValue is what a member's key holds, for operators reading the
// bucket.
type memberValue struct {
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
}

func newMembers(kv jetstream.KeyValue, parts int, log *slog.Logger) *members {
	var b [6]byte
	_, _ = rand.Read(b[:])
	m := &members{
		kv:      kv,
		self:    hex.EncodeToString(b[:]),
		parts:   parts,
		log:     log,
		seen:    map[string]time.Time{},
		changed: make(chan struct{}),
		loaded:  make(chan struct{}),
	}
	m.owners = assign(parts, []string{m.self})
	return m
}

// owns reports whether this replica should serve partition p, and a
// channel closed when that may have changed.
func (m *members) owns(p int) (bool, <-chan struct{}) {
	if m == nil {
		return true, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.settled && m.owners[p] == m.self, m.changed
}

// settle lets this replica own partitions, once it knows the others.
func (m *members) settle() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.settled = true
	m.log.Info("serving its share of the partitions", "replicas", len(slices.Compact(slices.Sorted(slices.Values(m.owners)))), "partitions", m.parts)
	close(m.changed)
	m.changed = make(chan struct{})
}

// run keeps this replica's key fresh and the assignment current until ctx
// ends, then deletes the key so that the others take over at once.
func (m *members) run(ctx context.Context) {
	host, _ := os.Hostname()
	val, _ := json.Marshal(memberValue{Host: host, PID: os.Getpid(), Started: time.Now().UTC()})
	beat := func() {
		bctx, cancel := context.WithTimeout(ctx, memberBeat)
		defer cancel()
		if _, err := m.kv.Put(bctx, m.self, val); err != nil && ctx.Err() == nil {
			m.log.Debug("cannot write this replica's member key", "err", err)
		}
	}
	beat()
	var wg sync.WaitGroup
	wctx, stopWatch := context.WithCancel(ctx)
	wg.Go(func() { m.watch(wctx) })
	t := time.NewTicker(memberBeat)
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-m.loaded:
		}
		if sleepCtx(ctx, memberBeat) {
			m.update(time.Now())
			m.settle()
		}
	}()
	for {
		m.update(time.Now())
		select {
		case <-ctx.Done():
		case <-t.C:
			beat()
			continue
		}
		break
	}
	t.Stop()
	stopWatch()
	wg.Wait()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = m.kv.Delete(dctx, m.self)
}

// watch follows the members' keys until ctx ends, watching again after a
// failure.
func (m *members) watch(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := m.kv.WatchAll(ctx)
		if err != nil {
			m.log.Debug("cannot watch the members bucket; retrying", "err", err)
			sleepCtx(ctx, memberBeat)
			continue
		}
		for e := range w.Updates() {
			if e == nil {
				m.loadedOnce.Do(func() { close(m.loaded) })
				continue
			}
			m.mu.Lock()
			if e.Operation() == jetstream.KeyValuePut {
				m.seen[e.Key()] = time.Now()
			} else {
				delete(m.seen, e.Key())
			}
			m.mu.Unlock()
			m.update(time.Now())
		}
		_ = w.Stop()
	}
}

// update forgets members not heard from for memberTTL and recomputes the
// assignment.
func (m *members) update(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := []string{m.self}
	for id, at := range m.seen {
		if now.Sub(at) > memberTTL {
			delete(m.seen, id)
			continue
		}
		if id != m.self {
			ids = append(ids, id)
		}
	}
	owners := assign(m.parts, ids)
	if slices.Equal(owners, m.owners) {
		return
	}
	mine := 0
	for _, o := range owners {
		if o == m.self {
			mine++
		}
	}
	m.log.Info("partitions reassigned", "replicas", len(ids), "mine", mine, "partitions", m.parts)
	m.owners = owners
	close(m.changed)
	m.changed = make(chan struct{})
}

// assign gives each of parts partitions an owner among ids, the same for
// the same ids in any order: each member gets ⌊parts/len(ids)⌋ or one
// more, and a partition goes to the member ranking it highest among those
// with room (rendezvous hashing with bounded load), so that a member
// joining or leaving moves few partitions.
func assign(parts int, ids []string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	base, extra := parts/len(ids), parts%len(ids)
	load := map[string]int{}
	owners := make([]string, parts)
	type rank struct {
		id string
		h  uint64
	}
	ranks := make([]rank, len(ids))
	for p := range parts {
		for i, id := range ids {
			h := fnv.New64a()
			h.Write([]byte(id))
			h.Write([]byte{0})
			h.Write(strconv.AppendInt(nil, int64(p), 10))
			ranks[i] = rank{id, h.Sum64()}
		}
		slices.SortFunc(ranks, func(a, b rank) int { return cmp.Or(cmp.Compare(b.h, a.h), cmp.Compare(a.id, b.id)) })
		for _, r := range ranks {
			n := load[r.id]
			if n < base || n == base && extra > 0 {
				if n == base {
					extra--
				}
				owners[p] = r.id
				load[r.id]++
				break
			}
		}
	}
	return owners
}
