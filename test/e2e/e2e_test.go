// Package e2e_test runs whole heralds in process (internal/app/apptest: the
// real config, embedded JetStream, dispatcher and sinks) against the fake
// Rocket.Chat (sinks/rocketchat/rocketchattest) and the fake Slack
// (sinks/slack/slackfake), fed with Alertmanager webhooks. It shows what
// issues 4, 5 and 6 ask of herald serve: the Rocket.Chat message lifecycle,
// a retry after a timed-out post that leaves one message, the Rocket.Chat
// outage story with Slack as the fallback, durable waiting while both are
// down, and dead letters listed and replayed through the API and the CLI.
//
// Waits poll the fakes and the API with a generous bound; no test asserts
// how fast herald is, only that it gets there (the outage story's one
// bound, 15s, is far above the "few seconds" the issue asks for).
// Latencies are logged: go test -v ./test/e2e/. The slowest tests (the
// outage story, both sinks down, the dlq command, which builds cmd/herald)
// skip under -short.
package e2e_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
	"github.com/herald-notify/herald/sinks/slack/slackfake"
)

var (
	delivered    = heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED
	deadLettered = heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED
	retrying     = heraldv1.DeliveryState_DELIVERY_STATE_RETRYING
)

func readExample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRocketChatLifecycle: the firing webhook of deploy/examples posts one
// message in #alerts-critical; the resolved webhook of the same group turns
// that message resolved and replies in its thread. Nothing else is posted,
// in Rocket.Chat or in Slack.
func TestRocketChatLifecycle(t *testing.T) {
	t.Parallel()
	s := start(t, Tuning{})

	firingID, err := post(t.Context(), s.h, readExample(t, "firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	rec := s.h.WaitDelivered(t, firingID, delivered, wait)
	if by := rec.GetDelivery().GetDeliveredBy(); by != "rocketchat" {
		t.Fatalf("firing delivered by %q, want rocketchat; record %v", by, rec.GetDelivery())
	}
	top := s.rc.TopLevel(critical)
	if len(top) != 1 {
		t.Fatalf("#%s has %d top-level messages after the firing webhook, want 1: %+v", critical, len(top), top)
	}
	parent := top[0]
	if !strings.Contains(parent.Text, "FIRING") || !strings.Contains(parent.Text, "@here") {
		t.Errorf("firing message text does not say FIRING with the critical mention:\n%s", parent.Text)
	}
	if ref := sinkEntry(rec.GetDelivery(), "rocketchat").GetMessage(); ref.GetMessageId() != parent.ID || ref.GetChannelId() != s.rc.RoomID(critical) {
		t.Errorf("delivery record points at %v, want message %s in room %s", ref, parent.ID, s.rc.RoomID(critical))
	}

	resolvedID, err := post(t.Context(), s.h, readExample(t, "resolved.json"))
	if err != nil {
		t.Fatal(err)
	}
	if resolvedID == firingID {
		t.Fatalf("resolved webhook stored as the firing notification %s", firingID)
	}
	rec = s.h.WaitDelivered(t, resolvedID, delivered, wait)
	if by := rec.GetDelivery().GetDeliveredBy(); by != "rocketchat" {
		t.Fatalf("resolved delivered by %q, want rocketchat", by)
	}

	got, ok := s.rc.Message(parent.ID)
	if !ok {
		t.Fatalf("the group's message %s is gone", parent.ID)
	}
	if !strings.Contains(got.Text, "RESOLVED") || strings.Contains(got.Text, "FIRING") {
		t.Errorf("after the resolved webhook the parent reads:\n%s\nwant it to show RESOLVED", got.Text)
	}
	if len(got.Edits) != 1 || got.Edits[0] != parent.Text {
		t.Errorf("parent edited %d times (earlier texts %q), want once, from the firing text", len(got.Edits), got.Edits)
	}
	thread := s.rc.Thread(parent.ID)
	if len(thread) != 1 {
		t.Fatalf("thread of %s has %d replies, want 1: %+v", parent.ID, len(thread), thread)
	}
	if !strings.Contains(thread[0].Text, "RESOLVED") {
		t.Errorf("thread reply does not say RESOLVED:\n%s", thread[0].Text)
	}
	if ref := sinkEntry(rec.GetDelivery(), "rocketchat").GetMessage(); ref.GetMessageId() != thread[0].ID {
		t.Errorf("resolved record points at %v, want the reply %s", ref, thread[0].ID)
	}
	if all := s.rc.AllMessages(); len(all) != 2 {
		t.Errorf("Rocket.Chat holds %d messages, want the parent and its reply: %+v", len(all), all)
	}
	for _, ch := range []string{critical, info} {
		if m := s.slack.Messages(ch); len(m) != 0 {
			t.Errorf("Slack #%s got %d messages while Rocket.Chat was up", ch, len(m))
		}
	}
}

// TestRetryAfterTimedOutPostLeavesOneMessage: Rocket.Chat stores the
// message but answers after the sink's timeout; the dispatcher's quick
// retry finds the stored message instead of posting it again.
func TestRetryAfterTimedOutPostLeavesOneMessage(t *testing.T) {
	t.Parallel()
	s := start(t, Tuning{Chain: []string{"rocketchat"}, RCTimeout: time.Second})
	s.rc.Inject(rocketchattest.Fault{Endpoint: "chat.sendMessage", Times: 1, Delay: 5 * time.Second, AfterHandling: true})

	id := postAlert(t, s.h, alert{name: "TimedOutPost", severity: "critical"})
	rec := s.h.WaitDelivered(t, id, delivered, wait)

	if msgs := s.rc.Messages(critical); len(msgs) != 1 {
		t.Fatalf("#%s has %d messages after a timed-out post and its retry, want 1: %+v", critical, len(msgs), msgs)
	}
	sd := sinkEntry(rec.GetDelivery(), "rocketchat")
	if sd.GetAttempts() < 2 {
		t.Errorf("rocketchat attempts = %d, want at least 2 (the timed-out post and its retry)", sd.GetAttempts())
	}
	if n := s.rc.Count("chat.sendMessage"); n != 1 {
		t.Errorf("chat.sendMessage called %d times, want 1: the retry must look the message up, not post it", n)
	}
	if ref := sd.GetMessage(); ref.GetMessageId() != s.rc.Messages(critical)[0].ID {
		t.Errorf("delivery record points at %v, want the one stored message", ref)
	}
	t.Logf("delivered after %d attempts, %s after receipt", sd.GetAttempts(), latency(rec))
}

// TestRetryAfterTimedOutReplyLeavesOneReply: the resolved notification's
// thread reply is stored but answered too late; the retry updates the
// parent again (the same text) and finds the reply instead of posting a
// second one.
func TestRetryAfterTimedOutReplyLeavesOneReply(t *testing.T) {
	t.Parallel()
	s := start(t, Tuning{Chain: []string{"rocketchat"}, RCTimeout: time.Second})
	a := alert{name: "TimedOutReply", severity: "critical"}
	s.h.WaitDelivered(t, postAlert(t, s.h, a), delivered, wait)

	s.rc.Inject(rocketchattest.Fault{Endpoint: "chat.sendMessage", Times: 1, Delay: 5 * time.Second, AfterHandling: true})
	a.resolved = true
	rec := s.h.WaitDelivered(t, postAlert(t, s.h, a), delivered, wait)

	top := s.rc.TopLevel(critical)
	if len(top) != 1 {
		t.Fatalf("#%s has %d top-level messages, want 1", critical, len(top))
	}
	if !strings.Contains(top[0].Text, "RESOLVED") {
		t.Errorf("parent reads %q, want RESOLVED", top[0].Text)
	}
	if th := s.rc.Thread(top[0].ID); len(th) != 1 {
		t.Errorf("thread has %d replies after a timed-out reply and its retry, want 1: %+v", len(th), th)
	}
	if n := sinkEntry(rec.GetDelivery(), "rocketchat").GetAttempts(); n < 2 {
		t.Errorf("rocketchat attempts = %d, want the timed-out one and its retry", n)
	}
}

// TestSlackRetryAfterLostAnswerLeavesOneMessage: while Rocket.Chat is down,
// Slack stores a fallback post but its answer is lost; the retry finds the
// posted message instead of posting it again. "warm": Slack took a
// notification for the channel before; "cold": the lost post is herald's
// first to that channel, which is how an outage usually starts for the
// fallback.
func TestSlackRetryAfterLostAnswerLeavesOneMessage(t *testing.T) {
	for _, warm := range []bool{true, false} {
		name := map[bool]string{true: "warm", false: "cold"}[warm]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := start(t, Tuning{})
			s.rc.SetDown(true)
			want := 1
			if warm {
				w := alert{name: "WarmUp", severity: "critical"}
				if by := s.h.WaitDelivered(t, postAlert(t, s.h, w), delivered, wait).GetDelivery().GetDeliveredBy(); by != "slack" {
					t.Fatalf("warm-up delivered by %q, want slack", by)
				}
				want++
			}
			s.slack.Fail(slackfake.PostMessage, slackfake.Failure{LoseAnswer: true})
			a := alert{name: "LostSlackAnswer", severity: "critical"}
			rec := s.h.WaitDelivered(t, postAlert(t, s.h, a), delivered, wait)
			d := rec.GetDelivery()
			if d.GetDeliveredBy() != "slack" {
				t.Fatalf("delivered by %q, want slack", d.GetDeliveredBy())
			}
			if n := sinkEntry(d, "slack").GetAttempts(); n < 2 {
				t.Errorf("slack attempts = %d, want the lost one and its retry", n)
			}
			if msgs := s.slack.Messages(critical); len(msgs) != want {
				t.Errorf("Slack #%s has %d messages after a lost answer and its retry, want %d", critical, len(msgs), want)
			}
			t.Logf("in Slack %s after receipt, %d Slack attempts", latency(rec), sinkEntry(d, "slack").GetAttempts())
		})
	}
}

