// Package rocketchattest is a fake Rocket.Chat server for tests, as strict
// as the real one about what herald's sink sends: chat.postMessage,
// chat.sendMessage, chat.update, chat.getMessage, rooms.info and incoming
// webhooks (/hooks/<id>/<token>), with Rocket.Chat's request validation
// (unknown properties rejected, roomId or channel but not both, tmid only
// with roomId, update edits text only, a duplicate _id refused with the real
// 400), its authentication headers, its rate limiter (X-RateLimit-* headers,
// reset in epoch milliseconds, 429 body) and Message_MaxAllowedSize counted
// in UTF-16 units. Faults can be injected: down, slow, 5xx, success:false,
// a closed connection, or a slow answer after the message was stored. It
// records what each room received.
//
// A test either starts it on a loopback listener (NewServer, use URL) or
// keeps it in process (NewUnstarted) and reaches it through Transport, which
// makes no network I/O and so works inside testing/synctest bubbles, where
// the rate limiter's windows then follow the bubble's fake clock.
//
//	srv := rocketchattest.NewServer(rocketchattest.WithRooms("alerts-critical"))
//	defer srv.Close()
//	// point the sink at srv.URL with srv.UserID() and srv.Token()
//	msgs := srv.Messages("alerts-critical")
package rocketchattest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
)

// Defaults of a new Server: Rocket.Chat's own defaults where it has one.
const (
	DefaultUserID   = "botUserId000001"
	DefaultToken    = "bot-personal-access-token"
	DefaultUsername = "herald.bot"
	// DefaultMaxMessageSize is Message_MaxAllowedSize's default.
	DefaultMaxMessageSize = 5000
	// DefaultRateLimit per DefaultRatePeriod is the API rate limiter's
	// default (API_Enable_Rate_Limiter_Limit_Calls_Default and _Time_).
	DefaultRateLimit  = 10
	DefaultRatePeriod = 60 * time.Second
)

// Server is a fake Rocket.Chat. All its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL of a started server ("" for NewUnstarted).
	URL string

	srv *httptest.Server
	mu  sync.Mutex
	set settings

	rooms      map[string]*room // by id
	roomByName map[string]string
	msgs       map[string]*Message
	order      []string // message ids in post order
	hooks      map[string]*hook
	limiters   map[string]*limiter
	faults     []*Fault
	requests   []Request
	down       bool
	seq        int
}

type settings struct {
	userID, token, username string
	bot                     bool
	maxSize                 int
	rateLimit               int
	ratePeriod              time.Duration
	threads                 bool
	editing                 bool
	rooms                   []string
}

type room struct {
	id, name string
}

type hook struct {
	id, token, roomID string
	override          bool
}

// Option configures a Server.
type Option func(*settings)

// WithCredentials sets the bot user's id and token (X-User-Id and
// X-Auth-Token); requests with others get a 401.
func WithCredentials(userID, token string) Option {
	return func(s *settings) { s.userID, s.token = userID, token }
}

// WithBotRole says whether the user has the bot role, which bypasses the
// REST rate limiter (api-bypass-rate-limit). Default true. Incoming hooks
// are rate limited either way.
func WithBotRole(bot bool) Option { return func(s *settings) { s.bot = bot } }

// WithRooms pre-creates public rooms (channels) by name, without "#".
func WithRooms(names ...string) Option {
	return func(s *settings) { s.rooms = append(s.rooms, names...) }
}

// WithMaxMessageSize sets Message_MaxAllowedSize (UTF-16 units).
func WithMaxMessageSize(n int) Option { return func(s *settings) { s.maxSize = n } }

// WithRateLimit sets the rate limiter: n requests per period, per route.
// n <= 0 turns the limiter off.
func WithRateLimit(n int, period time.Duration) Option {
	return func(s *settings) { s.rateLimit, s.ratePeriod = n, period }
}

// WithThreads sets Threads_enabled (default true).
func WithThreads(enabled bool) Option { return func(s *settings) { s.threads = enabled } }

// WithEditing sets Message_AllowEditing (default true).
func WithEditing(enabled bool) Option { return func(s *settings) { s.editing = enabled } }

// NewServer starts a fake on a loopback listener. Close it when done.
func NewServer(opts ...Option) *Server {
	s := NewUnstarted(opts...)
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	return s
}

