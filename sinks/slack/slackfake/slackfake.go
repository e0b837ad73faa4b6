// Package slackfake is a fake Slack for tests: slack-go's slacktest server
// with the handlers it lacks. It serves chat.postMessage, chat.update,
// conversations.history and conversations.replies (with message metadata),
// conversations.list (paged, by type) and incoming webhooks as strictly as
// Slack does about what herald sends (token, channel, Block Kit limits,
// message_not_found, cursors, types), records what each
// channel received, and injects failures: HTTP errors, 429 with
// Retry-After, ok:false codes, hangs.
package slackfake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"

	"github.com/slack-go/slack/slacktest"
)

// Method names for Fail and Requests.
const (
	PostMessage = "chat.postMessage"
	Update      = "chat.update"
	History     = "conversations.history"
	Replies     = "conversations.replies"
	List        = "conversations.list"
	Webhook     = "webhook"
)

// Message is one message as the fake stores it.
type Message struct {
	ChannelID string
	TS        string
	// ThreadTS is the parent's ts for a thread reply.
	ThreadTS string
	Text     string
	// Blocks is the message's blocks as sent.
	Blocks json.RawMessage
	// Username and IconEmoji are the overrides the message was posted with.
	Username, IconEmoji string
	// Metadata is the message metadata it was posted with, as sent.
	Metadata json.RawMessage
	// Edits counts chat.update calls on the message.
	Edits int
	// ViaWebhook is set for messages posted through an incoming webhook.
	ViaWebhook bool
}

// Failure is an answer the fake gives instead of doing its job.
type Failure struct {
	// Status is the HTTP status; 0 means 200.
	Status int
	// RetryAfter is sent as the Retry-After header when set.
	RetryAfter string
	// Error is the ok:false error code of a Web API answer, or the body of
	// a webhook answer.
	Error string
	// Body, when set, is the whole answer body, sent as is.
	Body string
	// Hang keeps the request open until the client gives up.
	Hang bool
	// LoseAnswer serves the request (a post is stored) but never answers,
	// as when a timeout cuts the answer off. chat.postMessage only.
	LoseAnswer bool
}

// Server is a fake Slack workspace. Its zero value is not usable; call New.
type Server struct {
	*slacktest.Server
	token string

	mu       sync.Mutex
	channels map[string]string // name, #name or id -> id
	names    map[string]string // id -> name
	private  map[string]bool   // id -> private channel
	order    []string          // channel ids, oldest first
	hooks    map[string]string // webhook path -> channel id
	messages []*Message
	byTS     map[string]*Message // channel id + "/" + ts
	queued   map[string][]Failure
	sticky   *Failure
	requests map[string]int
	seq      int
	// scopes, when not nil, are the token's scopes.
	scopes map[string]bool

	closing   chan struct{}
	closeOnce sync.Once
}

// New starts a fake Slack whose bot token is token. Stop it with Close.
func New(token string) *Server {
	s := &Server{
		token:    token,
		channels: map[string]string{},
		names:    map[string]string{},
		private:  map[string]bool{},
		hooks:    map[string]string{},
		byTS:     map[string]*Message{},
		queued:   map[string][]Failure{},
		requests: map[string]int{},
		closing:  make(chan struct{}),
	}
	s.Server = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", s.postMessage)
		c.Handle("/chat.update", s.update)
		c.Handle("/conversations.history", s.history)
		c.Handle("/conversations.replies", s.replies)
		c.Handle("/conversations.list", s.conversations)
		c.Handle("/services/", s.webhook)
	})
	s.Start()
	return s
}

// Close releases hanging requests and stops the server.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.Stop()
}

// APIURL is the Web API base URL, for the sink's api_url.
func (s *Server) APIURL() string { return s.GetAPIURL() }

// AddChannel creates a channel and returns its id. Messages may address it
// as name, "#"+name or the id.
func (s *Server) AddChannel(name string) string {
	return s.addChannel(name, false)
}

// AddPrivateChannel creates a private channel the bot is a member of and
// returns its id (G...). conversations.list shows it only when asked for
// private_channel.
func (s *Server) AddPrivateChannel(name string) string {
	return s.addChannel(name, true)
}

func (s *Server) addChannel(name string, private bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = strings.TrimPrefix(name, "#")
	if id, ok := s.channels[name]; ok {
		return id
	}
	prefix := "C"
	if private {
		prefix = "G"
	}
	id := fmt.Sprintf("%s%08d", prefix, len(s.names)+1)
	s.channels[name], s.channels["#"+name], s.channels[id] = id, id, id
	s.names[id] = name
	s.private[id] = private
	s.order = append(s.order, id)
	return id
}

