package slack

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

// Channel name resolution. A retry after a lost answer searches the
// channel's history for the message the earlier attempt may have posted,
// and conversations.history takes a channel id. Routes usually name
// channels ("#alerts"), and the sink learns a name's id from Slack's
// answer to a post: after a restart, or when the first post to a channel
// lost its answer, it has not. The resolver asks conversations.list
// (scopes channels:read and groups:read) instead.
const (
	// nameTTL is how long a name's id from conversations.list is trusted:
	// a renamed channel is searched under its old id that long at most.
	nameTTL = 10 * time.Minute
	// missTTL is how long a name the listing did not have is not asked
	// for again, so that retries to a channel the bot cannot see do not
	// page through the workspace each time.
	missTTL = time.Minute
	// listPageSize is Slack's advice for paged methods; listMaxPages
	// bounds one listing (listPageSize × listMaxPages channels).
	listPageSize = 200
	listMaxPages = 50
)

// listTypes are the conversations conversations.list returns to the
// resolver: channels:read lists the public ones, groups:read the private
// ones the bot is in.
var listTypes = []string{"public_channel", "private_channel"}

// lister returns one page of conversations.list of types from cursor, and
// the cursor of the next page ("" after the last).
type lister func(ctx context.Context, types []string, cursor string) ([]slack.Channel, string, error)

// resolver maps channel names to ids with conversations.list, caching what
// it learns. It is safe for concurrent use; one listing runs at a time.
type resolver struct {
	list lister
	// turn is held by the goroutine listing.
	turn chan struct{}

	mu   sync.Mutex
	ids  map[string]learnt    // channel name -> id
	miss map[string]time.Time // channel name -> when a listing lacked it
	// refused is Slack's refusal to list (a missing scope), returned
	// without asking again until refusedUntil.
	refused      error
	refusedUntil time.Time
	// publicOnlyUntil is set when the token may list public channels
	// only (channels:read without groups:read): until then only those are
	// asked for.
	publicOnlyUntil time.Time
}

type learnt struct {
	id string
	at time.Time
}

func newResolver(list lister) *resolver {
	return &resolver{
		list: list,
		turn: make(chan struct{}, 1),
		ids:  map[string]learnt{},
		miss: map[string]time.Time{},
	}
}

// nameKey returns the name conversations.list would show for channel
// ("#Alerts" → "alerts"), or "" when channel is not a channel name (a
// user, or an id).
func nameKey(channel string) string {
	name := strings.ToLower(strings.TrimPrefix(channel, "#"))
	if name == "" || strings.HasPrefix(channel, "@") || channelIDLike.MatchString(channel) || strings.ContainsAny(name, " #@") {
		return ""
	}
	return name
}

// cached returns what the cache says of key: the id, or that the latest
// listing lacked it (known with id ""), or that Slack refuses to list (the
// error), or nothing (known false).
func (r *resolver) cached(key string) (id string, known bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if e, ok := r.ids[key]; ok && now.Sub(e.at) < nameTTL {
		return e.id, true, nil
	}
	if at, ok := r.miss[key]; ok && now.Sub(at) < missTTL {
		return "", true, nil
	}
	if r.refused != nil && now.Before(r.refusedUntil) {
		return "", true, r.refused
	}
	return "", false, nil
}

// resolve returns the id of the public or private channel named channel,
// or "" when channel is not a name or no channel the bot can see has it.
// It lists conversations only when the cache cannot answer, and stops
// listing at the page that has the name. The error is the listing's,
// classified; what the listing learnt before it failed is kept. When Slack
// refuses to list private channels it lists the public ones only, for
// nameTTL; after a refusal of both (scopeCodes) it returns that error
// without asking again for nameTTL.
func (r *resolver) resolve(ctx context.Context, channel string) (string, error) {
	key := nameKey(channel)
	if key == "" {
		return "", nil
	}
	if id, known, err := r.cached(key); known {
		return id, err
	}
	select {
	case r.turn <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-r.turn }()
	// Another goroutine may have listed while this one waited.
	if id, known, err := r.cached(key); known {
		return id, err
	}
	types := listTypes
	r.mu.Lock()
	if time.Now().Before(r.publicOnlyUntil) {
		types = listTypes[:1]
	}
	r.mu.Unlock()
	cursor := ""
	for range listMaxPages {
		chans, next, err := r.list(ctx, types, cursor)
		if err != nil && refusal(err) && cursor == "" && len(types) > 1 {
			// Without groups:read the public channels can still be
			// listed.
			types = listTypes[:1]
			r.mu.Lock()
			r.publicOnlyUntil = time.Now().Add(nameTTL)
			r.mu.Unlock()
			chans, next, err = r.list(ctx, types, cursor)
		}
		if err != nil {
			if refusal(err) {
				r.mu.Lock()
				r.refused, r.refusedUntil = err, time.Now().Add(nameTTL)
				r.mu.Unlock()
			}
			return "", err
		}
		found := ""
		r.mu.Lock()
		at := time.Now()
		for _, c := range chans {
			if c.ID == "" || c.Name == "" {
				continue
			}
			name := strings.ToLower(c.Name)
			r.ids[name] = learnt{id: c.ID, at: at}
			delete(r.miss, name)
			if name == key {
				found = c.ID
			}
		}
		r.mu.Unlock()
		if found != "" {
			return found, nil
		}
		if next == "" {
			break
		}
		cursor = next
	}
	r.mu.Lock()
	r.miss[key] = time.Now()
	r.mu.Unlock()
	return "", nil
}

