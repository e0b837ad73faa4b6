// Package mattermosttest is a fake Mattermost server for tests: the parts
// of API v4 and of incoming webhooks that herald's Mattermost sink uses,
// as strict as the real server about what it refuses, with the real
// statuses and AppError bodies, a record of what it accepted, and failures
// on demand.
//
// Sources of its rules: the API reference (developers.mattermost.com,
// "API v4": CreatePost, PatchPost, GetPost, GetPostThread,
// GetPostsForChannel, GetChannelByNameForTeamName) and the server's code
// (mattermost/mattermost, server/channels/app/post.go
// deduplicateCreatePost and pendingPostIDsCacheTTL; model/post.go
// IsValid, PostMessageMaxRunesV2 = 16383, PostPropsMaxRunes = 800000;
// app/webhook.go HandleIncomingWebhook; app/ratelimit.go
// setRateLimitHeaders; model/utils.go AppError).
package mattermosttest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Limits of the real server.
const (
	// MaxPostSize is model.PostMessageMaxRunesV2, the message limit (in
	// runes) the server reports for current database schemas.
	MaxPostSize = 16383
	// MaxPropsRunes is model.PostPropsMaxRunes, the limit on a post's props
	// as JSON.
	MaxPropsRunes = 800000
	// PendingPostIDTTL is pendingPostIDsCacheTTL: how long the server
	// answers a create with a known pending_post_id with the post made.
	PendingPostIDTTL = 30 * time.Second
	// MaxPerPage is the most posts a listing returns in one page.
	MaxPerPage = 200
	// maxBody is the server's limit on a request body
	// (ServiceSettings.MaximumPayloadSizeBytes default, 300 KB).
	maxBody = 300000
)

// Post is a post the server holds.
type Post struct {
	ID            string         `json:"id"`
	CreateAt      int64          `json:"create_at"`
	UpdateAt      int64          `json:"update_at"`
	EditAt        int64          `json:"edit_at"`
	DeleteAt      int64          `json:"delete_at"`
	UserID        string         `json:"user_id"`
	ChannelID     string         `json:"channel_id"`
	RootID        string         `json:"root_id"`
	Message       string         `json:"message"`
	Type          string         `json:"type"`
	Props         map[string]any `json:"props"`
	PendingPostID string         `json:"pending_post_id,omitempty"`
}

// Patch is an accepted PUT /posts/{id}/patch.
type Patch struct {
	PostID  string
	Message *string
	Props   map[string]any
}

// HookPost is an accepted incoming webhook post.
type HookPost struct {
	Key       string
	ChannelID string
	Text      string
	Username  string
	IconURL   string
	IconEmoji string
	Props     map[string]any
	// Splits is how many posts the server made of it: a text longer than
	// MaxPostSize is split over several (SplitWebhookPost in
	// app/webhook.go).
	Splits int
}

// Failure is an answer the server gives instead of its own.
type Failure struct {
	// Match selects the requests it applies to: "METHOD /path-prefix",
	// e.g. "POST /api/v4/posts"; "" matches every request.
	Match  string
	Status int
	Header http.Header
	Body   string
	// Times is how many requests it answers; 0 means one.
	Times int
	// After handles the request first and then answers with the failure,
	// or, with Status 0, closes the connection: an answer lost after the
	// server did the work.
	After bool
	// Delay holds the answer this long (or until the request ends).
	Delay time.Duration
}

// Server is a fake Mattermost server.
type Server struct {
	*httptest.Server
	// Token is the bearer token the API accepts; BotUserID its user.
	Token     string
	BotUserID string

	mu       sync.Mutex
	now      func() time.Time
	teams    map[string]map[string]string // team name -> channel name -> id
	channels map[string]bool
	hooks    map[string]hook
	posts    map[string]*Post
	order    []string // post ids, oldest first
	patches  []Patch
	hookPost []HookPost
	pending  map[string]pendingEntry
	fails    []*Failure
	limit    *rateLimit
	requests []string
	seq      int
}

type hook struct {
	channelID string
	locked    bool
}

type pendingEntry struct {
	postID string
	at     time.Time
}

type rateLimit struct {
	count int
	per   time.Duration
	start time.Time
	used  int
}

