// Package slack is herald's Slack sink, usually the fallback behind
// Rocket.Chat. In bot mode each alert group has one message, updated as the
// group changes, with the details of each change in its thread; in webhook
// mode every notification is a new message. Messages are Block Kit, escaped
// and clipped to Slack's limits. The sink makes one attempt per Send, paces
// posts per channel, and classifies every error.
package slack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"sync"
	"text/template"
	"time"

	"github.com/slack-go/slack"
	"golang.org/x/time/rate"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
)

// Sink delivers notifications to Slack. It is safe for concurrent use.
type Sink struct {
	name    string
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	api     *slack.Client // bot mode
	secrets scrubber
	pace    *pacer
	tmpl    *template.Template
	// routeTmpl caches the routes' template files by path.
	routeTmpl sync.Map
	// names resolves channel names for retries (bot mode).
	names *resolver
	// scopeWarn logs once that the token may not list channels.
	scopeWarn sync.Once
	// maybePosted holds the posts whose failed attempt may have landed.
	maybePosted suspects
}

var (
	_ sinks.Sink    = (*Sink)(nil)
	_ sinks.Pacer   = (*Sink)(nil)
	_ sinks.Batcher = (*Sink)(nil)
)

// New builds a Slack sink from cfg, which it validates (Validate may have
// been called already). HTTP requests go through deps.HTTPTransport().
func New(name string, cfg Config, deps sinks.Deps) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("slack sink %q: %w", name, err)
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Sink{
		name: name,
		cfg:  cfg,
		log:  logger,
		client: &http.Client{
			Transport: captureTransport{next: deps.HTTPTransport()},
			Timeout:   cfg.Timeout,
		},
		pace: newPacer(cfg.Pace),
		tmpl: defaultTemplates,
	}
	if cfg.Template != "" {
		t, err := ParseTemplateFile(cfg.Template)
		if err != nil {
			return nil, fmt.Errorf("slack sink %q: template: %w", name, err)
		}
		s.tmpl = t
	}
	s.secrets = scrubber{cfg.Token.Value(), cfg.WebhookURL.Value()}
	if u, err := url.Parse(cfg.WebhookURL.Value()); err == nil && len(u.Path) > 1 {
		// Errors may quote the path alone, or only its last segment: the
		// hook's key.
		s.secrets = append(s.secrets, u.Path, u.EscapedPath())
		if key := path.Base(u.Path); len(key) >= 8 {
			s.secrets = append(s.secrets, key)
		}
		if q := u.RawQuery; q != "" {
			s.secrets = append(s.secrets, q)
		}
	}
	if cfg.Mode == ModeBot {
		s.api = slack.New(cfg.Token.Value(),
			slack.OptionAPIURL(cfg.APIURL),
			slack.OptionHTTPClient(s.client))
		s.names = newResolver(s.listChannels)
	}
	return s, nil
}

// Name returns the configured name of the sink.
func (s *Sink) Name() string { return s.name }