// fallbackBound is the generous bound on how long a critical notification
// may take to reach Slack while Rocket.Chat is down ("within a few seconds"
// in issue 6). The measured time is logged; the bound only catches a
// fallback that waits for redelivery backoff or for the primary to return.
const fallbackBound = 15 * time.Second

// TestRocketChatOutageFallsBackToSlack is issue 6's outage story: with
// critical routed to [rocketchat, slack], Rocket.Chat answers 503, then
// refuses connections, then hangs past the sink's timeout; every critical
// notification lands in Slack, marked as a fallback there and in its
// delivery record. Rocket.Chat recovers, and after the breaker's open
// period new notifications land in Rocket.Chat again. Every notification
// is delivered exactly once across both chat servers.
func TestRocketChatOutageFallsBackToSlack(t *testing.T) {
	if testing.Short() {
		t.Skip("outage story: several breaker periods")
	}
	t.Parallel()
	s := start(t, Tuning{RCTimeout: time.Second})

	// Before the outage Rocket.Chat works (and the sink knows the room).
	sent := []alert{{name: "BeforeOutage", severity: "critical"}}
	ids := []string{postAlert(t, s.h, sent[0])}
	if rec := s.h.WaitDelivered(t, ids[0], delivered, wait); rec.GetDelivery().GetDeliveredBy() != "rocketchat" {
		t.Fatalf("before the outage: delivered by %q, want rocketchat", rec.GetDelivery().GetDeliveredBy())
	}

	phases := []struct {
		name string
		// begin switches Rocket.Chat into the phase's failure without a
		// moment of health in between.
		begin func()
		// met counts the times herald met the failure.
		met func() int
	}{
		{"503", func() { s.rc.SetDown(true) }, func() int { return countStatus(s.rc, 503) }},
		{"connection refused", func() {
			s.net.refuse.Store(true)
			s.rc.SetDown(false)
		}, func() int { return int(s.net.refused.Load()) }},
		{"hang past the timeout", func() {
			s.rc.Inject(rocketchattest.Fault{Delay: time.Minute})
			s.net.refuse.Store(false)
		}, func() int { return countStatus(s.rc, 499) }},
	}
	for pi, ph := range phases {
		before := ph.met()
		ph.begin()
		if pi > 0 {
			// Let the breaker, opened by the previous phase, reach the end
			// of its open period, so that a notification of this phase
			// probes Rocket.Chat and meets the new failure.
			time.Sleep(breakerOpenFor + 200*time.Millisecond)
		}
		var as []alert
		for i := range 3 {
			as = append(as, alert{name: fmt.Sprintf("Outage%dN%d", pi, i), severity: "critical"})
		}
		phaseIDs := postAlerts(t, s.h, as)
		for i, id := range phaseIDs {
			rec := s.h.WaitDelivered(t, id, delivered, wait)
			d := rec.GetDelivery()
			if d.GetDeliveredBy() != "slack" {
				t.Errorf("%s: %s delivered by %q, want slack; record %v", ph.name, as[i].name, d.GetDeliveredBy(), d)
				continue
			}
			if !strings.Contains(d.GetFallbackReason(), "rocketchat") {
				t.Errorf("%s: fallback_reason %q does not name rocketchat", ph.name, d.GetFallbackReason())
			}
			ref := sinkEntry(d, "slack").GetMessage()
			m, ok := s.slack.Message(ref.GetChannelId(), ref.GetMessageId())
			if !ok {
				t.Errorf("%s: record points at Slack message %v, which does not exist", ph.name, ref)
				continue
			}
			if !strings.Contains(string(m.Blocks), "via fallback: rocketchat unavailable") {
				t.Errorf("%s: Slack message lacks the via-fallback line: %s", ph.name, m.Blocks)
			}
			lat := latency(rec)
			t.Logf("%s: %s in Slack %s after receipt (fallback_reason %q)", ph.name, as[i].name, lat, d.GetFallbackReason())
			if lat > fallbackBound {
				t.Errorf("%s: %s reached Slack %s after receipt, more than %s", ph.name, as[i].name, lat, fallbackBound)
			}
		}
		testutil.Eventually(t, wait, "herald meets Rocket.Chat's "+ph.name, func() bool { return ph.met() > before })
		sent, ids = append(sent, as...), append(ids, phaseIDs...)
	}
	if n := len(s.rc.AllMessages()); n != 1 {
		t.Errorf("Rocket.Chat holds %d messages after its outage, want only the one from before", n)
	}

	// Recovery. The first notification after the open period probes
	// Rocket.Chat and closes its breaker; later ones go there directly.
	s.rc.ClearFaults()
	time.Sleep(breakerOpenFor + 200*time.Millisecond)
	back := []alert{{name: "Recovered0", severity: "critical"}}
	backIDs := []string{postAlert(t, s.h, back[0])}
	s.h.WaitDelivered(t, backIDs[0], delivered, wait)
	more := []alert{{name: "Recovered1", severity: "critical"}, {name: "Recovered2", severity: "critical"}}
	backIDs = append(backIDs, postAlerts(t, s.h, more)...)
	back = append(back, more...)
	for i, id := range backIDs {
		rec := s.h.WaitDelivered(t, id, delivered, wait)
		if d := rec.GetDelivery(); d.GetDeliveredBy() != "rocketchat" || d.GetFallbackReason() != "" {
			t.Errorf("after recovery %s delivered by %q (fallback_reason %q), want rocketchat", back[i].name, d.GetDeliveredBy(), d.GetFallbackReason())
		}
	}
	sent, ids = append(sent, back...), append(ids, backIDs...)

	// Exactly once: each notification's record points at a message that
	// exists and names it (a digest names each of its notifications), no
	// notification is named by two messages, and no message exists that no
	// record points at.
	bySink := checkExactlyOnce(t, s, sent, ids)
	if dl := deadLetters(t, s.h); len(dl) != 0 {
		t.Errorf("%d dead letters after the outage", len(dl))
	}
	t.Logf("published %d: %d delivered by Slack, %d by Rocket.Chat", len(ids), bySink["slack"], bySink["rocketchat"])
}