// NewUnstarted returns a fake that listens nowhere: reach it through
// Transport or Client, at any URL (for example "http://rocketchat.test").
func NewUnstarted(opts ...Option) *Server {
	st := settings{
		userID: DefaultUserID, token: DefaultToken, username: DefaultUsername, bot: true,
		maxSize: DefaultMaxMessageSize, rateLimit: DefaultRateLimit, ratePeriod: DefaultRatePeriod,
		threads: true, editing: true,
	}
	for _, o := range opts {
		o(&st)
	}
	s := &Server{
		set:        st,
		rooms:      map[string]*room{},
		roomByName: map[string]string{},
		msgs:       map[string]*Message{},
		hooks:      map[string]*hook{},
		limiters:   map[string]*limiter{},
	}
	for _, name := range st.rooms {
		s.CreateRoom(name)
	}
	return s
}

// Close shuts a started server down. Requests still running are answered
// first: a slow fault ends when its client gives up.
func (s *Server) Close() {
	if s.srv != nil {
		s.srv.CloseClientConnections()
		s.srv.Close()
	}
}

// UserID is the bot user's id to send as X-User-Id.
func (s *Server) UserID() string { return s.set.userID }

// Token is the bot user's token to send as X-Auth-Token.
func (s *Server) Token() string { return s.set.token }

// CreateRoom creates a public room and returns its id; for an existing name
// it returns the existing room's id. name has no "#".
func (s *Server) CreateRoom(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = strings.TrimPrefix(name, "#")
	if id, ok := s.roomByName[name]; ok {
		return id
	}
	id := s.newID("R")
	s.rooms[id] = &room{id: id, name: name}
	s.roomByName[name] = id
	return id
}

// DeleteRoom deletes a room and its messages.
func (s *Server) DeleteRoom(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.roomByName[strings.TrimPrefix(name, "#")]
	if !ok {
		return
	}
	delete(s.roomByName, s.rooms[id].name)
	delete(s.rooms, id)
	for mid, m := range s.msgs {
		if m.RoomID == id {
			delete(s.msgs, mid)
		}
	}
}

// RoomID returns the id of the room named name ("" if none).
func (s *Server) RoomID(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.roomByName[strings.TrimPrefix(name, "#")]
}

// HookOption configures an incoming webhook.
type HookOption func(*hook)

// HookOverrideChannel lets posts to the hook name another channel
// ("Override destination channel" in Rocket.Chat's admin).
func HookOverrideChannel() HookOption { return func(h *hook) { h.override = true } }

// AddHook creates an incoming webhook that posts to the room named room
// (created if needed) and returns its URL path, /hooks/<id>/<token>; prefix
// it with URL (or any base URL with Transport).
func (s *Server) AddHook(room string, opts ...HookOption) string {
	rid := s.CreateRoom(room)
	s.mu.Lock()
	defer s.mu.Unlock()
	h := &hook{id: s.newID("H"), token: s.newID("tok") + "Secret", roomID: rid}
	for _, o := range opts {
		o(h)
	}
	s.hooks[h.id] = h
	return "/hooks/" + h.id + "/" + h.token
}

// Message is a message the fake stored.
type Message struct {
	ID       string
	RoomID   string
	RoomName string
	// ThreadID is the thread parent (tmid), "" for a top-level message.
	ThreadID    string
	Text        string
	Alias       string
	Emoji       string
	Avatar      string
	Attachments []Attachment
	// Via is the endpoint that posted it: "chat.sendMessage",
	// "chat.postMessage" or "webhook".
	Via string
	// HookID is the incoming webhook that posted it.
	HookID  string
	Created time.Time
	// Edits are the earlier texts, oldest first; EditedAt is the last edit.
	Edits    []string
	EditedAt time.Time
}

// Attachment is a stored message attachment: the common fields, and the
// whole attachment as sent in Raw.
type Attachment struct {
	Color           string          `json:"color,omitempty"`
	Title           string          `json:"title,omitempty"`
	TitleLink       string          `json:"title_link,omitempty"`
	Text            string          `json:"text,omitempty"`
	Fields          []Field         `json:"fields,omitempty"`
	Actions         []Action        `json:"actions,omitempty"`
	ButtonAlignment string          `json:"button_alignment,omitempty"`
	Raw             json.RawMessage `json:"-"`
}

// Field is an attachment field.
type Field struct {
	Short bool   `json:"short"`
	Title string `json:"title"`
	Value string `json:"value"`
}

// Action is an attachment button.
type Action struct {
	Type            string `json:"type"`
	Text            string `json:"text"`
	URL             string `json:"url"`
	MsgInChatWindow bool   `json:"msg_in_chat_window"`
}

func (m *Message) clone() Message {
	c := *m
	c.Attachments = slices.Clone(m.Attachments)
	c.Edits = slices.Clone(m.Edits)
	return c
}