// scopeCodes are the answers of conversations.list that mean the token may
// not list: a configuration problem that no retry fixes.
var scopeCodes = map[string]bool{
	"missing_scope":          true,
	"not_allowed_token_type": true,
	"no_permission":          true,
	"access_denied":          true,
	"invalid_types":          true,
}

// refusal reports whether err is Slack refusing this token a listing.
func refusal(err error) bool {
	var e *Error
	return errors.As(err, &e) && scopeCodes[e.Code]
}

// listChannels is the Sink's lister: one conversations.list request,
// classified like every other request.
func (s *Sink) listChannels(ctx context.Context, types []string, cursor string) ([]slack.Channel, string, error) {
	xctx, x := withExchange(ctx)
	chans, next, err := s.api.GetConversationsContext(xctx, &slack.GetConversationsParameters{
		Cursor:          cursor,
		ExcludeArchived: true,
		Limit:           listPageSize,
		Types:           types,
	})
	if err != nil {
		return nil, "", s.classify("conversations.list", err, x, time.Now())
	}
	return chans, next, nil
}

// searchChannel returns the id of the channel a retry searches for the
// message an earlier attempt may have posted: channel itself when it is an
// id, the id Slack answered an earlier post to channel with, or the id
// conversations.list has for the name. "" means the sink cannot tell, and
// the retry posts: a possible duplicate beats a lost alert.
func (s *Sink) searchChannel(ctx context.Context, channel string) string {
	if id := s.channelID(channel); id != "" {
		return id
	}
	// The resolve gets one request timeout, and at most a third of what
	// is left of ctx, so that the search and the post keep their time
	// when the listing is slow: a resolve that runs out only costs the
	// search.
	budget := s.cfg.Timeout
	if d, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(d)/3)
	}
	rctx, cancel := context.WithTimeout(ctx, budget)
	id, err := s.names.resolve(rctx, channel)
	cancel()
	if err != nil {
		if refusal(err) {
			s.scopeWarn.Do(func() {
				s.log.LogAttrs(ctx, slog.LevelWarn, "slack token may not list channels (needs channels:read, and groups:read for private ones): a retry to a channel given by name, after a lost answer, posts without looking for the earlier message and may leave a duplicate",
					slog.String("channel", channel), slog.String("error", err.Error()))
			})
			return ""
		}
		s.log.LogAttrs(ctx, slog.LevelWarn, "slack channel name not resolved; posting without looking for an earlier attempt's message",
			slog.String("channel", channel), slog.String("error", err.Error()))
		return ""
	}
	if id == "" {
		if nameKey(channel) != "" {
			s.log.LogAttrs(ctx, slog.LevelDebug, "slack channel not among the bot's conversations; posting without looking",
				slog.String("channel", channel))
		}
		return ""
	}
	s.pace.learn(channel, id)
	return id
}

// mayHavePosted reports whether a failed chat.postMessage may still have
// posted: the request may have reached Slack, and no answer from Slack
// said it refused.
func mayHavePosted(err error, x *exchange) bool {
	var ser slack.SlackErrorResponse
	if errors.As(err, &ser) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	if x.status == http.StatusTooManyRequests || (x.status >= 400 && x.status < 500) {
		return false
	}
	return true
}

// suspects remembers the posts whose attempt failed when they may have
// landed, so that the next attempt looks before it posts even when its
// caller counts it as a first one. It forgets the oldest beyond its
// capacity: Target.Attempt is the main signal, this one is a backstop.
type suspects struct {
	mu    sync.Mutex
	set   map[string]bool
	order []string
}

const maxSuspects = 1024

func (s *suspects) add(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil {
		s.set = map[string]bool{}
	}
	if s.set[key] {
		return
	}
	if len(s.order) >= maxSuspects {
		delete(s.set, s.order[0])
		s.order = s.order[1:]
	}
	s.set[key] = true
	s.order = append(s.order, key)
}

func (s *suspects) has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set[key]
}

func (s *suspects) remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.set[key] {
		return
	}
	delete(s.set, key)
	for i, k := range s.order {
		if k == key {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}