// TestBothDownWaitDurably: with Rocket.Chat and Slack both failing, the
// notifications are neither lost nor dead-lettered: they wait, retried with
// backoff, survive a restart of herald, and are all delivered, once each,
// as soon as one chat server is back.
func TestBothDownWaitDurably(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for retries and restarts herald")
	}
	for _, comesBack := range []string{"slack", "rocketchat"} {
		t.Run(comesBack+" comes back", func(t *testing.T) {
			t.Parallel()
			bothDown(t, comesBack)
		})
	}
}

func bothDown(t *testing.T, comesBack string) {
	s := start(t, Tuning{})
	s.rc.SetDown(true)
	s.slack.FailAll(&slackfake.Failure{Status: 503, Body: "upstream connect error"})

	var as []alert
	for i := range 4 {
		as = append(as, alert{name: fmt.Sprintf("BothDown%d", i), severity: "critical"})
	}
	ids := postAlerts(t, s.h, as)
	// Each is tried through the whole chain and put back with a backoff,
	// again and again: waiting, not given up.
	retried := func() float64 {
		return counter(t, s.h, "herald_dispatch_outcomes_total", map[string]string{"action": "retry"})
	}
	testutil.Eventually(t, wait, "every notification put back for a retry twice", func() bool { return retried() >= float64(2*len(ids)) })
	for i, id := range ids {
		d := record(t, s.h, id).GetDelivery()
		if d.GetState() != retrying {
			t.Errorf("%s is %v while both sinks fail, want RETRYING", as[i].name, d.GetState())
		}
		for _, sink := range []string{"rocketchat", "slack"} {
			if sinkEntry(d, sink) == nil {
				t.Errorf("%s: no attempt recorded for %s; record %v", as[i].name, sink, d)
			}
		}
	}
	if dl := deadLetters(t, s.h); len(dl) != 0 {
		t.Fatalf("%d dead letters while both sinks fail retryably", len(dl))
	}

	// They wait on disk: a restarted herald has them and keeps retrying.
	s.restart(t)
	testutil.Eventually(t, wait, "the restarted herald retries them", func() bool { return retried() >= float64(len(ids)) })
	for i, id := range ids {
		if st := record(t, s.h, id).GetDelivery().GetState(); st != retrying {
			t.Errorf("after restart %s is %v, want RETRYING", as[i].name, st)
		}
	}

	// One comes back; the other stays down.
	if comesBack == "slack" {
		s.slack.FailAll(nil)
	} else {
		s.rc.SetDown(false)
	}
	back := time.Now()
	for i, id := range ids {
		rec := s.h.WaitDelivered(t, id, delivered, wait)
		d := rec.GetDelivery()
		if d.GetDeliveredBy() != comesBack {
			t.Errorf("%s delivered by %q, want %s", as[i].name, d.GetDeliveredBy(), comesBack)
		}
		if comesBack == "slack" && !strings.Contains(d.GetFallbackReason(), "rocketchat") {
			t.Errorf("%s: fallback_reason %q does not name rocketchat", as[i].name, d.GetFallbackReason())
		}
		if comesBack == "rocketchat" && d.GetFallbackReason() != "" {
			t.Errorf("%s delivered by the primary with fallback_reason %q", as[i].name, d.GetFallbackReason())
		}
		sd := sinkEntry(d, comesBack)
		t.Logf("%s delivered %s after %s came back, %d %s attempts", as[i].name,
			sd.GetUpdatedAt().AsTime().Sub(back), comesBack, sd.GetAttempts(), comesBack)
	}
	if by := checkExactlyOnce(t, s, as, ids); by[comesBack] != len(ids) {
		t.Errorf("delivered by %v, want all %d by %s", by, len(ids), comesBack)
	}
	if dl := deadLetters(t, s.h); len(dl) != 0 {
		t.Errorf("%d dead letters", len(dl))
	}
	if n := counter(t, s.h, "herald_dead_letters_total", nil); n != 0 {
		t.Errorf("herald_dead_letters_total = %v", n)
	}
}

