package mattermosttest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func do(t *testing.T, s *Server, method, path, token, body string) (int, http.Header, map[string]any) {
	t.Helper()
	url := s.URL + path
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m == nil {
		m = map[string]any{"raw": string(b)}
	}
	return resp.StatusCode, resp.Header, m
}

func TestStrictCreatePost(t *testing.T) {
	s := NewServer("tok")
	defer s.Close()
	ch := s.AddChannel("ops", "alerts")
	other := s.AddChannel("ops", "other")
	post := func(body string) (int, map[string]any) {
		code, _, m := do(t, s, "POST", "/api/v4/posts", "tok", body)
		return code, m
	}
	code, root := post(`{"channel_id":"` + ch + `","message":"hi","pending_post_id":"p1"}`)
	if code != 201 {
		t.Fatalf("create: %d %v", code, root)
	}
	rootID := root["id"].(string)
	tests := []struct {
		name, body, token string
		code              int
		id                string
	}{
		{"no token", `{"channel_id":"` + ch + `","message":"x"}`, "", 401, "api.context.session_expired.app_error"},
		{"bad token", `{"channel_id":"` + ch + `","message":"x"}`, "nope", 401, "api.context.session_expired.app_error"},
		{"not json", `[1]`, "tok", 400, "api.context.invalid_body_param.app_error"},
		{"message not a string", `{"channel_id":"` + ch + `","message":1}`, "tok", 400, "api.context.invalid_body_param.app_error"},
		{"unknown channel", `{"channel_id":"zzzzzzzzzzzzzzzzzzzzzzzzzz","message":"x"}`, "tok", 403, "api.context.permissions.app_error"},
		{"too long", `{"channel_id":"` + ch + `","message":"` + strings.Repeat("é", MaxPostSize+1) + `"}`, "tok", 400, "model.post.is_valid.msg.app_error"},
		{"root elsewhere", `{"channel_id":"` + other + `","message":"x","root_id":"` + rootID + `"}`, "tok", 400, "api.post.create_post.root_id.app_error"},
		{"root missing", `{"channel_id":"` + ch + `","message":"x","root_id":"zzzzzzzzzzzzzzzzzzzzzzzzzz"}`, "tok", 400, "api.post.create_post.root_id.app_error"},
		{"props not object", `{"channel_id":"` + ch + `","message":"x","props":[]}`, "tok", 400, "model.post.is_valid.props.app_error"},
		{"attachments not array", `{"channel_id":"` + ch + `","message":"x","props":{"attachments":{}}}`, "tok", 400, "model.post.is_valid.props.app_error"},
		{"reserved prop", `{"channel_id":"` + ch + `","message":"x","props":{"from_webhook":"true"}}`, "tok", 400, "api.context.invalid_param.app_error"},
		{"empty", `{"channel_id":"` + ch + `","message":""}`, "tok", 400, "api.post.create_post.message.app_error"},
	}
	for _, tt := range tests {
		code, _, m := do(t, s, "POST", "/api/v4/posts", tt.token, tt.body)
		if code != tt.code || m["id"] != tt.id || m["status_code"] != float64(tt.code) {
			t.Errorf("%s: %d %v, want %d %s", tt.name, code, m, tt.code, tt.id)
		}
	}
	// A reply to a reply is refused: threads are one level deep.
	code, reply := post(`{"channel_id":"` + ch + `","message":"r","root_id":"` + rootID + `"}`)
	if code != 201 {
		t.Fatalf("reply: %d %v", code, reply)
	}
	if code, _ := post(`{"channel_id":"` + ch + `","message":"r","root_id":"` + reply["id"].(string) + `"}`); code != 400 {
		t.Errorf("reply to reply: %d", code)
	}
	if n := len(s.Posts()); n != 2 {
		t.Errorf("%d posts recorded, want 2", n)
	}
}

func TestPendingPostIDWindow(t *testing.T) {
	s := NewServer("tok")
	defer s.Close()
	now := time.Now()
	s.SetClock(func() time.Time { return now })
	ch := s.AddChannel("ops", "alerts")
	body := `{"channel_id":"` + ch + `","message":"x","pending_post_id":"herald:1"}`
	_, _, a := do(t, s, "POST", "/api/v4/posts", "tok", body)
	_, _, b := do(t, s, "POST", "/api/v4/posts", "tok", body)
	if a["id"] != b["id"] || len(s.Posts()) != 1 {
		t.Errorf("within the window: %v then %v, %d posts", a["id"], b["id"], len(s.Posts()))
	}
	now = now.Add(PendingPostIDTTL)
	_, _, c := do(t, s, "POST", "/api/v4/posts", "tok", body)
	if c["id"] == a["id"] || len(s.Posts()) != 2 {
		t.Errorf("after the window: want a second post")
	}
}

