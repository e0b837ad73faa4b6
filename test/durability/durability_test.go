// Package durability_test checks herald's delivery guarantees against
// failures of whole processes: a herald killed with SIGKILL and restarted on
// its data dir (crash_test.go), and a three-node NATS cluster losing a node
// while one of two herald replicas stops (cluster_test.go). Both publish
// notifications through the Connect API to a fake Rocket.Chat
// (sinks/rocketchat/rocketchattest) that answers slowly, then read what the
// fake stored and check: every acknowledged notification was delivered,
// duplicates are counted and explained, and a group's notifications arrived
// in publish order. leader_loss_test.go checks that herald's queue writes
// in flight when a cluster node dies are sent again to the new leader.
//
// All skip under -short.
package durability_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/gen/herald/v1/heraldv1connect"
	"github.com/herald-notify/herald/sinks/rocketchat"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"

	"connectrpc.com/connect"
)

// waitLimit bounds every wait for a process or a cluster to do something.
// It is a deadline for a hung test, not a speed assertion.
const waitLimit = 90 * time.Second

// sinkName is the Rocket.Chat sink's name in every config; message ids in
// REST mode derive from it (rocketchat.MessageID).
const sinkName = "rocketchat"

// room is the channel every notification is routed to.
const room = "alerts"

// note is one notification a test publishes.
type note struct {
	// seq is the note's place in the plan; within a group, publish order.
	seq   int
	group string
	// marker is unique and is the notification's title: every chat message
	// posted for the note carries it, so a message is traced back to its
	// note even when the publish was never acknowledged (and herald's id
	// is unknown).
	marker string
}

var markerRE = regexp.MustCompile(`\bdurable(\d{5})x\b`)

func markerOf(seq int) string { return fmt.Sprintf("durable%05dx", seq) }

// newPlan returns total notes: every fifth belongs to one of multi groups
// (so those groups have several notifications, whose order is checked),
// the others each to a group of its own.
func newPlan(total, multi int) []note {
	plan := make([]note, total)
	for i := range plan {
		g := fmt.Sprintf("solo-%05d", i)
		if i%5 == 0 {
			g = fmt.Sprintf("multi-%02d", (i/5)%multi)
		}
		plan[i] = note{seq: i, group: g, marker: markerOf(i)}
	}
	return plan
}

// split deals the plan out to n publishers, each group to exactly one of
// them, each publisher's notes in plan order: a group's notes are published
// one after the other, so publish order within a group is plan order.
func split(plan []note, n int) [][]note {
	owner := map[string]int{}
	out := make([][]note, n)
	for _, nt := range plan {
		p, ok := owner[nt.group]
		if !ok {
			p = len(owner) % n
			owner[nt.group] = p
		}
		out[p] = append(out[p], nt)
	}
	return out
}

func (nt note) notification() *heraldv1.Notification {
	return &heraldv1.Notification{
		IdempotencyKey: nt.marker,
		Source:         "durability-test",
		Severity:       heraldv1.Severity_SEVERITY_CRITICAL,
		Status:         heraldv1.Status_STATUS_FIRING,
		Title:          nt.marker,
		Text:           "group " + nt.group + ", note " + strconv.Itoa(nt.seq),
		GroupKey:       nt.group,
		Labels:         map[string]string{"test": "durability", "group": nt.group},
	}
}

// ledger records what publishing achieved, by seq.
type ledger struct {
	mu sync.Mutex
	// acked maps a note to the id herald answered with (a 2xx).
	acked map[int]string
	// failed counts the attempts that got no 2xx, by note.
	failed map[int]int
	// lastErr is one error per note that was never acknowledged.
	lastErr map[int]error
}

func newLedger() *ledger {
	return &ledger{acked: map[int]string{}, failed: map[int]int{}, lastErr: map[int]error{}}
}

func (l *ledger) ack(seq int, id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acked[seq] = id
	delete(l.lastErr, seq)
	return len(l.acked)
}