// rejectAll makes the fake Rocket.Chat answer every request as it answers
// a wrong token: a 401, which the sink classifies as permanent.
func rejectAll(rc *rocketchattest.Server) {
	rc.Inject(rocketchattest.Fault{Status: 401,
		Body: `{"success":false,"error":"You must be logged in to do this.","status":"error","message":"You must be logged in to do this."}`})
}

// TestDeadLettersListedAndReplayed: when every sink of the chain refuses a
// notification permanently (Rocket.Chat 401: a bad token), it is
// dead-lettered at once, listed by ListDeadLetters, and delivered after the
// fault is fixed and it is replayed through ReplayDeadLetters.
func TestDeadLettersListedAndReplayed(t *testing.T) {
	t.Parallel()
	s := start(t, Tuning{Chain: []string{"rocketchat"}})
	rejectAll(s.rc)

	as := []alert{{name: "DeadLetter0", severity: "critical"}, {name: "DeadLetter1", severity: "critical"}}
	ids := postAlerts(t, s.h, as)
	for i, id := range ids {
		d := s.h.WaitDelivered(t, id, deadLettered, wait).GetDelivery()
		sd := sinkEntry(d, "rocketchat")
		if sd.GetState() != heraldv1.DeliveryState_DELIVERY_STATE_FAILED || sd.GetErrorClass() != "permanent" {
			t.Errorf("%s: rocketchat entry %v, want FAILED permanent", as[i].name, sd)
		}
		if strings.Contains(sd.GetLastError(), s.rc.Token()) {
			t.Errorf("last_error shows the token: %q", sd.GetLastError())
		}
	}
	if n := counter(t, s.h, "herald_dead_letters_total", nil); n != float64(len(ids)) {
		t.Errorf("herald_dead_letters_total = %v, want %d", n, len(ids))
	}
	listed := map[string]bool{}
	for _, dl := range deadLetters(t, s.h) {
		listed[dl.GetNotification().GetId()] = true
		if st := dl.GetDelivery().GetState(); st != deadLettered {
			t.Errorf("dead letter %s listed with state %v", dl.GetNotification().GetId(), st)
		}
	}
	for i, id := range ids {
		if !listed[id] {
			t.Errorf("%s (%s) is not listed as a dead letter", as[i].name, id)
		}
	}
	if len(listed) != len(ids) {
		t.Errorf("%d dead letters listed, want %d", len(listed), len(ids))
	}

	// The operator fixes the token; replaying one leaves the other.
	s.rc.ClearFaults()
	res, err := s.h.Client().ReplayDeadLetters(t.Context(), connect.NewRequest(&heraldv1.ReplayDeadLettersRequest{Ids: ids[:1]}))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Msg.GetReplayedIds(); len(got) != 1 || got[0] != ids[0] {
		t.Errorf("replayed %v, want [%s]", got, ids[0])
	}
	rec := s.h.WaitDelivered(t, ids[0], delivered, wait)
	if by := rec.GetDelivery().GetDeliveredBy(); by != "rocketchat" {
		t.Errorf("replayed %s delivered by %q", as[0].name, by)
	}
	if st := record(t, s.h, ids[1]).GetDelivery().GetState(); st != deadLettered {
		t.Errorf("%s, not replayed, is %v", as[1].name, st)
	}
	res, err = s.h.Client().ReplayDeadLetters(t.Context(), connect.NewRequest(&heraldv1.ReplayDeadLettersRequest{All: true}))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Msg.GetReplayedIds(); len(got) != 1 || got[0] != ids[1] {
		t.Errorf("replay all: replayed %v, want [%s]", got, ids[1])
	}
	s.h.WaitDelivered(t, ids[1], delivered, wait)
	if dl := deadLetters(t, s.h); len(dl) != 0 {
		t.Errorf("%d dead letters after replaying all", len(dl))
	}
	if msgs := s.rc.Messages(critical); len(msgs) != len(ids) {
		t.Errorf("#%s has %d messages after the replays, want %d", critical, len(msgs), len(ids))
	}
}

