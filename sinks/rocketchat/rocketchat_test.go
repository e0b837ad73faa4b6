package rocketchat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

const fakeURL = "http://rocketchat.test"

// newREST builds a REST sink that reaches srv in process.
func newREST(t *testing.T, srv *rocketchattest.Server, edit func(*Config)) (*Sink, *bytes.Buffer) {
	t.Helper()
	cfg := Config{URL: fakeURL, UserID: srv.UserID(), Token: secret.String(srv.Token())}
	if edit != nil {
		edit(&cfg)
	}
	var logs bytes.Buffer
	s, err := New("rc", cfg, sinks.Deps{Transport: srv.Transport(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s, &logs
}

// newHook builds a webhook sink posting to a new hook of room.
func newHook(t *testing.T, srv *rocketchattest.Server, room string, edit func(*Config)) *Sink {
	t.Helper()
	cfg := Config{WebhookURL: secret.String(fakeURL + srv.AddHook(room))}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New("hook", cfg, sinks.Deps{Transport: srv.Transport()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLifecycle(t *testing.T) {
	srv := rocketchattest.NewUnstarted(rocketchattest.WithRooms("alerts-critical", "alerts-warning"))
	s, _ := newREST(t, srv, func(c *Config) { c.Mentions = map[string]string{"critical": "@here"} })
	ctx := t.Context()
	to := sinks.Target{Channel: "#alerts-critical", Attempt: 1}

	// 1. The first firing notification of the group posts its message.
	n1 := firing()
	r1, err := s.Send(ctx, n1, to)
	if err != nil {
		t.Fatal(err)
	}
	rid := srv.RoomID("alerts-critical")
	wantID := MessageID("rc", n1.Id, "parent")
	if r1.Parent.GetMessageId() != wantID || r1.Parent.GetChannelId() != rid || r1.Message.GetMessageId() != wantID {
		t.Fatalf("receipt = %v, want parent and message %s in %s", r1, wantID, rid)
	}
	top := srv.TopLevel("alerts-critical")
	if len(top) != 1 || !strings.Contains(top[0].Text, "*FIRING*") || !strings.HasPrefix(top[0].Text, "@here ") {
		t.Fatalf("room after firing: %+v", top)
	}
	// No colour on the group's message: chat.update cannot change it, and
	// a red bar would stay after the resolve.
	if c := top[0].Attachments[0].Color; c != "" {
		t.Errorf("the group's message has colour %s", c)
	}

	// 2. Resolved: the parent's text shows the new state, a reply in its
	// thread carries the details, the attachments stay.
	n2 := resolved()
	to.Parent = r1.Parent
	r2, err := s.Send(ctx, n2, to)
	if err != nil {
		t.Fatal(err)
	}
	parent, _ := srv.Message(wantID)
	if !strings.Contains(parent.Text, "*RESOLVED*") || len(parent.Edits) != 1 || strings.HasPrefix(parent.Text, "@") {
		t.Errorf("parent after resolve: text %q, edits %d", parent.Text, len(parent.Edits))
	}
	if len(parent.Attachments) != 1 || parent.Attachments[0].Color != "" {
		t.Errorf("parent attachments changed: %+v", parent.Attachments)
	}
	thread := srv.Thread(wantID)
	if len(thread) != 1 || !strings.Contains(thread[0].Text, "*RESOLVED*") || thread[0].Attachments[0].Color != "#2ea44f" {
		t.Fatalf("thread: %+v", thread)
	}
	if r2.Parent.GetMessageId() != wantID || r2.Message.GetMessageId() != thread[0].ID || r2.Message.GetThreadId() != wantID {
		t.Errorf("receipt after resolve = %v", r2)
	}
	if n := len(srv.TopLevel("alerts-critical")); n != 1 {
		t.Errorf("%d top-level messages after resolve, want 1", n)
	}

	// 3. Someone deletes the parent: the next notification posts a new one.
	srv.DeleteMessage(wantID)
	n3 := firing()
	n3.Id = "01JDX0REFIRE"
	r3, err := s.Send(ctx, n3, to)
	if err != nil {
		t.Fatal(err)
	}
	if r3.Parent.GetMessageId() == wantID || r3.Parent.GetMessageId() != MessageID("rc", n3.Id, "parent") {
		t.Errorf("receipt after parent gone = %v", r3)
	}
	top = srv.TopLevel("alerts-critical")
	if len(top) != 1 || top[0].ID != r3.Parent.GetMessageId() {
		t.Errorf("room after parent gone: %+v", top)
	}

	// 4. The route now points elsewhere: a new parent in the new room.
	to.Parent, to.Channel = r3.Parent, "#alerts-warning"
	n4 := resolved()
	n4.Id = "01JDX0MOVED"
	r4, err := s.Send(ctx, n4, to)
	if err != nil {
		t.Fatal(err)
	}
	if r4.Parent.GetChannelId() != srv.RoomID("alerts-warning") || len(srv.TopLevel("alerts-warning")) != 1 {
		t.Errorf("receipt after room change = %v", r4)
	}
	if got, _ := srv.Message(r3.Parent.GetMessageId()); len(got.Edits) != 0 {
		t.Error("the parent in the old room was edited")
	}

	// Each "#name" was looked up once.
	if n := srv.Count("rooms.info"); n != 2 {
		t.Errorf("rooms.info called %d times, want 2", n)
	}
}

func TestUpdateRefusedStillReplies(t *testing.T) {
	srv := rocketchattest.NewUnstarted(rocketchattest.WithRooms("alerts"), rocketchattest.WithEditing(false))
	s, logs := newREST(t, srv, nil)
	to := sinks.Target{Channel: "#alerts", Attempt: 1}
	r1, err := s.Send(t.Context(), firing(), to)
	if err != nil {
		t.Fatal(err)
	}
	to.Parent = r1.Parent
	r2, err := s.Send(t.Context(), resolved(), to)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Message.GetThreadId() != r1.Parent.GetMessageId() || len(srv.Thread(r1.Parent.GetMessageId())) != 1 {
		t.Errorf("no thread reply when the edit is refused: %v", r2)
	}
	if !strings.Contains(logs.String(), "could not update") {
		t.Errorf("refused edit not logged: %s", logs)
	}
}

func TestRedeliveredParentIsNotRepliedTo(t *testing.T) {
	srv := rocketchattest.NewUnstarted(rocketchattest.WithRooms("alerts"))
	s, _ := newREST(t, srv, nil)
	to := sinks.Target{Channel: "#alerts", Attempt: 1}
	n := firing()
	r1, err := s.Send(t.Context(), n, to)
	if err != nil {
		t.Fatal(err)
	}
	// The same notification again, now that its group has a parent: it is
	// that parent.
	to.Parent = r1.Parent
	if _, err := s.Send(t.Context(), n, to); err != nil {
		t.Fatal(err)
	}
	if len(srv.AllMessages()) != 1 {
		t.Errorf("%d messages, want 1", len(srv.AllMessages()))
	}
}

// A post whose answer is lost (the client times out after the server
// stored it) must leave exactly one message when retried, whether or not
// the retry knows it is one.
func TestRetryAfterTimeoutLeavesOneMessage(t *testing.T) {
	for _, attempt := range []int{2, 1} {
		t.Run(fmt.Sprintf("retry attempt %d", attempt), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := rocketchattest.NewUnstarted(rocketchattest.WithRooms("alerts-critical"))
				s, _ := newREST(t, srv, func(c *Config) { c.Timeout = 5 * time.Second })
				srv.Inject(rocketchattest.Fault{Endpoint: "chat.sendMessage", Times: 1, Delay: time.Hour, AfterHandling: true})
				to := sinks.Target{Channel: "#alerts-critical", Attempt: 1}
				n := firing()
				_, err := s.Send(t.Context(), n, to)
				if !errors.Is(err, context.DeadlineExceeded) || sinks.Classify(err) != sinks.ClassRetryable {
					t.Fatalf("first send: %v (%s), want a retryable deadline", err, sinks.Classify(err))
				}
				if len(srv.TopLevel("alerts-critical")) != 1 {
					t.Fatal("the fake did not store the timed-out post")
				}
				to.Attempt = attempt
				r, err := s.Send(t.Context(), n, to)
				if err != nil {
					t.Fatal(err)
				}
				msgs := srv.AllMessages()
				if len(msgs) != 1 || msgs[0].ID != r.Parent.GetMessageId() {
					t.Fatalf("after retry: %d messages, receipt %v", len(msgs), r)
				}
				// Attempt > 1 looks before posting; attempt 1 posts, is refused
				// as a duplicate, then looks.
				wantSends := map[int]int{2: 1, 1: 2}[attempt]
				if got := srv.Count("chat.sendMessage"); got != wantSends {
					t.Errorf("chat.sendMessage called %d times, want %d", got, wantSends)
				}
			})
		})
	}
}

func TestRetryOfThreadReplyLeavesOneReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := rocketchattest.NewUnstarted(rocketchattest.WithRooms("alerts"))
		s, _ := newREST(t, srv, func(c *Config) { c.Timeout = 5 * time.Second })
		to := sinks.Target{Channel: "#alerts", Attempt: 1}
		r1, err := s.Send(t.Context(), firing(), to)
		if err != nil {
			t.Fatal(err)
		}
		srv.Inject(rocketchattest.Fault{Endpoint: "chat.sendMessage", Times: 1, Delay: time.Hour, AfterHandling: true})
		to.Parent = r1.Parent
		if _, err := s.Send(t.Context(), resolved(), to); err == nil {
			t.Fatal("the timed-out reply succeeded")
		}
		to.Attempt = 2
		if _, err := s.Send(t.Context(), resolved(), to); err != nil {
			t.Fatal(err)
		}
		if n := len(srv.Thread(r1.Parent.GetMessageId())); n != 1 {
			t.Errorf("%d replies, want 1", n)
		}
		if p, _ := srv.Message(r1.Parent.GetMessageId()); !strings.Contains(p.Text, "RESOLVED") {
			t.Errorf("parent not updated: %q", p.Text)
		}
	})
}

func TestRESTRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := rocketchattest.NewUnstarted(rocketchattest.WithRooms("alerts"), rocketchattest.WithBotRole(false),
			rocketchattest.WithRateLimit(3, time.Minute))
		rid := srv.RoomID("alerts")
		s, _ := newREST(t, srv, nil)
		to := sinks.Target{Channel: rid, Attempt: 1}
		start := time.Now()
		send := func(i int) error {
			n := firing()
			n.Id = fmt.Sprintf("n%d", i)
			n.GroupKey = n.Id
			_, err := s.Send(t.Context(), n, to)
			return err
		}
		for i := range 3 {
			if err := send(i); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		err := send(3)
		wait, ok := sinks.ThrottleWait(err)
		if !ok || sinks.Classify(err) != sinks.ClassThrottled {
			t.Fatalf("4th send: %v, want throttled", err)
		}
		// The window opened at start and lasts a minute.
		if got := start.Add(time.Minute); time.Now().Add(wait).Before(got) || wait > time.Minute+time.Second {
			t.Errorf("wait %v ends before the window's reset %v", wait, got)
		}
		requests := len(srv.Requests())
		// Until the reset no request is sent at all.
		if err := send(4); !errors.Is(err, ErrRateLimited) || sinks.Classify(err) != sinks.ClassThrottled {
			t.Errorf("send before reset: %v", err)
		}
		if w := s.Wait(to); w <= 0 || w > wait {
			t.Errorf("Wait = %v, want in (0, %v]", w, wait)
		}
		if len(srv.Requests()) != requests {
			t.Error("a request was sent before the reset")
		}
		time.Sleep(wait)
		if err := send(5); err != nil {
			t.Errorf("send after reset: %v", err)
		}
		for _, r := range srv.Requests() {
			if r.Status == http.StatusTooManyRequests && r.At.After(start.Add(time.Minute)) {
				t.Errorf("429 after the reset at %v", r.At)
			}
		}
	})
}

func TestWebhookPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The fake allows more than the sink's default 10/min, so the
		// sink's own pacing is what holds the 11th post back.
		srv := rocketchattest.NewUnstarted(rocketchattest.WithRateLimit(100, time.Minute))
		s := newHook(t, srv, "alerts", nil)
		to := sinks.Target{Channel: "#alerts"}
		start := time.Now()
		for i := range 10 {
			if _, err := s.Send(t.Context(), firing(), to); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			time.Sleep(time.Second)
		}
		_, err := s.Send(t.Context(), firing(), to)
		wait, _ := sinks.ThrottleWait(err)
		if !errors.Is(err, ErrPaced) || sinks.Classify(err) != sinks.ClassThrottled {
			t.Fatalf("11th send: %v, want ErrPaced throttled", err)
		}
		// The first post's slot frees 60s after it.
		if want := time.Until(start.Add(time.Minute)); wait != want {
			t.Errorf("wait = %v, want %v", wait, want)
		}
		if w := s.Wait(to); w != wait {
			t.Errorf("Wait = %v, want %v", w, wait)
		}
		if n := srv.Count("webhook"); n != 10 {
			t.Errorf("%d hook requests, want 10 (the 11th must not be sent)", n)
		}
		time.Sleep(wait)
		if _, err := s.Send(t.Context(), firing(), to); err != nil {
			t.Errorf("send after the wait: %v", err)
		}
		for _, r := range srv.Requests() {
			if r.Status != http.StatusOK {
				t.Errorf("the hook answered %d at %v", r.Status, r.At.Sub(start))
			}
		}
		if n := len(srv.Messages("alerts")); n != 11 {
			t.Errorf("%d messages, want 11", n)
		}
		if msgs := srv.Messages("alerts"); msgs[0].Via != "webhook" || msgs[0].ThreadID != "" {
			t.Errorf("hook message: %+v", msgs[0])
		}
	})
}

// Another client sharing the hook uses up its window: the fake's 429 blocks
// the sink until X-RateLimit-Reset, without further requests.
func TestWebhook429(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := rocketchattest.NewUnstarted(rocketchattest.WithRateLimit(2, time.Minute))
		s := newHook(t, srv, "alerts", nil) // the sink believes in 10/min
		to := sinks.Target{}
		var err error
		sent := 0
		for err == nil {
			_, err = s.Send(t.Context(), firing(), to)
			sent++
		}
		wait, ok := sinks.ThrottleWait(err)
		if !ok || sent != 3 {
			t.Fatalf("after %d sends: %v", sent, err)
		}
		if wait > time.Minute+time.Second || wait <= 0 {
			t.Errorf("wait = %v", wait)
		}
		before := srv.Count("webhook")
		if _, err := s.Send(t.Context(), firing(), to); sinks.Classify(err) != sinks.ClassThrottled || srv.Count("webhook") != before {
			t.Errorf("send during the block: %v, %d requests", err, srv.Count("webhook")-before)
		}
		time.Sleep(wait)
		if _, err := s.Send(t.Context(), firing(), to); err != nil {
			t.Errorf("send after reset: %v", err)
		}
	})
}