// Send delivers n in one attempt. In bot mode, with no to.Parent it posts a
// new message and returns it as the group's parent; with to.Parent it
// updates the parent to n's state and replies in its thread, or posts a new
// parent when the old one can no longer be edited. In webhook mode it posts
// and returns a Receipt without references. A send to a channel sooner than
// the configured pace after the previous one returns a throttle error
// wrapping ErrPaced, without a request.
func (s *Sink) Send(ctx context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
	channel := to.Channel
	if channel == "" {
		channel = s.cfg.Channel
	}
	if s.cfg.Mode == ModeBot && channel == "" && to.Parent == nil {
		return sinks.Receipt{}, sinks.Permanent(&Error{Method: "chat.postMessage", msg: "no channel: the route names none and the sink has no default channel"})
	}
	key := s.paceKey(to)
	if wait := s.pace.reserve(key, time.Now()); wait > 0 {
		return sinks.Receipt{}, sinks.Throttled(fmt.Errorf("%w: %q", ErrPaced, key), wait)
	}

	data := NewData(n, to, s.cfg.Mentions)
	var (
		rcpt sinks.Receipt
		err  error
	)
	r := renderer{s: s, t: s.template(ctx, to), ctx: ctx}
	if s.cfg.Mode == ModeWebhook {
		err = s.postWebhook(ctx, channel, r.render(data, StyleParent))
	} else {
		if to.Reminder > 0 && to.Parent.GetMessageId() != "" && to.Parent.GetChannelId() != "" {
			mk := mark{id: n.GetId(), retry: to.Attempt > 1}
			if s.threadGone(ctx, to.Parent) {
				// A reminder in a deleted thread goes unseen: the group
				// gets a new message, whole.
				s.log.LogAttrs(ctx, slog.LevelInfo, "slack: the group's message is gone; posting a new one",
					slog.String("notification", n.GetId()), slog.String("parent", to.Parent.GetMessageId()))
				rcpt, err = s.postParent(ctx, r, cmp.Or(channel, to.Parent.GetChannelId()), data, mk)
			} else {
				rd := data
				every := s.cfg.RemindMentionEvery[severityName(data.Severity)]
				if every <= 0 || to.Reminder%every != 0 {
					rd.Mention = ""
				}
				rcpt, err = s.remind(ctx, r, rd, to.Parent, mk)
			}
		} else {
			rcpt, err = s.sendBot(ctx, r, channel, data, to.Parent, mark{id: n.GetId(), retry: to.Attempt > 1})
		}
	}
	if err != nil {
		if wait, ok := sinks.ThrottleWait(err); ok {
			s.pace.block(key, time.Now().Add(wait))
		}
		s.log.LogAttrs(ctx, slog.LevelWarn, "slack delivery failed",
			slog.String("notification", n.GetId()),
			slog.String("channel", channel),
			slog.String("class", sinks.Classify(err).String()),
			slog.String("error", err.Error()))
		return sinks.Receipt{}, err
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "slack delivered",
		slog.String("notification", n.GetId()),
		slog.String("channel", channel))
	return rcpt, nil
}

// SendBatch posts ns as one digest message to to's channel, in one attempt,
// paced like Send. The Receipt's Message is the digest, and so is its
// Parent, marked Digest (see sinks.Batcher); both nil in webhook mode.
func (s *Sink) SendBatch(ctx context.Context, ns []*heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
	if len(ns) == 0 {
		return sinks.Receipt{}, nil
	}
	channel := cmp.Or(to.Channel, s.cfg.Channel)
	if s.cfg.Mode == ModeBot && channel == "" {
		return sinks.Receipt{}, sinks.Permanent(&Error{Method: "chat.postMessage", msg: "no channel: the route names none and the sink has no default channel"})
	}
	// A digest is a new message in the channel, whatever parents its
	// notifications have.
	key := s.paceKey(sinks.Target{Channel: channel})
	if wait := s.pace.reserve(key, time.Now()); wait > 0 {
		return sinks.Receipt{}, sinks.Throttled(fmt.Errorf("%w: %q", ErrPaced, key), wait)
	}
	items := make([]Data, len(ns))
	for i, n := range ns {
		items[i] = NewData(n, to, s.cfg.Mentions)
	}
	m := RenderDigest(items)
	var (
		rcpt sinks.Receipt
		err  error
	)
	if s.cfg.Mode == ModeWebhook {
		err = s.postWebhook(ctx, channel, m)
	} else {
		var ch, ts string
		// A digest is marked by its first notification, so that a retry of
		// the same batch finds it.
		mk := mark{id: ns[0].GetId(), kind: "digest", retry: to.Attempt > 1}
		ch, ts, err = s.post(ctx, channel, m, "", mk)
		if err == nil {
			rcpt.Message = &heraldv1.MessageRef{ChannelId: ch, MessageId: ts}
			rcpt.Parent = &heraldv1.MessageRef{ChannelId: ch, MessageId: ts, Digest: true}
		}
	}
	if err != nil {
		if wait, ok := sinks.ThrottleWait(err); ok {
			s.pace.block(key, time.Now().Add(wait))
		}
		s.log.LogAttrs(ctx, slog.LevelWarn, "slack digest failed",
			slog.Int("notifications", len(ns)),
			slog.String("channel", channel),
			slog.String("class", sinks.Classify(err).String()),
			slog.String("error", err.Error()))
		return sinks.Receipt{}, err
	}
	return rcpt, nil
}