// TestFailbackKeepsGroupLifecycle: a group that started in Slack while
// Rocket.Chat was down resolves after Rocket.Chat is back. Issue 6 allows
// two designs, and this test accepts either: the group's lifecycle stays in
// Slack (its message there turns resolved), or it continues in Rocket.Chat
// with a pointer to the Slack message. What it refuses is a Slack message
// left firing forever next to a lone, unexplained RESOLVED in Rocket.Chat.
func TestFailbackKeepsGroupLifecycle(t *testing.T) {
	t.Parallel()
	s := start(t, Tuning{})
	s.rc.SetDown(true)
	a := alert{name: "StartedDuringOutage", severity: "critical"}
	d := s.h.WaitDelivered(t, postAlert(t, s.h, a), delivered, wait).GetDelivery()
	if d.GetDeliveredBy() != "slack" {
		t.Fatalf("firing during the outage delivered by %q, want slack", d.GetDeliveredBy())
	}
	slackRef := sinkEntry(d, "slack").GetMessage()

	s.rc.SetDown(false)
	time.Sleep(breakerOpenFor + 200*time.Millisecond) // past the breaker's open period
	a.resolved = true
	d = s.h.WaitDelivered(t, postAlert(t, s.h, a), delivered, wait).GetDelivery()
	parent, _ := s.slack.Message(slackRef.GetChannelId(), slackRef.GetMessageId())
	t.Logf("resolved delivered by %s; Slack parent edited %d times, now %q", d.GetDeliveredBy(), parent.Edits, parent.Text)
	switch d.GetDeliveredBy() {
	case "slack":
		if parent.Edits == 0 || !strings.Contains(parent.Text, "RESOLVED") {
			t.Errorf("resolved went to Slack but the group's Slack message still reads %q", parent.Text)
		}
	case "rocketchat":
		m, _ := s.rc.Message(sinkEntry(d, "rocketchat").GetMessage().GetMessageId())
		text := m.Text + attachmentsText(m)
		if !strings.Contains(strings.ToLower(text), "slack") {
			t.Errorf("resolved continued in Rocket.Chat with no pointer to the group's Slack message, which still reads %q (edited %d times); Rocket.Chat message:\n%s",
				parent.Text, parent.Edits, text)
		}
	default:
		t.Errorf("resolved delivered by %q", d.GetDeliveredBy())
	}
}

