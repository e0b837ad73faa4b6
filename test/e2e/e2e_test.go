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
// how fast herald is, only that it gets there. Latencies are logged.
package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
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
	s := start(t, Tuning{Chain: []string{"rocketchat"}, RCTimeout: 500 * time.Millisecond})
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
