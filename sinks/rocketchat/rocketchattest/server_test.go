package rocketchattest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// call sends one request to the fake at base through client, with the
// bot's credentials unless auth is false.
func call(t *testing.T, s *Server, client *http.Client, base, method, path, body string, auth bool) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth {
		req.Header.Set("X-User-Id", s.UserID())
		req.Header.Set("X-Auth-Token", s.Token())
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r
}

func (r reply) is(t *testing.T, status int, errSubstr string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if errSubstr != "" && !strings.Contains(r.raw, errSubstr) {
		t.Fatalf("answer %s does not say %q", r.raw, errSubstr)
	}
	if status == 200 && r.body["success"] != true {
		t.Fatalf("200 without success:true: %s", r.raw)
	}
}

// inproc returns a caller through Transport.
func inproc(t *testing.T, s *Server) func(method, path, body string, auth bool) reply {
	c := s.Client()
	return func(method, path, body string, auth bool) reply {
		t.Helper()
		return call(t, s, c, "http://rocketchat.test", method, path, body, auth)
	}
}

func TestAuth(t *testing.T) {
	s := NewServer(WithRooms("alerts"))
	defer s.Close()
	r := call(t, s, http.DefaultClient, s.URL, "GET", "/api/v1/rooms.info?roomName=alerts", "", false)
	r.is(t, 401, "You must be logged in to do this.")
	call(t, s, http.DefaultClient, s.URL, "GET", "/api/v1/rooms.info?roomName=alerts", "", true).is(t, 200, s.RoomID("alerts"))
	call(t, s, http.DefaultClient, s.URL, "GET", "/api/v1/no.such", "", true).is(t, 404, "")
}

func TestPostMessageValidation(t *testing.T) {
	s := NewUnstarted(WithRooms("alerts"))
	do := inproc(t, s)
	rid := s.RoomID("alerts")
	p := "/api/v1/chat.postMessage"
	do("POST", p, `{"roomId":"`+rid+`","channel":"#alerts","text":"x"}`, true).is(t, 400, "invalid-params")
	do("POST", p, `{"channel":"#alerts","text":"x","icon_emoji":":x:"}`, true).is(t, 400, "must NOT have additional properties")
	do("POST", p, `{"channel":"#alerts","text":"x","tmid":"abc"}`, true).is(t, 400, "invalid-params")
	do("POST", p, `{"text":"x"}`, true).is(t, 400, "must match exactly one schema in oneOf")
	do("POST", p, `{"channel":"#nope","text":"x"}`, true).is(t, 400, "invalid-channel")
	do("POST", p, `[1]`, true).is(t, 400, "invalid-params")

	r := do("POST", p, `{"channel":"#alerts","text":"parent","alias":"herald","attachments":[{"color":"#ff0000","text":"a"}]}`, true)
	r.is(t, 200, "")
	parent := r.body["message"].(map[string]any)["_id"].(string)
	do("POST", p, `{"roomId":"`+rid+`","text":"reply","tmid":"`+parent+`"}`, true).is(t, 200, "")
	msgs := s.Messages("alerts")
	if len(msgs) != 2 || msgs[0].Alias != "herald" || msgs[0].Attachments[0].Color != "#ff0000" || msgs[1].ThreadID != parent {
		t.Errorf("stored: %+v", msgs)
	}
	if th := s.Thread(parent); len(th) != 1 || th[0].Text != "reply" || len(s.TopLevel("alerts")) != 1 {
		t.Errorf("thread: %+v", th)
	}
}

func TestSendMessage(t *testing.T) {
	s := NewUnstarted(WithRooms("alerts"), WithMaxMessageSize(10))
	do := inproc(t, s)
	rid := s.RoomID("alerts")
	p := "/api/v1/chat.sendMessage"
	body := `{"message":{"_id":"myChosenId000001","rid":"` + rid + `","msg":"hello"}}`
	r := do("POST", p, body, true)
	r.is(t, 200, `"_id":"myChosenId000001"`)
	// The same _id again: the real server's 400 with MongoDB's text, and
	// nothing stored.
	do("POST", p, body, true).is(t, 400, "E11000 duplicate key error")
	if n := len(s.AllMessages()); n != 1 {
		t.Errorf("%d messages after a duplicate, want 1", n)
	}
	do("POST", p, `{"message":{"rid":"`+rid+`","msg":"x","icon_emoji":":x:"}}`, true).is(t, 400, "invalid-params")
	do("POST", p, `{"message":{"rid":"`+rid+`","msg":"x"},"extra":1}`, true).is(t, 400, "invalid-params")
	do("POST", p, `{"message":{"msg":"x"}}`, true).is(t, 400, "'rid' property")
	do("POST", p, `{"message":{"rid":"nope","msg":"x"}}`, true).is(t, 400, "error-invalid-room")
	do("POST", p, `{"message":{"rid":"`+rid+`","msg":"x","tshow":true}}`, true).is(t, 400, "tshow provided but missing tmid")
	// Message_MaxAllowedSize counts UTF-16 units: 5 emoji are 10.
	do("POST", p, `{"message":{"rid":"`+rid+`","msg":"🔥🔥🔥🔥🔥"}}`, true).is(t, 200, "")
	do("POST", p, `{"message":{"rid":"`+rid+`","msg":"🔥🔥🔥🔥🔥a"}}`, true).is(t, 400, "error-message-size-exceeded")
	// A reply to a reply joins the first parent's thread.
	do("POST", p, `{"message":{"_id":"reply1","rid":"`+rid+`","msg":"r1","tmid":"myChosenId000001"}}`, true).is(t, 200, "")
	do("POST", p, `{"message":{"_id":"reply2","rid":"`+rid+`","msg":"r2","tmid":"reply1"}}`, true).is(t, 200, `"tmid":"myChosenId000001"`)
}