// NewServer starts a fake server that accepts token for the bot user
// "herald-bot"; close it with Close.
func NewServer(token string) *Server {
	s := &Server{
		Token: token, BotUserID: "heraldbot00000000000000000",
		now:   time.Now,
		teams: map[string]map[string]string{}, channels: map[string]bool{},
		hooks: map[string]hook{}, posts: map[string]*Post{}, pending: map[string]pendingEntry{},
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// SetClock replaces the server's clock (for the pending_post_id TTL and
// rate limits).
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// AddChannel adds a channel named name to team and returns its id.
func (s *Server) AddChannel(team, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newID()
	if s.teams[team] == nil {
		s.teams[team] = map[string]string{}
	}
	s.teams[team][name] = id
	s.channels[id] = true
	return id
}

// RemoveChannel deletes the channel named name from team, as an admin
// would; its id is no longer accepted.
func (s *Server) RemoveChannel(team, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.teams[team][name]; ok {
		delete(s.teams[team], name)
		delete(s.channels, id)
	}
}

// AddHook adds an incoming webhook with key posting to channelID; a
// locked hook refuses posts to any other channel.
func (s *Server) AddHook(key, channelID string, locked bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks[key] = hook{channelID: channelID, locked: locked}
	return s.URL + "/hooks/" + key
}

// SetRateLimit limits the API to count requests per period, answering
// others with 429 as Mattermost's limiter does; count 0 lifts the limit.
func (s *Server) SetRateLimit(count int, per time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if count <= 0 {
		s.limit = nil
		return
	}
	s.limit = &rateLimit{count: count, per: per, start: s.now()}
}

// Fail makes the server give f's answer to the requests f matches.
func (s *Server) Fail(f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times <= 0 {
		f.Times = 1
	}
	s.fails = append(s.fails, &f)
}

// DeletePost deletes a post, as a user would.
func (s *Server) DeletePost(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.posts[id]; p != nil {
		p.DeleteAt = s.now().UnixMilli()
	}
}

// Posts returns copies of the posts, oldest first.
func (s *Server) Posts() []Post {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Post, 0, len(s.order))
	for _, id := range s.order {
		p := *s.posts[id]
		p.Props = maps.Clone(p.Props)
		out = append(out, p)
	}
	return out
}

// Post returns a copy of the post with id.
func (s *Server) Post(id string) (Post, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.posts[id]
	if !ok {
		return Post{}, false
	}
	c := *p
	c.Props = maps.Clone(p.Props)
	return c, true
}

// Patches returns the accepted patches, in order.
func (s *Server) Patches() []Patch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.patches)
}

// HookPosts returns the accepted webhook posts, in order.
func (s *Server) HookPosts() []HookPost {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hookPost)
}

// Requests returns "METHOD path" of every request received, in order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// newID makes an id shaped like model.NewId: 26 lowercase base32 characters.
func (s *Server) newID() string {
	s.seq++
	return fmt.Sprintf("p%025d", s.seq)
}

// appError writes a model.AppError body.
func appError(w http.ResponseWriter, status int, id, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": id, "message": msg, "detailed_error": "", "request_id": "fakerequestid00000000000000", "status_code": status,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

var (
	rePost      = regexp.MustCompile(`^/api/v4/posts/([^/]+)$`)
	rePatch     = regexp.MustCompile(`^/api/v4/posts/([^/]+)/patch$`)
	reThread    = regexp.MustCompile(`^/api/v4/posts/([^/]+)/thread$`)
	reChanPosts = regexp.MustCompile(`^/api/v4/channels/([^/]+)/posts$`)
	// reID is model.IsValidId: 26 lowercase letters and digits; a URL
	// parameter that is not one is a 400 (web/params.go).
	reID     = regexp.MustCompile(`^[a-z0-9]{26}$`)
	reByName = regexp.MustCompile(`^/api/v4/teams/name/([^/]+)/channels/name/([^/]+)$`)
	reHook   = regexp.MustCompile(`^/hooks/([A-Za-z0-9]+)$`)
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.Path)
	if s.rateLimit(w) {
		s.mu.Unlock()
		http.Error(w, "limit exceeded", http.StatusTooManyRequests)
		return
	}
	f := s.failure(r)
	s.mu.Unlock()
	if f != nil && f.Delay > 0 {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(f.Delay):
		}
	}
	if f != nil && !f.After && f.Status != 0 {
		writeFailure(w, f)
		return
	}
	if f != nil && f.After {
		rec := httptest.NewRecorder()
		s.route(rec, r)
		if f.Status == 0 {
			closeConn(w)
			return
		}
		writeFailure(w, f)
		return
	}
	s.route(w, r)
}

func writeFailure(w http.ResponseWriter, f *Failure) {
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(f.Status)
	_, _ = io.WriteString(w, f.Body)
}

func closeConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("mattermosttest: cannot hijack")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

// failure returns the first failure matching r, using one of its times.
func (s *Server) failure(r *http.Request) *Failure {
	for i, f := range s.fails {
		if f.Match != "" {
			method, prefix, _ := strings.Cut(f.Match, " ")
			if method != r.Method || !strings.HasPrefix(r.URL.Path, prefix) {
				continue
			}
		}
		f.Times--
		if f.Times <= 0 {
			s.fails = slices.Delete(s.fails, i, i+1)
		}
		return f
	}
	return nil
}

// rateLimit applies the limit and sets Mattermost's headers
// (setRateLimitHeaders: X-RateLimit-Limit, -Remaining, -Reset in seconds
// until the reset, and Retry-After in seconds when limited).
func (s *Server) rateLimit(w http.ResponseWriter) bool {
	l := s.limit
	if l == nil {
		return false
	}
	now := s.now()
	if now.Sub(l.start) >= l.per {
		l.start, l.used = now, 0
	}
	reset := l.start.Add(l.per).Sub(now)
	secs := strconv.Itoa(int(math.Ceil(reset.Seconds())))
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(l.count))
	if l.used >= l.count {
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Reset", secs)
		h.Set("Retry-After", secs)
		return true
	}
	l.used++
	h.Set("X-RateLimit-Remaining", strconv.Itoa(l.count-l.used))
	h.Set("X-RateLimit-Reset", secs)
	return false
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if m := reHook.FindStringSubmatch(p); m != nil && r.Method == http.MethodPost {
		s.incomingWebhook(w, r, m[1])
		return
	}
	if !strings.HasPrefix(p, "/api/v4/") {
		http.NotFound(w, r)
		return
	}
	// Every API call needs a session: a bearer token in Authorization
	// (app/session.go; web/handlers.go answers 401 without one).
	if r.Header.Get("Authorization") != "Bearer "+s.Token || s.Token == "" {
		appError(w, http.StatusUnauthorized, "api.context.session_expired.app_error", "Invalid or expired session, please login again.")
		return
	}
	for _, re := range []*regexp.Regexp{rePatch, reThread, rePost, reChanPosts} {
		if m := re.FindStringSubmatch(p); m != nil && !reID.MatchString(m[1]) {
			appError(w, http.StatusBadRequest, "api.context.invalid_url_param.app_error", "Invalid or missing id parameter in request URL.")
			return
		}
	}
	switch {
	case p == "/api/v4/posts" && r.Method == http.MethodPost:
		s.createPost(w, r)
	case rePatch.MatchString(p) && r.Method == http.MethodPut:
		s.patchPost(w, r, rePatch.FindStringSubmatch(p)[1])
	case reThread.MatchString(p) && r.Method == http.MethodGet:
		s.thread(w, reThread.FindStringSubmatch(p)[1])
	case rePost.MatchString(p) && r.Method == http.MethodGet:
		s.getPost(w, rePost.FindStringSubmatch(p)[1])
	case reChanPosts.MatchString(p) && r.Method == http.MethodGet:
		s.channelPosts(w, r, reChanPosts.FindStringSubmatch(p)[1])
	case reByName.MatchString(p) && r.Method == http.MethodGet:
		m := reByName.FindStringSubmatch(p)
		s.channelByName(w, m[1], m[2])
	default:
		appError(w, http.StatusNotFound, "api.context.404.app_error", "Sorry, we could not find the page.")
	}
}

// decode reads a JSON object body, refusing what Mattermost's decoder
// refuses: a body over the payload limit (413), and JSON that is not an
// object (400, api.context.invalid_body_param.app_error).
func decode(w http.ResponseWriter, r *http.Request, param string) (map[string]json.RawMessage, bool) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		appError(w, http.StatusBadRequest, "api.context.invalid_body_param.app_error", "Invalid or missing "+param+" in request body.")
		return nil, false
	}
	if len(b) > maxBody {
		appError(w, http.StatusRequestEntityTooLarge, "api.context.request_body_too_large.app_error", "The request body is too large.")
		return nil, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil || m == nil {
		appError(w, http.StatusBadRequest, "api.context.invalid_body_param.app_error", "Invalid or missing "+param+" in request body.")
		return nil, false
	}
	return m, true
}

// str reads an optional string field; ok is false when it has another type.
func str(m map[string]json.RawMessage, key string) (string, bool) {
	raw, present := m[key]
	if !present || string(raw) == "null" {
		return "", true
	}
	var v string
	return v, json.Unmarshal(raw, &v) == nil
}