// Messages returns the messages of the room named room, thread replies
// included, in the order they were posted.
func (s *Server) Messages(room string) []Message {
	return s.filter(func(m *Message) bool { return m.RoomName == strings.TrimPrefix(room, "#") })
}

// TopLevel returns the room's messages that are not thread replies.
func (s *Server) TopLevel(room string) []Message {
	return s.filter(func(m *Message) bool { return m.RoomName == strings.TrimPrefix(room, "#") && m.ThreadID == "" })
}

// Thread returns the replies in the thread of the message parentID.
func (s *Server) Thread(parentID string) []Message {
	return s.filter(func(m *Message) bool { return m.ThreadID == parentID })
}

// AllMessages returns every stored message in post order.
func (s *Server) AllMessages() []Message { return s.filter(func(*Message) bool { return true }) }

// Message returns the message with id.
func (s *Server) Message(id string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.msgs[id]
	if !ok {
		return Message{}, false
	}
	return m.clone(), true
}

// DeleteMessage deletes a message, as a person could; it reports whether it
// existed.
func (s *Server) DeleteMessage(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.msgs[id]
	delete(s.msgs, id)
	return ok
}

func (s *Server) filter(keep func(*Message) bool) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, id := range s.order {
		if m, ok := s.msgs[id]; ok && keep(m) {
			out = append(out, m.clone())
		}
	}
	return out
}

// Request is one request the fake answered.
type Request struct {
	Method string
	// Endpoint is the REST method ("chat.sendMessage"), "webhook", or the
	// path for anything else.
	Endpoint string
	Path     string
	Status   int
	// Header is the answer's header, with the X-RateLimit-* values.
	Header http.Header
	// At is when the answer was decided (before any injected delay).
	At   time.Time
	Body []byte
}

// RateLimitReset is the reset the answer announced (X-RateLimit-Reset, in
// epoch milliseconds), or the zero time.
func (r Request) RateLimitReset() time.Time {
	ms, err := strconv.ParseInt(r.Header.Get("X-RateLimit-Reset"), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// Requests returns every request answered so far, in the order their
// answers were recorded. Requests that arrive at once may be recorded in
// another order than the rate limiter counted them; to know that order,
// compare their answers' X-RateLimit-Remaining.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Count returns how many requests went to endpoint (see Request.Endpoint).
func (s *Server) Count(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Endpoint == endpoint {
			n++
		}
	}
	return n
}

// Fault is an injected failure. It applies to the requests to Endpoint
// (see Request.Endpoint; "" for all), Times times (0: until ClearFaults).
type Fault struct {
	Endpoint string
	Times    int
	// Status, Header and Body are the answer given instead of the real
	// one; Status 0 keeps the real answer (useful with Delay).
	Status int
	Header http.Header
	Body   string
	// Delay holds the answer back; the request's own context cuts it short.
	Delay time.Duration
	// AfterHandling applies the fault after the request was handled for
	// real: the message is stored, then the answer is delayed or replaced.
	// With Delay it is a post that times out on the client and yet exists.
	AfterHandling bool
	// CloseConnection drops the connection instead of answering.
	CloseConnection bool
}

// Inject adds a fault; faults apply in the order they were added.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := f
	s.faults = append(s.faults, &c)
}

// ClearFaults removes every fault and brings the server back up.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
	s.down = false
}

// SetDown makes every request fail with 503 from a "load balancer" (down
// true) or brings the server back (false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// FailNext answers the next n requests to endpoint with status and a
// Rocket.Chat error body ({"success":false,"error":...}).
func (s *Server) FailNext(endpoint string, n, status int) {
	s.Inject(Fault{Endpoint: endpoint, Times: n, Status: status,
		Body: fmt.Sprintf(`{"success":false,"error":%q}`, http.StatusText(status))})
}

// SuccessFalseNext answers the next n requests to endpoint with a 200 whose
// body says success:false.
func (s *Server) SuccessFalseNext(endpoint string, n int) {
	s.Inject(Fault{Endpoint: endpoint, Times: n, Status: http.StatusOK,
		Body: `{"success":false,"error":"unknown-error"}`})
}

// SlowNext delays the next n answers of endpoint by d.
func (s *Server) SlowNext(endpoint string, n int, d time.Duration) {
	s.Inject(Fault{Endpoint: endpoint, Times: n, Delay: d})
}

// takeFault returns the first fault for endpoint at this stage, counting
// its use.
func (s *Server) takeFault(endpoint string, after bool) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.AfterHandling != after || (f.Endpoint != "" && f.Endpoint != endpoint) {
			continue
		}
		c := *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = slices.Delete(s.faults, i, i+1)
			}
		}
		return &c
	}
	return nil
}