// TestStatusShownOnce: the title of an Alertmanager notification must not
// repeat the status the sinks already show ("🔴 [FIRING:3] [FIRING:3] ...").
// Checked on the deploy/examples firing webhook in Rocket.Chat, and on a
// firing notification that fell back to Slack.
func TestStatusShownOnce(t *testing.T) {
	t.Parallel()
	s := start(t, Tuning{})
	id, err := post(t.Context(), s.h, readExample(t, "firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	s.h.WaitDelivered(t, id, delivered, wait)
	s.rc.SetDown(true)
	d := s.h.WaitDelivered(t, postAlert(t, s.h, alert{name: "ShownOnce", severity: "critical"}), delivered, wait).GetDelivery()
	if d.GetDeliveredBy() != "slack" {
		t.Fatalf("delivered by %q during the outage, want slack", d.GetDeliveredBy())
	}
	rc := s.rc.TopLevel(critical)
	if len(rc) != 1 {
		t.Fatalf("#%s has %d messages, want 1", critical, len(rc))
	}
	ref := sinkEntry(d, "slack").GetMessage()
	sm, _ := s.slack.Message(ref.GetChannelId(), ref.GetMessageId())
	for _, c := range []struct{ where, text string }{
		{"Rocket.Chat text", rc[0].Text},
		{"Slack text", sm.Text},
	} {
		first, _, _ := strings.Cut(c.text, "\n")
		if n := strings.Count(first, "FIRING"); n != 1 {
			t.Errorf("%s says FIRING %d times in its first line: %q", c.where, n, first)
		}
	}
}

// buildHerald builds cmd/herald into a temporary directory.
func buildHerald(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "herald")
	cmd := exec.CommandContext(t.Context(), goBin, "build", "-o", bin, "./cmd/herald")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/herald: %v\n%s", err, out)
	}
	return bin
}