func TestWebhookDigest(t *testing.T) {
	srv := rocketchattest.NewUnstarted()
	s := newHook(t, srv, "alerts", nil)
	var ns []*heraldv1.Notification
	for i := range 30 {
		n := firing()
		n.Id = fmt.Sprintf("n%d", i)
		ns = append(ns, n)
	}
	r, err := s.SendBatch(t.Context(), ns, sinks.Target{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Parent != nil {
		t.Errorf("a digest became a parent: %v", r)
	}
	msgs := srv.Messages("alerts")
	if len(msgs) != 1 || !strings.Contains(msgs[0].Text, "*30 notifications*") {
		t.Fatalf("digest: %+v", msgs)
	}
}

func TestRESTDigestIdempotent(t *testing.T) {
	srv := rocketchattest.NewUnstarted(rocketchattest.WithRooms("alerts"))
	s, _ := newREST(t, srv, nil)
	ns := []*heraldv1.Notification{firing(), resolved()}
	to := sinks.Target{Channel: "#alerts", Attempt: 1}
	r1, err := s.SendBatch(t.Context(), ns, to)
	if err != nil {
		t.Fatal(err)
	}
	// Same set, other order: the same digest, not a second one.
	r2, err := s.SendBatch(t.Context(), []*heraldv1.Notification{ns[1], ns[0]}, to)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Message.GetMessageId() != r2.Message.GetMessageId() || len(srv.AllMessages()) != 1 {
		t.Errorf("digest posted twice: %v %v", r1, r2)
	}
}

// TestRESTDigestLeadsToItsGroups: a digest is the parent, marked digest, of
// the groups it shows; a group's next notification replies in the digest's
// thread with its whole message and never edits the digest; a digest that
// was deleted gives way to a new message of the group's own.
func TestRESTDigestLeadsToItsGroups(t *testing.T) {
	srv := rocketchattest.NewUnstarted(rocketchattest.WithRooms("alerts"))
	s, _ := newREST(t, srv, nil)
	ns := []*heraldv1.Notification{firing(), firing()}
	ns[1].Id, ns[1].GroupKey = "other", "other-group"
	to := sinks.Target{Channel: "#alerts", Attempt: 1}
	d, err := s.SendBatch(t.Context(), ns, to)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Parent.GetDigest() || d.Parent.GetMessageId() != d.Message.GetMessageId() {
		t.Fatalf("digest receipt %+v, want the digest as a parent marked digest", d)
	}
	to.Parent = d.Parent
	r, err := s.Send(t.Context(), resolved(), to)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Parent.GetDigest() || r.Parent.GetMessageId() != d.Message.GetMessageId() {
		t.Errorf("reply receipt parent %+v, want the digest, still marked", r.Parent)
	}
	thread := srv.Thread(d.Message.GetMessageId())
	if len(thread) != 1 || r.Message.GetMessageId() != thread[0].ID {
		t.Fatalf("digest's thread: %+v, want the resolve alone", thread)
	}
	if !strings.Contains(thread[0].Text+fmt.Sprint(thread[0].Attachments), "RESOLVED") {
		t.Errorf("the reply does not say RESOLVED: %+v", thread[0])
	}
	if m, _ := srv.Message(d.Message.GetMessageId()); len(m.Edits) != 0 {
		t.Errorf("the digest was edited: %v", m.Edits)
	}
	if n := srv.Count("chat.update"); n != 0 {
		t.Errorf("%d chat.update calls, want none", n)
	}

	// Gone: the group's next notification posts a message of its own.
	gone := sinks.Target{Channel: "#alerts", Attempt: 1, Parent: &heraldv1.MessageRef{ChannelId: d.Parent.GetChannelId(), MessageId: "no-such-message", Digest: true}}
	r, err = s.Send(t.Context(), firing(), gone)
	if err != nil {
		t.Fatal(err)
	}
	if r.Parent.GetDigest() || r.Parent.GetMessageId() == "no-such-message" || r.Message.GetThreadId() != "" {
		t.Errorf("after the digest was deleted: %+v, want a new top-level message of the group's own", r)
	}
}

// TestWebhookChannel covers where a webhook sink posts a route's channel,
// and says so when it cannot (issue 14, bug 10): without
// webhook_override_channel the hook's own channel, with a warning logged
// once per channel; with it, the route's channel when the hook allows it,
// and otherwise a retryable error naming the setting, so that the
// notification takes the chain's fallback rather than the dead letters.
func TestWebhookChannel(t *testing.T) {
	cases := []struct {
		name      string
		override  bool // webhook_override_channel
		hookAllow bool // the hook's "Override destination channel"
		channel   string
		wantRoom  string
		wantClass sinks.Class
		wantWarn  int
	}{
		{"override allowed", true, true, "#alerts-critical", "alerts-critical", sinks.ClassNone, 0},
		{"override allowed, no route channel", true, true, "", "alerts", sinks.ClassNone, 0},
		{"override refused by the hook", true, false, "#alerts-critical", "", sinks.ClassRetryable, 0},
		{"no override, route channel ignored", false, true, "#alerts-critical", "alerts", sinks.ClassNone, 1},
		{"no override, hook refuses overrides", false, false, "#alerts-critical", "alerts", sinks.ClassNone, 1},
		{"no override, no route channel", false, false, "", "alerts", sinks.ClassNone, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := rocketchattest.NewUnstarted(rocketchattest.WithRooms("alerts-critical"))
			var opts []rocketchattest.HookOption
			if c.hookAllow {
				opts = append(opts, rocketchattest.HookOverrideChannel())
			}
			path := srv.AddHook("alerts", opts...)
			var logs bytes.Buffer
			s, err := New("hook", Config{WebhookURL: secret.String(fakeURL + path), WebhookOverrideChannel: c.override},
				sinks.Deps{Transport: srv.Transport(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			to := sinks.Target{Channel: c.channel, Route: "critical"}
			for i := range 2 {
				n := firing()
				n.Id = fmt.Sprint("n", i)
				_, err := s.Send(t.Context(), n, to)
				if got := sinks.Classify(err); got != c.wantClass {
					t.Fatalf("send %d: class %s, want %s (%v)", i, got, c.wantClass, err)
				}
				if c.wantClass == sinks.ClassNone {
					continue
				}
				if !errors.Is(err, ErrOverrideRefused) || !strings.Contains(err.Error(), "webhook_override_channel") {
					t.Errorf("error %q does not say which setting is wrong", err)
				}
				var ae *APIError
				if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest {
					t.Errorf("error %v does not carry Rocket.Chat's answer", err)
				}
				sinktestNoSecret(t, err, fakeURL+path)
			}
			stored := map[string]int{"alerts": len(srv.Messages("alerts")), "alerts-critical": len(srv.Messages("alerts-critical"))}
			want := map[string]int{"alerts": 0, "alerts-critical": 0}
			if c.wantRoom != "" {
				want[c.wantRoom] = 2
			}
			if stored["alerts"] != want["alerts"] || stored["alerts-critical"] != want["alerts-critical"] {
				t.Errorf("messages per room %v, want %v", stored, want)
			}
			if n := strings.Count(logs.String(), "the route's channel is ignored"); n != c.wantWarn {
				t.Errorf("warned %d times, want %d:\n%s", n, c.wantWarn, logs.String())
			}
		})
	}
}

// sinktestNoSecret fails t when err shows the hook URL or its path.
func sinktestNoSecret(t *testing.T, err error, hook string) {
	t.Helper()
	u, _ := url.Parse(hook)
	for _, sec := range []string{hook, u.Path} {
		if strings.Contains(err.Error(), sec) {
			t.Errorf("error %q shows the hook URL", err)
		}
	}
}

func TestErrorsREST(t *testing.T) {
	srv := rocketchattest.NewUnstarted(rocketchattest.WithRooms("alerts"))
	ctx := t.Context()
	to := sinks.Target{Channel: "#alerts", Attempt: 1}

	// Bad credentials: permanent, logged once, the token never shown.
	bad, logs := newREST(t, srv, func(c *Config) { c.Token = "wrong-token-value" })
	for range 3 {
		_, err := bad.Send(ctx, firing(), to)
		if sinks.Classify(err) != sinks.ClassPermanent || strings.Contains(err.Error(), "wrong-token-value") {
			t.Fatalf("bad token: %v", err)
		}
		var se *sinks.StatusError
		if !errors.As(err, &se) || se.StatusCode != 401 {
			t.Errorf("no 401 StatusError in %v", err)
		}
	}
	if n := strings.Count(logs.String(), "refused herald's credentials"); n != 1 {
		t.Errorf("credential problem logged %d times, want 1:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), "wrong-token-value") {
		t.Error("the token is in the log")
	}

	s, _ := newREST(t, srv, nil)
	// Unknown channel: permanent.
	if _, err := s.Send(ctx, firing(), sinks.Target{Channel: "#nope"}); sinks.Classify(err) != sinks.ClassPermanent {
		t.Errorf("unknown channel: %v", err)
	}
	// No channel at all: permanent.
	if _, err := s.Send(ctx, firing(), sinks.Target{}); sinks.Classify(err) != sinks.ClassPermanent {
		t.Errorf("no channel: %v", err)
	}
	// Server down: retryable.
	srv.SetDown(true)
	if _, err := s.Send(ctx, firing(), to); sinks.Classify(err) != sinks.ClassRetryable {
		t.Errorf("down: %v", err)
	}
	srv.SetDown(false)
	// success:false in a 200: retryable (see TestAnswerClasses).
	srv.SuccessFalseNext("chat.sendMessage", 1)
	if _, err := s.Send(ctx, firing(), to); sinks.Classify(err) != sinks.ClassRetryable {
		t.Errorf("success:false: %v", err)
	}
	// A closed connection: retryable.
	srv.Inject(rocketchattest.Fault{Endpoint: "chat.sendMessage", Times: 1, CloseConnection: true})
	n := firing()
	n.Id = "other"
	if _, err := s.Send(ctx, n, to); sinks.Classify(err) != sinks.ClassRetryable {
		t.Errorf("closed connection: %v", err)
	}
	// A stale room id (room deleted and made again): retryable, and the
	// retry finds the new room.
	srv.DeleteRoom("alerts")
	srv.CreateRoom("alerts")
	n.Id = "after-recreate"
	if _, err := s.Send(ctx, n, to); sinks.Classify(err) != sinks.ClassRetryable {
		t.Errorf("stale room: %v (%s)", err, sinks.Classify(err))
	}
	if _, err := s.Send(ctx, n, to); err != nil {
		t.Errorf("after the room was made again: %v", err)
	}
}

// TestAnswerClasses sends to the strict fake answering each kind of
// failure and checks its class (issue 14, bug 8). Only an answer that can
// never succeed is permanent, which without a fallback sends the
// notification to the dead letters at once: bad credentials, an unknown
// room, a body the server refuses by its schema or size. A 200 that says
// success:false and a 404 (also on the lookup a retry starts with) may
// pass later: retryable.
func TestAnswerClasses(t *testing.T) {
	notFound := rocketchattest.Fault{Status: http.StatusNotFound, Times: 1, Body: "404 page not found",
		Header: http.Header{"Content-Type": {"text/plain"}}}
	on := func(f rocketchattest.Fault, endpoint string) rocketchattest.Fault { f.Endpoint = endpoint; return f }
	long := firing()
	long.Text = strings.Repeat("the disk is full ", 300)
	cases := []struct {
		name    string
		opts    []rocketchattest.Option
		hook    bool
		cfg     func(*Config)
		faults  []rocketchattest.Fault
		n       *heraldv1.Notification
		to      sinks.Target
		want    sinks.Class
		wantErr string // in the error's text
	}{
		{name: "delivered", want: sinks.ClassNone},
		{name: "retry finds no message and posts", to: sinks.Target{Attempt: 2}, want: sinks.ClassNone},
		{name: "200 success:false on chat.sendMessage", faults: []rocketchattest.Fault{successFalse("chat.sendMessage")},
			want: sinks.ClassRetryable, wantErr: "unknown-error"},
		{name: "200 success:false on rooms.info", faults: []rocketchattest.Fault{successFalse("rooms.info")},
			to: sinks.Target{Channel: "#alerts"}, want: sinks.ClassRetryable},
		{name: "200 success:false on chat.getMessage before a retry", faults: []rocketchattest.Fault{successFalse("chat.getMessage")},
			to: sinks.Target{Attempt: 2}, want: sinks.ClassRetryable},
		{name: "200 success:false naming an unknown room", want: sinks.ClassPermanent, faults: []rocketchattest.Fault{{
			Endpoint: "chat.sendMessage", Times: 1, Status: 200, Body: `{"success":false,"error":"Invalid room [error-invalid-room]","errorType":"error-invalid-room"}`}}},
		{name: "404 on chat.getMessage before a retry", faults: []rocketchattest.Fault{on(notFound, "chat.getMessage")},
			to: sinks.Target{Attempt: 2}, want: sinks.ClassRetryable, wantErr: "HTTP 404"},
		{name: "404 on chat.sendMessage", faults: []rocketchattest.Fault{on(notFound, "chat.sendMessage")}, want: sinks.ClassRetryable},
		{name: "404 on rooms.info", faults: []rocketchattest.Fault{on(notFound, "rooms.info")}, to: sinks.Target{Channel: "#alerts"},
			want: sinks.ClassRetryable},
		{name: "400 on chat.sendMessage, then 404 on the lookup", want: sinks.ClassRetryable, wantErr: "looking the message up", faults: []rocketchattest.Fault{
			{Endpoint: "chat.sendMessage", Times: 1, Status: 400, Body: `{"success":false,"error":"E11000 duplicate key error"}`}, on(notFound, "chat.getMessage")}},
		{name: "500", faults: []rocketchattest.Fault{{Endpoint: "chat.sendMessage", Times: 1, Status: 500, Body: `{"success":false,"error":"Internal server error"}`}},
			want: sinks.ClassRetryable},
		{name: "429", faults: []rocketchattest.Fault{{Endpoint: "chat.sendMessage", Times: 1, Status: 429, Body: `{"success":false}`}},
			want: sinks.ClassThrottled},
		{name: "bad credentials", cfg: func(c *Config) { c.Token = "wrong-token" }, want: sinks.ClassPermanent, wantErr: "HTTP 401"},
		{name: "unknown room name", to: sinks.Target{Channel: "#nope"}, want: sinks.ClassPermanent, wantErr: "error-room-not-found"},
		{name: "unknown room id", to: sinks.Target{Channel: "Rnope"}, want: sinks.ClassPermanent, wantErr: "error-invalid-room"},
		{name: "body refused by the schema", want: sinks.ClassPermanent, wantErr: "invalid-params", faults: []rocketchattest.Fault{{
			Endpoint: "chat.sendMessage", Times: 1, Status: 400,
			Body: `{"success":false,"error":"must NOT have additional properties [invalid-params]","errorType":"invalid-params"}`}}},
		{name: "message over the server's size limit", opts: []rocketchattest.Option{rocketchattest.WithMaxMessageSize(500)},
			n: long, want: sinks.ClassPermanent, wantErr: "error-message-size-exceeded"},
		{name: "webhook delivered", hook: true, want: sinks.ClassNone},
		{name: "webhook 200 success:false", hook: true, faults: []rocketchattest.Fault{successFalse("webhook")}, want: sinks.ClassRetryable},
		{name: "webhook 404", hook: true, faults: []rocketchattest.Fault{on(notFound, "webhook")}, want: sinks.ClassRetryable},
		{name: "webhook with a bad token", hook: true, cfg: func(c *Config) { c.WebhookURL += "x" }, want: sinks.ClassPermanent, wantErr: "HTTP 401"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := rocketchattest.NewUnstarted(append([]rocketchattest.Option{rocketchattest.WithRooms("alerts")}, c.opts...)...)
			var cfg Config
			if c.hook {
				cfg = Config{WebhookURL: secret.String(fakeURL + srv.AddHook("alerts"))}
			} else {
				cfg = Config{URL: fakeURL, UserID: srv.UserID(), Token: secret.String(srv.Token()), Channel: srv.RoomID("alerts")}
			}
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			s, err := New("rc", cfg, sinks.Deps{Transport: srv.Transport()})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range c.faults {
				srv.Inject(f)
			}
			n := c.n
			if n == nil {
				n = firing()
			}
			to := c.to
			if to.Attempt == 0 {
				to.Attempt = 1
			}
			_, err = s.Send(t.Context(), n, to)
			if got := sinks.Classify(err); got != c.want {
				t.Fatalf("class %s, want %s (err: %v)", got, c.want, err)
			}
			if err != nil && !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("error %q does not say %q", err, c.wantErr)
			}
			if c.want == sinks.ClassNone && len(srv.Messages("alerts")) != 1 {
				t.Errorf("%d messages in the room, want 1", len(srv.Messages("alerts")))
			}
		})
	}
}

// successFalse answers the next request to endpoint with a 200 that says
// success:false, as rocketchattest.Server.SuccessFalseNext does.
func successFalse(endpoint string) rocketchattest.Fault {
	return rocketchattest.Fault{Endpoint: endpoint, Times: 1, Status: http.StatusOK, Body: `{"success":false,"error":"unknown-error"}`}
}

func TestMessageID(t *testing.T) {
	a := MessageID("rc", "n1", "parent")
	if len(a) != 17 || strings.Trim(a, idAlphabet) != "" {
		t.Errorf("id %q is not 17 characters of Rocket.Chat's alphabet", a)
	}
	if a != MessageID("rc", "n1", "parent") {
		t.Error("not deterministic")
	}
	for _, other := range []string{MessageID("rc", "n1", "reply"), MessageID("rc2", "n1", "parent"), MessageID("rc", "n2", "parent")} {
		if other == a {
			t.Errorf("collision: %s", a)
		}
	}
}

// A driver like the dispatcher's: send, and on a throttle error wait what
// it says. Every notification arrives once, the webhook never sees a 429,
// and REST never sends before a 429's reset.
func TestStorm(t *testing.T) {
	for _, mode := range []Mode{ModeWebhook, ModeREST} {
		t.Run(string(mode), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := rocketchattest.NewUnstarted(rocketchattest.WithRooms("alerts"), rocketchattest.WithBotRole(false))
				var s *Sink
				if mode == ModeWebhook {
					s = newHook(t, srv, "alerts", nil)
				} else {
					s, _ = newREST(t, srv, nil)
				}
				to := sinks.Target{Channel: srv.RoomID("alerts"), Attempt: 1}
				const total = 35
				for i := range total {
					n := firing()
					n.Id = fmt.Sprintf("storm-%02d", i)
					for {
						_, err := s.Send(t.Context(), n, to)
						if err == nil {
							break
						}
						wait, ok := sinks.ThrottleWait(err)
						if !ok {
							t.Fatalf("notification %d: %v", i, err)
						}
						time.Sleep(wait)
					}
				}
				if got := len(srv.Messages("alerts")); got != total {
					t.Errorf("%d messages, want %d", got, total)
				}
				var resetAt time.Time
				for _, r := range srv.Requests() {
					if r.At.Before(resetAt) {
						t.Errorf("request at %v before the reset at %v", r.At, resetAt)
					}
					if r.Status == http.StatusTooManyRequests {
						if mode == ModeWebhook {
							t.Errorf("the hook answered 429 at %v", r.At)
						}
						resetAt = r.RateLimitReset()
						if resetAt.IsZero() {
							t.Fatal("a 429 without X-RateLimit-Reset")
						}
					}
				}
			})
		})
	}
}