// ArchiveChannel removes a channel: posts and updates to it fail with
// channel_not_found from now on.
func (s *Server) ArchiveChannel(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.channels[strings.TrimPrefix(name, "#")]
	for k, v := range s.channels {
		if v == id {
			delete(s.channels, k)
		}
	}
}

// AddWebhook creates an incoming webhook posting to channel (created if
// needed) and returns its URL.
func (s *Server) AddWebhook(channel string) string {
	id := s.AddChannel(channel)
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	path := "/services/T00000000/B00000000/" + hex.EncodeToString(b)
	s.mu.Lock()
	s.hooks[path] = id
	s.mu.Unlock()
	return "http://" + s.ServerAddr + path
}

// SetScopes limits the token to scopes, as far as conversations.list is
// concerned: public_channel needs channels:read, private_channel
// groups:read, and a request for a type without its scope is answered
// missing_scope. No call (the default) grants every scope.
func (s *Server) SetScopes(scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scopes = map[string]bool{}
	for _, sc := range scopes {
		s.scopes[sc] = true
	}
}

// Fail queues failures for method: each of the next requests to it gets the
// next failure instead of being served.
func (s *Server) Fail(method string, f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queued[method] = append(s.queued[method], f...)
}

// FailAll answers every request with f until FailAll(nil): Slack is down.
func (s *Server) FailAll(f *Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sticky = f
}

// DeleteMessage deletes a message, as a user could.
func (s *Server) DeleteMessage(channelID, ts string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byTS, channelID+"/"+ts)
	for i, m := range s.messages {
		if m.ChannelID == channelID && m.TS == ts {
			s.messages = append(s.messages[:i], s.messages[i+1:]...)
			return
		}
	}
}

// Messages returns copies of the messages in channel (name or id), oldest
// first, thread replies included.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.channels[strings.TrimPrefix(channel, "#")]
	if id == "" {
		id = channel
	}
	var out []Message
	for _, m := range s.messages {
		if m.ChannelID == id {
			out = append(out, *m)
		}
	}
	return out
}

// Message returns a copy of the message channelID/ts.
func (s *Server) Message(channelID, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.byTS[channelID+"/"+ts]
	if !ok {
		return Message{}, false
	}
	return *m, true
}

// Requests counts the requests that reached method, failed ones included.
func (s *Server) Requests(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[method]
}

// failure counts a request to method and returns the failure to answer
// with, if any.
func (s *Server) failure(method string) *Failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[method]++
	if s.sticky != nil {
		f := *s.sticky
		return &f
	}
	if q := s.queued[method]; len(q) > 0 {
		s.queued[method] = q[1:]
		return &q[0]
	}
	return nil
}