// TestDLQCommand drives `herald dlq list` and `herald dlq replay --all`, the
// operator's way to the dead letters, against a running herald.
func TestDLQCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/herald")
	}
	t.Parallel()
	bin := buildHerald(t)
	s := start(t, Tuning{Chain: []string{"rocketchat"}})
	rejectAll(s.rc)
	as := []alert{{name: "CLIDead0", severity: "critical"}, {name: "CLIDead1", severity: "critical"}}
	ids := postAlerts(t, s.h, as)
	for _, id := range ids {
		s.h.WaitDelivered(t, id, deadLettered, wait)
	}
	herald := func(args ...string) string {
		t.Helper()
		args = append(args, "-server", s.h.URL, "-token", s.h.Token)
		cmd := exec.CommandContext(t.Context(), bin, args...)
		cmd.Env = append(os.Environ(), "HERALD_TOKEN=", "HERALD_SERVER=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("herald %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	list := herald("dlq", "list")
	t.Logf("herald dlq list:\n%s", list)
	for i, id := range ids {
		line := ""
		for l := range strings.Lines(list) {
			if strings.HasPrefix(l, id) {
				line = l
			}
		}
		if line == "" {
			t.Errorf("dlq list does not show %s (%s)", id, as[i].name)
			continue
		}
		if !strings.Contains(line, as[i].name) || !strings.Contains(line, "rocketchat: ") {
			t.Errorf("dlq list line for %s lacks its title or its last error: %q", as[i].name, line)
		}
	}
	if strings.Contains(list, s.rc.Token()) {
		t.Error("dlq list shows the Rocket.Chat token")
	}

	s.rc.ClearFaults()
	replay := herald("dlq", "replay", "--all")
	if !strings.Contains(replay, "replayed 2 notification(s)") {
		t.Errorf("dlq replay --all said:\n%s", replay)
	}
	for i, id := range ids {
		if !strings.Contains(replay, id) {
			t.Errorf("dlq replay --all does not name %s (%s)", id, as[i].name)
		}
		if by := s.h.WaitDelivered(t, id, delivered, wait).GetDelivery().GetDeliveredBy(); by != "rocketchat" {
			t.Errorf("%s delivered by %q after replay", as[i].name, by)
		}
	}
	if list := herald("dlq", "list"); strings.Contains(list, ids[0]) || strings.Contains(list, ids[1]) {
		t.Errorf("dlq list after replay still shows them:\n%s", list)
	}
	if msgs := s.rc.Messages(critical); len(msgs) != len(ids) {
		t.Errorf("#%s has %d messages after the replay, want %d", critical, len(msgs), len(ids))
	}
}