// answer is a response being built.
type answer struct {
	status int
	header http.Header
	body   []byte
	close  bool
	delay  time.Duration
}

func newAnswer() *answer { return &answer{header: http.Header{}} }

func (a *answer) json(status int, v any) *answer {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	a.status, a.body = status, b
	a.header.Set("Content-Type", "application/json")
	return a
}

// ServeHTTP answers one request like Rocket.Chat.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := s.handle(r)
	if a.delay > 0 {
		t := time.NewTimer(a.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	if a.close {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	for k, vs := range a.header {
		w.Header()[k] = vs
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

// endpointOf names the endpoint of a path.
func endpointOf(path string) string {
	if rest, ok := strings.CutPrefix(path, "/api/v1/"); ok && !strings.Contains(rest, "/") {
		return rest
	}
	if strings.HasPrefix(path, "/hooks/") {
		return "webhook"
	}
	return path
}

func (s *Server) handle(r *http.Request) *answer {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	ep := endpointOf(r.URL.Path)
	a := s.answerFor(r, ep, body)
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Endpoint: ep, Path: r.URL.Path, Status: a.status, Header: a.header.Clone(), At: time.Now(), Body: body})
	s.mu.Unlock()
	return a
}

func (s *Server) answerFor(r *http.Request, ep string, body []byte) *answer {
	if f := s.takeFault(ep, false); f != nil {
		if f.Delay > 0 {
			// Slow before handling: a client that gives up meanwhile
			// leaves nothing behind.
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				a := newAnswer()
				a.status = 499 // client closed the request, as nginx logs it
				return a
			}
			f.Delay = 0
		}
		if a := faultAnswer(f, nil); a != nil {
			return a
		}
	}
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		a := newAnswer()
		a.status, a.body = http.StatusServiceUnavailable, []byte("<html><body><h1>503 Service Unavailable</h1></body></html>")
		a.header.Set("Content-Type", "text/html")
		return a
	}
	a := s.route(r, ep, body)
	if f := s.takeFault(ep, true); f != nil {
		if fa := faultAnswer(f, a); fa != nil {
			return fa
		}
	}
	return a
}

// faultAnswer applies f to the real answer real (nil before handling).
func faultAnswer(f *Fault, real *answer) *answer {
	if f.CloseConnection {
		return &answer{close: true, delay: f.Delay}
	}
	if f.Status == 0 {
		if real == nil {
			// Only a delay, already waited: handle for real.
			return nil
		}
		real.delay = f.Delay
		return real
	}
	a := newAnswer()
	a.status, a.body, a.delay = f.Status, []byte(f.Body), f.Delay
	for k, vs := range f.Header {
		a.header[k] = vs
	}
	if a.header.Get("Content-Type") == "" {
		a.header.Set("Content-Type", "application/json")
	}
	return a
}

// route dispatches a request to its endpoint, after authentication and the
// rate limiter.
func (s *Server) route(r *http.Request, ep string, body []byte) *answer {
	if ep == "webhook" {
		return s.webhook(r, body)
	}
	type endpoint struct {
		method string
		fn     func(*http.Request, []byte, *answer) *answer
	}
	eps := map[string]endpoint{
		"chat.postMessage": {http.MethodPost, s.postMessage},
		"chat.sendMessage": {http.MethodPost, s.sendMessage},
		"chat.update":      {http.MethodPost, s.update},
		"chat.getMessage":  {http.MethodGet, s.getMessage},
		"rooms.info":       {http.MethodGet, s.roomsInfo},
	}
	e, ok := eps[ep]
	if !ok || r.Method != e.method {
		return newAnswer().json(http.StatusNotFound, map[string]any{"success": false, "error": "Resource not found"})
	}
	if r.Header.Get("X-User-Id") != s.set.userID || r.Header.Get("X-Auth-Token") != s.set.token || s.set.userID == "" {
		return newAnswer().json(http.StatusUnauthorized, map[string]any{
			"success": false, "error": "You must be logged in to do this.",
			"status": "error", "message": "You must be logged in to do this.",
		})
	}
	a := newAnswer()
	if !s.set.bot {
		if lim := s.limit(r.Method+" "+r.URL.Path, a); lim != nil {
			return lim
		}
	}
	return e.fn(r, body, a)
}

// limiter mirrors Meteor's RateLimiter rule: a window that starts at the
// first request after the previous one expired, counting every request.
type limiter struct {
	start time.Time
	count int
}