// checkProps checks props as model.Post.IsValid and the attachment parser
// do: an object, at most MaxPropsRunes as JSON, attachments an array of
// objects whose fields are an array of objects.
func checkProps(raw json.RawMessage) (map[string]any, string) {
	if len(raw) == 0 || string(raw) == "null" {
		return map[string]any{}, ""
	}
	var props map[string]any
	if json.Unmarshal(raw, &props) != nil {
		return nil, "props must be an object"
	}
	if utf8.RuneCount(raw) > MaxPropsRunes {
		return nil, "props too long"
	}
	if a, ok := props["attachments"]; ok {
		list, ok := a.([]any)
		if !ok {
			return nil, "props.attachments must be an array"
		}
		for _, item := range list {
			att, ok := item.(map[string]any)
			if !ok {
				return nil, "an attachment must be an object"
			}
			if f, ok := att["fields"]; ok {
				fl, ok := f.([]any)
				if !ok {
					return nil, "attachment fields must be an array"
				}
				for _, fi := range fl {
					if _, ok := fi.(map[string]any); !ok {
						return nil, "an attachment field must be an object"
					}
				}
			}
			for _, k := range []string{"text", "pretext", "title", "title_link", "color", "fallback", "footer"} {
				if v, ok := att[k]; ok {
					if _, ok := v.(string); !ok {
						return nil, "attachment " + k + " must be a string"
					}
				}
			}
		}
	}
	return props, ""
}