func (s *Server) writeFailure(w http.ResponseWriter, r *http.Request, f *Failure, api bool) {
	if f.Hang {
		// Reading the body to its end lets the server notice when the
		// client hangs up, which ends r's context.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		return
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	status := f.Status
	if status == 0 {
		status = http.StatusOK
	}
	body := f.Body
	if body == "" {
		if api && f.Error != "" {
			b, _ := json.Marshal(map[string]any{"ok": false, "error": f.Error})
			body = string(b)
			w.Header().Set("Content-Type", "application/json")
		} else {
			body = f.Error
		}
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func apiError(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": code})
}

// auth checks the token as Slack does: form field or bearer header.
func (s *Server) auth(r *http.Request, form url.Values) string {
	tok := form.Get("token")
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		tok = strings.TrimPrefix(h, "Bearer ")
	}
	switch {
	case tok == "":
		return "not_authed"
	case tok != s.token:
		return "invalid_auth"
	}
	return ""
}

func (s *Server) readForm(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	if r.Method != http.MethodPost {
		apiError(w, "invalid_post_type")
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return nil, false
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		apiError(w, "invalid_form_data")
		return nil, false
	}
	return form, true
}

func (s *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	f := s.failure(PostMessage)
	if f != nil && !f.LoseAnswer {
		s.writeFailure(w, r, f, true)
		return
	}
	form, ok := s.readForm(w, r)
	if !ok {
		return
	}
	if code := s.auth(r, form); code != "" {
		apiError(w, code)
		return
	}
	m := &Message{
		Text:      form.Get("text"),
		ThreadTS:  form.Get("thread_ts"),
		Username:  form.Get("username"),
		IconEmoji: form.Get("icon_emoji"),
	}
	if code := checkContent(m.Text, form.Get("blocks"), form.Has("blocks")); code != "" {
		apiError(w, code)
		return
	}
	m.Blocks = json.RawMessage(form.Get("blocks"))
	if md := form.Get("metadata"); md != "" {
		var v struct {
			EventType    string         `json:"event_type"`
			EventPayload map[string]any `json:"event_payload"`
		}
		if json.Unmarshal([]byte(md), &v) != nil || v.EventType == "" || v.EventPayload == nil {
			apiError(w, "invalid_metadata_format")
			return
		}
		m.Metadata = json.RawMessage(md)
	}
	s.mu.Lock()
	id, known := s.channels[strings.TrimPrefix(form.Get("channel"), "#")]
	if !known {
		s.mu.Unlock()
		apiError(w, "channel_not_found")
		return
	}
	m.ChannelID = id
	m.TS = s.nextTS()
	s.messages = append(s.messages, m)
	s.byTS[id+"/"+m.TS] = m
	s.mu.Unlock()
	if f != nil {
		s.writeFailure(w, r, &Failure{Hang: true}, true)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": id, "ts": m.TS, "message": map[string]any{"text": m.Text, "ts": m.TS, "thread_ts": m.ThreadTS}})
}

func (s *Server) update(w http.ResponseWriter, r *http.Request) {
	if f := s.failure(Update); f != nil {
		s.writeFailure(w, r, f, true)
		return
	}
	form, ok := s.readForm(w, r)
	if !ok {
		return
	}
	if code := s.auth(r, form); code != "" {
		apiError(w, code)
		return
	}
	if code := checkContent(form.Get("text"), form.Get("blocks"), form.Has("blocks")); code != "" {
		apiError(w, code)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// chat.update takes a channel id, not a name.
	ch := form.Get("channel")
	if id, ok := s.channels[ch]; !ok || id != ch {
		apiError(w, "channel_not_found")
		return
	}
	m, ok := s.byTS[ch+"/"+form.Get("ts")]
	if !ok {
		apiError(w, "message_not_found")
		return
	}
	if m.ViaWebhook {
		apiError(w, "cant_update_message")
		return
	}
	m.Text = form.Get("text")
	if form.Has("blocks") {
		m.Blocks = json.RawMessage(form.Get("blocks"))
	}
	m.Edits++
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": ch, "ts": m.TS, "text": m.Text})
}

// history answers conversations.history: the channel's top-level
// messages, newest first, with metadata when include_all_metadata is set.
func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	s.list(w, r, History, func(m *Message, _ url.Values) bool { return m.ThreadTS == "" })
}

// replies answers conversations.replies: the thread's parent, then its
// replies oldest first.
func (s *Server) replies(w http.ResponseWriter, r *http.Request) {
	s.list(w, r, Replies, func(m *Message, form url.Values) bool {
		ts := form.Get("ts")
		return m.TS == ts || m.ThreadTS == ts
	})
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, method string, keep func(*Message, url.Values) bool) {
	if f := s.failure(method); f != nil {
		s.writeFailure(w, r, f, true)
		return
	}
	form, ok := s.readForm(w, r)
	if !ok {
		return
	}
	if code := s.auth(r, form); code != "" {
		apiError(w, code)
		return
	}
	limit, err := strconv.Atoi(form.Get("limit"))
	if err != nil || limit <= 0 {
		limit = 100
	}
	withMeta := form.Get("include_all_metadata") == "1" || form.Get("include_all_metadata") == "true"
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := form.Get("channel")
	if id, ok := s.channels[ch]; !ok || id != ch {
		// Both methods take a channel id, not a name.
		apiError(w, "channel_not_found")
		return
	}
	if method == Replies {
		if _, ok := s.byTS[ch+"/"+form.Get("ts")]; !ok {
			apiError(w, "thread_not_found")
			return
		}
	}
	type out struct {
		Type     string          `json:"type"`
		TS       string          `json:"ts"`
		ThreadTS string          `json:"thread_ts,omitempty"`
		Text     string          `json:"text"`
		Metadata json.RawMessage `json:"metadata,omitempty"`
	}
	var msgs []out
	for _, m := range s.messages {
		if m.ChannelID != ch || !keep(m, form) {
			continue
		}
		o := out{Type: "message", TS: m.TS, ThreadTS: m.ThreadTS, Text: m.Text}
		if withMeta {
			o.Metadata = m.Metadata
		}
		msgs = append(msgs, o)
	}
	if method == History {
		slices.Reverse(msgs)
	}
	more := len(msgs) > limit
	msgs = msgs[:min(len(msgs), limit)]
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "messages": msgs, "has_more": more})
}

// conversationTypes are the types conversations.list knows.
var conversationTypes = map[string]bool{"public_channel": true, "private_channel": true, "mpim": true, "im": true}

// conversations answers conversations.list: the workspace's channels of
// the asked types (public_channel by default), oldest first, archived
// ones unless exclude_archived, in pages of limit (default 100, at most
// 1000) linked by response_metadata.next_cursor.
func (s *Server) conversations(w http.ResponseWriter, r *http.Request) {
	if f := s.failure(List); f != nil {
		s.writeFailure(w, r, f, true)
		return
	}
	form, ok := s.readForm(w, r)
	if !ok {
		return
	}
	if code := s.auth(r, form); code != "" {
		apiError(w, code)
		return
	}
	limit := 100
	if v := form.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			apiError(w, "invalid_limit")
			return
		}
		limit = n
	}
	types := map[string]bool{"public_channel": true}
	if v := form.Get("types"); v != "" {
		types = map[string]bool{}
		for _, t := range strings.Split(v, ",") {
			if !conversationTypes[t] {
				apiError(w, "invalid_types")
				return
			}
			types[t] = true
		}
	}
	s.mu.Lock()
	for t, scope := range map[string]string{"public_channel": "channels:read", "private_channel": "groups:read", "mpim": "mpim:read", "im": "im:read"} {
		if types[t] && s.scopes != nil && !s.scopes[scope] {
			s.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "missing_scope", "needed": scope})
			return
		}
	}
	s.mu.Unlock()
	excludeArchived := form.Get("exclude_archived") == "true" || form.Get("exclude_archived") == "1"
	start, ok := decodeCursor(form.Get("cursor"))
	if !ok {
		apiError(w, "invalid_cursor")
		return
	}
	type channel struct {
		ID         string `json:"id"`
		Name       string `json:"name"`
		IsChannel  bool   `json:"is_channel"`
		IsGroup    bool   `json:"is_group"`
		IsPrivate  bool   `json:"is_private"`
		IsArchived bool   `json:"is_archived"`
		IsMember   bool   `json:"is_member"`
	}
	var all []channel
	s.mu.Lock()
	for _, id := range s.order {
		private, archived := s.private[id], s.channels[id] != id
		if (private && !types["private_channel"]) || (!private && !types["public_channel"]) || (archived && excludeArchived) {
			continue
		}
		all = append(all, channel{ID: id, Name: s.names[id], IsChannel: true, IsPrivate: private, IsArchived: archived, IsMember: private})
	}
	s.mu.Unlock()
	page := all[min(start, len(all)):min(start+limit, len(all))]
	next := ""
	if start+limit < len(all) {
		next = base64.StdEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(start+limit)))
	}
	if page == nil {
		page = []channel{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channels": page, "response_metadata": map[string]any{"next_cursor": next}})
}

// decodeCursor returns the offset a conversations.list cursor stands for;
// "" is the first page.
func decodeCursor(c string) (int, bool) {
	if c == "" {
		return 0, true
	}
	b, err := base64.StdEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	n, ok := strings.CutPrefix(string(b), "offset:")
	start, err := strconv.Atoi(n)
	if !ok || err != nil || start < 0 {
		return 0, false
	}
	return start, true
}

func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	if f := s.failure(Webhook); f != nil {
		s.writeFailure(w, r, f, false)
		return
	}
	hookErr := func(status int, code string) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, code)
	}
	s.mu.Lock()
	id, ok := s.hooks[r.URL.Path]
	s.mu.Unlock()
	switch {
	case !ok:
		hookErr(http.StatusNotFound, "no_service")
		return
	case r.Method != http.MethodPost:
		hookErr(http.StatusBadRequest, "invalid_payload")
		return
	}
	var body struct {
		Text      string          `json:"text"`
		Blocks    json.RawMessage `json:"blocks"`
		Username  string          `json:"username"`
		IconEmoji string          `json:"icon_emoji"`
		ThreadTS  string          `json:"thread_ts"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		hookErr(http.StatusBadRequest, "invalid_payload")
		return
	}
	hasBlocks := len(body.Blocks) > 0 && string(body.Blocks) != "null"
	if code := checkContent(body.Text, string(body.Blocks), hasBlocks); code != "" {
		hookErr(http.StatusBadRequest, code)
		return
	}
	s.mu.Lock()
	if _, alive := s.names[id]; !alive || s.channels[id] != id {
		s.mu.Unlock()
		hookErr(http.StatusNotFound, "channel_not_found")
		return
	}
	m := &Message{ChannelID: id, TS: s.nextTS(), Text: body.Text, Username: body.Username, IconEmoji: body.IconEmoji, ThreadTS: body.ThreadTS, ViaWebhook: true}
	if hasBlocks {
		m.Blocks = body.Blocks
	}
	s.messages = append(s.messages, m)
	s.byTS[id+"/"+m.TS] = m
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html")
	_, _ = io.WriteString(w, "ok")
}

// nextTS returns a new message ts; s.mu is held.
func (s *Server) nextTS() string {
	s.seq++
	return "1700000000." + fmt.Sprintf("%06d", s.seq)
}

// Limits Slack applies to what herald sends.
const (
	maxText        = 40000
	maxBlocks      = 50
	maxHeader      = 150
	maxSectionText = 3000
	maxFields      = 10
	maxField       = 2000
	maxContext     = 10
	maxActions     = 25
	maxButtonText  = 75
	maxURL         = 3000
)

// Check returns the error code Slack gives a message with this text and
// blocks (a JSON array), or "" when Slack takes it. Render tests use it to
// hold rendered messages to the same rules as the fake server.
func Check(text string, blocks []byte) string {
	return checkContent(text, string(blocks), blocks != nil)
}

// checkContent returns the error code Slack gives a message with this text
// and blocks, or "".
func checkContent(text, blocks string, hasBlocks bool) string {
	if utf16Len(text) > maxText {
		return "msg_too_long"
	}
	if !hasBlocks {
		if strings.TrimSpace(text) == "" {
			return "no_text"
		}
		return ""
	}
	var bs []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(blocks), &bs); err != nil {
		return "invalid_blocks_format"
	}
	if len(bs) == 0 && strings.TrimSpace(text) == "" {
		return "no_text"
	}
	if len(bs) > maxBlocks {
		return "invalid_blocks"
	}
	actionIDs := map[string]bool{}
	for _, b := range bs {
		if !checkBlock(b, actionIDs) {
			return "invalid_blocks"
		}
	}
	return ""
}

type textObject struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func (t *textObject) valid(limit int) bool {
	return t != nil && (t.Type == "plain_text" || t.Type == "mrkdwn") && t.Text != "" && utf16Len(t.Text) <= limit
}

func checkBlock(b map[string]json.RawMessage, actionIDs map[string]bool) bool {
	var typ string
	if json.Unmarshal(b["type"], &typ) != nil {
		return false
	}
	switch typ {
	case "header":
		var t textObject
		return json.Unmarshal(b["text"], &t) == nil && t.Type == "plain_text" && t.valid(maxHeader)
	case "section":
		var t *textObject
		var fields []*textObject
		if raw, ok := b["text"]; ok && (json.Unmarshal(raw, &t) != nil || !t.valid(maxSectionText)) {
			return false
		}
		if raw, ok := b["fields"]; ok {
			if json.Unmarshal(raw, &fields) != nil || len(fields) == 0 || len(fields) > maxFields {
				return false
			}
			for _, f := range fields {
				if !f.valid(maxField) {
					return false
				}
			}
		}
		return t != nil || len(fields) > 0
	case "context":
		var elems []*textObject
		if json.Unmarshal(b["elements"], &elems) != nil || len(elems) == 0 || len(elems) > maxContext {
			return false
		}
		for _, e := range elems {
			if !e.valid(maxSectionText) {
				return false
			}
		}
		return true
	case "actions":
		var elems []struct {
			Type     string      `json:"type"`
			Text     *textObject `json:"text"`
			ActionID string      `json:"action_id"`
			URL      string      `json:"url"`
		}
		if json.Unmarshal(b["elements"], &elems) != nil || len(elems) == 0 || len(elems) > maxActions {
			return false
		}
		for _, e := range elems {
			if e.Type != "button" || e.Text == nil || e.Text.Type != "plain_text" || !e.Text.valid(maxButtonText) {
				return false
			}
			if e.ActionID != "" {
				if actionIDs[e.ActionID] {
					return false
				}
				actionIDs[e.ActionID] = true
			}
			if e.URL != "" {
				u, err := url.Parse(e.URL)
				if err != nil || len(e.URL) > maxURL || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return false
				}
			}
		}
		return true
	case "divider":
		return true
	}
	return false
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += max(utf16.RuneLen(r), 1)
	}
	return n
}
