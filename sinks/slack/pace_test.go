package slack

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
)

// recorder is a Slack Web API without a network: it answers chat.postMessage
// and chat.update from a script and counts requests per channel.
type recorder struct {
	mu    sync.Mutex
	posts map[string]int
	next  func(channel string) *http.Response // nil: ok
	seq   int
}

func (r *recorder) transport() http.RoundTripper {
	return stubTransport(func(req *http.Request) *http.Response {
		_ = req.ParseForm()
		ch := req.PostForm.Get("channel")
		r.mu.Lock()
		defer r.mu.Unlock()
		r.posts[ch]++
		if r.next != nil {
			if resp := r.next(ch); resp != nil {
				return resp
			}
		}
		r.seq++
		return answer(200, nil, fmt.Sprintf(`{"ok":true,"channel":"C-%s","ts":"1.%d"}`, url.PathEscape(ch), r.seq))
	})
}

func (r *recorder) count(ch string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.posts[ch]
}

func newPaced(t *testing.T, pace time.Duration) (*Sink, *recorder) {
	t.Helper()
	rec := &recorder{posts: map[string]int{}}
	s, err := New("slack", Config{Token: testToken, Pace: pace}, sinks.Deps{Transport: rec.transport()})
	if err != nil {
		t.Fatal(err)
	}
	return s, rec
}

func TestPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, rec := newPaced(t, 0) // the default: one per second per channel
		a, b := sinks.Target{Channel: "a"}, sinks.Target{Channel: "b"}

		if _, err := s.Send(t.Context(), firing(), a); err != nil {
			t.Fatal(err)
		}
		if w := s.Wait(a); w != time.Second {
			t.Errorf("Wait after a send = %v, want 1s", w)
		}
		_, err := s.Send(t.Context(), firing(), a)
		if w, ok := sinks.ThrottleWait(err); !ok || w != time.Second || !errors.Is(err, ErrPaced) {
			t.Fatalf("second send = %v, want ErrPaced throttled for 1s", err)
		}
		if rec.count("a") != 1 {
			t.Errorf("%d requests to a, want 1: a paced send makes none", rec.count("a"))
		}
		// Another channel has its own pace.
		if _, err := s.Send(t.Context(), firing(), b); err != nil {
			t.Errorf("send to b: %v", err)
		}

		time.Sleep(400 * time.Millisecond)
		if w := s.Wait(a); w != 600*time.Millisecond {
			t.Errorf("Wait 400ms later = %v, want 600ms", w)
		}
		time.Sleep(600 * time.Millisecond)
		if w := s.Wait(a); w != 0 {
			t.Errorf("Wait after the pace = %v, want 0", w)
		}
		if _, err := s.Send(t.Context(), firing(), a); err != nil {
			t.Errorf("send after the pace: %v", err)
		}
	})
}

func TestPacingSharedByNameAndID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, rec := newPaced(t, 0)
		r, err := s.Send(t.Context(), firing(), sinks.Target{Channel: "#ops"})
		if err != nil {
			t.Fatal(err)
		}
		// The update of the parent goes to the channel's id: same channel,
		// same pace.
		_, err = s.Send(t.Context(), resolved(), sinks.Target{Channel: "#ops", Parent: r.Parent})
		if !errors.Is(err, ErrPaced) {
			t.Fatalf("send by id right after a send by name = %v, want ErrPaced", err)
		}
		time.Sleep(time.Second)
		if _, err := s.Send(t.Context(), resolved(), sinks.Target{Channel: "#ops", Parent: r.Parent}); err != nil {
			t.Fatal(err)
		}
		if got := rec.count(r.Parent.GetChannelId()); got != 2 {
			t.Errorf("%d requests by id, want the update and the reply", got)
		}
	})
}

func TestRateLimitHoldsChannel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, rec := newPaced(t, -1) // pacing off: only Slack's answer holds back
		rec.next = func(ch string) *http.Response {
			if ch == "a" && rec.posts[ch] == 1 {
				return answer(429, http.Header{"Retry-After": {"30"}}, "")
			}
			return nil
		}
		a := sinks.Target{Channel: "a"}
		_, err := s.Send(t.Context(), firing(), a)
		if w, _ := sinks.ThrottleWait(err); w != 30*time.Second {
			t.Fatalf("err = %v, want throttled 30s", err)
		}
		time.Sleep(10 * time.Second)
		_, err = s.Send(t.Context(), firing(), a)
		if w, _ := sinks.ThrottleWait(err); w != 20*time.Second {
			t.Errorf("send 10s later = %v, want throttled for the remaining 20s", err)
		}
		if rec.count("a") != 1 {
			t.Errorf("%d requests to a, want 1: a held channel is not asked", rec.count("a"))
		}
		if _, err := s.Send(t.Context(), firing(), sinks.Target{Channel: "b"}); err != nil {
			t.Errorf("other channel: %v", err)
		}
		time.Sleep(20 * time.Second)
		if _, err := s.Send(t.Context(), firing(), a); err != nil {
			t.Errorf("after Retry-After: %v", err)
		}
	})
}

func TestWebhookPacedAsOneChannel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := 0
		tr := stubTransport(func(*http.Request) *http.Response { n++; return answer(200, nil, "ok") })
		s, err := New("hook", Config{WebhookURL: "https://hooks.slack.com/services/T/B/x"}, sinks.Deps{Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Send(t.Context(), firing(), sinks.Target{Channel: "a"}); err != nil {
			t.Fatal(err)
		}
		// A webhook posts to one channel whatever the target says.
		_, err = s.Send(t.Context(), firing(), sinks.Target{Channel: "b", Parent: &heraldv1.MessageRef{ChannelId: "C9", MessageId: "1.1"}})
		if !errors.Is(err, ErrPaced) || n != 1 {
			t.Errorf("second webhook send = %v after %d requests, want ErrPaced after 1", err, n)
		}
	})
}
