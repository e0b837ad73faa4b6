// Package mattermost delivers notifications to Mattermost, either through
// API v4 as a bot (recommended: one root post per alert group, patched to
// show the group's current state, with every later notification as a reply
// in its thread, and lookups before a retry so that a lost answer never
// posts twice) or through an incoming webhook (post only). It renders
// posts from Go text/template templates over message.Data, escapes all
// text that comes from alerts for Mattermost markdown, and keeps every
// message under the server's post size limit.
package mattermost

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/severity"
	"github.com/herald-notify/herald/sinks"
)

// Sink delivers notifications to one Mattermost server or incoming hook.
// It is safe for concurrent use. It implements sinks.Sink and sinks.Pacer.
type Sink struct {
	name    string
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	apiBase string // REST: <base_url>/api/v4/
	secrets []string
	r       *renderer
	tmpl    *template.Template

	// channels caches channel names (in the configured team) to ids.
	channels sync.Map
	// routeTmpl caches parsed per-route template files by path.
	routeTmpl sync.Map
	// blocked holds sends back while a rate limit the server reported lasts.
	blocked blockedUntil
	// authLogged is set once a refused credential was logged, until the
	// next success.
	authLogged atomic.Bool
	// ignoredChannels holds the route channels a webhook sink without
	// webhook_override_channel was asked for and said it ignores.
	ignoredChannels sync.Map
}

var (
	_ sinks.Sink  = (*Sink)(nil)
	_ sinks.Pacer = (*Sink)(nil)
)

// ErrRateLimited is the cause of the throttle error Send returns, without
// a request, while a rate limit the server reported lasts.
var ErrRateLimited = errors.New("mattermost: rate limited, waiting for the server's reset")

// Lookup bounds: a retried root post is looked for among the channel's
// newest posts, at most lookupPages pages of lookupPerPage, back to a
// little before the notification was received.
const (
	lookupPerPage = 200
	lookupPages   = 5
	lookupSkew    = 5 * time.Minute
)

// New builds the sink named name. cfg must have passed Validate (New calls
// it again, so defaults are applied either way).
func New(name string, cfg Config, deps sinks.Deps) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mattermost sink %q: %w", name, err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{
		name:    name,
		cfg:     cfg,
		log:     log,
		client:  &http.Client{Transport: deps.HTTPTransport(), CheckRedirect: noRedirect},
		secrets: secretsOf(cfg),
		r:       &renderer{max: cfg.MaxPostSize, mentions: cfg.Mentions},
		tmpl:    defaultTemplates,
	}
	if cfg.BaseURL != "" {
		s.apiBase = strings.TrimRight(cfg.BaseURL, "/") + "/api/v4/"
	}
	if cfg.Template != "" {
		t, err := ParseTemplateFile(cfg.Template)
		if err != nil {
			return nil, fmt.Errorf("mattermost sink %q: template: %w", name, err)
		}
		s.tmpl = t
	}
	return s, nil
}

// noRedirect keeps the client from following redirects: a redirected POST
// would lose its body, and a redirect could carry the token elsewhere.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Name is the configured name of the sink.
func (s *Sink) Name() string { return s.name }

// Mode is the sink's mode.
func (s *Sink) Mode() Mode { return s.cfg.Mode }

// Post roles: a notification may create a root post or a thread reply.
const (
	roleRoot  = "root"
	roleReply = "reply"
)

var idEncoding = base32.NewEncoding("ybndrfg8ejkmcpqxot1uwisza345h769").WithPadding(base32.NoPadding)

// PendingPostID is the id herald gives the post of role ("root" or
// "reply") that the sink named sink makes in channel channelID for the
// notification with key notificationKey. It is sent as pending_post_id,
// which Mattermost uses to return the post already created instead of a
// second one for 30 seconds (deduplicateCreatePost in the server's
// app/post.go), and as the post's herald_post prop, which a retry looks
// for after that.
func PendingPostID(sink, channelID, notificationKey, role string) string {
	sum := sha256.Sum256([]byte(sink + "\x00" + channelID + "\x00" + notificationKey + "\x00" + role))
	return "herald:" + idEncoding.EncodeToString(sum[:16])
}