// Wait says how long until a Send to to would not be refused by the sink's
// pacing; zero means now. It never blocks and never makes a request.
func (s *Sink) Wait(to sinks.Target) time.Duration {
	return s.pace.peek(s.paceKey(to), time.Now())
}

// paceKey is the channel a send to to is paced by: the parent's channel id
// when there is a parent, the target channel otherwise, and the webhook's
// single channel in webhook mode.
func (s *Sink) paceKey(to sinks.Target) string {
	switch {
	case s.cfg.Mode == ModeWebhook:
		return ""
	case to.Parent != nil && to.Parent.GetChannelId() != "":
		return to.Parent.GetChannelId()
	case to.Channel != "":
		return to.Channel
	}
	return s.cfg.Channel
}

// template returns the templates for a send to to: the route's file when
// it names one and it is usable, else the sink's.
func (s *Sink) template(ctx context.Context, to sinks.Target) *template.Template {
	if to.Template == "" {
		return s.tmpl
	}
	if t, ok := s.routeTmpl.Load(to.Template); ok {
		return t.(*template.Template)
	}
	t, err := ParseTemplateFile(to.Template)
	if err != nil {
		// A broken template must not keep the alert from people: the
		// sink's own templates stand in, and the error is logged.
		s.log.LogAttrs(ctx, slog.LevelError, "route template unusable; using the sink's",
			slog.String("route", to.Route), slog.String("file", to.Template), slog.String("error", err.Error()))
		t = s.tmpl
	}
	s.routeTmpl.Store(to.Template, t)
	return t
}

// renderer renders with one set of templates and logs template failures.
type renderer struct {
	s   *Sink
	t   *template.Template
	ctx context.Context
}

func (r renderer) renderReminder(d Data) Message {
	m, err := RenderReminder(r.t, d)
	if err != nil {
		r.s.log.LogAttrs(r.ctx, slog.LevelError, "slack reminder template failed; its default was used", slog.String("error", err.Error()))
	}
	return m
}

func (r renderer) render(d Data, style Style) Message {
	m, err := RenderTemplate(r.t, d, style)
	if err != nil {
		r.s.log.LogAttrs(r.ctx, slog.LevelError, "slack template failed; its default was used", slog.String("error", err.Error()))
	}
	return m
}

// mark is what a posted message carries in its metadata so that a retry
// can find it: the notification it was posted for, and as what.
type mark struct {
	id   string // notification id; empty: do not look
	kind string // "parent", "reply" or "digest"
	// retry is set from the second attempt on: the message may already be
	// in Slack, its answer lost to a timeout.
	retry bool
}

// metaEvent is the metadata event type of herald's messages.
const metaEvent = "herald_notification"

func (s *Sink) sendBot(ctx context.Context, r renderer, channel string, d Data, parent *heraldv1.MessageRef, mk mark) (sinks.Receipt, error) {
	if parent == nil || parent.GetMessageId() == "" || parent.GetChannelId() == "" {
		return s.postParent(ctx, r, channel, d, mk)
	}
	if parent.GetDigest() {
		if !s.threadGone(ctx, parent) {
			return s.replyInDigest(ctx, r, d, parent, mk)
		}
		s.log.LogAttrs(ctx, slog.LevelInfo, "slack: the digest that showed the group is gone; posting a message of its own",
			slog.String("parent", parent.GetMessageId()))
		return s.postParent(ctx, r, cmp.Or(channel, parent.GetChannelId()), d, mk)
	}
	edit := d
	edit.Mention = "" // an edit notifies no one; the reply carries it
	err := s.update(ctx, parent, r.render(edit, StyleParent))
	var e *Error
	if errors.As(err, &e) && parentGone[e.Code] {
		s.log.LogAttrs(ctx, slog.LevelInfo, "slack parent message gone; posting a new one",
			slog.String("channel", parent.GetChannelId()),
			slog.String("code", e.Code))
		if channel == "" {
			channel = parent.GetChannelId()
		}
		return s.postParent(ctx, r, channel, d, mk)
	}
	if err != nil {
		return sinks.Receipt{}, err
	}
	mk.kind = "reply"
	ch, ts, err := s.post(ctx, parent.GetChannelId(), r.render(d, StyleReply), parent.GetMessageId(), mk)
	if err != nil {
		return sinks.Receipt{}, err
	}
	return sinks.Receipt{
		Parent:  &heraldv1.MessageRef{ChannelId: parent.GetChannelId(), MessageId: parent.GetMessageId()},
		Message: &heraldv1.MessageRef{ChannelId: ch, MessageId: ts, ThreadId: parent.GetMessageId()},
	}, nil
}

