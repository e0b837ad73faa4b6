package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slack-go/slack"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/slack/slackfake"
)

// lostAnswerTimeout is the sink's request timeout in tests that lose an
// answer: the lost post ends when it runs out.
const lostAnswerTimeout = 200 * time.Millisecond

// newSinkOn builds a bot-mode sink on fake, as a restarted herald would:
// it has never heard from Slack.
func newSinkOn(t *testing.T, fake *slackfake.Server, logger *slog.Logger) *Sink {
	t.Helper()
	s, err := New("slack", Config{APIURL: fake.APIURL(), Token: testToken, Pace: -1, Timeout: lostAnswerTimeout}, sinks.Deps{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestColdRetryAfterLostAnswer: the first post to a channel given by name
// reaches Slack but its answer is lost, and herald restarts. The retry, by
// a new sink that never saw the channel's id, resolves the name, finds the
// message and leaves exactly one.
func TestColdRetryAfterLostAnswer(t *testing.T) {
	for _, c := range []struct {
		name string
		// setup creates the channel (and others) and returns the route's
		// channel and the channel's id.
		setup func(fake *slackfake.Server) (string, string)
		batch bool
	}{
		{name: "parent", setup: func(fake *slackfake.Server) (string, string) { return "#alerts", fake.AddChannel("alerts") }},
		{name: "name without #", setup: func(fake *slackfake.Server) (string, string) { return "alerts", fake.AddChannel("alerts") }},
		{name: "private channel", setup: func(fake *slackfake.Server) (string, string) { return "#ops", fake.AddPrivateChannel("ops") }},
		{name: "digest", batch: true, setup: func(fake *slackfake.Server) (string, string) { return "#alerts", fake.AddChannel("alerts") }},
		{name: "on the third page", setup: func(fake *slackfake.Server) (string, string) {
			for i := range 2*listPageSize + 10 {
				fake.AddChannel(fmt.Sprintf("team-%03d", i))
			}
			return "#alerts", fake.AddChannel("alerts")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake := slackfake.New(testToken)
			t.Cleanup(fake.Close)
			channel, id := c.setup(fake)
			send := func(s *Sink, attempt int) (sinks.Receipt, error) {
				to := sinks.Target{Channel: channel, Attempt: attempt}
				if c.batch {
					return s.SendBatch(t.Context(), []*heraldv1.Notification{firing(), resolved()}, to)
				}
				return s.Send(t.Context(), firing(), to)
			}

			fake.Fail(slackfake.PostMessage, slackfake.Failure{LoseAnswer: true})
			if _, err := send(newSinkOn(t, fake, nil), 1); sinks.Classify(err) != sinks.ClassRetryable {
				t.Fatalf("lost answer: err = %v, want retryable", err)
			}
			if got := len(fake.Messages(id)); got != 1 {
				t.Fatalf("after the lost answer the channel has %d messages, want the 1 Slack stored", got)
			}

			r, err := send(newSinkOn(t, fake, nil), 2)
			if err != nil {
				t.Fatal(err)
			}
			msgs := fake.Messages(id)
			if len(msgs) != 1 {
				t.Fatalf("channel has %d messages after the retry, want 1", len(msgs))
			}
			got := r.Message
			if !c.batch {
				got = r.Parent
			}
			if got.GetChannelId() != id || got.GetMessageId() != msgs[0].TS {
				t.Errorf("receipt = %v, want the message the first attempt posted (%s/%s)", got, id, msgs[0].TS)
			}
			if fake.Requests(slackfake.List) == 0 || fake.Requests(slackfake.History) != 1 {
				t.Errorf("%d listings and %d history searches, want the name resolved and one search",
					fake.Requests(slackfake.List), fake.Requests(slackfake.History))
			}
		})
	}
}

// TestRetryResolvesOnce: retries to one channel name list the channels
// once, and later sends by name are paced with the sends by id.
func TestRetryResolvesOnce(t *testing.T) {
	fake := slackfake.New(testToken)
	t.Cleanup(fake.Close)
	id := fake.AddChannel("alerts")
	s := newSinkOn(t, fake, nil)
	for i := range 3 {
		n := firing()
		n.Id = fmt.Sprintf("01JRETRY%d", i)
		if _, err := s.Send(t.Context(), n, sinks.Target{Channel: "#alerts", Attempt: 2}); err != nil {
			t.Fatal(err)
		}
	}
	if got := fake.Requests(slackfake.List); got != 1 {
		t.Errorf("%d listings for three retries to one channel, want 1", got)
	}
	if got := len(fake.Messages(id)); got != 3 {
		t.Errorf("channel has %d messages, want one per notification", got)
	}
	if got := s.pace.id("#alerts"); got != id {
		t.Errorf("pacer knows #alerts as %q, want %s", got, id)
	}
}

// TestRetryWithoutListScope: a token without channels:read cannot resolve
// names. The retry posts anyway (a duplicate beats a loss), the sink says
// so once, and it does not ask Slack again on every retry.
func TestRetryWithoutListScope(t *testing.T) {
	fake := slackfake.New(testToken)
	t.Cleanup(fake.Close)
	id := fake.AddChannel("alerts")
	var logs testutil.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fake.SetScopes("chat:write", "channels:history", "groups:history")

	fake.Fail(slackfake.PostMessage, slackfake.Failure{LoseAnswer: true})
	if _, err := newSinkOn(t, fake, nil).Send(t.Context(), firing(), sinks.Target{Channel: "#alerts", Attempt: 1}); err == nil {
		t.Fatal("lost answer: no error")
	}
	s := newSinkOn(t, fake, logger)
	for i := range 2 {
		n := firing()
		if i > 0 {
			n.Id = "01JOTHER"
		}
		if _, err := s.Send(t.Context(), n, sinks.Target{Channel: "#alerts", Attempt: 2}); err != nil {
			t.Fatalf("retry %d without the scope: %v, want it posted", i, err)
		}
	}
	if got := len(fake.Messages(id)); got != 3 {
		t.Errorf("channel has %d messages, want 3: the lost post's duplicate is the price of not losing it", got)
	}
	if got := fake.Requests(slackfake.List); got != 2 {
		t.Errorf("%d listings, want 2 (public and private, then public only): a refusal is not asked again on every retry", got)
	}
	if got := strings.Count(logs.String(), "channels:read"); got != 1 {
		t.Errorf("the missing scope was logged %d times, want once:\n%s", got, logs.String())
	}
}

// TestRetryWithoutGroupsRead: a token with channels:read but not
// groups:read still resolves public channel names; private ones cannot be
// searched, and are posted.
func TestRetryWithoutGroupsRead(t *testing.T) {
	fake := slackfake.New(testToken)
	t.Cleanup(fake.Close)
	fake.SetScopes("chat:write", "channels:history", "groups:history", "channels:read")
	pub := fake.AddChannel("alerts")
	priv := fake.AddPrivateChannel("ops")
	for _, ch := range []string{"#alerts", "#ops"} {
		fake.Fail(slackfake.PostMessage, slackfake.Failure{LoseAnswer: true})
		if _, err := newSinkOn(t, fake, nil).Send(t.Context(), firing(), sinks.Target{Channel: ch, Attempt: 1}); err == nil {
			t.Fatalf("%s: lost answer: no error", ch)
		}
	}
	s := newSinkOn(t, fake, nil)
	for _, ch := range []string{"#alerts", "#ops"} {
		if _, err := s.Send(t.Context(), firing(), sinks.Target{Channel: ch, Attempt: 2}); err != nil {
			t.Fatalf("%s: retry: %v", ch, err)
		}
	}
	if got := len(fake.Messages(pub)); got != 1 {
		t.Errorf("public channel has %d messages, want 1: channels:read is enough to resolve it", got)
	}
	if got := len(fake.Messages(priv)); got != 2 {
		t.Errorf("private channel has %d messages, want 2: without groups:read the retry cannot look and posts", got)
	}
	// Refused with both types, then public only, then (for #ops) public
	// only again: the refusal is remembered.
	if got := fake.Requests(slackfake.List); got != 3 {
		t.Errorf("%d listings, want 3", got)
	}
}

// TestRetryListFailsTransiently: a listing that fails for Slack's trouble
// does not keep the notification from being posted, and the next retry
// asks again.
func TestRetryListFailsTransiently(t *testing.T) {
	fake := slackfake.New(testToken)
	t.Cleanup(fake.Close)
	id := fake.AddChannel("alerts")
	fake.Fail(slackfake.List, slackfake.Failure{Status: 503})
	s := newSinkOn(t, fake, nil)
	if _, err := s.Send(t.Context(), firing(), sinks.Target{Channel: "#alerts", Attempt: 2}); err != nil {
		t.Fatal(err)
	}
	// The post taught the sink the id; a new sink must list again.
	s = newSinkOn(t, fake, nil)
	n := firing()
	n.Id = "01JSECOND"
	if _, err := s.Send(t.Context(), n, sinks.Target{Channel: "#alerts", Attempt: 2}); err != nil {
		t.Fatal(err)
	}
	if l, h, m := fake.Requests(slackfake.List), fake.Requests(slackfake.History), len(fake.Messages(id)); l != 2 || h != 1 || m != 2 {
		t.Errorf("listings %d, searches %d, messages %d; want 2, 1 (after the listing that worked), 2", l, h, m)
	}
}

// TestSameSinkRetryCountedAsFirst: a caller that counts the retry as a
// first attempt still gets no duplicate from the sink that saw the answer
// lost.
func TestSameSinkRetryCountedAsFirst(t *testing.T) {
	fake := slackfake.New(testToken)
	t.Cleanup(fake.Close)
	id := fake.AddChannel("alerts")
	s := newSinkOn(t, fake, nil)
	fake.Fail(slackfake.PostMessage, slackfake.Failure{LoseAnswer: true})
	to := sinks.Target{Channel: "#alerts", Attempt: 1}
	if _, err := s.Send(t.Context(), firing(), to); err == nil {
		t.Fatal("lost answer: no error")
	}
	r, err := s.Send(t.Context(), firing(), to)
	if err != nil {
		t.Fatal(err)
	}
	if msgs := fake.Messages(id); len(msgs) != 1 || msgs[0].TS != r.Parent.GetMessageId() {
		t.Fatalf("channel has %d messages, receipt %v; want the one the lost attempt posted", len(msgs), r.Parent)
	}
	// Found, the post is no longer suspect: a later first attempt of
	// another notification does not search.
	n := firing()
	n.Id = "01JNEXT"
	before := fake.Requests(slackfake.History)
	if _, err := s.Send(t.Context(), n, to); err != nil {
		t.Fatal(err)
	}
	if got := fake.Requests(slackfake.History) - before; got != 0 {
		t.Errorf("%d searches for a plain first attempt, want none", got)
	}
}

func TestMayHavePosted(t *testing.T) {
	dial := &url.Error{Op: "Post", URL: "http://x/api/chat.postMessage", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	read := &url.Error{Op: "Post", URL: "http://x/api/chat.postMessage", Err: &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}}
	timeout := &url.Error{Op: "Post", URL: "http://x/api/chat.postMessage", Err: context.DeadlineExceeded}
	for _, c := range []struct {
		name   string
		err    error
		status int
		want   bool
	}{
		{"ok false", slack.SlackErrorResponse{Err: "channel_not_found"}, 200, false},
		{"refused connection", dial, 0, false},
		{"429", &slack.RateLimitedError{RetryAfter: time.Second}, 429, false},
		{"400", slack.StatusCodeError{Code: 400, Status: "400 Bad Request"}, 400, false},
		{"timeout", timeout, 0, true},
		{"reset while waiting", read, 0, true},
		{"502 from a proxy", slack.StatusCodeError{Code: 502, Status: "502 Bad Gateway"}, 502, true},
		{"200 not json", errors.New("invalid character '<'"), 200, true},
	} {
		if got := mayHavePosted(c.err, &exchange{status: c.status}); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestNameKey(t *testing.T) {
	for in, want := range map[string]string{
		"#alerts":        "alerts",
		"alerts":         "alerts",
		"#Alerts-Crit":   "alerts-crit",
		"C0123ABCD":      "",
		"G0123ABCD":      "",
		"@oncall":        "",
		"":               "",
		"#":              "",
		"two words":      "",
		"#alerts#nested": "",
	} {
		if got := nameKey(in); got != want {
			t.Errorf("nameKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeLister is a workspace for the resolver without a network: pages of
// size per, counted calls, and an optional gate that holds each call.
type fakeLister struct {
	mu    sync.Mutex
	names []string
	per   int
	calls int
	err   error
	gate  chan struct{}
}

func (f *fakeLister) list(ctx context.Context, types []string, cursor string) ([]slack.Channel, string, error) {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, "", f.err
	}
	start := 0
	if cursor != "" {
		fmt.Sscan(cursor, &start)
	}
	var out []slack.Channel
	for i := start; i < min(start+f.per, len(f.names)); i++ {
		c := slack.Channel{}
		c.ID, c.Name = fmt.Sprintf("C%07d", i), f.names[i]
		out = append(out, c)
	}
	next := ""
	if start+f.per < len(f.names) {
		next = fmt.Sprint(start + f.per)
	}
	return out, next, nil
}

func (f *fakeLister) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// TestResolverCache: hits are trusted for nameTTL, misses for missTTL, a
// refusal for nameTTL; a listing stops at the page with the name.
func TestResolverCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeLister{names: []string{"a", "b", "alerts", "c", "d"}, per: 2}
		r := newResolver(f.list)
		ctx := t.Context()
		resolve := func(name, want string, calls int) {
			t.Helper()
			id, err := r.resolve(ctx, name)
			if err != nil || id != want || f.count() != calls {
				t.Fatalf("resolve(%q) = %q, %v after %d list calls; want %q after %d", name, id, err, f.count(), want, calls)
			}
		}
		resolve("#alerts", "C0000002", 2) // pages [a b] [alerts c]; not [d]
		resolve("#b", "C0000001", 2)      // learnt on the way
		resolve("#d", "C0000004", 5)      // not learnt yet: lists all three pages
		time.Sleep(nameTTL - time.Second)
		resolve("#alerts", "C0000002", 5)
		time.Sleep(2 * time.Second)
		resolve("#alerts", "C0000002", 7) // expired: lists again

		resolve("#nope", "", 10) // all three pages
		time.Sleep(missTTL - time.Second)
		resolve("#nope", "", 10)
		time.Sleep(2 * time.Second)
		f.names = append(f.names, "nope")
		resolve("#nope", "C0000005", 13)

		resolve("C0123ABCD", "", 13) // an id is not resolved

		f.err = &Error{Method: "conversations.list", Code: "missing_scope"}
		r = newResolver(f.list)
		for range 2 {
			if _, err := r.resolve(ctx, "#alerts"); !errors.Is(err, f.err) {
				t.Fatalf("resolve without scope: %v, want the refusal", err)
			}
		}
		if f.count() != 15 {
			t.Fatalf("%d list calls, want two more (both types, public only): a refusal is remembered", f.count())
		}
		f.err = nil
		time.Sleep(nameTTL)
		resolve("#alerts", "C0000002", 17)

		f.err = &Error{Method: "conversations.list", StatusCode: 503}
		r = newResolver(f.list)
		for range 2 {
			if _, err := r.resolve(ctx, "#alerts"); err == nil {
				t.Fatal("resolve while Slack fails: no error")
			}
		}
		if f.count() != 19 {
			t.Fatalf("%d list calls, want two more: a transient failure is asked again", f.count())
		}
	})
}

// TestResolverOneListingAtATime: concurrent retries for one name share one
// listing, and a waiter whose context ends stops waiting.
func TestResolverOneListingAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeLister{names: []string{"alerts"}, per: 10, gate: make(chan struct{})}
		r := newResolver(f.list)
		ids := make(chan string, 4)
		for range 4 {
			go func() {
				id, _ := r.resolve(t.Context(), "#alerts")
				ids <- id
			}()
		}
		synctest.Wait()
		short, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if _, err := r.resolve(short, "#alerts"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("waiter with an ended context: %v, want its deadline", err)
		}
		close(f.gate)
		for range 4 {
			if id := <-ids; id != "C0000000" {
				t.Errorf("id = %q", id)
			}
		}
		if f.count() != 1 {
			t.Errorf("%d listings for four concurrent resolves, want 1", f.count())
		}
	})
}

// TestResolverPageBound: a workspace larger than the bound is listed up to
// the bound, and the name is then taken as missing.
func TestResolverPageBound(t *testing.T) {
	f := &fakeLister{per: 1}
	for i := range listMaxPages + 5 {
		f.names = append(f.names, fmt.Sprintf("c%d", i))
	}
	r := newResolver(f.list)
	id, err := r.resolve(t.Context(), fmt.Sprintf("c%d", listMaxPages+2))
	if err != nil || id != "" || f.count() != listMaxPages {
		t.Errorf("resolve beyond the bound = %q, %v after %d pages; want \"\" after %d", id, err, f.count(), listMaxPages)
	}
}

// TestRetryListHangs: a listing that hangs costs the retry its search, not
// its post: the notification is posted before the attempt's context ends.
func TestRetryListHangs(t *testing.T) {
	fake := slackfake.New(testToken)
	t.Cleanup(fake.Close)
	id := fake.AddChannel("alerts")
	fake.Fail(slackfake.List, slackfake.Failure{Hang: true})
	s, err := New("slack", Config{APIURL: fake.APIURL(), Token: testToken, Pace: -1, Timeout: time.Minute}, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 900*time.Millisecond)
	defer cancel()
	if _, err := s.Send(ctx, firing(), sinks.Target{Channel: "#alerts", Attempt: 2}); err != nil {
		t.Fatalf("retry while conversations.list hangs: %v, want it posted", err)
	}
	if got := len(fake.Messages(id)); got != 1 || fake.Requests(slackfake.List) != 1 {
		t.Errorf("%d messages after %d listings, want 1 after 1", got, fake.Requests(slackfake.List))
	}
}