// notificationKey identifies n across retries: its id, or a hash of its
// content for a notification that has none.
func notificationKey(n *heraldv1.Notification) string {
	if n.GetId() != "" {
		return n.GetId()
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(n)
	sum := sha256.Sum256(b)
	return fmt.Sprintf("content-%x", sum[:16])
}

// Send delivers n in one attempt. In REST mode the first notification of a
// group creates a root post; when to.Parent names the group's root post,
// Send patches it to the group's current state and replies in its thread,
// or creates a new root post if the old one is gone. In webhook mode every
// notification is a new post.
func (s *Sink) Send(ctx context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
	if n == nil {
		return sinks.Receipt{}, sinks.Permanent(errors.New("mattermost: nil notification"))
	}
	if err := ctx.Err(); err != nil {
		return sinks.Receipt{}, err
	}
	if wait := s.blocked.wait(time.Now()); wait > 0 {
		return sinks.Receipt{}, sinks.Throttled(ErrRateLimited, wait)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	t := s.template(ctx, to)
	if s.cfg.Mode == ModeWebhook {
		msg := s.render(ctx, t, n, to, renderOpts{mention: true})
		return sinks.Receipt{}, s.postWebhook(ctx, n, msg, to)
	}

	chID, cached, err := s.channelID(ctx, s.channel(to))
	if err != nil {
		return sinks.Receipt{}, err
	}
	if p := to.Parent; p.GetMessageId() != "" {
		if !channelID.MatchString(p.GetMessageId()) {
			// Not a Mattermost post id: nothing this sink made.
			s.log.WarnContext(ctx, "the group's parent is not a Mattermost post id; creating a new root post",
				"notification", n.GetId(), "parent", p.GetMessageId())
		} else if p.GetChannelId() == chID {
			reply := s.updateAndReply
			if to.Reminder > 0 {
				reply = s.remind
			}
			rec, gone, err := reply(ctx, t, n, to, chID)
			if !gone {
				return rec, err
			}
			s.log.InfoContext(ctx, "the group's post is gone; creating a new one",
				"notification", n.GetId(), "parent", p.GetMessageId())
		} else {
			s.log.InfoContext(ctx, "the group's post is in another channel; creating a new one",
				"notification", n.GetId(), "parent", p.GetMessageId())
		}
	}
	msg := s.render(ctx, t, n, to, renderOpts{mention: true})
	ref, err := s.createOnce(ctx, n, to, chID, "", roleRoot, msg)
	if err != nil {
		return sinks.Receipt{}, s.staleChannel(ctx, chID, cached, err)
	}
	return sinks.Receipt{Parent: ref, Message: ref}, nil
}

// staleChannel handles a create refused for a channel id that came from
// the cache: the channel may have been deleted and made again under the
// same name. It forgets the id and makes the refusal retryable, so the
// next attempt looks the name up anew (and fails for good if the refusal
// stands).
func (s *Sink) staleChannel(ctx context.Context, chID string, cached bool, err error) error {
	var ae *APIError
	if !cached || !errors.As(err, &ae) || sinks.Classify(err) != sinks.ClassPermanent ||
		ae.StatusCode != http.StatusForbidden && ae.StatusCode != http.StatusBadRequest && ae.StatusCode != http.StatusNotFound {
		return err
	}
	s.channels.Range(func(k, v any) bool {
		if v == chID {
			s.channels.Delete(k)
		}
		return true
	})
	s.log.InfoContext(ctx, "the channel refused a post; looking its name up again on the next attempt", "channel", chID, "error", ae)
	return ae
}

// updateAndReply patches the root post and replies in its thread. gone
// reports that the root post no longer exists in channel chID (nothing
// was sent).
// remind replies in the group's thread with one line and leaves the root
// as it is: it already says what n says. The mention is on the reminders
// remind_mention_every asks for. gone reports that the root no longer
// exists in channel chID (nothing was sent).
func (s *Sink) remind(ctx context.Context, t *template.Template, n *heraldv1.Notification, to sinks.Target, chID string) (rec sinks.Receipt, gone bool, err error) {
	root, err := s.getPost(ctx, to.Parent.GetMessageId())
	if err != nil {
		return sinks.Receipt{}, false, err
	}
	if root == nil || root.DeleteAt != 0 || root.ChannelID != chID {
		return sinks.Receipt{}, true, nil
	}
	every := s.cfg.RemindMentionEvery[severity.Name(n.GetSeverity())]
	msg, rerr := s.r.renderReminder(t, n, to, every > 0 && to.Reminder%every == 0)
	if rerr != nil {
		s.log.ErrorContext(ctx, "reminder template failed; its default was used", "notification", n.GetId(), "error", rerr)
	}
	ref, err := s.createOnce(ctx, n, to, chID, root.ID, roleReply, msg)
	if err != nil {
		return sinks.Receipt{}, false, err
	}
	return sinks.Receipt{Parent: &heraldv1.MessageRef{ChannelId: chID, MessageId: root.ID}, Message: ref}, false, nil
}

func (s *Sink) updateAndReply(ctx context.Context, t *template.Template, n *heraldv1.Notification, to sinks.Target, chID string) (rec sinks.Receipt, gone bool, err error) {
	// Read like any request: a refused token here is refused for the
	// post too.
	root, err := s.getPost(ctx, to.Parent.GetMessageId())
	if err != nil {
		return sinks.Receipt{}, false, err
	}
	if root == nil || root.DeleteAt != 0 || root.ChannelID != chID {
		return sinks.Receipt{}, true, nil
	}
	upd := s.render(ctx, t, n, to, renderOpts{update: true})
	props := Props{
		Attachments: []Attachment{upd.Attachment},
		// The patch replaces props whole: keep the root's own id, which a
		// retry of the notification that created it looks for.
		HeraldPost:         root.Props.HeraldPost,
		HeraldNotification: n.GetId(),
	}
	err = s.call(ctx, "patch post", http.MethodPut, "posts/"+url.PathEscape(root.ID)+"/patch", nil,
		patchPostRequest{Message: &upd.Text, Props: &props}, nil)
	if err != nil {
		var ae *APIError
		switch {
		case !errors.As(err, &ae) || sinks.Classify(err) != sinks.ClassPermanent:
			return sinks.Receipt{}, false, err
		case ae.StatusCode == http.StatusNotFound:
			return sinks.Receipt{}, true, nil
		case ae.StatusCode == http.StatusBadRequest || ae.StatusCode == http.StatusForbidden && ae.ID != "api.context.session_expired.app_error":
			// The root exists but cannot be edited (the server's post
			// edit time limit, a post made by another account): the
			// thread reply still carries the news.
			s.log.WarnContext(ctx, "could not patch the group's post; replying in its thread only",
				"notification", n.GetId(), "parent", root.ID, "error", err)
		default:
			return sinks.Receipt{}, false, err
		}
	}
	self := &heraldv1.MessageRef{ChannelId: chID, MessageId: root.ID}
	if root.Props.HeraldPost != "" && root.Props.HeraldPost == PendingPostID(s.name, chID, notificationKey(n), roleRoot) {
		// The root is this very notification's post (a redelivery): the
		// patch was all there was to do.
		return sinks.Receipt{Parent: self, Message: self}, false, nil
	}
	rep := s.render(ctx, t, n, to, renderOpts{reply: true, mention: true})
	ref, err := s.createOnce(ctx, n, to, chID, root.ID, roleReply, rep)
	if err != nil {
		return sinks.Receipt{}, false, err
	}
	return sinks.Receipt{Parent: self, Message: ref}, false, nil
}

// createOnce creates a post so that it exists once: on a retry it first
// looks for the post a lost answer may have hidden, and it always sends a
// deterministic pending_post_id, which the server deduplicates for 30s.
func (s *Sink) createOnce(ctx context.Context, n *heraldv1.Notification, to sinks.Target, chID, rootID, role string, msg rendered) (*heraldv1.MessageRef, error) {
	pid := PendingPostID(s.name, chID, notificationKey(n), role)
	if to.Attempt > 1 {
		found, err := s.findPost(ctx, n, chID, rootID, pid)
		if err != nil {
			return nil, lookupFailed(err)
		}
		if found != nil {
			s.log.InfoContext(ctx, "found the post of an earlier attempt; not posting again",
				"notification", n.GetId(), "post", found.ID)
			return refOf(found, chID, rootID), nil
		}
	}
	req := createPostRequest{
		ChannelID: chID, Message: msg.Text, RootID: rootID, PendingPostID: pid,
		Props: Props{Attachments: attachments(msg), HeraldPost: pid, HeraldNotification: n.GetId()},
	}
	var p post
	if err := s.call(ctx, "create post", http.MethodPost, "posts", nil, req, &p); err != nil {
		return nil, err
	}
	if p.ID == "" {
		// Retryable: the post may exist, and the retry looks for it.
		return nil, &APIError{Op: "create post", StatusCode: http.StatusCreated, Reason: "the answer has no post id"}
	}
	return refOf(&p, chID, rootID), nil
}

// refOf is the reference of a post, from the server's copy.
func refOf(p *post, chID, rootID string) *heraldv1.MessageRef {
	ref := &heraldv1.MessageRef{ChannelId: chID, MessageId: p.ID, ThreadId: rootID}
	if p.ChannelID != "" {
		ref.ChannelId = p.ChannelID
	}
	if p.RootID != "" {
		ref.ThreadId = p.RootID
	}
	return ref
}

// lookupFailed makes the error of a lookup retryable: not knowing whether
// a post exists is no reason to drop the notification. A throttle stays a
// throttle.
func lookupFailed(err error) error {
	var pe *sinks.PermanentError
	if errors.As(err, &pe) {
		return fmt.Errorf("looking the post up before posting: %w", pe.Err)
	}
	return err
}

// getPost returns the post with id, or nil when Mattermost says it has
// none (404).
func (s *Sink) getPost(ctx context.Context, id string) (*post, error) {
	var p post
	err := s.call(ctx, "get post", http.MethodGet, "posts/"+url.PathEscape(id), nil, nil, &p)
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound && sinks.Classify(err) == sinks.ClassPermanent {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if p.ID == "" {
		return nil, &APIError{Op: "get post", StatusCode: http.StatusOK, Reason: "the answer has no post id"}
	}
	return &p, nil
}

// findPost looks for the live post whose herald_post prop is pid: in the
// thread of rootID for a reply, else among the channel's newest posts,
// back to a little before n was received.
func (s *Sink) findPost(ctx context.Context, n *heraldv1.Notification, chID, rootID, pid string) (*post, error) {
	match := func(l *postList) *post {
		for _, p := range l.Posts {
			if p != nil && p.Props.HeraldPost == pid && p.DeleteAt == 0 && p.ChannelID == chID {
				return p
			}
		}
		return nil
	}
	if rootID != "" {
		var l postList
		if err := s.call(ctx, "get thread", http.MethodGet, "posts/"+url.PathEscape(rootID)+"/thread", nil, nil, &l); err != nil {
			return nil, err
		}
		return match(&l), nil
	}
	var since int64
	if n.GetReceivedAt().IsValid() && n.GetReceivedAt().AsTime().Unix() > 0 {
		since = n.GetReceivedAt().AsTime().Add(-lookupSkew).UnixMilli()
	}
	for page := range lookupPages {
		var l postList
		q := url.Values{"page": {strconv.Itoa(page)}, "per_page": {strconv.Itoa(lookupPerPage)}}
		if err := s.call(ctx, "get channel posts", http.MethodGet, "channels/"+url.PathEscape(chID)+"/posts", q, nil, &l); err != nil {
			return nil, err
		}
		if p := match(&l); p != nil {
			return p, nil
		}
		if len(l.Order) < lookupPerPage {
			return nil, nil
		}
		oldest := l.Posts[l.Order[len(l.Order)-1]]
		if oldest == nil || since > 0 && oldest.CreateAt < since {
			return nil, nil
		}
	}
	return nil, nil
}

// channel is the target's channel, or the sink's default.
func (s *Sink) channel(to sinks.Target) string {
	if to.Channel != "" {
		return to.Channel
	}
	return s.cfg.Channel
}

// channelID resolves a channel name in the configured team to its id once
// and caches it; a channel id is used as it is. cached reports an id that
// came from the cache rather than from a lookup just made.
func (s *Sink) channelID(ctx context.Context, ch string) (id string, cached bool, err error) {
	if ch == "" {
		return "", false, sinks.Permanent(errors.New("mattermost: no channel: the route names none and the sink has no default"))
	}
	v, isName, err := parseChannel(ch)
	if err != nil {
		return "", false, sinks.Permanent(fmt.Errorf("mattermost: channel %w", err))
	}
	if !isName {
		return v, false, nil
	}
	if s.cfg.Team == "" {
		return "", false, sinks.Permanent(fmt.Errorf("mattermost: channel %q is a name, and the sink has no team to find it in", ch))
	}
	if id, ok := s.channels.Load(v); ok {
		return id.(string), true, nil
	}
	var c channel
	path := "teams/name/" + url.PathEscape(s.cfg.Team) + "/channels/name/" + url.PathEscape(v)
	if err := s.call(ctx, "get channel by name", http.MethodGet, path, nil, nil, &c); err != nil {
		return "", false, fmt.Errorf("mattermost: looking up channel %q in team %q: %w", v, s.cfg.Team, err)
	}
	if c.ID == "" {
		return "", false, fmt.Errorf("mattermost: looking up channel %q: the answer has no channel id", v)
	}
	s.channels.Store(v, c.ID)
	return c.ID, false, nil
}

// template is the route's template for this sink, or the sink's own.
func (s *Sink) template(ctx context.Context, to sinks.Target) *template.Template {
	if to.Template == "" {
		return s.tmpl
	}
	if t, ok := s.routeTmpl.Load(to.Template); ok {
		return t.(*template.Template)
	}
	t, err := ParseTemplateFile(to.Template)
	if err != nil {
		// Alerts must go out: use the sink's template, and say so once.
		s.log.ErrorContext(ctx, "route template unusable; using the sink's template", "route", to.Route, "file", to.Template, "error", err)
		t = s.tmpl
	}
	s.routeTmpl.Store(to.Template, t)
	return t
}

// render renders n, logging (not failing) when a custom template fails.
func (s *Sink) render(ctx context.Context, t *template.Template, n *heraldv1.Notification, to sinks.Target, o renderOpts) rendered {
	msg, err := s.r.render(t, n, to, o)
	if err != nil {
		s.log.ErrorContext(ctx, "template failed; post rendered with the defaults", "notification", n.GetId(), "error", err)
	}
	return msg
}

// postWebhook posts msg for n to the incoming hook.
func (s *Sink) postWebhook(ctx context.Context, n *heraldv1.Notification, msg rendered, to sinks.Target) error {
	req := webhookRequest{
		Text: msg.Text, Attachments: []Attachment{msg.Attachment},
		Username: s.cfg.Username, IconURL: s.cfg.IconURL, IconEmoji: s.cfg.IconEmoji,
	}
	if n.GetId() != "" {
		req.Props = &Props{HeraldNotification: n.GetId()}
	}
	if s.cfg.WebhookOverrideChannel {
		if ch := s.channel(to); ch != "" {
			name, _, err := parseChannel(ch)
			if err != nil {
				return sinks.Permanent(fmt.Errorf("mattermost webhook: channel %w", err))
			}
			req.Channel = name
		}
	} else if to.Channel != "" {
		if _, seen := s.ignoredChannels.LoadOrStore(to.Channel, true); !seen {
			s.log.WarnContext(ctx, "the route's channel is ignored: an incoming webhook posts to its own channel unless webhook_override_channel is true",
				"route", to.Route, "channel", to.Channel)
		}
	}
	return s.call(ctx, "webhook", http.MethodPost, "", nil, req, nil)
}

// Wait says how long until the sink may send without being throttled
// (see sinks.Pacer): the rest of a rate limit the server reported.
func (s *Sink) Wait(sinks.Target) time.Duration {
	return s.blocked.wait(time.Now())
}

// observe learns from every answer: a rate limit blocks later sends until
// its reset, and a refused credential is logged once.
func (s *Sink) observe(ctx context.Context, err error) {
	if wait, ok := sinks.ThrottleWait(err); ok {
		s.blocked.until(time.Now().Add(wait))
	}
	var ae *APIError
	switch {
	case err == nil:
		s.authLogged.Store(false)
	case errors.As(err, &ae) && (ae.StatusCode == http.StatusUnauthorized || ae.StatusCode == http.StatusForbidden):
		if s.authLogged.CompareAndSwap(false, true) {
			s.log.ErrorContext(ctx, "Mattermost refused herald's token, hook or permissions; check the token, the hook, and the bot's team and channel memberships",
				"status", ae.StatusCode, "id", ae.ID, "reason", ae.Reason)
		}
	}
}

// blockedUntil is a time before which no request is sent.
type blockedUntil struct {
	mu sync.Mutex
	t  time.Time
}

func (b *blockedUntil) until(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if limit := time.Now().Add(maxThrottle); t.After(limit) {
		t = limit
	}
	if t.After(b.t) {
		b.t = t
	}
}

func (b *blockedUntil) wait(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(b.t.Sub(now), 0)
}

// attachments are msg's attachment, or none for a post of text only (a
// reminder).
func attachments(msg rendered) []Attachment {
	if a := msg.Attachment; a.Color == "" && a.Text == "" && a.Fallback == "" && len(a.Fields) == 0 {
		return nil
	}
	return []Attachment{msg.Attachment}
}
