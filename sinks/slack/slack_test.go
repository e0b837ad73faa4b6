package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/sinktest"
	"github.com/herald-notify/herald/sinks/slack/slackfake"
)

// newBot starts a fake Slack with channel #alerts and a bot-mode sink on it.
// Pacing is off: these tests are about the lifecycle, not the pace.
func newBot(t *testing.T, mutate ...func(*Config)) (*Sink, *slackfake.Server, string) {
	t.Helper()
	fake := slackfake.New(testToken)
	t.Cleanup(fake.Close)
	id := fake.AddChannel("alerts")
	cfg := Config{APIURL: fake.APIURL(), Token: testToken, Pace: -1}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := New("slack", cfg, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return s, fake, id
}

// header returns the text of the message's header block, or of its first
// section for replies.
func header(t *testing.T, m slackfake.Message) string {
	t.Helper()
	var blocks []struct {
		Type string `json:"type"`
		Text struct {
			Text string `json:"text"`
		} `json:"text"`
	}
	if err := json.Unmarshal(m.Blocks, &blocks); err != nil || len(blocks) == 0 {
		t.Fatalf("message has no readable blocks: %v %s", err, m.Blocks)
	}
	return blocks[0].Text.Text
}

func TestLifecycle(t *testing.T) {
	s, fake, id := newBot(t)
	ctx := t.Context()

	r1, err := s.Send(ctx, firing(), sinks.Target{Channel: "#alerts"})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Parent.GetChannelId() != id || r1.Parent.GetMessageId() == "" {
		t.Fatalf("first receipt parent = %v, want a message in %s", r1.Parent, id)
	}
	if r1.Message.GetMessageId() != r1.Parent.GetMessageId() {
		t.Errorf("first receipt message = %v, want the parent", r1.Message)
	}
	parent, ok := fake.Message(id, r1.Parent.GetMessageId())
	if !ok || !strings.Contains(header(t, parent), "[FIRING:2] HighErrorRate") {
		t.Fatalf("parent = %+v, want the firing message", parent)
	}

	r2, err := s.Send(ctx, resolved(), sinks.Target{Channel: "#alerts", Parent: r1.Parent})
	if err != nil {
		t.Fatal(err)
	}
	parent, _ = fake.Message(id, r1.Parent.GetMessageId())
	if parent.Edits != 1 || !strings.Contains(header(t, parent), "[RESOLVED] HighErrorRate") {
		t.Errorf("after resolve, parent has %d edits and header %q; want 1 edit showing RESOLVED", parent.Edits, header(t, parent))
	}
	if r2.Parent.GetMessageId() != r1.Parent.GetMessageId() {
		t.Errorf("resolve receipt parent = %v, want the same parent %v", r2.Parent, r1.Parent)
	}
	reply, ok := fake.Message(id, r2.Message.GetMessageId())
	if !ok || reply.ThreadTS != r1.Parent.GetMessageId() || r2.Message.GetThreadId() != r1.Parent.GetMessageId() {
		t.Errorf("reply = %+v (receipt %v), want a reply in the parent's thread", reply, r2.Message)
	}
	if got := len(fake.Messages("alerts")); got != 2 {
		t.Errorf("channel has %d messages, want the parent and one reply", got)
	}
	if n := fake.Requests(slackfake.History) + fake.Requests(slackfake.Replies) + fake.Requests(slackfake.List); n != 0 {
		t.Errorf("%d lookups on first attempts, want none", n)
	}
}

func TestParentGone(t *testing.T) {
	for _, c := range []struct {
		name string
		gone func(fake *slackfake.Server, id, ts string)
	}{
		{"deleted", func(fake *slackfake.Server, id, ts string) { fake.DeleteMessage(id, ts) }},
		{"cant_update_message", func(fake *slackfake.Server, _, _ string) {
			fake.Fail(slackfake.Update, slackfake.Failure{Error: "cant_update_message"})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, fake, id := newBot(t)
			r1, err := s.Send(t.Context(), firing(), sinks.Target{Channel: "#alerts"})
			if err != nil {
				t.Fatal(err)
			}
			c.gone(fake, id, r1.Parent.GetMessageId())
			r2, err := s.Send(t.Context(), resolved(), sinks.Target{Channel: "#alerts", Parent: r1.Parent})
			if err != nil {
				t.Fatalf("send after the parent is gone: %v", err)
			}
			if r2.Parent.GetMessageId() == "" || r2.Parent.GetMessageId() == r1.Parent.GetMessageId() {
				t.Fatalf("receipt parent = %v, want a new parent", r2.Parent)
			}
			m, ok := fake.Message(id, r2.Parent.GetMessageId())
			if !ok || m.ThreadTS != "" || !strings.Contains(header(t, m), "[RESOLVED]") {
				t.Errorf("new parent = %+v, want a top-level message with the group's current state", m)
			}
		})
	}
}

func TestUpdateFailureSendsNoReply(t *testing.T) {
	s, fake, _ := newBot(t)
	r1, err := s.Send(t.Context(), firing(), sinks.Target{Channel: "#alerts"})
	if err != nil {
		t.Fatal(err)
	}
	fake.Fail(slackfake.Update, slackfake.Failure{Status: 503})
	before := fake.Requests(slackfake.PostMessage)
	_, err = s.Send(t.Context(), resolved(), sinks.Target{Channel: "#alerts", Parent: r1.Parent})
	if sinks.Classify(err) != sinks.ClassRetryable {
		t.Fatalf("err = %v (%s), want retryable", err, sinks.Classify(err))
	}
	if got := fake.Requests(slackfake.PostMessage); got != before {
		t.Errorf("%d posts after a failed update, want none: the retry posts the reply", got-before)
	}
}

func TestReplyThrottled(t *testing.T) {
	s, fake, _ := newBot(t)
	r1, err := s.Send(t.Context(), firing(), sinks.Target{Channel: "#alerts"})
	if err != nil {
		t.Fatal(err)
	}
	fake.Fail(slackfake.PostMessage, slackfake.Failure{Status: 429, RetryAfter: "9"})
	_, err = s.Send(t.Context(), resolved(), sinks.Target{Channel: "#alerts", Parent: r1.Parent})
	if w, ok := sinks.ThrottleWait(err); !ok || w.Seconds() != 9 {
		t.Fatalf("err = %v, want throttled for 9s", err)
	}
}

func TestFallbackLineAndOverrides(t *testing.T) {
	s, fake, _ := newBot(t, func(c *Config) {
		c.Username, c.IconEmoji = "herald", ":rotating_light:"
		c.Mentions = map[string]string{"critical": "@here"}
	})
	_, err := s.Send(t.Context(), firing(), sinks.Target{Channel: "alerts", FallbackFrom: "Rocket.Chat", FallbackReason: "unavailable"})
	if err != nil {
		t.Fatal(err)
	}
	m := fake.Messages("alerts")[0]
	if !strings.Contains(string(m.Blocks), "via fallback: Rocket.Chat unavailable") {
		t.Errorf("blocks lack the fallback line: %s", m.Blocks)
	}
	if !strings.HasPrefix(m.Text, "<!here> ") {
		t.Errorf("text = %q, want it to start with the configured mention", m.Text)
	}
	if m.Username != "herald" || m.IconEmoji != ":rotating_light:" {
		t.Errorf("username, icon = %q, %q", m.Username, m.IconEmoji)
	}
}

func TestPermanentFailures(t *testing.T) {
	for _, c := range []struct {
		name   string
		token  secret.String
		target sinks.Target
		code   string
	}{
		{"wrong token", "xoxb-wrong-token-value", sinks.Target{Channel: "#alerts"}, "invalid_auth"},
		{"unknown channel", testToken, sinks.Target{Channel: "#nowhere"}, "channel_not_found"},
		{"no channel", testToken, sinks.Target{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _, _ := newBot(t, func(cfg *Config) { cfg.Token = c.token })
			_, err := s.Send(t.Context(), firing(), c.target)
			if sinks.Classify(err) != sinks.ClassPermanent {
				t.Fatalf("err = %v (%s), want permanent", err, sinks.Classify(err))
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != c.code {
				t.Errorf("err = %v, want code %q", err, c.code)
			}
			sinktest.AssertNoSecret(t, err, []string{c.token.Value()})
		})
	}
}

func TestWebhook(t *testing.T) {
	fake := slackfake.New(testToken)
	t.Cleanup(fake.Close)
	hook := fake.AddWebhook("alerts")
	s, err := New("slack-hook", Config{WebhookURL: secret.String(hook), Pace: -1}, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	parent := &heraldv1.MessageRef{ChannelId: "C1", MessageId: "1.1"}
	for _, n := range []*heraldv1.Notification{firing(), resolved()} {
		r, err := s.Send(t.Context(), n, sinks.Target{Parent: parent})
		if err != nil {
			t.Fatal(err)
		}
		if r.Parent != nil || r.Message != nil {
			t.Errorf("receipt = %+v, want no references from a webhook", r)
		}
	}
	msgs := fake.Messages("alerts")
	if len(msgs) != 2 || !msgs[0].ViaWebhook || !strings.Contains(header(t, msgs[1]), "[RESOLVED]") {
		t.Fatalf("channel got %+v, want two webhook messages, the second resolved", msgs)
	}

	fake.ArchiveChannel("alerts")
	_, err = s.Send(t.Context(), firing(), sinks.Target{})
	var e *Error
	if sinks.Classify(err) != sinks.ClassPermanent || !errors.As(err, &e) || e.Code != "channel_not_found" {
		t.Errorf("err = %v, want permanent channel_not_found read from the body", err)
	}
	sinktest.AssertNoSecret(t, err, []string{hook})
}

func TestWebhookHang(t *testing.T) {
	fake := slackfake.New(testToken)
	t.Cleanup(fake.Close)
	hook := fake.AddWebhook("alerts")
	s, err := New("slack-hook", Config{WebhookURL: secret.String(hook), Pace: -1}, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	fake.Fail(slackfake.Webhook, slackfake.Failure{Hang: true})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		// Cancel once the request is in the fake.
		for fake.Requests(slackfake.Webhook) == 0 {
			select {
			case <-ctx.Done():
				return
			default:
			}
		}
		cancel()
	}()
	_, err = s.Send(ctx, firing(), sinks.Target{})
	if !errors.Is(err, context.Canceled) || sinks.Classify(err) != sinks.ClassRetryable {
		t.Errorf("err = %v, want a retryable context.Canceled", err)
	}
	sinktest.AssertNoSecret(t, err, []string{hook})
}

// stubTransport answers every request with fn, without a network.
type stubTransport func(*http.Request) *http.Response

func (f stubTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp := f(r)
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	return resp, nil
}

func answer(status int, header http.Header, body string) *http.Response {
	if header == nil {
		header = http.Header{}
	}
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: header, Body: io.NopCloser(strings.NewReader(body))}
}

// FuzzAnswer feeds arbitrary answers (status, Retry-After, body) to both
// modes: Send never panics, never reveals a secret, treats every 429 as a
// rate limit and succeeds only on an answer Slack would give for success.
func FuzzAnswer(f *testing.F) {
	f.Add(true, 200, "", `{"ok":true,"channel":"C1","ts":"1.2"}`)
	f.Add(true, 200, "", `{"ok":false,"error":"ratelimited"}`)
	f.Add(true, 429, "Wed, 21 Oct 2015 07:28:00 GMT", "")
	f.Add(false, 404, "", "channel_not_found")
	f.Add(false, 500, "x", "rollup_error "+testHookKey)
	f.Add(true, 400, "-5", "token="+testToken)
	f.Fuzz(func(t *testing.T, bot bool, status int, retryAfter, body string) {
		if status < 100 || status > 599 {
			return
		}
		tr := stubTransport(func(*http.Request) *http.Response {
			h := http.Header{}
			if retryAfter != "" {
				h.Set("Retry-After", retryAfter)
			}
			return answer(status, h, body)
		})
		hook := "https://hooks.slack.com/services/T0/B0/" + testHookKey
		cfg := Config{Token: testToken, Pace: -1}
		if !bot {
			cfg = Config{WebhookURL: secret.String(hook), Pace: -1}
		}
		s, err := New("fuzz", cfg, sinks.Deps{Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.Send(t.Context(), firing(), sinks.Target{Channel: "#a"})
		secrets := []string{testToken}
		if !bot {
			secrets = []string{hook, testHookKey}
		}
		sinktest.AssertNoSecret(t, err, secrets)
		if status == 429 && sinks.Classify(err) != sinks.ClassThrottled {
			t.Errorf("429 classified %s: %v", sinks.Classify(err), err)
		}
		if err == nil {
			if status != 200 {
				t.Errorf("success on HTTP %d", status)
			}
			if bot && r.Parent.GetMessageId() == "" {
				t.Errorf("bot success without a message id: %+v", r)
			}
		}
	})
}

func TestSendBatch(t *testing.T) {
	s, fake, id := newBot(t, func(c *Config) { c.Pace = 0 })
	r1, err := s.Send(t.Context(), firing(), sinks.Target{Channel: "#alerts"})
	if err != nil {
		t.Fatal(err)
	}
	// Right after a send the channel's pace is reached: so is the digest's.
	if _, err := s.SendBatch(t.Context(), []*heraldv1.Notification{firing()}, sinks.Target{Channel: "#alerts"}); !errors.Is(err, ErrPaced) {
		t.Fatalf("digest right after a send = %v, want ErrPaced", err)
	}

	s2, err := New("slack2", Config{APIURL: fake.APIURL(), Token: testToken, Pace: -1}, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ns := []*heraldv1.Notification{firing(), resolved(), mentionAttempts()}
	r, err := s2.SendBatch(t.Context(), ns, sinks.Target{Channel: "#alerts", Parent: r1.Parent})
	if err != nil {
		t.Fatal(err)
	}
	if r.Message.GetChannelId() != id || r.Message.GetMessageId() == "" || !r.Parent.GetDigest() || r.Parent.GetMessageId() != r.Message.GetMessageId() {
		t.Fatalf("digest receipt = %+v, want the digest message, as a parent marked digest", r)
	}
	m, _ := fake.Message(id, r.Message.GetMessageId())
	if m.ThreadTS != "" || header(t, m) != "📬 3 notifications" {
		t.Errorf("digest = %q in thread %q, want a top-level digest of 3", header(t, m), m.ThreadTS)
	}
	if p, _ := fake.Message(id, r1.Parent.GetMessageId()); p.Edits != 0 {
		t.Error("a digest edited a group's parent")
	}

	// The resolve of a group first shown in the digest replies in the
	// digest's thread, whole, and leaves the digest as it is.
	res, err := s2.Send(t.Context(), resolved(), sinks.Target{Channel: "#alerts", Parent: r.Parent})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Parent.GetDigest() || res.Parent.GetMessageId() != r.Message.GetMessageId() || res.Message.GetThreadId() != r.Message.GetMessageId() {
		t.Fatalf("reply to a digest: receipt %+v, want a reply in the digest's thread, the digest still the parent", res)
	}
	reply, _ := fake.Message(id, res.Message.GetMessageId())
	if reply.ThreadTS != r.Message.GetMessageId() || !strings.Contains(reply.Text, "RESOLVED") {
		t.Errorf("reply = %q in thread %q, want the resolve in the digest's thread", reply.Text, reply.ThreadTS)
	}
	if d, _ := fake.Message(id, r.Message.GetMessageId()); d.Edits != 0 {
		t.Error("a reply to a digest edited the digest")
	}
}

// TestRetryAfterLostAnswer: Slack stored the post but its answer was lost to
// a timeout; the retry finds the message by its metadata instead of posting
// it twice.
func TestRetryAfterLostAnswer(t *testing.T) {
	lose := slackfake.Failure{LoseAnswer: true}
	t.Run("parent by channel id", func(t *testing.T) {
		s, fake, id := newBot(t, func(c *Config) { c.Timeout = 200 * time.Millisecond })
		fake.Fail(slackfake.PostMessage, lose)
		to := sinks.Target{Channel: id, Attempt: 1}
		if _, err := s.Send(t.Context(), firing(), to); sinks.Classify(err) != sinks.ClassRetryable {
			t.Fatalf("lost answer: err = %v, want retryable", err)
		}
		to.Attempt = 2
		r, err := s.Send(t.Context(), firing(), to)
		if err != nil {
			t.Fatal(err)
		}
		msgs := fake.Messages(id)
		if len(msgs) != 1 || r.Parent.GetMessageId() != msgs[0].TS {
			t.Fatalf("channel has %d messages, receipt %v; want the one message posted by the first attempt", len(msgs), r.Parent)
		}
	})
	t.Run("parent by learnt name", func(t *testing.T) {
		s, fake, id := newBot(t, func(c *Config) { c.Timeout = 200 * time.Millisecond })
		other := firing()
		other.Id = "01JOTHER"
		if _, err := s.Send(t.Context(), other, sinks.Target{Channel: "#alerts", Attempt: 1}); err != nil {
			t.Fatal(err)
		}
		fake.Fail(slackfake.PostMessage, lose)
		if _, err := s.Send(t.Context(), firing(), sinks.Target{Channel: "#alerts", Attempt: 1}); err == nil {
			t.Fatal("lost answer: no error")
		}
		if _, err := s.Send(t.Context(), firing(), sinks.Target{Channel: "#alerts", Attempt: 2}); err != nil {
			t.Fatal(err)
		}
		if got := len(fake.Messages(id)); got != 2 {
			t.Errorf("channel has %d messages, want 2: one per notification", got)
		}
	})
	t.Run("thread reply", func(t *testing.T) {
		s, fake, id := newBot(t, func(c *Config) { c.Timeout = 200 * time.Millisecond })
		r1, err := s.Send(t.Context(), firing(), sinks.Target{Channel: "#alerts", Attempt: 1})
		if err != nil {
			t.Fatal(err)
		}
		res := resolved()
		res.Id = "01JRESOLVED"
		fake.Fail(slackfake.PostMessage, lose)
		to := sinks.Target{Channel: "#alerts", Parent: r1.Parent, Attempt: 1}
		if _, err := s.Send(t.Context(), res, to); err == nil {
			t.Fatal("lost answer: no error")
		}
		to.Attempt = 2
		r2, err := s.Send(t.Context(), res, to)
		if err != nil {
			t.Fatal(err)
		}
		msgs := fake.Messages(id)
		if len(msgs) != 2 || msgs[1].TS != r2.Message.GetMessageId() || msgs[1].ThreadTS != r1.Parent.GetMessageId() {
			t.Errorf("channel has %+v, want the parent and one reply", msgs)
		}
	})
	t.Run("lookup refused", func(t *testing.T) {
		// Without channels:history the retry cannot look; it posts rather
		// than lose the notification.
		s, fake, id := newBot(t)
		fake.Fail(slackfake.History, slackfake.Failure{Error: "missing_scope"})
		if _, err := s.Send(t.Context(), firing(), sinks.Target{Channel: id, Attempt: 2}); err != nil {
			t.Fatal(err)
		}
		if fake.Requests(slackfake.History) != 1 || len(fake.Messages(id)) != 1 {
			t.Errorf("history requests %d, messages %d; want one lookup and one post", fake.Requests(slackfake.History), len(fake.Messages(id)))
		}
	})
}

func TestMentionOnPostAndReplyNotEdit(t *testing.T) {
	s, fake, id := newBot(t, func(c *Config) { c.Mentions = map[string]string{"critical": "<!here>"} })
	r1, err := s.Send(t.Context(), firing(), sinks.Target{Channel: "#alerts"})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := fake.Message(id, r1.Parent.GetMessageId()); !strings.HasPrefix(p.Text, "<!here> ") {
		t.Errorf("new parent text = %q, want the mention", p.Text)
	}
	again := firing()
	again.Id = "01JREPEAT"
	r2, err := s.Send(t.Context(), again, sinks.Target{Channel: "#alerts", Parent: r1.Parent})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := fake.Message(id, r1.Parent.GetMessageId()); p.Edits != 1 || strings.Contains(p.Text+string(p.Blocks), "!here") {
		t.Errorf("edited parent = %q %s, want it edited without the mention", p.Text, p.Blocks)
	}
	if r, _ := fake.Message(id, r2.Message.GetMessageId()); !strings.HasPrefix(r.Text, "<!here> ") {
		t.Errorf("reply text = %q, want the mention", r.Text)
	}
}

func TestConcurrentSends(t *testing.T) {
	s, fake, _ := newBot(t, func(c *Config) { c.Pace = 0 })
	chans := []string{"a", "b", "c", "d"}
	for _, c := range chans {
		fake.AddChannel(c)
	}
	errs := make(chan error, 40)
	for i := range 40 {
		go func() {
			_, err := s.Send(t.Context(), firing(), sinks.Target{Channel: chans[i%4]})
			errs <- err
		}()
	}
	sent, paced := 0, 0
	for range 40 {
		switch err := <-errs; {
		case err == nil:
			sent++
		case errors.Is(err, ErrPaced):
			paced++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	total := 0
	for _, c := range chans {
		total += len(fake.Messages(c))
	}
	// Each channel's pace lets its first send through at once and refuses
	// the others until a second has passed: how many got through depends
	// only on the clock, but never more than sent, and none is lost
	// without an error.
	if total != sent || sent+paced != 40 || sent < 4 {
		t.Errorf("sent %d, paced %d, messages %d", sent, paced, total)
	}
}

func TestSendBatchRetryAfterLostAnswer(t *testing.T) {
	s, fake, id := newBot(t, func(c *Config) { c.Timeout = 200 * time.Millisecond })
	ns := []*heraldv1.Notification{firing(), resolved()}
	fake.Fail(slackfake.PostMessage, slackfake.Failure{LoseAnswer: true})
	if _, err := s.SendBatch(t.Context(), ns, sinks.Target{Channel: id, Attempt: 1}); err == nil {
		t.Fatal("lost answer: no error")
	}
	r, err := s.SendBatch(t.Context(), ns, sinks.Target{Channel: id, Attempt: 2})
	if err != nil {
		t.Fatal(err)
	}
	if msgs := fake.Messages(id); len(msgs) != 1 || msgs[0].TS != r.Message.GetMessageId() {
		t.Errorf("channel has %d messages, want the one digest", len(msgs))
	}
}

// TestReminder: a repeat of an unchanged group is one line in its thread,
// the group's message is not edited, and the mention comes on every Nth
// reminder only.
func TestReminder(t *testing.T) {
	s, fake, _ := newBot(t, func(c *Config) {
		c.Channel = "#alerts"
		c.Mentions = map[string]string{"critical": "<!here>"}
		c.RemindMentionEvery = map[string]int{"critical": 2}
	})
	first, err := s.Send(t.Context(), firing(), sinks.Target{Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 2; k++ {
		n := firing()
		n.Id = fmt.Sprintf("n-remind-%d", k)
		if _, err := s.Send(t.Context(), n, sinks.Target{Attempt: 1, Parent: first.Parent, Reminder: k}); err != nil {
			t.Fatal(err)
		}
	}
	msgs := fake.Messages("alerts")
	if len(msgs) != 3 || msgs[0].Edits != 0 {
		t.Fatalf("messages %+v, want the parent unedited and two replies", msgs)
	}
	for i, m := range msgs[1:] {
		k := i + 1
		if m.ThreadTS != first.Parent.GetMessageId() || !strings.Contains(m.Text, "🔁 Still firing") || !strings.Contains(m.Text, fmt.Sprintf("reminder %d", k)) {
			t.Errorf("reminder %d: %+v", k, m)
		}
		if mentioned := strings.HasPrefix(m.Text, "<!here> "); mentioned != (k == 2) {
			t.Errorf("reminder %d mentioned %v: %q", k, mentioned, m.Text)
		}
	}
}

// TestReminderParentGone: a reminder for a group whose message was deleted
// would go unseen in its thread: the group gets a new message, whole.
func TestReminderParentGone(t *testing.T) {
	s, fake, id := newBot(t, func(c *Config) { c.Channel = "#alerts" })
	first, err := s.Send(t.Context(), firing(), sinks.Target{Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	fake.DeleteMessage(id, first.Parent.GetMessageId())
	n := firing()
	n.Id = "n-remind-1"
	r, err := s.Send(t.Context(), n, sinks.Target{Attempt: 1, Parent: first.Parent, Reminder: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Parent.GetMessageId() == first.Parent.GetMessageId() || r.Message.GetThreadId() != "" {
		t.Fatalf("receipt %+v: want a new top-level message", r)
	}
	m, ok := fake.Message(id, r.Parent.GetMessageId())
	if !ok || m.ThreadTS != "" || strings.Contains(m.Text, "Still firing") {
		t.Errorf("new message %+v: want the whole message, not a reminder", m)
	}
}