// createPost is POST /api/v4/posts (api4/post.go createPost, app/post.go
// CreatePostAsUser): the bot must be in the channel, root_id must be a
// root post of the same channel, the message at most MaxPostSize runes,
// and a pending_post_id seen within PendingPostIDTTL returns the post
// already made, 201 like a new one.
func (s *Server) createPost(w http.ResponseWriter, r *http.Request) {
	m, ok := decode(w, r, "post")
	if !ok {
		return
	}
	chID, ok1 := str(m, "channel_id")
	msg, ok2 := str(m, "message")
	rootID, ok3 := str(m, "root_id")
	pending, ok4 := str(m, "pending_post_id")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		appError(w, http.StatusBadRequest, "api.context.invalid_body_param.app_error", "Invalid or missing post in request body.")
		return
	}
	props, perr := checkProps(m["props"])
	if perr != "" {
		appError(w, http.StatusBadRequest, "model.post.is_valid.props.app_error", "Invalid props: "+perr+".")
		return
	}
	// Props only integrations may set (model.ContainsIntegrationsReservedProps).
	for _, k := range []string{"from_webhook", "override_username", "webhook_display_name", "override_icon_url", "override_icon_emoji"} {
		if _, ok := props[k]; ok {
			appError(w, http.StatusBadRequest, "api.context.invalid_param.app_error", "Invalid props parameter: "+k+" is reserved for integrations.")
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if chID == "" {
		appError(w, http.StatusBadRequest, "api.context.invalid_param.app_error", "Invalid channel_id parameter.")
		return
	}
	if !s.channels[chID] {
		// The permission check comes first: a channel the bot is not in,
		// or that does not exist, is a 403.
		appError(w, http.StatusForbidden, "api.context.permissions.app_error", "You do not have the appropriate permissions.")
		return
	}
	if n := utf8.RuneCountInString(msg); n > MaxPostSize {
		appError(w, http.StatusBadRequest, "model.post.is_valid.msg.app_error", fmt.Sprintf("Invalid Message: %d runes, the limit is %d.", n, MaxPostSize))
		return
	}
	if msg == "" && len(props) == 0 {
		appError(w, http.StatusBadRequest, "api.post.create_post.message.app_error", "A post must have a message or attachments.")
		return
	}
	if rootID != "" {
		root := s.posts[rootID]
		if root == nil || root.DeleteAt != 0 || root.ChannelID != chID || root.RootID != "" {
			appError(w, http.StatusBadRequest, "api.post.create_post.root_id.app_error", "Invalid RootId parameter.")
			return
		}
	}
	now := s.now()
	if pending != "" {
		if e, seen := s.pending[pending]; seen && now.Sub(e.at) < PendingPostIDTTL {
			writeJSON(w, http.StatusCreated, s.posts[e.postID])
			return
		}
	}
	p := &Post{
		ID: s.newID(), CreateAt: now.UnixMilli(), UpdateAt: now.UnixMilli(), UserID: s.BotUserID,
		ChannelID: chID, RootID: rootID, Message: msg, Props: props,
	}
	if _, ok := props["attachments"]; ok {
		p.Type = "slack_attachment"
	}
	s.posts[p.ID] = p
	s.order = append(s.order, p.ID)
	if pending != "" {
		s.pending[pending] = pendingEntry{postID: p.ID, at: now}
	}
	out := *p
	out.PendingPostID = pending
	writeJSON(w, http.StatusCreated, out)
}

// getPost is GET /api/v4/posts/{id}: 404 for a missing or deleted post.
func (s *Server) getPost(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.posts[id]
	if p == nil || p.DeleteAt != 0 || !s.channels[p.ChannelID] {
		appError(w, http.StatusNotFound, "app.post.get.app_error", "Unable to get the post.")
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// patchPost is PUT /api/v4/posts/{id}/patch (app/post.go PatchPost):
// message and props, when present, replace the post's; only the post's
// author may patch it without edit_others_posts.
func (s *Server) patchPost(w http.ResponseWriter, r *http.Request, id string) {
	m, ok := decode(w, r, "patch")
	if !ok {
		return
	}
	var msg *string
	if raw, present := m["message"]; present && string(raw) != "null" {
		var v string
		if json.Unmarshal(raw, &v) != nil {
			appError(w, http.StatusBadRequest, "api.context.invalid_body_param.app_error", "Invalid or missing patch in request body.")
			return
		}
		msg = &v
	}
	var props map[string]any
	if raw, present := m["props"]; present && string(raw) != "null" {
		var perr string
		if props, perr = checkProps(raw); perr != "" {
			appError(w, http.StatusBadRequest, "model.post.is_valid.props.app_error", "Invalid props: "+perr+".")
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.posts[id]
	if p == nil || p.DeleteAt != 0 {
		appError(w, http.StatusNotFound, "app.post.get.app_error", "Unable to get the post.")
		return
	}
	if p.UserID != s.BotUserID {
		appError(w, http.StatusForbidden, "api.context.permissions.app_error", "You do not have the appropriate permissions.")
		return
	}
	if msg != nil && utf8.RuneCountInString(*msg) > MaxPostSize {
		appError(w, http.StatusBadRequest, "model.post.is_valid.msg.app_error", "Invalid Message.")
		return
	}
	if msg != nil {
		p.Message = *msg
	}
	if props != nil {
		p.Props = props
	}
	now := s.now().UnixMilli()
	p.EditAt, p.UpdateAt = now, now
	s.patches = append(s.patches, Patch{PostID: id, Message: msg, Props: maps.Clone(props)})
	writeJSON(w, http.StatusOK, p)
}

// postList writes a model.PostList of ps, newest first.
func postList(w http.ResponseWriter, ps []*Post) {
	out := map[string]any{"order": []string{}, "posts": map[string]*Post{}, "next_post_id": "", "prev_post_id": ""}
	order := []string{}
	posts := map[string]*Post{}
	for i := len(ps) - 1; i >= 0; i-- {
		order = append(order, ps[i].ID)
		posts[ps[i].ID] = ps[i]
	}
	out["order"], out["posts"] = order, posts
	writeJSON(w, http.StatusOK, out)
}

// thread is GET /api/v4/posts/{id}/thread: the root and its replies.
func (s *Server) thread(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	root := s.posts[id]
	if root == nil || root.DeleteAt != 0 {
		appError(w, http.StatusNotFound, "app.post.get.app_error", "Unable to get the post.")
		return
	}
	var ps []*Post
	for _, pid := range s.order {
		p := s.posts[pid]
		if (p.ID == id || p.RootID == id) && p.DeleteAt == 0 {
			ps = append(ps, p)
		}
	}
	postList(w, ps)
}

// channelPosts is GET /api/v4/channels/{id}/posts?page&per_page: the
// channel's live posts, newest first, per_page at most MaxPerPage.
func (s *Server) channelPosts(w http.ResponseWriter, r *http.Request, chID string) {
	q := r.URL.Query()
	page, err1 := strconv.Atoi(q.Get("page"))
	per, err2 := strconv.Atoi(q.Get("per_page"))
	if q.Get("page") == "" {
		page, err1 = 0, nil
	}
	if q.Get("per_page") == "" {
		per, err2 = 60, nil
	}
	if err1 != nil || err2 != nil || page < 0 || per < 0 {
		appError(w, http.StatusBadRequest, "api.context.invalid_url_param.app_error", "Invalid or missing page or per_page parameter.")
		return
	}
	per = min(per, MaxPerPage)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.channels[chID] {
		appError(w, http.StatusForbidden, "api.context.permissions.app_error", "You do not have the appropriate permissions.")
		return
	}
	var newest []*Post
	for i := len(s.order) - 1; i >= 0; i-- {
		p := s.posts[s.order[i]]
		if p.ChannelID == chID && p.DeleteAt == 0 {
			newest = append(newest, p)
		}
	}
	lo := min(page*per, len(newest))
	hi := min(lo+per, len(newest))
	pg := slices.Clone(newest[lo:hi])
	slices.Reverse(pg)
	postList(w, pg)
}

// channelByName is GET /api/v4/teams/name/{team}/channels/name/{channel}.
func (s *Server) channelByName(w http.ResponseWriter, team, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.teams[team]
	if !ok {
		appError(w, http.StatusNotFound, "app.team.get_by_name.missing.app_error", "Unable to find the existing team.")
		return
	}
	id, ok := t[name]
	if !ok {
		appError(w, http.StatusNotFound, "app.channel.get_by_name.missing.app_error", "Channel does not exist.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "name": name, "display_name": name, "type": "O", "delete_at": 0})
}

// incomingWebhook is POST /hooks/{key} (app/webhook.go
// HandleIncomingWebhook): a text or attachments is required; an unknown
// key is a 400; a channel override is looked up by name in the hook's
// team (404 when missing) and refused with 403 by a locked hook. It
// answers 200 "ok" as text/plain.
func (s *Server) incomingWebhook(w http.ResponseWriter, r *http.Request, key string) {
	m, ok := decode(w, r, "payload")
	if !ok {
		return
	}
	text, ok1 := str(m, "text")
	ch, ok2 := str(m, "channel")
	user, ok3 := str(m, "username")
	icon, ok4 := str(m, "icon_url")
	emoji, ok5 := str(m, "icon_emoji")
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		appError(w, http.StatusBadRequest, "web.incoming_webhook.parse.app_error", "Unable to parse incoming data.")
		return
	}
	props := map[string]any{}
	if raw, present := m["attachments"]; present && string(raw) != "null" {
		var perr string
		if props, perr = checkProps(json.RawMessage(`{"attachments":` + string(raw) + `}`)); perr != "" {
			appError(w, http.StatusBadRequest, "web.incoming_webhook.parse.app_error", "Unable to parse incoming data: "+perr+".")
			return
		}
	}
	if text == "" && len(props) == 0 {
		appError(w, http.StatusBadRequest, "web.incoming_webhook.text.app_error", "No text specified.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.hooks[key]
	if !ok {
		appError(w, http.StatusBadRequest, "web.incoming_webhook.invalid.app_error", "Invalid webhook.")
		return
	}
	chID := h.channelID
	if ch != "" {
		if strings.HasPrefix(ch, "@") {
			appError(w, http.StatusBadRequest, "web.incoming_webhook.user.app_error", "Couldn't find the user.")
			return
		}
		name := strings.TrimPrefix(ch, "#")
		chID = ""
		for _, t := range s.teams {
			if id, ok := t[name]; ok {
				chID = id
			}
		}
		if chID == "" {
			appError(w, http.StatusNotFound, "web.incoming_webhook.channel.app_error", "Couldn't find the channel.")
			return
		}
		if h.locked && chID != h.channelID {
			appError(w, http.StatusForbidden, "web.incoming_webhook.channel_locked.app_error", "This webhook is not permitted to post to the requested channel.")
			return
		}
	}
	if raw, present := m["props"]; present && string(raw) != "null" {
		var extra map[string]any
		if json.Unmarshal(raw, &extra) != nil {
			appError(w, http.StatusBadRequest, "web.incoming_webhook.parse.app_error", "Unable to parse incoming data: props must be an object.")
			return
		}
		for k, v := range extra {
			switch k {
			case "attachments", "from_webhook", "override_username", "override_icon_url", "override_icon_emoji":
				// Set by the server from the request's own fields.
			default:
				props[k] = v
			}
		}
	}
	splits := max(1, (utf8.RuneCountInString(text)+MaxPostSize-1)/MaxPostSize)
	s.hookPost = append(s.hookPost, HookPost{Key: key, ChannelID: chID, Text: text, Username: user, IconURL: icon, IconEmoji: emoji, Props: props, Splits: splits})
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "ok")
}