// limit counts one request to route and sets the X-RateLimit-* headers on
// a; it returns the 429 answer when the window is full.
func (s *Server) limit(route string, a *answer) *answer {
	n, per := s.set.rateLimit, s.set.ratePeriod
	if n <= 0 || per <= 0 {
		return nil
	}
	now := time.Now()
	s.mu.Lock()
	l, ok := s.limiters[route]
	if !ok || now.Sub(l.start) >= per {
		l = &limiter{start: now}
		s.limiters[route] = l
	}
	l.count++
	count, reset := l.count, l.start.Add(per)
	s.mu.Unlock()
	// Epoch milliseconds, rounded up so a client that waits until then is
	// past the window.
	resetMS := int64(math.Ceil(float64(reset.UnixNano()) / 1e6))
	a.header.Set("X-RateLimit-Limit", strconv.Itoa(n))
	a.header.Set("X-RateLimit-Remaining", strconv.Itoa(max(n-count, 0)))
	a.header.Set("X-RateLimit-Reset", strconv.FormatInt(resetMS, 10))
	if count <= n {
		return nil
	}
	secs := int(math.Ceil(reset.Sub(now).Seconds()))
	msg := fmt.Sprintf("Error, too many requests. Please slow down. You must wait %d seconds before trying this endpoint again. [error-too-many-requests]", secs)
	return a.json(http.StatusTooManyRequests, map[string]any{"success": false, "error": msg})
}

// failure is Rocket.Chat's 400 for a Meteor error: "reason [type]".
func failure(a *answer, errType, reason string) *answer {
	body := map[string]any{"success": false, "error": reason}
	if errType != "" {
		body["error"] = reason + " [" + errType + "]"
		body["errorType"] = errType
	}
	return a.json(http.StatusBadRequest, body)
}

// invalidParams is the 400 of a request that fails the endpoint's schema.
func invalidParams(a *answer, problems ...string) *answer {
	return failure(a, "invalid-params", strings.Join(problems, "\n "))
}

// object decodes body as a JSON object and checks its keys against the
// schema's properties (additionalProperties: false).
func object(body []byte, allowed ...string) (map[string]json.RawMessage, []string) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, []string{"must be object"}
	}
	var problems []string
	for k := range m {
		if !slices.Contains(allowed, k) {
			problems = append(problems, "must NOT have additional properties")
			break
		}
	}
	return m, problems
}

// str reads an optional string property; null counts as absent.
func str(m map[string]json.RawMessage, key string, problems *[]string) (string, bool) {
	raw, ok := m[key]
	if !ok || string(raw) == "null" {
		return "", false
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		*problems = append(*problems, "must be string")
		return "", false
	}
	return v, true
}

func attachments(m map[string]json.RawMessage, problems *[]string) []Attachment {
	raw, ok := m["attachments"]
	if !ok || string(raw) == "null" {
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		*problems = append(*problems, "must be array")
		return nil
	}
	var out []Attachment
	for _, it := range items {
		var a Attachment
		if err := json.Unmarshal(it, &a); err != nil {
			*problems = append(*problems, "must be object")
			return nil
		}
		a.Raw = slices.Clone(it)
		out = append(out, a)
	}
	return out
}

func utf16Len(s string) int { return len(utf16.Encode([]rune(s))) }

// tooLong reports whether the text or an attachment's text exceeds
// Message_MaxAllowedSize.
func (s *Server) tooLong(text string, atts []Attachment) bool {
	if utf16Len(text) > s.set.maxSize {
		return true
	}
	for _, a := range atts {
		if utf16Len(a.Text) > s.set.maxSize {
			return true
		}
	}
	return false
}

// store saves a new message, resolving its thread like Rocket.Chat: a reply
// to a reply joins the first parent's thread, in the parent's room.
func (s *Server) store(m *Message) (*Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.ThreadID != "" {
		if p, ok := s.msgs[m.ThreadID]; ok {
			if p.ThreadID != "" {
				m.ThreadID = p.ThreadID
			}
			m.RoomID = p.RoomID
		}
	}
	rm, ok := s.rooms[m.RoomID]
	if !ok {
		return nil, errInvalidRoom
	}
	if m.ID == "" {
		m.ID = s.newID("M")
	}
	if _, dup := s.msgs[m.ID]; dup {
		return nil, &duplicateError{id: m.ID}
	}
	m.RoomName = rm.name
	m.Created = time.Now()
	s.msgs[m.ID] = m
	s.order = append(s.order, m.ID)
	return m, nil
}

var errInvalidRoom = errors.New("Invalid room")

// duplicateError is MongoDB's answer to a second insert with the same _id,
// which Rocket.Chat passes on as the text of a 400.
type duplicateError struct{ id string }

