package slackfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func post(t *testing.T, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func apiCode(t *testing.T, body string) string {
	t.Helper()
	var r struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	if r.OK {
		return "ok"
	}
	return r.Error
}

// TestStrict checks that the fake refuses what Slack refuses: herald's
// tests only mean something if it does.
func TestStrict(t *testing.T) {
	s := New("xoxb-t")
	defer s.Close()
	id := s.AddChannel("alerts")
	blocks := func(b string) url.Values {
		return url.Values{"token": {"xoxb-t"}, "channel": {"#alerts"}, "text": {"t"}, "blocks": {b}}
	}
	header := func(n int) string {
		return `[{"type":"header","text":{"type":"plain_text","text":"` + strings.Repeat("h", n) + `"}}]`
	}
	for _, c := range []struct {
		name string
		form url.Values
		want string
	}{
		{"ok", blocks(header(150)), "ok"},
		{"no token", url.Values{"channel": {"#alerts"}, "text": {"t"}}, "not_authed"},
		{"wrong token", url.Values{"token": {"xoxb-x"}, "channel": {"#alerts"}, "text": {"t"}}, "invalid_auth"},
		{"unknown channel", url.Values{"token": {"xoxb-t"}, "channel": {"#nope"}, "text": {"t"}}, "channel_not_found"},
		{"no text", url.Values{"token": {"xoxb-t"}, "channel": {"#alerts"}}, "no_text"},
		{"header too long", blocks(header(151)), "invalid_blocks"},
		{"header mrkdwn", blocks(`[{"type":"header","text":{"type":"mrkdwn","text":"h"}}]`), "invalid_blocks"},
		{"section too long", blocks(`[{"type":"section","text":{"type":"mrkdwn","text":"` + strings.Repeat("s", 3001) + `"}}]`), "invalid_blocks"},
		{"11 fields", blocks(`[{"type":"section","fields":[` + strings.TrimSuffix(strings.Repeat(`{"type":"mrkdwn","text":"f"},`, 11), ",") + `]}]`), "invalid_blocks"},
		{"51 blocks", blocks(`[` + strings.TrimSuffix(strings.Repeat(`{"type":"divider"},`, 51), ",") + `]`), "invalid_blocks"},
		{"bad button url", blocks(`[{"type":"actions","elements":[{"type":"button","text":{"type":"plain_text","text":"x"},"url":"javascript:x"}]}]`), "invalid_blocks"},
		{"duplicate action id", blocks(`[{"type":"actions","elements":[{"type":"button","text":{"type":"plain_text","text":"x"},"action_id":"a"},{"type":"button","text":{"type":"plain_text","text":"y"},"action_id":"a"}]}]`), "invalid_blocks"},
		{"blocks not json", blocks(`[{`), "invalid_blocks_format"},
		{"bad metadata", url.Values{"token": {"xoxb-t"}, "channel": {"#alerts"}, "text": {"t"}, "metadata": {`{"x":1}`}}, "invalid_metadata_format"},
	} {
		_, body := post(t, s.APIURL()+"chat.postMessage", c.form)
		if got := apiCode(t, body); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}

	msgs := s.Messages("alerts")
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored, want only the valid one", len(msgs))
	}
	ts := msgs[0].TS
	upd := func(ch, ts string) string {
		_, body := post(t, s.APIURL()+"chat.update", url.Values{"token": {"xoxb-t"}, "channel": {ch}, "ts": {ts}, "text": {"new"}})
		return apiCode(t, body)
	}
	if got := upd("#alerts", ts); got != "channel_not_found" {
		t.Errorf("update by channel name: %s, want channel_not_found", got)
	}
	if got := upd(id, "9.9"); got != "message_not_found" {
		t.Errorf("update of an unknown ts: %s, want message_not_found", got)
	}
	if got := upd(id, ts); got != "ok" {
		t.Errorf("update: %s", got)
	}
	if m, _ := s.Message(id, ts); m.Text != "new" || m.Edits != 1 {
		t.Errorf("after update: %+v", m)
	}

	hook := s.AddWebhook("alerts")
	for _, c := range []struct {
		name, url, body string
		status          int
		want            string
	}{
		{"ok", hook, `{"text":"hi"}`, 200, "ok"},
		{"unknown hook", hook + "x", `{"text":"hi"}`, 404, "no_service"},
		{"not json", hook, `{`, 400, "invalid_payload"},
		{"no text", hook, `{}`, 400, "no_text"},
		{"bad blocks", hook, `{"text":"x","blocks":[{"type":"nope"}]}`, 400, "invalid_blocks"},
	} {
		resp, err := http.Post(c.url, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || string(b) != c.want {
			t.Errorf("webhook %s: %d %q, want %d %q", c.name, resp.StatusCode, b, c.status, c.want)
		}
	}
}

func TestFailures(t *testing.T) {
	s := New("xoxb-t")
	defer s.Close()
	s.AddChannel("alerts")
	form := url.Values{"token": {"xoxb-t"}, "channel": {"#alerts"}, "text": {"t"}}
	s.Fail(PostMessage, Failure{Status: 429, RetryAfter: "7"}, Failure{Error: "ratelimited"})
	resp, err := http.PostForm(s.APIURL()+"chat.postMessage", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("first: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if _, body := post(t, s.APIURL()+"chat.postMessage", form); apiCode(t, body) != "ratelimited" {
		t.Errorf("second: %s", body)
	}
	if _, body := post(t, s.APIURL()+"chat.postMessage", form); apiCode(t, body) != "ok" {
		t.Errorf("third, after the queue: %s", body)
	}
	s.FailAll(&Failure{Status: 503})
	if code, _ := post(t, s.APIURL()+"chat.postMessage", form); code != 503 {
		t.Errorf("while down: %d", code)
	}
	s.FailAll(nil)
	if got := s.Requests(PostMessage); got != 4 {
		t.Errorf("Requests = %d, want 4", got)
	}
	if got := len(s.Messages("alerts")); got != 1 {
		t.Errorf("%d messages, want 1", got)
	}
}