func TestTemplates(t *testing.T) {
	dir := t.TempDir()
	sinkT := dir + "/sink.tmpl"
	routeT := dir + "/route.tmpl"
	broken := dir + "/broken.tmpl"
	os.WriteFile(sinkT, []byte(`{{define "text"}}SINK {{.Title}}{{end}}`), 0o644)
	os.WriteFile(routeT, []byte(`{{define "text"}}ROUTE {{.StatusText}}{{end}}`), 0o644)
	os.WriteFile(broken, []byte(`{{define "text"}}{{.Missing}}{{end}}`), 0o644)
	srv := rocketchattest.NewUnstarted(rocketchattest.WithRooms("alerts"))
	s, logs := newREST(t, srv, func(c *Config) { c.Template = sinkT; c.Channel = "#alerts" })
	for i, c := range []struct{ file, want string }{
		{"", "SINK DiskFull: 3 hosts"},
		{routeT, "ROUTE FIRING"},
		{broken, "SINK DiskFull: 3 hosts"},
	} {
		n := firing()
		n.Id = fmt.Sprintf("tmpl-%d", i)
		r, err := s.Send(t.Context(), n, sinks.Target{Template: c.file, Route: "r"})
		if err != nil {
			t.Fatal(err)
		}
		if m, _ := srv.Message(r.Message.GetMessageId()); m.Text != c.want {
			t.Errorf("template %q: text %q, want %q", c.file, m.Text, c.want)
		}
	}
	if !strings.Contains(logs.String(), "route template unusable") {
		t.Errorf("broken route template not logged:\n%s", logs)
	}
}