// threadGone reports whether Slack says parent's thread no longer exists:
// its message was deleted or its channel archived. A lookup that fails
// otherwise (the token lacks channels:history, Slack is slow) says nothing,
// and the caller posts in the thread as it would have.
func (s *Sink) threadGone(ctx context.Context, parent *heraldv1.MessageRef) bool {
	xctx, x := withExchange(ctx)
	_, _, _, err := s.api.GetConversationRepliesContext(xctx, &slack.GetConversationRepliesParameters{
		ChannelID: parent.GetChannelId(), Timestamp: parent.GetMessageId(), Limit: 1,
	})
	if err == nil {
		return false
	}
	var e *Error
	return errors.As(s.classify("lookup", err, x, time.Now()), &e) && threadGone[e.Code]
}

// replyInDigest posts the whole message in the thread of the digest that
// first showed the group: the digest shows other groups too and is never
// edited.
func (s *Sink) replyInDigest(ctx context.Context, r renderer, d Data, digest *heraldv1.MessageRef, mk mark) (sinks.Receipt, error) {
	mk.kind = "reply"
	ch, ts, err := s.post(ctx, digest.GetChannelId(), r.render(d, StyleReply), digest.GetMessageId(), mk)
	if err != nil {
		return sinks.Receipt{}, err
	}
	return sinks.Receipt{
		Parent:  &heraldv1.MessageRef{ChannelId: digest.GetChannelId(), MessageId: digest.GetMessageId(), Digest: true},
		Message: &heraldv1.MessageRef{ChannelId: ch, MessageId: ts, ThreadId: digest.GetMessageId()},
	}, nil
}

// remind posts a short reminder in the group's thread and leaves the
// group's message as it is: it already says what d says.
func (s *Sink) remind(ctx context.Context, r renderer, d Data, parent *heraldv1.MessageRef, mk mark) (sinks.Receipt, error) {
	mk.kind = "reply"
	ch, ts, err := s.post(ctx, parent.GetChannelId(), r.renderReminder(d), parent.GetMessageId(), mk)
	if err != nil {
		return sinks.Receipt{}, err
	}
	return sinks.Receipt{
		Parent:  &heraldv1.MessageRef{ChannelId: parent.GetChannelId(), MessageId: parent.GetMessageId()},
		Message: &heraldv1.MessageRef{ChannelId: ch, MessageId: ts, ThreadId: parent.GetMessageId()},
	}, nil
}

func (s *Sink) postParent(ctx context.Context, r renderer, channel string, d Data, mk mark) (sinks.Receipt, error) {
	mk.kind = "parent"
	ch, ts, err := s.post(ctx, channel, r.render(d, StyleParent), "", mk)
	if err != nil {
		return sinks.Receipt{}, err
	}
	ref := &heraldv1.MessageRef{ChannelId: ch, MessageId: ts}
	return sinks.Receipt{Parent: ref, Message: ref}, nil
}

