package slackfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
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

// TestList checks conversations.list as Slack answers it: token, types
// (public only unless asked), archived channels, limits and cursors.
func TestList(t *testing.T) {
	s := New("xoxb-t")
	defer s.Close()
	var public []string
	for i := range 5 {
		public = append(public, s.AddChannel("pub"+strconv.Itoa(i)))
	}
	priv := s.AddPrivateChannel("secret")
	s.AddChannel("old")
	s.ArchiveChannel("old")

	type page struct {
		OK       bool   `json:"ok"`
		Error    string `json:"error"`
		Channels []struct {
			ID         string `json:"id"`
			Name       string `json:"name"`
			IsPrivate  bool   `json:"is_private"`
			IsArchived bool   `json:"is_archived"`
		} `json:"channels"`
		Meta struct {
			NextCursor string `json:"next_cursor"`
		} `json:"response_metadata"`
	}
	list := func(form url.Values) page {
		t.Helper()
		_, body := post(t, s.APIURL()+"conversations.list", form)
		var p page
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatalf("answer %q: %v", body, err)
		}
		return p
	}
	// all pages through the listing and returns the ids, in order.
	all := func(form url.Values) ([]string, int) {
		t.Helper()
		var ids []string
		pages := 0
		for {
			p := list(form)
			if !p.OK {
				t.Fatalf("list %v: %s", form, p.Error)
			}
			pages++
			for _, c := range p.Channels {
				ids = append(ids, c.ID)
			}
			if p.Meta.NextCursor == "" {
				return ids, pages
			}
			form.Set("cursor", p.Meta.NextCursor)
		}
	}

	for _, c := range []struct {
		name string
		form url.Values
		want string
	}{
		{"no token", url.Values{}, "not_authed"},
		{"wrong token", url.Values{"token": {"xoxb-x"}}, "invalid_auth"},
		{"bad type", url.Values{"token": {"xoxb-t"}, "types": {"public_channel,channels"}}, "invalid_types"},
		{"limit 0", url.Values{"token": {"xoxb-t"}, "limit": {"0"}}, "invalid_limit"},
		{"limit 1001", url.Values{"token": {"xoxb-t"}, "limit": {"1001"}}, "invalid_limit"},
		{"bad cursor", url.Values{"token": {"xoxb-t"}, "cursor": {"not a cursor"}}, "invalid_cursor"},
	} {
		if p := list(c.form); p.OK || p.Error != c.want {
			t.Errorf("%s: ok=%v error %q, want %s", c.name, p.OK, p.Error, c.want)
		}
	}

	ids, _ := all(url.Values{"token": {"xoxb-t"}, "exclude_archived": {"true"}})
	if !slices.Equal(ids, public) {
		t.Errorf("default types: %v, want the public channels %v only", ids, public)
	}
	ids, pages := all(url.Values{"token": {"xoxb-t"}, "types": {"public_channel,private_channel"}, "exclude_archived": {"true"}, "limit": {"2"}})
	if want := append(slices.Clone(public), priv); !slices.Equal(ids, want) || pages != 3 {
		t.Errorf("public and private, 2 a page: %v in %d pages, want %v in 3", ids, pages, want)
	}
	ids, _ = all(url.Values{"token": {"xoxb-t"}, "types": {"private_channel"}})
	if !slices.Equal(ids, []string{priv}) {
		t.Errorf("private only: %v, want [%s]", ids, priv)
	}
	p := list(url.Values{"token": {"xoxb-t"}, "limit": {"1000"}})
	if n := len(p.Channels); n != 6 || !p.Channels[5].IsArchived || p.Channels[5].Name != "old" {
		t.Errorf("with archived: %+v, want the 5 public channels and the archived one last", p.Channels)
	}
	s.SetScopes("channels:read")
	if p := list(url.Values{"token": {"xoxb-t"}, "types": {"public_channel,private_channel"}}); p.OK || p.Error != "missing_scope" {
		t.Errorf("private channels without groups:read: ok=%v error %q, want missing_scope", p.OK, p.Error)
	}
	if p := list(url.Values{"token": {"xoxb-t"}}); !p.OK || len(p.Channels) != 6 {
		t.Errorf("public channels with channels:read: ok=%v error %q, %d channels", p.OK, p.Error, len(p.Channels))
	}
	s.SetScopes()
	if p := list(url.Values{"token": {"xoxb-t"}}); p.OK || p.Error != "missing_scope" {
		t.Errorf("without channels:read: ok=%v error %q, want missing_scope", p.OK, p.Error)
	}
	if got := s.Requests(List); got < 10 {
		t.Errorf("Requests(List) = %d, want every request counted", got)
	}
}