func TestPatchGetThreadAndLookup(t *testing.T) {
	s := NewServer("tok")
	defer s.Close()
	ch := s.AddChannel("ops", "alerts")
	_, _, root := do(t, s, "POST", "/api/v4/posts", "tok", `{"channel_id":"`+ch+`","message":"x","props":{"herald_post":"a"}}`)
	id := root["id"].(string)
	code, _, p := do(t, s, "PUT", "/api/v4/posts/"+id+"/patch", "tok", `{"message":"y","props":{"attachments":[{"color":"#fff","fields":[{"title":"a","value":"b","short":true}]}]}}`)
	if code != 200 || p["message"] != "y" {
		t.Fatalf("patch: %d %v", code, p)
	}
	if got, _ := s.Post(id); got.Props["herald_post"] != nil || got.EditAt == 0 {
		t.Errorf("props must be replaced whole: %v", got.Props)
	}
	if code, _, _ := do(t, s, "PUT", "/api/v4/posts/"+id+"/patch", "tok", `{"props":{"attachments":[{"fields":"x"}]}}`); code != 400 {
		t.Errorf("bad fields: %d", code)
	}
	if code, _, m := do(t, s, "GET", "/api/v4/teams/name/ops/channels/name/alerts", "tok", ""); code != 200 || m["id"] != ch {
		t.Errorf("by name: %d %v", code, m)
	}
	if code, _, m := do(t, s, "GET", "/api/v4/teams/name/ops/channels/name/nope", "tok", ""); code != 404 || m["id"] != "app.channel.get_by_name.missing.app_error" {
		t.Errorf("missing channel: %d %v", code, m)
	}
	do(t, s, "POST", "/api/v4/posts", "tok", `{"channel_id":"`+ch+`","message":"r","root_id":"`+id+`"}`)
	if code, _, m := do(t, s, "GET", "/api/v4/posts/"+id+"/thread", "tok", ""); code != 200 || len(m["order"].([]any)) != 2 {
		t.Errorf("thread: %d %v", code, m)
	}
	if code, _, m := do(t, s, "GET", "/api/v4/channels/"+ch+"/posts?page=0&per_page=1", "tok", ""); code != 200 || len(m["order"].([]any)) != 1 {
		t.Errorf("channel posts: %d %v", code, m)
	}
	if code, _, m := do(t, s, "GET", "/api/v4/posts/short", "tok", ""); code != 400 || m["id"] != "api.context.invalid_url_param.app_error" {
		t.Errorf("invalid id: %d %v", code, m)
	}
	s.DeletePost(id)
	if code, _, _ := do(t, s, "GET", "/api/v4/posts/"+id, "tok", ""); code != 404 {
		t.Errorf("deleted post: %d", code)
	}
	if code, _, _ := do(t, s, "PUT", "/api/v4/posts/"+id+"/patch", "tok", `{"message":"z"}`); code != 404 {
		t.Errorf("patch deleted: %d", code)
	}
}

func TestWebhookAndRateLimit(t *testing.T) {
	s := NewServer("tok")
	defer s.Close()
	ch := s.AddChannel("ops", "alerts")
	s.AddChannel("ops", "other")
	s.AddHook("key1", ch, true)
	if code, h, m := do(t, s, "POST", "/hooks/key1", "", `{"text":"hi"}`); code != 200 || m["raw"] != "ok" || h.Get("Content-Type") != "text/plain" {
		t.Errorf("hook: %d %v", code, m)
	}
	for _, tt := range []struct {
		path, body string
		code       int
		id         string
	}{
		{"/hooks/nokey", `{"text":"hi"}`, 400, "web.incoming_webhook.invalid.app_error"},
		{"/hooks/key1", `{}`, 400, "web.incoming_webhook.text.app_error"},
		{"/hooks/key1", `{"text":"hi","channel":"other"}`, 403, "web.incoming_webhook.channel_locked.app_error"},
		{"/hooks/key1", `{"text":"hi","channel":"nope"}`, 404, "web.incoming_webhook.channel.app_error"},
	} {
		if code, _, m := do(t, s, "POST", tt.path, "", tt.body); code != tt.code || m["id"] != tt.id {
			t.Errorf("%s %s: %d %v", tt.path, tt.body, code, m)
		}
	}
	s.SetRateLimit(1, time.Minute)
	if code, h, _ := do(t, s, "GET", "/api/v4/posts/zzzzzzzzzzzzzzzzzzzzzzzzzz", "tok", ""); code != 404 || h.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("first: %d %v", code, h)
	}
	code, h, m := do(t, s, "GET", "/api/v4/posts/zzzzzzzzzzzzzzzzzzzzzzzzzz", "tok", "")
	if code != 429 || h.Get("Retry-After") == "" || h.Get("X-RateLimit-Reset") == "" || !strings.Contains(m["raw"].(string), "limit exceeded") {
		t.Errorf("limited: %d %v %v", code, h, m)
	}
}

func TestFailureInjection(t *testing.T) {
	s := NewServer("tok")
	defer s.Close()
	ch := s.AddChannel("ops", "alerts")
	s.Fail(Failure{Match: "POST /api/v4/posts", Status: 503, Body: "down", Times: 2})
	for range 2 {
		if code, _, _ := do(t, s, "POST", "/api/v4/posts", "tok", `{"channel_id":"`+ch+`","message":"x"}`); code != 503 {
			t.Errorf("want 503, got %d", code)
		}
	}
	if code, _, _ := do(t, s, "POST", "/api/v4/posts", "tok", `{"channel_id":"`+ch+`","message":"x"}`); code != 201 {
		t.Errorf("after the failures: %d", code)
	}
	// After: the post is made and the connection closed.
	s.Fail(Failure{Match: "POST /api/v4/posts", After: true})
	req, _ := http.NewRequest("POST", s.URL+"/api/v4/posts", strings.NewReader(`{"channel_id":"`+ch+`","message":"y"}`))
	req.Header.Set("Authorization", "Bearer tok")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("want a closed connection")
	}
	if n := len(s.Posts()); n != 2 {
		t.Errorf("%d posts, want 2", n)
	}
}
