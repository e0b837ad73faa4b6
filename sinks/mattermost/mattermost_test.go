package mattermost

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/mattermost/mattermosttest"
)

const testToken = "bot-token-0123456789"

// clock is a settable time for the fake server.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time        { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration)   { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }
func newClock() *clock                 { return &clock{t: time.Now()} }
func ctx(t *testing.T) context.Context { return t.Context() }

func newREST(t *testing.T) (*mattermosttest.Server, *Sink, string, *clock) {
	t.Helper()
	srv := mattermosttest.NewServer(testToken)
	t.Cleanup(srv.Close)
	c := newClock()
	srv.SetClock(c.now)
	chID := srv.AddChannel("ops", "alerts")
	s, err := New("mm", Config{
		BaseURL: srv.URL, Token: testToken, Team: "ops", Channel: "alerts",
		Mentions: map[string]string{"critical": "@channel"},
	}, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return srv, s, chID, c
}

func update1() *heraldv1.Notification {
	n := firing()
	n.Id = "01JUPDATE000000000000000000"
	n.Text = "Disk /var is 99.5% full"
	return n
}

func TestThreadFlow(t *testing.T) {
	srv, s, chID, _ := newREST(t)
	r1, err := s.Send(ctx(t), firing(), sinks.Target{Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	root := r1.Parent.GetMessageId()
	if root == "" || r1.Parent.GetChannelId() != chID || r1.Message.GetMessageId() != root {
		t.Fatalf("first receipt = %v", r1)
	}
	if p, _ := srv.Post(root); !strings.HasPrefix(p.Message, "@channel 🔴 **FIRING**") {
		t.Errorf("root: %q, want the mention on a firing root", p.Message)
	}
	r2, err := s.Send(ctx(t), update1(), sinks.Target{Attempt: 1, Parent: r1.Parent})
	if err != nil {
		t.Fatal(err)
	}
	r3, err := s.Send(ctx(t), resolved(), sinks.Target{Attempt: 1, Parent: r2.Parent})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []sinks.Receipt{r2, r3} {
		if r.Parent.GetMessageId() != root || r.Message.GetThreadId() != root || r.Message.GetMessageId() == root {
			t.Errorf("receipt = %v, want the root as parent and a reply in its thread", r)
		}
	}
	posts := srv.Posts()
	if len(posts) != 3 {
		t.Fatalf("%d posts, want a root and two replies", len(posts))
	}
	for _, p := range posts[1:] {
		if p.RootID != root || p.ChannelID != chID {
			t.Errorf("reply %s: root %q channel %q", p.ID, p.RootID, p.ChannelID)
		}
	}
	if !strings.HasPrefix(posts[1].Message, "@channel ") || strings.Contains(posts[2].Message, "@channel") {
		t.Errorf("want the mention on the firing reply, not on the resolved reply:\n%s\n%s\n%s", posts[0].Message, posts[1].Message, posts[2].Message)
	}
	if !strings.Contains(posts[2].Message, "RESOLVED") {
		t.Errorf("last reply: %s", posts[2].Message)
	}
	patches := srv.Patches()
	if len(patches) != 2 {
		t.Fatalf("%d patches, want 2", len(patches))
	}
	final, _ := srv.Post(root)
	if !strings.Contains(final.Message, "RESOLVED") || strings.Contains(final.Message, "@channel") || final.EditAt == 0 {
		t.Errorf("root not patched to resolved: %q", final.Message)
	}
	atts, _ := final.Props["attachments"].([]any)
	if len(atts) != 1 || atts[0].(map[string]any)["color"] != "#2ea44f" {
		t.Errorf("root attachments = %v, want one, green", final.Props["attachments"])
	}
	if final.Props["herald_post"] != posts[0].Props["herald_post"] || final.Props["herald_post"] == nil {
		t.Errorf("the patch lost the root's herald_post: %v", final.Props)
	}
	if final.Props["herald_notification_id"] != resolved().Id {
		t.Errorf("herald_notification_id = %v", final.Props["herald_notification_id"])
	}
}

func TestRetryAfterLostAnswerDoesNotPostTwice(t *testing.T) {
	srv, s, _, c := newREST(t)
	// The server creates the post, and the answer is lost.
	srv.Fail(mattermosttest.Failure{Match: "POST /api/v4/posts", After: true})
	if _, err := s.Send(ctx(t), firing(), sinks.Target{Attempt: 1}); sinks.Classify(err) != sinks.ClassRetryable {
		t.Fatalf("lost answer: err = %v, want retryable", err)
	}
	// Past the server's pending_post_id window: only the lookup can tell.
	c.add(time.Minute)
	r, err := s.Send(ctx(t), firing(), sinks.Target{Attempt: 2})
	if err != nil {
		t.Fatal(err)
	}
	posts := srv.Posts()
	if len(posts) != 1 || r.Parent.GetMessageId() != posts[0].ID {
		t.Fatalf("posts = %d, receipt %v: want the one post of the first attempt", len(posts), r)
	}

	// The same for a thread reply.
	srv.Fail(mattermosttest.Failure{Match: "POST /api/v4/posts", After: true})
	if _, err := s.Send(ctx(t), update1(), sinks.Target{Attempt: 1, Parent: r.Parent}); err == nil {
		t.Fatal("lost answer: no error")
	}
	c.add(time.Minute)
	r2, err := s.Send(ctx(t), update1(), sinks.Target{Attempt: 2, Parent: r.Parent})
	if err != nil {
		t.Fatal(err)
	}
	posts = srv.Posts()
	if len(posts) != 2 || r2.Message.GetMessageId() != posts[1].ID || posts[1].RootID != posts[0].ID {
		t.Fatalf("posts = %+v, receipt %v: want one reply", posts, r2)
	}
}

func TestPendingPostIDDeduplicates(t *testing.T) {
	srv, s, _, _ := newREST(t)
	srv.Fail(mattermosttest.Failure{Match: "POST /api/v4/posts", After: true})
	if _, err := s.Send(ctx(t), firing(), sinks.Target{Attempt: 1}); err == nil {
		t.Fatal("lost answer: no error")
	}
	// Within 30s the server answers the same pending_post_id with the post
	// it made, even without a lookup.
	r, err := s.Send(ctx(t), firing(), sinks.Target{Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	if posts := srv.Posts(); len(posts) != 1 || posts[0].ID != r.Parent.GetMessageId() {
		t.Fatalf("posts = %+v, receipt %v", posts, r)
	}
}

func TestFailedLookupIsRetryable(t *testing.T) {
	for _, status := range []int{403, 404, 500} {
		srv, s, _, _ := newREST(t)
		srv.Fail(mattermosttest.Failure{Match: "GET /api/v4/channels/", Status: status, Body: `{"id":"api.context.permissions.app_error","message":"no","status_code":403}`})
		_, err := s.Send(ctx(t), firing(), sinks.Target{Attempt: 2})
		if sinks.Classify(err) != sinks.ClassRetryable {
			t.Errorf("lookup answered %d: class %s, want retryable (err %v)", status, sinks.Classify(err), err)
		}
		if n := len(srv.Posts()); n != 0 {
			t.Errorf("lookup answered %d: %d posts, want none", status, n)
		}
	}
}

func TestRootGoneStartsNewRoot(t *testing.T) {
	srv, s, _, _ := newREST(t)
	r1, err := s.Send(ctx(t), firing(), sinks.Target{Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv.DeletePost(r1.Parent.GetMessageId())
	r2, err := s.Send(ctx(t), update1(), sinks.Target{Attempt: 1, Parent: r1.Parent})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Parent.GetMessageId() == r1.Parent.GetMessageId() || r2.Message.GetThreadId() != "" {
		t.Errorf("receipt = %v, want a new root", r2)
	}
}

func TestRedeliveryOfRootOnlyPatches(t *testing.T) {
	srv, s, _, _ := newREST(t)
	r1, err := s.Send(ctx(t), firing(), sinks.Target{Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Send(ctx(t), firing(), sinks.Target{Attempt: 1, Parent: r1.Parent})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Posts()); n != 1 || r2.Message.GetMessageId() != r1.Parent.GetMessageId() {
		t.Errorf("%d posts, receipt %v: a redelivered root must not reply to itself", n, r2)
	}
}

func TestRateLimit(t *testing.T) {
	srv, s, _, _ := newREST(t)
	srv.SetRateLimit(2, time.Minute) // the channel lookup and one post
	if _, err := s.Send(ctx(t), firing(), sinks.Target{Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Send(ctx(t), update1(), sinks.Target{Attempt: 1})
	w, ok := sinks.ThrottleWait(err)
	if !ok || w < 50*time.Second || w > 61*time.Second {
		t.Fatalf("err = %v, wait %v: want throttled about a minute", err, w)
	}
	before := len(srv.Requests())
	if _, err := s.Send(ctx(t), update1(), sinks.Target{Attempt: 2}); sinks.Classify(err) != sinks.ClassThrottled {
		t.Errorf("while limited: err = %v, want throttled", err)
	}
	if len(srv.Requests()) != before {
		t.Errorf("a request was sent while the limit lasts")
	}
	if s.Wait(sinks.Target{}) <= 0 {
		t.Errorf("Wait = 0 while limited")
	}
}

func TestRESTErrors(t *testing.T) {
	srv, s, _, _ := newREST(t)
	if _, err := s.Send(ctx(t), firing(), sinks.Target{Channel: "~nosuch", Attempt: 1}); sinks.Classify(err) != sinks.ClassPermanent {
		t.Errorf("unknown channel: err = %v, want permanent", err)
	}
	bad, err := New("mm", Config{BaseURL: srv.URL, Token: "wrong-token-xyz", Team: "ops", Channel: "alerts"}, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Send(ctx(t), firing(), sinks.Target{Attempt: 1}); sinks.Classify(err) != sinks.ClassPermanent || strings.Contains(err.Error(), "wrong-token") {
		t.Errorf("bad token: err = %v, want permanent without the token", err)
	}
	// A channel the bot is not in, by id.
	if _, err := s.Send(ctx(t), firing(), sinks.Target{Channel: "zzzzzzzzzzzzzzzzzzzzzzzzzz", Attempt: 1}); sinks.Classify(err) != sinks.ClassPermanent {
		t.Errorf("foreign channel: err = %v, want permanent", err)
	}
	// 300 alerts fit the server's limit.
	if _, err := s.Send(ctx(t), manyAlerts(300), sinks.Target{Attempt: 1}); err != nil {
		t.Errorf("300 alerts: %v", err)
	}
}

func TestWebhook(t *testing.T) {
	srv := mattermosttest.NewServer(testToken)
	defer srv.Close()
	own := srv.AddChannel("ops", "alerts")
	other := srv.AddChannel("ops", "alerts-critical")
	hook := srv.AddHook("k3y0123456789", own, false)
	locked := srv.AddHook("l0cked0123456789", own, true)

	s, err := New("hook", Config{WebhookURL: secret.String(hook), WebhookOverrideChannel: true, Username: "herald", IconEmoji: "rotating_light"}, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Send(ctx(t), firing(), sinks.Target{Channel: "#alerts-critical"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Parent != nil || r.Message != nil {
		t.Errorf("receipt = %v, want none from a webhook", r)
	}
	hp := srv.HookPosts()
	if len(hp) != 1 || hp[0].ChannelID != other || hp[0].Username != "herald" || !strings.Contains(hp[0].Text, "FIRING") {
		t.Fatalf("hook posts = %+v", hp)
	}
	if atts, _ := hp[0].Props["attachments"].([]any); len(atts) != 1 {
		t.Errorf("attachments = %v", hp[0].Props)
	}

	if hp[0].Splits != 1 || hp[0].Props["herald_notification_id"] != firing().Id {
		t.Errorf("hook post: %d splits, props %v", hp[0].Splits, hp[0].Props)
	}
	// 300 alerts still make one post, not a message the server splits.
	if _, err := s.Send(ctx(t), manyAlerts(300), sinks.Target{}); err != nil {
		t.Fatal(err)
	}
	if hp := srv.HookPosts(); hp[len(hp)-1].Splits != 1 {
		t.Errorf("300 alerts: %d splits", hp[len(hp)-1].Splits)
	}

	l, err := New("locked", Config{WebhookURL: secret.String(locked), WebhookOverrideChannel: true}, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Send(ctx(t), firing(), sinks.Target{Channel: "alerts-critical"})
	if sinks.Classify(err) != sinks.ClassPermanent || strings.Contains(err.Error(), "l0cked") {
		t.Errorf("locked hook: err = %v, want permanent without the key", err)
	}
	// Without override the hook's own channel is used.
	n, err := New("plain", Config{WebhookURL: secret.String(locked)}, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Send(ctx(t), firing(), sinks.Target{Channel: "alerts-critical"}); err != nil {
		t.Errorf("plain hook: %v", err)
	}
}

func TestRecreatedChannel(t *testing.T) {
	srv, s, old, _ := newREST(t)
	if _, err := s.Send(ctx(t), firing(), sinks.Target{Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	srv.RemoveChannel("ops", "alerts")
	fresh := srv.AddChannel("ops", "alerts")
	// The cached id is refused: retryable, and the name is looked up again.
	_, err := s.Send(ctx(t), update1(), sinks.Target{Attempt: 1})
	if sinks.Classify(err) != sinks.ClassRetryable {
		t.Fatalf("stale id: err = %v, want retryable", err)
	}
	r, err := s.Send(ctx(t), update1(), sinks.Target{Attempt: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Parent.GetChannelId() != fresh || fresh == old {
		t.Errorf("receipt = %v, want the new channel %s", r, fresh)
	}
	// A channel the bot cannot post in, looked up just now, is permanent.
	srv.RemoveChannel("ops", "alerts")
	if _, err := s.Send(ctx(t), update1(), sinks.Target{Attempt: 1}); sinks.Classify(err) != sinks.ClassRetryable {
		t.Fatalf("err = %v", err)
	}
	if _, err := s.Send(ctx(t), update1(), sinks.Target{Attempt: 2}); sinks.Classify(err) != sinks.ClassPermanent {
		t.Errorf("gone channel: err = %v, want permanent", err)
	}
}

func TestPatchRefusedStillReplies(t *testing.T) {
	srv, s, _, _ := newREST(t)
	r1, err := s.Send(ctx(t), firing(), sinks.Target{Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv.Fail(mattermosttest.Failure{Match: "PUT /api/v4/posts/", Status: 400,
		Body: `{"id":"api.post.update_post.permissions_time_limit.app_error","message":"Message edits are only allowed for 1 minute.","status_code":400}`})
	r2, err := s.Send(ctx(t), resolved(), sinks.Target{Attempt: 1, Parent: r1.Parent})
	if err != nil {
		t.Fatal(err)
	}
	if posts := srv.Posts(); len(posts) != 2 || r2.Message.GetThreadId() != r1.Parent.GetMessageId() {
		t.Errorf("posts %d, receipt %v: want the reply even though the patch was refused", len(posts), r2)
	}
	if n := len(srv.Patches()); n != 0 {
		t.Errorf("%d patches", n)
	}
}

func TestUpdateFailuresAreRetryable(t *testing.T) {
	for _, match := range []string{"GET /api/v4/posts/", "PUT /api/v4/posts/"} {
		srv, s, _, _ := newREST(t)
		r1, err := s.Send(ctx(t), firing(), sinks.Target{Attempt: 1})
		if err != nil {
			t.Fatal(err)
		}
		srv.Fail(mattermosttest.Failure{Match: match, Status: 503, Body: "<html>down</html>"})
		_, err = s.Send(ctx(t), update1(), sinks.Target{Attempt: 1, Parent: r1.Parent})
		if sinks.Classify(err) != sinks.ClassRetryable {
			t.Errorf("%s 503: err = %v, want retryable", match, err)
		}
		if n := len(srv.Posts()); n != 1 {
			t.Errorf("%s 503: %d posts, want no reply yet", match, n)
		}
	}
}

func TestForeignParentStartsNewRoot(t *testing.T) {
	srv, s, chID, _ := newREST(t)
	r, err := s.Send(ctx(t), firing(), sinks.Target{Attempt: 1, Parent: &heraldv1.MessageRef{ChannelId: chID, MessageId: "GENERALmsg17chars"}})
	if err != nil {
		t.Fatal(err)
	}
	if posts := srv.Posts(); len(posts) != 1 || posts[0].RootID != "" || r.Parent.GetMessageId() != posts[0].ID {
		t.Errorf("posts %+v, receipt %v", posts, r)
	}
}

// TestReminder: a repeat of an unchanged group is one line in the root's
// thread, without an attachment; the root is not patched; the mention is
// on every Nth reminder only.
func TestReminder(t *testing.T) {
	srv, s, _, _ := newREST(t)
	s.cfg.RemindMentionEvery = map[string]int{"critical": 2}
	r1, err := s.Send(ctx(t), firing(), sinks.Target{Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 2; k++ {
		n := firing()
		n.Id = fmt.Sprintf("01JREMIND%018d", k)
		if _, err := s.Send(ctx(t), n, sinks.Target{Attempt: 1, Parent: r1.Parent, Reminder: k}); err != nil {
			t.Fatal(err)
		}
	}
	if p := srv.Patches(); len(p) != 0 {
		t.Errorf("reminders patched the root: %+v", p)
	}
	var replies []mattermosttest.Post
	for _, p := range srv.Posts() {
		if p.RootID == r1.Parent.GetMessageId() {
			replies = append(replies, p)
		}
	}
	if len(replies) != 2 {
		t.Fatalf("replies %+v, want two reminders", replies)
	}
	for i, p := range replies {
		k := i + 1
		if !strings.Contains(p.Message, "🔁 Still firing") || !strings.Contains(p.Message, fmt.Sprintf("reminder %d", k)) || p.Props["attachments"] != nil {
			t.Errorf("reminder %d: %q props %v", k, p.Message, p.Props)
		}
		if mentioned := strings.HasPrefix(p.Message, "@channel "); mentioned != (k == 2) {
			t.Errorf("reminder %d mentioned %v: %q", k, mentioned, p.Message)
		}
	}
}