func TestThreadsDisabled(t *testing.T) {
	s := NewUnstarted(WithRooms("alerts"), WithThreads(false))
	do := inproc(t, s)
	do("POST", "/api/v1/chat.sendMessage", `{"message":{"rid":"`+s.RoomID("alerts")+`","msg":"x","tmid":"p"}}`, true).is(t, 400, "error-not-allowed")
}

func TestUpdateAndGet(t *testing.T) {
	s := NewUnstarted(WithRooms("alerts", "other"))
	do := inproc(t, s)
	rid := s.RoomID("alerts")
	do("POST", "/api/v1/chat.sendMessage", `{"message":{"_id":"m1","rid":"`+rid+`","msg":"v1","attachments":[{"color":"red","text":"att"}]}}`, true).is(t, 200, "")
	u := "/api/v1/chat.update"
	do("POST", u, `{"roomId":"`+rid+`","msgId":"m1","text":"v2","attachments":[]}`, true).is(t, 400, "invalid-params")
	do("POST", u, `{"roomId":"`+rid+`","msgId":"m1"}`, true).is(t, 400, "required property 'text'")
	do("POST", u, `{"roomId":"`+s.RoomID("other")+`","msgId":"m1","text":"v2"}`, true).is(t, 400, "does not match where the message is from")
	do("POST", u, `{"roomId":"`+rid+`","msgId":"zz","text":"v2"}`, true).is(t, 400, `No message found with the id of \"zz\"`)
	do("POST", u, `{"roomId":"`+rid+`","msgId":"m1","text":"v2"}`, true).is(t, 200, `"msg":"v2"`)
	m, _ := s.Message("m1")
	if m.Text != "v2" || len(m.Edits) != 1 || m.Edits[0] != "v1" || m.EditedAt.IsZero() || len(m.Attachments) != 1 || m.Attachments[0].Text != "att" {
		t.Errorf("after update: %+v", m)
	}

	g := "/api/v1/chat.getMessage"
	do("GET", g+"?msgId=m1", "", true).is(t, 200, `"editedAt"`)
	r := do("GET", g+"?msgId=zz", "", true)
	r.is(t, 400, "")
	if r.raw != `{"success":false}` {
		t.Errorf("missing message answer: %s", r.raw)
	}
	do("GET", g+"?msgId=m1&x=1", "", true).is(t, 400, "invalid-params")
	do("GET", g, "", true).is(t, 400, "required property 'msgId'")

	s.DeleteMessage("m1")
	do("GET", g+"?msgId=m1", "", true).is(t, 400, "")
	do("GET", "/api/v1/rooms.info?roomName=nope", "", true).is(t, 400, "error-room-not-found")
	do("GET", "/api/v1/rooms.info?roomName=alerts&roomId="+rid, "", true).is(t, 400, "invalid-params")
	do("GET", "/api/v1/rooms.info?roomId="+rid, "", true).is(t, 200, `"name":"alerts"`)
}

func TestHookRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewUnstarted()
		do := inproc(t, s)
		hook := s.AddHook("alerts")
		start := time.Now()
		for i := range DefaultRateLimit {
			r := do("POST", hook, `{"text":"n`+strconv.Itoa(i)+`"}`, false)
			r.is(t, 200, "")
			if got := r.header.Get("X-RateLimit-Remaining"); got != strconv.Itoa(DefaultRateLimit-1-i) {
				t.Errorf("remaining = %s after %d", got, i+1)
			}
			time.Sleep(time.Second)
		}
		r := do("POST", hook, `{"text":"over"}`, false)
		r.is(t, 429, "You must wait 50 seconds before trying this endpoint again. [error-too-many-requests]")
		reset, _ := strconv.ParseInt(r.header.Get("X-RateLimit-Reset"), 10, 64)
		if want := start.Add(DefaultRatePeriod).UnixMilli(); reset != want {
			t.Errorf("reset = %d, want %d (epoch ms)", reset, want)
		}
		if r.header.Get("Retry-After") != "" {
			t.Error("Rocket.Chat sends no Retry-After")
		}
		time.Sleep(time.Until(time.UnixMilli(reset)))
		do("POST", hook, `{"text":"after"}`, false).is(t, 200, "")
		if n := len(s.Messages("alerts")); n != DefaultRateLimit+1 {
			t.Errorf("%d messages, want %d", n, DefaultRateLimit+1)
		}
	})
}