// The fake refuses anything over its Message_MaxAllowedSize, like the real
// server: a huge notification must still go through.
func TestNeverFailsForSize(t *testing.T) {
	for _, mode := range []Mode{ModeREST, ModeWebhook} {
		srv := rocketchattest.NewUnstarted(rocketchattest.WithRooms("alerts"), rocketchattest.WithMaxMessageSize(800))
		var s *Sink
		if mode == ModeREST {
			s, _ = newREST(t, srv, func(c *Config) { c.MaxMessageSize = 800 })
		} else {
			s = newHook(t, srv, "alerts", func(c *Config) { c.MaxMessageSize = 800 })
		}
		for _, n := range []*heraldv1.Notification{huge(), many(300), unicodeN()} {
			if _, err := s.Send(t.Context(), n, sinks.Target{Channel: "#alerts"}); err != nil {
				t.Errorf("%s %s: %v", mode, n.Id, err)
			}
		}
		if got := len(srv.Messages("alerts")); got != 3 {
			t.Errorf("%s: %d messages, want 3", mode, got)
		}
	}
}

// TestReminder: a repeat of an unchanged group is one short thread reply;
// the group's message is not edited; the mention is on every Nth reminder
// only; a reminder whose thread is gone starts the group anew.
func TestReminder(t *testing.T) {
	srv := rocketchattest.NewUnstarted(rocketchattest.WithRooms("alerts"))
	s, _ := newREST(t, srv, func(c *Config) {
		c.Mentions = map[string]string{"critical": "@here"}
		c.RemindMentionEvery = map[string]int{"critical": 2}
	})
	to := sinks.Target{Channel: "#alerts", Attempt: 1}
	first, err := s.Send(t.Context(), firing(), to)
	if err != nil {
		t.Fatal(err)
	}
	to.Parent = first.Parent
	for k := 1; k <= 2; k++ {
		n := firing()
		n.Id = fmt.Sprintf("01JDXREMIND%d", k)
		to.Reminder = k
		r, err := s.Send(t.Context(), n, to)
		if err != nil {
			t.Fatal(err)
		}
		if r.Parent.GetMessageId() != first.Parent.GetMessageId() {
			t.Errorf("reminder %d: parent %v, want the group's", k, r.Parent)
		}
	}
	parent, _ := srv.Message(first.Parent.GetMessageId())
	if len(parent.Edits) != 0 {
		t.Errorf("reminders edited the group's message: %v", parent.Edits)
	}
	if n := srv.Count("chat.update"); n != 0 {
		t.Errorf("%d chat.update calls for reminders", n)
	}
	thread := srv.Thread(first.Parent.GetMessageId())
	if len(thread) != 2 {
		t.Fatalf("thread %+v, want two reminders", thread)
	}
	for i, m := range thread {
		if !strings.Contains(m.Text, "🔁 Still firing") || !strings.Contains(m.Text, fmt.Sprintf("reminder %d", i+1)) || len(m.Attachments) != 0 {
			t.Errorf("reminder %d: %q, %d attachments", i+1, m.Text, len(m.Attachments))
		}
		if mentioned := strings.HasPrefix(m.Text, "@here "); mentioned != (i+1 == 2) {
			t.Errorf("reminder %d: mentioned %v, want only on the second (remind_mention_every 2): %q", i+1, mentioned, m.Text)
		}
	}

	// The group's message was deleted: the reminder's reply is refused,
	// and the whole message is posted as the group's new one.
	srv.DeleteMessage(first.Parent.GetMessageId())
	n := firing()
	n.Id = "01JDXREMIND3"
	to.Reminder = 3
	r, err := s.Send(t.Context(), n, to)
	if err != nil {
		t.Fatal(err)
	}
	if r.Parent.GetMessageId() == first.Parent.GetMessageId() || len(srv.TopLevel("alerts")) != 1 {
		t.Errorf("after the parent was deleted: receipt %v, top level %+v", r, srv.TopLevel("alerts"))
	}
}