func (e *duplicateError) Error() string {
	return fmt.Sprintf(`E11000 duplicate key error collection: rocketchat.rocketchat_message index: _id_ dup key: { _id: "%s" }`, e.id)
}

// newID returns a fresh id; callers hold s.mu (or own s exclusively).
func (s *Server) newID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%016d", prefix, s.seq)
}

// wire is a message as the REST API returns it (IMessage).
func (s *Server) wire(m *Message) map[string]any {
	out := map[string]any{
		"_id": m.ID, "rid": m.RoomID, "msg": m.Text,
		"ts":         m.Created.UTC().Format("2006-01-02T15:04:05.000Z"),
		"_updatedAt": m.Created.UTC().Format("2006-01-02T15:04:05.000Z"),
		"u":          map[string]any{"_id": s.set.userID, "username": s.set.username, "name": s.set.username},
		"groupable":  false,
	}
	if m.ThreadID != "" {
		out["tmid"] = m.ThreadID
	}
	if len(m.Attachments) > 0 {
		atts := make([]json.RawMessage, len(m.Attachments))
		for i, a := range m.Attachments {
			atts[i] = a.Raw
		}
		out["attachments"] = atts
	}
	for k, v := range map[string]string{"alias": m.Alias, "emoji": m.Emoji, "avatar": m.Avatar} {
		if v != "" {
			out[k] = v
		}
	}
	if !m.EditedAt.IsZero() {
		out["editedAt"] = m.EditedAt.UTC().Format("2006-01-02T15:04:05.000Z")
		out["editedBy"] = map[string]any{"_id": s.set.userID, "username": s.set.username}
	}
	return out
}