func (l *ledger) fail(seq int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed[seq]++
	if _, ok := l.acked[seq]; !ok {
		l.lastErr[seq] = err
	}
}

func (l *ledger) snapshot() (acked map[int]string, failedAttempts int, neverAcked map[int]error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	acked = map[int]string{}
	for k, v := range l.acked {
		acked[k] = v
	}
	neverAcked = map[int]error{}
	for k, v := range l.lastErr {
		neverAcked[k] = v
	}
	for _, n := range l.failed {
		failedAttempts += n
	}
	return acked, failedAttempts, neverAcked
}

// newClient is a Connect client for the herald at url with a bearer token;
// its own transport, so no connection is shared with another test.
func newClient(url, token string) (heraldv1connect.NotificationServiceClient, *http.Transport) {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
	}
	hc := &http.Client{Transport: bearer{token: token, next: tr}, Timeout: 15 * time.Second}
	return heraldv1connect.NewNotificationServiceClient(hc, url), tr
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// publish makes one Publish attempt for nt.
func publish(ctx context.Context, c heraldv1connect.NotificationServiceClient, nt note) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	res, err := c.Publish(ctx, connect.NewRequest(&heraldv1.PublishRequest{Notification: nt.notification()}))
	if err != nil {
		return "", err
	}
	return res.Msg.GetId(), nil
}

// post is one chat message the fake stored for a note.
type post struct {
	id  string // the chat message id
	via string
	// thread is the parent's id for a thread reply.
	thread string
}

// tally is what the fake received, traced back to the notes.
type tally struct {
	// posts lists each note's chat messages in the order they were posted.
	posts map[int][]post
	// byGroup lists, per group, the seq of every message posted for it, in
	// post order (a duplicate appears twice).
	byGroup map[string][]int
	// unknown are messages that carry no marker.
	unknown []rocketchattest.Message
}

// tallyMessages reads msgs (in post order). A REST parent's text is
// replaced as its group changes; the text it was posted with is the first
// of its edits.
func tallyMessages(msgs []rocketchattest.Message, plan []note) tally {
	tl := tally{posts: map[int][]post{}, byGroup: map[string][]int{}}
	for _, m := range msgs {
		text := m.Text
		if len(m.Edits) > 0 {
			text = m.Edits[0]
		}
		found := markerRE.FindAllStringSubmatch(text, -1)
		if len(found) != 1 {
			tl.unknown = append(tl.unknown, m)
			continue
		}
		seq, _ := strconv.Atoi(found[0][1])
		if seq >= len(plan) {
			tl.unknown = append(tl.unknown, m)
			continue
		}
		tl.posts[seq] = append(tl.posts[seq], post{id: m.ID, via: m.Via, thread: m.ThreadID})
		g := plan[seq].group
		tl.byGroup[g] = append(tl.byGroup[g], seq)
	}
	return tl
}

// missing returns the acknowledged notes with no chat message yet.
func (tl tally) missing(acked map[int]string) []int {
	var out []int
	for seq := range acked {
		if len(tl.posts[seq]) == 0 {
			out = append(out, seq)
		}
	}
	sort.Ints(out)
	return out
}

// checkOpts say what a test expects of the messages.
type checkOpts struct {
	// rest: herald chose the message ids (REST mode); each message's id must
	// be the one rocketchat.MessageID gives for its notification.
	rest bool
	// splitGroups, in REST mode, is how a group whose notifications went
	// to more than one top-level message is reported: "" is an error (one
	// message per group, its later notifications in its thread), otherwise
	// it is logged with this explanation.
	splitGroups string
	// maxDuplicates bounds the duplicate posts; duplicates up to it are
	// logged with why explain says they happen.
	maxDuplicates int
	explain       string
}