// post sends m with chat.postMessage, in threadTS's thread when set, and
// returns the channel id and the message's ts. On a retry (mk.retry, or an
// earlier attempt of this sink failed in a way that may have posted) it
// first looks for the message an earlier attempt may have posted, and
// returns that one instead of posting it twice; a channel given by name is
// resolved to its id for that (see searchChannel). When it cannot look, it
// posts.
func (s *Sink) post(ctx context.Context, channel string, m Message, threadTS string, mk mark) (string, string, error) {
	suspect := mk.kind + "/" + mk.id
	if mk.id != "" && (mk.retry || s.maybePosted.has(suspect)) {
		if id := s.searchChannel(ctx, channel); id != "" {
			if ts := s.findPosted(ctx, id, threadTS, mk); ts != "" {
				s.log.LogAttrs(ctx, slog.LevelInfo, "slack message already posted by an earlier attempt",
					slog.String("notification", mk.id), slog.String("channel", id), slog.String("ts", ts))
				s.maybePosted.remove(suspect)
				return id, ts, nil
			}
		}
	}
	opts := []slack.MsgOption{
		slack.MsgOptionText(m.Text, false),
		slack.MsgOptionBlocks(m.Blocks...),
		slack.MsgOptionDisableLinkUnfurl(),
		slack.MsgOptionDisableMediaUnfurl(),
	}
	if mk.id != "" {
		opts = append(opts, slack.MsgOptionMetadata(slack.SlackMetadata{
			EventType:    metaEvent,
			EventPayload: map[string]any{"notification_id": mk.id, "kind": mk.kind},
		}))
	}
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
	}
	if s.cfg.Username != "" {
		opts = append(opts, slack.MsgOptionUsername(s.cfg.Username))
	}
	if s.cfg.IconEmoji != "" {
		opts = append(opts, slack.MsgOptionIconEmoji(s.cfg.IconEmoji))
	}
	xctx, x := withExchange(ctx)
	ch, ts, err := s.api.PostMessageContext(xctx, channel, opts...)
	if err != nil {
		if mk.id != "" && mayHavePosted(err, x) {
			s.maybePosted.add(suspect)
		}
		return "", "", s.classify("chat.postMessage", err, x, time.Now())
	}
	s.maybePosted.remove(suspect)
	s.pace.learn(channel, ch)
	if ts == "" {
		// Without a ts the message cannot be updated or threaded; Slack
		// always sends one, so the server is not behaving like Slack.
		return "", "", &Error{Method: "chat.postMessage", msg: "answer has no message ts"}
	}
	return ch, ts, nil
}

// channelIDLike matches Slack channel ids (public, private, direct).
var channelIDLike = regexp.MustCompile(`^[CGD][A-Z0-9]{6,}$`)

// channelID returns the id of channel when it is one or the sink has seen
// Slack answer with it, else "".
func (s *Sink) channelID(channel string) string {
	if channelIDLike.MatchString(channel) {
		return channel
	}
	return s.pace.id(channel)
}

// lookBack bounds how many recent messages a retry searches.
const lookBack = 100

// findPosted returns the ts of the message of kind mk.kind posted for
// notification mk.id in channelID (in threadTS's thread when set), or ""
// when there is none or it cannot tell: the search needs the
// channels:history scope (groups:history for private channels), and a
// failed search must not keep a notification from being posted.
func (s *Sink) findPosted(ctx context.Context, channelID, threadTS string, mk mark) string {
	xctx, x := withExchange(ctx)
	var (
		msgs []slack.Message
		err  error
	)
	if threadTS != "" {
		msgs, _, _, err = s.api.GetConversationRepliesContext(xctx, &slack.GetConversationRepliesParameters{
			ChannelID: channelID, Timestamp: threadTS, Limit: lookBack, IncludeAllMetadata: true,
		})
	} else {
		var resp *slack.GetConversationHistoryResponse
		resp, err = s.api.GetConversationHistoryContext(xctx, &slack.GetConversationHistoryParameters{
			ChannelID: channelID, Limit: lookBack, IncludeAllMetadata: true,
		})
		if resp != nil {
			msgs = resp.Messages
		}
	}
	if err != nil {
		err = s.classify("lookup", err, x, time.Now())
		s.log.LogAttrs(ctx, slog.LevelDebug, "slack lookup of an earlier attempt failed; posting",
			slog.String("notification", mk.id), slog.String("error", err.Error()))
		return ""
	}
	for _, m := range msgs {
		md := m.Metadata
		if md.EventType != metaEvent || m.Timestamp == threadTS {
			continue
		}
		if id, _ := md.EventPayload["notification_id"].(string); id != mk.id {
			continue
		}
		if kind, _ := md.EventPayload["kind"].(string); kind == mk.kind {
			return m.Timestamp
		}
	}
	return ""
}