// sendMessage is POST /api/v1/chat.sendMessage: the client may choose _id.
func (s *Server) sendMessage(r *http.Request, body []byte, a *answer) *answer {
	top, problems := object(body, "message", "previewUrls")
	if len(problems) > 0 {
		return invalidParams(a, problems...)
	}
	rawMsg, ok := top["message"]
	if !ok {
		return invalidParams(a, "must have required property 'message'")
	}
	// Stricter than Rocket.Chat, which stores unknown message keys: a
	// client must not rely on them.
	msg, problems := object(rawMsg, "_id", "rid", "tmid", "msg", "alias", "emoji", "tshow", "avatar", "attachments", "blocks", "customFields")
	if len(problems) > 0 {
		return invalidParams(a, problems...)
	}
	m := &Message{Via: "chat.sendMessage"}
	m.ID, _ = str(msg, "_id", &problems)
	m.RoomID, _ = str(msg, "rid", &problems)
	m.ThreadID, _ = str(msg, "tmid", &problems)
	m.Text, _ = str(msg, "msg", &problems)
	m.Alias, _ = str(msg, "alias", &problems)
	m.Emoji, _ = str(msg, "emoji", &problems)
	m.Avatar, _ = str(msg, "avatar", &problems)
	m.Attachments = attachments(msg, &problems)
	if len(problems) > 0 {
		return invalidParams(a, problems...)
	}
	if raw, ok := msg["tshow"]; ok && string(raw) == "true" && m.ThreadID == "" {
		return failure(a, "invalid-params", "tshow provided but missing tmid")
	}
	if m.ThreadID != "" && !s.set.threads {
		return failure(a, "error-not-allowed", "not-allowed")
	}
	if utf16Len(m.Text) > s.set.maxSize {
		return failure(a, "error-message-size-exceeded", "Message size exceeds Message_MaxAllowedSize")
	}
	if m.RoomID == "" && m.ThreadID == "" {
		return failure(a, "", "The 'rid' property on the message object is missing.")
	}
	stored, err := s.store(m)
	var dup *duplicateError
	switch {
	case errors.As(err, &dup):
		return failure(a, "", dup.Error())
	case err != nil:
		return failure(a, "error-invalid-room", "Invalid room")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return a.json(http.StatusOK, map[string]any{"message": s.wire(stored), "success": true})
}

// postMessage is POST /api/v1/chat.postMessage: roomId xor channel, tmid
// only with roomId.
func (s *Server) postMessage(r *http.Request, body []byte, a *answer) *answer {
	common := []string{"text", "alias", "emoji", "avatar", "attachments", "customFields", "parseUrls"}
	byID, pID := object(body, append([]string{"roomId", "tmid"}, common...)...)
	_, pChan := object(body, append([]string{"channel"}, common...)...)
	if byID == nil {
		return invalidParams(a, "must be object")
	}
	_, hasID := byID["roomId"]
	_, hasChan := byID["channel"]
	okID := hasID && len(pID) == 0
	okChan := hasChan && len(pChan) == 0
	if okID == okChan {
		var problems []string
		if !hasID {
			problems = append(problems, "must have required property 'roomId'")
		} else if len(pID) > 0 {
			problems = append(problems, pID...)
		}
		if !hasChan {
			problems = append(problems, "must have required property 'channel'")
		} else if len(pChan) > 0 {
			problems = append(problems, pChan...)
		}
		problems = append(problems, "must match exactly one schema in oneOf")
		return invalidParams(a, problems...)
	}
	var problems []string
	m := &Message{Via: "chat.postMessage"}
	m.Text, _ = str(byID, "text", &problems)
	m.Alias, _ = str(byID, "alias", &problems)
	m.Emoji, _ = str(byID, "emoji", &problems)
	m.Avatar, _ = str(byID, "avatar", &problems)
	m.ThreadID, _ = str(byID, "tmid", &problems)
	m.Attachments = attachments(byID, &problems)
	target, _ := str(byID, "roomId", &problems)
	if okChan {
		target, _ = str(byID, "channel", &problems)
	}
	if len(problems) > 0 {
		return invalidParams(a, problems...)
	}
	if s.tooLong(m.Text, m.Attachments) {
		return failure(a, "", "error-message-size-exceeded")
	}
	if m.ThreadID != "" && !s.set.threads {
		return failure(a, "error-not-allowed", "not-allowed")
	}
	m.RoomID = s.resolve(target)
	if m.RoomID == "" {
		return failure(a, "invalid-channel", "invalid-channel")
	}
	stored, err := s.store(m)
	if err != nil {
		return failure(a, "invalid-channel", "invalid-channel")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return a.json(http.StatusOK, map[string]any{
		"ts": stored.Created.UnixMilli(), "channel": target, "message": s.wire(stored), "success": true,
	})
}

// resolve turns "#name", "name" or a room id into a room id ("" if none).
func (s *Server) resolve(target string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rooms[target]; ok {
		return target
	}
	return s.roomByName[strings.TrimPrefix(target, "#")]
}

// update is POST /api/v1/chat.update: it edits the text, nothing else.
func (s *Server) update(r *http.Request, body []byte, a *answer) *answer {
	m, problems := object(body, "roomId", "msgId", "text", "previewUrls", "customFields")
	if len(problems) > 0 {
		return invalidParams(a, problems...)
	}
	var req [3]string
	for i, k := range []string{"roomId", "msgId", "text"} {
		v, ok := str(m, k, &problems)
		if !ok && len(problems) == 0 {
			problems = append(problems, "must have required property '"+k+"'")
		}
		req[i] = v
	}
	if len(problems) > 0 {
		return invalidParams(a, problems...)
	}
	roomID, msgID, text := req[0], req[1], req[2]
	s.mu.Lock()
	defer s.mu.Unlock()
	msg, ok := s.msgs[msgID]
	switch {
	case !ok:
		return failure(a, "", fmt.Sprintf("No message found with the id of %q.", msgID))
	case msg.RoomID != roomID:
		return failure(a, "", "The room id provided does not match where the message is from.")
	case !s.set.editing:
		return failure(a, "error-action-not-allowed", "Message editing not allowed")
	case utf16Len(text) > s.set.maxSize:
		return failure(a, "error-message-size-exceeded", "Message size exceeds Message_MaxAllowedSize")
	}
	msg.Edits = append(msg.Edits, msg.Text)
	msg.Text = text
	msg.EditedAt = time.Now()
	return a.json(http.StatusOK, map[string]any{"message": s.wire(msg), "success": true})
}

// getMessage is GET /api/v1/chat.getMessage?msgId=.
func (s *Server) getMessage(r *http.Request, _ []byte, a *answer) *answer {
	q := r.URL.Query()
	for k := range q {
		if k != "msgId" {
			return invalidParams(a, "must NOT have additional properties")
		}
	}
	id := q.Get("msgId")
	if id == "" {
		return invalidParams(a, "must have required property 'msgId'")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.msgs[id]
	if !ok {
		// API.v1.failure() with nothing to say.
		return a.json(http.StatusBadRequest, map[string]any{"success": false})
	}
	return a.json(http.StatusOK, map[string]any{"message": s.wire(m), "success": true})
}

// roomsInfo is GET /api/v1/rooms.info?roomName= or ?roomId=.
func (s *Server) roomsInfo(r *http.Request, _ []byte, a *answer) *answer {
	q := r.URL.Query()
	if len(q) != 1 || (q.Get("roomId") == "" && q.Get("roomName") == "") {
		return invalidParams(a, "must match exactly one schema in oneOf")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := q.Get("roomId")
	if name := q.Get("roomName"); name != "" {
		id = s.roomByName[name]
	}
	rm, ok := s.rooms[id]
	if !ok {
		return failure(a, "error-room-not-found", `The required "roomId" or "roomName" param provided does not match any channel`)
	}
	return a.json(http.StatusOK, map[string]any{
		"room":    map[string]any{"_id": rm.id, "name": rm.name, "fname": rm.name, "t": "c"},
		"success": true,
	})
}

// webhook is POST /hooks/<id>/<token>.
func (s *Server) webhook(r *http.Request, body []byte) *answer {
	a := newAnswer()
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/hooks/"), "/"), "/")
	s.mu.Lock()
	var h *hook
	if len(parts) == 2 {
		if hh, ok := s.hooks[parts[0]]; ok && hh.token == parts[1] {
			h = hh
		}
	}
	s.mu.Unlock()
	if h == nil || r.Method != http.MethodPost {
		// Rocket.Chat versions differ here (some fail with a 500); the fake
		// answers 401, which a client must treat as a configuration error.
		return a.json(http.StatusUnauthorized, map[string]any{"success": false, "error": "Invalid integration id or token provided."})
	}
	if lim := s.limit("POST "+r.URL.Path, a); lim != nil {
		return lim
	}
	var m map[string]json.RawMessage
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			return a.json(http.StatusBadRequest, map[string]any{"success": false, "error": err.Error()})
		}
	}
	if len(m) == 0 {
		return a.json(http.StatusOK, map[string]any{"success": true})
	}
	var problems []string
	msg := &Message{Via: "webhook", HookID: h.id, RoomID: h.roomID}
	msg.Text, _ = str(m, "text", &problems)
	msg.Alias, _ = str(m, "alias", &problems)
	msg.Emoji, _ = str(m, "emoji", &problems)
	msg.Avatar, _ = str(m, "avatar", &problems)
	msg.ThreadID, _ = str(m, "tmid", &problems)
	msg.Attachments = attachments(m, &problems)
	ch, hasCh := str(m, "channel", &problems)
	rid, hasRID := str(m, "roomId", &problems)
	if len(problems) > 0 {
		return a.json(http.StatusBadRequest, map[string]any{"success": false, "error": strings.Join(problems, "; ")})
	}
	if hasCh || hasRID {
		if !h.override {
			return a.json(http.StatusBadRequest, map[string]any{"success": false, "error": "overriding destination channel is disabled for this integration"})
		}
		target := ch
		if hasRID {
			target = rid
		}
		if msg.RoomID = s.resolve(target); msg.RoomID == "" {
			return a.json(http.StatusBadRequest, map[string]any{"success": false, "error": "invalid-channel"})
		}
	}
	if s.tooLong(msg.Text, msg.Attachments) {
		return a.json(http.StatusBadRequest, map[string]any{"success": false, "error": "error-message-size-exceeded"})
	}
	if _, err := s.store(msg); err != nil {
		return a.json(http.StatusBadRequest, map[string]any{"success": false, "error": "invalid-channel"})
	}
	return a.json(http.StatusOK, map[string]any{"success": true})
}

// Transport returns a RoundTripper that hands requests to the fake in
// process, whatever their host: no network I/O, so it works inside
// testing/synctest bubbles. A closed-connection fault becomes an error, and
// a request's context cuts a slow answer short.
func (s *Server) Transport() http.RoundTripper { return transport{s} }

// Client returns an *http.Client using Transport.
func (s *Server) Client() *http.Client { return &http.Client{Transport: s.Transport()} }

type transport struct{ s *Server }

// errConnClosed is what a closed-connection fault looks like in process.
var errConnClosed = errors.New("rocketchattest: connection closed by the server (injected)")

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	// Like any RoundTripper, read and close the request body ourselves.
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.RequestURI = req.URL.RequestURI()
	type result struct{ a *answer }
	done := make(chan result, 1)
	go func() { done <- result{t.s.handle(r)} }()
	var a *answer
	select {
	case res := <-done:
		a = res.a
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	if a.delay > 0 {
		tm := time.NewTimer(a.delay)
		select {
		case <-tm.C:
		case <-req.Context().Done():
			tm.Stop()
			return nil, req.Context().Err()
		}
	}
	if a.close {
		return nil, errConnClosed
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", a.status, http.StatusText(a.status)),
		StatusCode:    a.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        a.header.Clone(),
		Body:          io.NopCloser(bytes.NewReader(a.body)),
		ContentLength: int64(len(a.body)),
		Request:       req,
	}, nil
}