// check asserts what every durability test asserts of the fake's messages.
func check(t *testing.T, plan []note, l *ledger, tl tally, o checkOpts) {
	t.Helper()
	acked, failedAttempts, neverAcked := l.snapshot()

	if miss := tl.missing(acked); len(miss) > 0 {
		t.Errorf("%d acknowledged notifications were never delivered: seq %v", len(miss), head(miss, 30))
	}
	for _, m := range head(tl.unknown, 10) {
		t.Errorf("the fake holds a message no note explains: id %s via %s text %q", m.ID, m.Via, m.Text)
	}

	// Duplicates: more than one message for one notification.
	dups := 0
	var dupLines []string
	for seq, ps := range tl.posts {
		if len(ps) > 1 {
			dups += len(ps) - 1
			_, ok := acked[seq]
			dupLines = append(dupLines, fmt.Sprintf("seq %d (acknowledged %v): %d messages %v", seq, ok, len(ps), ps))
		}
	}
	sort.Strings(dupLines)
	switch {
	case dups > o.maxDuplicates:
		t.Errorf("%d duplicate messages, at most %d expected:\n%s", dups, o.maxDuplicates, strings.Join(dupLines, "\n"))
	case dups > 0:
		t.Logf("%d duplicate messages (%s):\n%s", dups, o.explain, strings.Join(dupLines, "\n"))
	default:
		t.Logf("no duplicate messages")
	}

	// REST: herald's own message ids, so that a retry finds what an
	// earlier attempt posted.
	if o.rest {
		for seq, id := range acked {
			for _, p := range tl.posts[seq] {
				parent := rocketchat.MessageID(sinkName, id, "parent")
				reply := rocketchat.MessageID(sinkName, id, "reply")
				if p.id != parent && p.id != reply {
					t.Errorf("seq %d (id %s) posted as message %s, not as %s (parent) or %s (reply)", seq, id, p.id, parent, reply)
				}
				if (p.id == reply) != (p.thread != "") {
					t.Errorf("seq %d: message %s has thread %q", seq, p.id, p.thread)
				}
			}
		}
	}

	// REST: one top-level message per group, the rest thread replies.
	if o.rest {
		var split []string
		for g, seqs := range tl.byGroup {
			top := 0
			for _, seq := range seqs {
				for _, p := range tl.posts[seq] {
					if p.thread == "" {
						top++
					}
				}
			}
			if top != 1 {
				split = append(split, fmt.Sprintf("%s: %d top-level messages for notes %v", g, top, seqs))
			}
		}
		sort.Strings(split)
		switch {
		case len(split) == 0:
		case o.splitGroups == "":
			t.Errorf("%d groups not in one message with its thread:\n%s", len(split), strings.Join(split, "\n"))
		default:
			t.Logf("%d groups split over several top-level messages (%s):\n%s", len(split), o.splitGroups, strings.Join(split, "\n"))
		}
	}

	// Order: within a group, every message (a duplicate included) comes
	// after the messages of the notes published before it.
	for g, seqs := range tl.byGroup {
		if !slices.IsSorted(seqs) {
			t.Errorf("group %s delivered out of publish order: %v", g, seqs)
		}
	}
	multi := 0
	for _, seqs := range tl.byGroup {
		if len(seqs) > 1 {
			multi++
		}
	}
	if multi == 0 {
		t.Errorf("no group got more than one message: the order check checked nothing")
	}

	// Notes that were never acknowledged may or may not have been stored.
	var storedUnacked, lost []int
	for seq := range neverAcked {
		if len(tl.posts[seq]) > 0 {
			storedUnacked = append(storedUnacked, seq)
		} else {
			lost = append(lost, seq)
		}
	}
	sort.Ints(storedUnacked)
	sort.Ints(lost)
	t.Logf("%d notes: %d acknowledged, %d failed publish attempts; of the %d never acknowledged, %d were delivered anyway "+
		"(stored before the answer was lost) %v and %d not (allowed: the caller got no 2xx) %v",
		len(plan), len(acked), failedAttempts, len(neverAcked), len(storedUnacked), head(storedUnacked, 20), len(lost), head(lost, 20))
	if len(acked)+len(neverAcked) != len(plan) {
		t.Errorf("%d notes acknowledged and %d not, of %d: some note was never attempted", len(acked), len(neverAcked), len(plan))
	}
}

func head[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}