// update replaces the parent message's content with m.
func (s *Sink) update(ctx context.Context, parent *heraldv1.MessageRef, m Message) error {
	xctx, x := withExchange(ctx)
	_, _, _, err := s.api.UpdateMessageContext(xctx, parent.GetChannelId(), parent.GetMessageId(),
		slack.MsgOptionText(m.Text, false),
		slack.MsgOptionBlocks(m.Blocks...))
	if err != nil {
		return s.classify("chat.update", err, x, time.Now())
	}
	return nil
}

func (s *Sink) postWebhook(ctx context.Context, channel string, m Message) error {
	msg := &slack.WebhookMessage{
		Channel:   channel,
		Text:      m.Text,
		Blocks:    &slack.Blocks{BlockSet: m.Blocks},
		Username:  s.cfg.Username,
		IconEmoji: s.cfg.IconEmoji,
	}
	f := false
	msg.UnfurlLinks, msg.UnfurlMedia = &f, &f
	xctx, x := withExchange(ctx)
	x.wholeBody = true
	if err := slack.PostWebhookCustomHTTPContext(xctx, s.cfg.WebhookURL.Value(), s.client, msg); err != nil {
		return s.classify("webhook", err, x, time.Now())
	}
	if x.bodyErr != nil {
		// The answer broke off: whether Slack took the message is unknown.
		return s.classify("webhook", x.bodyErr, x, time.Now())
	}
	return nil
}

// pacer keeps posts to one channel at least one pace apart (unless every is
// negative), and holds a channel back while Slack has rate limited it. It never sleeps: it says
// how long to wait.
type pacer struct {
	every time.Duration
	mu    sync.Mutex
	lim   map[string]*rate.Limiter
	until map[string]time.Time
	// alias maps a channel name to the id Slack answered with, so that
	// posts by name and updates by id share one pace.
	alias map[string]string
}

func newPacer(every time.Duration) *pacer {
	return &pacer{every: every, lim: map[string]*rate.Limiter{}, until: map[string]time.Time{}, alias: map[string]string{}}
}

// reserve takes key's slot at now, or returns how long until there is one.
func (p *pacer) reserve(key string, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if id, ok := p.alias[key]; ok {
		key = id
	}
	if u, ok := p.until[key]; ok {
		if now.Before(u) {
			return u.Sub(now)
		}
		delete(p.until, key)
	}
	if p.every < 0 {
		return 0
	}
	l, ok := p.lim[key]
	if !ok {
		l = rate.NewLimiter(rate.Every(p.every), 1)
		p.lim[key] = l
	}
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// peek is reserve without taking the slot.
func (p *pacer) peek(key string, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if id, ok := p.alias[key]; ok {
		key = id
	}
	if u, ok := p.until[key]; ok && now.Before(u) {
		return u.Sub(now)
	}
	if p.every < 0 {
		return 0
	}
	l, ok := p.lim[key]
	if !ok {
		return 0
	}
	tokens := l.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(l.Limit()) * float64(time.Second))
}

// id returns the channel id learnt for name, or "".
func (p *pacer) id(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.alias[name]
}

// block holds key back until t, after Slack said to wait.
func (p *pacer) block(key string, t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if id, ok := p.alias[key]; ok {
		key = id
	}
	if t.After(p.until[key]) {
		p.until[key] = t
	}
}

// learn records that channel name is the channel id. The name's pace
// carries over to the id.
func (p *pacer) learn(name, id string) {
	if name == "" || id == "" || name == id {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.alias[name] == id {
		return
	}
	p.alias[name] = id
	if l, ok := p.lim[name]; ok {
		if _, has := p.lim[id]; !has {
			p.lim[id] = l
		}
		delete(p.lim, name)
	}
	if u, ok := p.until[name]; ok {
		if u.After(p.until[id]) {
			p.until[id] = u
		}
		delete(p.until, name)
	}
}