func TestHooks(t *testing.T) {
	s := NewUnstarted(WithRooms("other"))
	do := inproc(t, s)
	hook := s.AddHook("alerts")
	do("POST", hook+"x", `{"text":"x"}`, false).is(t, 401, "Invalid integration id or token provided.")
	do("POST", hook, `{}`, false).is(t, 200, "")
	do("POST", hook, `{"text":"x","channel":"#other"}`, false).is(t, 400, "overriding destination channel is disabled")
	do("POST", hook, `not json`, false).is(t, 400, "")
	do("POST", hook, `{"text":"hi","attachments":[{"color":"#00ff00"}]}`, false).is(t, 200, "")
	over := s.AddHook("alerts", HookOverrideChannel())
	do("POST", over, `{"text":"there","channel":"#other"}`, false).is(t, 200, "")
	if m := s.Messages("alerts"); len(m) != 1 || m[0].Via != "webhook" || m[0].Attachments[0].Color != "#00ff00" {
		t.Errorf("alerts: %+v", m)
	}
	if m := s.Messages("other"); len(m) != 1 || m[0].Text != "there" {
		t.Errorf("other: %+v", m)
	}
}

func TestRESTRateLimitUnlessBot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, bot := range []bool{true, false} {
			s := NewUnstarted(WithRooms("a"), WithBotRole(bot), WithRateLimit(2, time.Minute))
			do := inproc(t, s)
			var last reply
			for range 3 {
				last = do("GET", "/api/v1/rooms.info?roomName=a", "", true)
			}
			if want := map[bool]int{true: 200, false: 429}[bot]; last.status != want {
				t.Errorf("bot %v: third request %d, want %d", bot, last.status, want)
			}
		}
	})
}

func TestFaults(t *testing.T) {
	s := NewServer(WithRooms("alerts"))
	defer s.Close()
	c := http.DefaultClient
	info := "/api/v1/rooms.info?roomName=alerts"
	s.FailNext("rooms.info", 1, 502)
	call(t, s, c, s.URL, "GET", info, "", true).is(t, 502, "Bad Gateway")
	call(t, s, c, s.URL, "GET", info, "", true).is(t, 200, "")
	s.SuccessFalseNext("", 1)
	r := call(t, s, c, s.URL, "GET", info, "", true)
	if r.status != 200 || r.body["success"] != false {
		t.Errorf("success:false fault: %d %s", r.status, r.raw)
	}
	s.SetDown(true)
	call(t, s, c, s.URL, "GET", info, "", true).is(t, 503, "503 Service Unavailable")
	s.SetDown(false)

	s.Inject(Fault{Endpoint: "rooms.info", Times: 1, CloseConnection: true})
	// A fresh connection, which Go's client does not retry on.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if _, err := fresh.Do(mustReq(t, s.URL+info)); err == nil {
		t.Error("closed connection: no error")
	}
	s.Inject(Fault{Endpoint: "rooms.info", Times: 1, CloseConnection: true})
	if _, err := s.Client().Do(mustReq(t, "http://x"+info)); !errors.Is(err, errConnClosed) {
		t.Errorf("closed connection in process: %v", err)
	}
	if resp, err := s.Client().Do(mustReq(t, "http://x"+info)); err != nil || resp.StatusCode != 200 {
		t.Errorf("after the fault: %v", err)
	}

	// Slow: the client's deadline ends the wait, in process and over the
	// network alike.
	for _, client := range []*http.Client{c, s.Client()} {
		s.SlowNext("rooms.info", 1, time.Hour)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+info, nil)
		_, err := client.Do(req)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("slow: %v", err)
		}
	}
}

func TestStoredThenSlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewUnstarted(WithRooms("alerts"))
		s.Inject(Fault{Endpoint: "chat.sendMessage", Times: 1, Delay: time.Hour, AfterHandling: true})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		body := `{"message":{"_id":"m1","rid":"` + s.RoomID("alerts") + `","msg":"x"}}`
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://rc.test/api/v1/chat.sendMessage", bytes.NewReader([]byte(body)))
		req.Header.Set("X-User-Id", s.UserID())
		req.Header.Set("X-Auth-Token", s.Token())
		if _, err := s.Client().Do(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if _, ok := s.Message("m1"); !ok {
			t.Error("the message was not stored before the slow answer")
		}
	})
}

func mustReq(t *testing.T, u string) *http.Request {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-User-Id", DefaultUserID)
	req.Header.Set("X-Auth-Token", DefaultToken)
	return req
}
