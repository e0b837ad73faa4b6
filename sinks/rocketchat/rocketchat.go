// Package rocketchat is herald's primary sink: it delivers notifications to
// Rocket.Chat, either through the REST API as a bot user (recommended: one
// message per alert group, updated as the group changes, with details in
// its thread, and message ids chosen by herald so a retry never posts twice)
// or through an incoming webhook (post only, paced to the hook's rate
// limit). It renders messages from Go text/template templates, escapes all
// text that comes from alerts, and keeps every message under Rocket.Chat's
// size limit.
package rocketchat

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
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

// Sink delivers notifications to one Rocket.Chat server or incoming hook.
// It is safe for concurrent use. It implements sinks.Sink, sinks.Batcher
// and sinks.Pacer.
type Sink struct {
	name    string
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	apiBase string // REST: <url>/api/v1/
	secrets []string
	r       *renderer
	tmpl    *template.Template

	// rooms caches "#name" -> room id.
	rooms sync.Map
	// routeTmpl caches parsed per-route template files by path.
	routeTmpl sync.Map
	// pace limits webhook posts; blocked holds sends after a rate limit.
	pace    *window
	blocked blockedUntil
	// authLogged is set once a refused credential was logged, until the
	// next success.
	authLogged atomic.Bool
	// ignoredChannels holds the route channels a webhook sink without
	// webhook_override_channel was asked for and said it ignores.
	ignoredChannels sync.Map
}

var (
	_ sinks.Sink    = (*Sink)(nil)
	_ sinks.Batcher = (*Sink)(nil)
	_ sinks.Pacer   = (*Sink)(nil)
)

var (
	// ErrPaced is the cause of the throttle error a webhook Send returns,
	// without a request, when the hook's rate limit has no room left.
	ErrPaced = errors.New("rocketchat webhook: rate limit reached, waiting for the window to move")
	// ErrRateLimited is the cause of the throttle error Send returns,
	// without a request, while a rate limit the server reported lasts.
	ErrRateLimited = errors.New("rocketchat: rate limited, waiting for the server's reset")
	// ErrOverrideRefused is in the error of a webhook Send when the sink
	// sends the route's channel (webhook_override_channel: true) and the
	// hook does not allow it. The error is retryable, not permanent: the
	// notification is fine and the hook refuses every post until someone
	// changes the hook or the config, so the notification goes to the
	// chain's fallback and, without one, waits for the fix within its
	// retry budget rather than going to the dead letters at once; and the
	// failures open the sink's circuit breaker, so later notifications go
	// straight to the fallback instead of failing here first.
	ErrOverrideRefused = errors.New(`rocketchat webhook: the hook does not allow overriding its channel ("Override destination channel" is off for the integration in Rocket.Chat), but webhook_override_channel is true`)
)

// New builds the sink named name. cfg must have passed Validate (New calls
// it again, so defaults are applied either way).
func New(name string, cfg Config, deps sinks.Deps) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rocketchat sink %q: %w", name, err)
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
		r:       &renderer{max: cfg.MaxMessageSize, mentions: cfg.Mentions},
		tmpl:    defaultTemplates,
		pace:    newWindow(cfg.WebhookRate.Count, cfg.WebhookRate.Per),
	}
	if cfg.URL != "" {
		s.apiBase = strings.TrimRight(cfg.URL, "/") + "/api/v1/"
	}
	if cfg.Template != "" {
		t, err := ParseTemplateFile(cfg.Template)
		if err != nil {
			return nil, fmt.Errorf("rocketchat sink %q: template: %w", name, err)
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

// Message roles: a notification may post a new parent or a thread reply,
// each with its own id; a digest has one id for its set of notifications.
const (
	roleParent = "parent"
	roleReply  = "reply"
	roleDigest = "digest"
)

// idAlphabet is the alphabet of Rocket.Chat's own ids (Random.id()).
const idAlphabet = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"

// MessageID is the id the sink named sink gives the message of role
// ("parent" or "reply") for the notification with id notificationID. It is
// deterministic, so a retry after a timeout finds or reuses the same
// message instead of posting a second one; it looks like a Rocket.Chat id
// (17 characters of its alphabet, about 98 bits).
func MessageID(sink, notificationID, role string) string {
	sum := sha256.Sum256([]byte("herald\x00" + sink + "\x00" + notificationID + "\x00" + role))
	b := make([]byte, 17)
	for i := range b {
		v := binary.BigEndian.Uint16(sum[i : i+2])
		b[i] = idAlphabet[int(v)%len(idAlphabet)]
	}
	return string(b)
}

// notificationKey is the notification's id, or a digest of its content
// when it has none (a notification herald did not store), so ids stay
// deterministic either way.
func notificationKey(n *heraldv1.Notification) string {
	if n.GetId() != "" {
		return n.GetId()
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(n)
	sum := sha256.Sum256(b)
	return fmt.Sprintf("content-%x", sum[:16])
}

// Send delivers n in one attempt. In REST mode the first notification of a
// group posts a message; when to.Parent names the group's message, Send
// updates its text to the group's current state and replies in its thread,
// or posts a new message if the parent is gone. In webhook mode every
// notification is a new post, refused as throttled (without a request)
// while the hook's rate limit has no room.
func (s *Sink) Send(ctx context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
	if n == nil {
		return sinks.Receipt{}, sinks.Permanent(errors.New("rocketchat: nil notification"))
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
	opts := renderOpts{mention: true, fallbackFrom: to.FallbackFrom, fallbackReason: to.FallbackReason}
	if s.cfg.Mode == ModeWebhook {
		msg := s.render(ctx, t, n, opts)
		return sinks.Receipt{}, s.postWebhook(ctx, msg, to)
	}

	rid, err := s.roomID(ctx, s.channel(to))
	if err != nil {
		return sinks.Receipt{}, err
	}
	if p := to.Parent; p.GetMessageId() != "" {
		if p.GetChannelId() == rid {
			reply := s.updateAndReply
			switch {
			case to.Reminder > 0:
				reply = s.remind
			case p.GetDigest():
				reply = s.replyInDigest
			}
			rec, gone, err := reply(ctx, t, n, to, rid, opts)
			if !gone {
				return rec, err
			}
			s.log.InfoContext(ctx, "the group's message is gone; posting a new one",
				"notification", n.GetId(), "parent", p.GetMessageId())
		} else {
			s.log.InfoContext(ctx, "the group's message is in another room; posting a new one",
				"notification", n.GetId(), "parent", p.GetMessageId())
		}
	}
	po := opts
	po.parent = true
	msg := s.render(ctx, t, n, po)
	ref, err := s.sendOnce(ctx, outMessage{
		ID: MessageID(s.name, notificationKey(n), roleParent), RoomID: rid,
		Msg: msg.Text, Attachments: msg.Attachments,
	}, to.Attempt)
	if err != nil {
		return sinks.Receipt{}, err
	}
	return sinks.Receipt{Parent: ref, Message: ref}, nil
}

// remind replies in the group's thread with a short reminder, leaving the
// group's message as it is: it already says what n says. The mention is
// on the reminders remind_mention_every asks for.
//
// gone reports that the group's message no longer exists in room rid
// (nothing was sent): a reply in its thread would go unseen.
func (s *Sink) remind(ctx context.Context, t *template.Template, n *heraldv1.Notification, to sinks.Target, rid string, opts renderOpts) (rec sinks.Receipt, gone bool, err error) {
	m, err := s.lookup(ctx, to.Parent.GetMessageId())
	if err != nil {
		return sinks.Receipt{}, false, err
	}
	if m == nil || m.Type == "rm" || m.RoomID != rid {
		return sinks.Receipt{}, true, nil
	}
	opts.reply, opts.reminder = true, to.Reminder
	every := s.cfg.RemindMentionEvery[severity.Name(n.GetSeverity())]
	opts.mention = every > 0 && to.Reminder%every == 0
	msg, err := s.r.renderReminder(t, n, opts)
	if err != nil {
		s.log.ErrorContext(ctx, "reminder template failed; its default was used", "error", err)
	}
	ref, err := s.sendOnce(ctx, outMessage{
		ID: MessageID(s.name, notificationKey(n), roleReply), RoomID: rid, ThreadID: to.Parent.GetMessageId(),
		Msg: msg.Text,
	}, to.Attempt)
	if err != nil {
		return sinks.Receipt{}, false, err
	}
	return sinks.Receipt{Parent: &heraldv1.MessageRef{ChannelId: rid, MessageId: to.Parent.GetMessageId()}, Message: ref}, false, nil
}

// replyInDigest replies in the thread of the digest that first showed n's
// group, with the whole message: the digest shows other groups too and is
// never edited. gone reports that the digest no longer exists in room rid
// (nothing was sent).
func (s *Sink) replyInDigest(ctx context.Context, t *template.Template, n *heraldv1.Notification, to sinks.Target, rid string, opts renderOpts) (rec sinks.Receipt, gone bool, err error) {
	digest := to.Parent.GetMessageId()
	m, err := s.lookup(ctx, digest)
	if err != nil {
		return sinks.Receipt{}, false, err
	}
	if m == nil || m.Type == "rm" || m.RoomID != rid {
		return sinks.Receipt{}, true, nil
	}
	opts.reply = true
	msg := s.render(ctx, t, n, opts)
	ref, err := s.sendOnce(ctx, outMessage{
		ID: MessageID(s.name, notificationKey(n), roleReply), RoomID: rid, ThreadID: digest,
		Msg: msg.Text, Attachments: msg.Attachments,
	}, to.Attempt)
	if err != nil {
		return sinks.Receipt{}, false, err
	}
	return sinks.Receipt{Parent: &heraldv1.MessageRef{ChannelId: rid, MessageId: digest, Digest: true}, Message: ref}, false, nil
}

// updateAndReply updates the parent's text and replies in its thread. gone
// reports that the parent no longer exists in room rid (nothing was sent).
func (s *Sink) updateAndReply(ctx context.Context, t *template.Template, n *heraldv1.Notification, to sinks.Target, rid string, opts renderOpts) (rec sinks.Receipt, gone bool, err error) {
	parent := to.Parent
	upd := opts
	upd.update, upd.mention = true, false
	text := s.render(ctx, t, n, upd).Text
	_, err = s.call(ctx, http.MethodPost, "chat.update", nil, updateRequest{RoomID: parent.GetChannelId(), MsgID: parent.GetMessageId(), Text: text})
	if err != nil {
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest || sinks.Classify(err) != sinks.ClassPermanent {
			return sinks.Receipt{}, false, err
		}
		// Rocket.Chat answers 400 both when the message is gone and when it
		// refuses the edit; ask for the message to tell which.
		m, lerr := s.lookup(ctx, parent.GetMessageId())
		if lerr != nil {
			return sinks.Receipt{}, false, lerr
		}
		if m == nil || m.Type == "rm" || m.RoomID != parent.GetChannelId() {
			return sinks.Receipt{}, true, nil
		}
		// The parent exists but cannot be edited (editing disabled, too
		// old, too long): the thread reply still carries the news.
		s.log.WarnContext(ctx, "could not update the group's message; replying in its thread only",
			"notification", n.GetId(), "parent", parent.GetMessageId(), "error", err)
	}
	self := &heraldv1.MessageRef{ChannelId: rid, MessageId: parent.GetMessageId()}
	if parent.GetMessageId() == MessageID(s.name, notificationKey(n), roleParent) {
		// The parent is this very notification's message (a redelivery):
		// the update was all there was to do.
		return sinks.Receipt{Parent: self, Message: self}, false, nil
	}
	rep := opts
	rep.reply = true
	msg := s.render(ctx, t, n, rep)
	ref, err := s.sendOnce(ctx, outMessage{
		ID: MessageID(s.name, notificationKey(n), roleReply), RoomID: rid, ThreadID: parent.GetMessageId(),
		Msg: msg.Text, Attachments: msg.Attachments,
	}, to.Attempt)
	if err != nil {
		return sinks.Receipt{}, false, err
	}
	return sinks.Receipt{Parent: self, Message: ref}, false, nil
}

// sendOnce posts m with chat.sendMessage so that it exists exactly once: on
// a retry it first looks m.ID up, and when the server refuses the post it
// looks again, because Rocket.Chat answers a duplicate _id with a 400 whose
// text is an internal error.
func (s *Sink) sendOnce(ctx context.Context, m outMessage, attempt int) (*heraldv1.MessageRef, error) {
	m.Alias, m.Emoji, m.Avatar = s.cfg.Alias, s.cfg.Emoji, s.cfg.Avatar
	if attempt > 1 {
		found, err := s.lookup(ctx, m.ID)
		if err != nil {
			return nil, err
		}
		if found != nil && found.RoomID == m.RoomID {
			return refOf(found, m), nil
		}
	}
	ar, err := s.call(ctx, http.MethodPost, "chat.sendMessage", nil, sendMessageRequest{Message: m})
	if err == nil {
		return refOf(ar.Message, m), nil
	}
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest && sinks.Classify(err) == sinks.ClassPermanent {
		found, lerr := s.lookup(ctx, m.ID)
		if lerr != nil {
			// Whether the refusal is the duplicate's (the message is
			// there) or the body's is unknown: the lookup decides, as
			// the first request of the next attempt.
			return nil, fmt.Errorf("%v; looking the message up to tell whether it was posted before: %w", ae, lerr)
		}
		if found != nil && found.RoomID == m.RoomID {
			return refOf(found, m), nil
		}
		if ae.ErrorType == "error-invalid-room" && s.forgetRoom(m.RoomID) {
			// The cached room id may be stale (room deleted and made
			// again): forget it, and let the retry look it up anew. A
			// room id the route or the config named stays unknown.
			return nil, ae
		}
	}
	return nil, err
}

// refOf is the reference of a posted message, from the server's copy when
// it sent one.
func refOf(got *inMessage, sent outMessage) *heraldv1.MessageRef {
	ref := &heraldv1.MessageRef{ChannelId: sent.RoomID, MessageId: sent.ID, ThreadId: sent.ThreadID}
	if got != nil {
		if got.ID != "" {
			ref.MessageId = got.ID
		}
		if got.RoomID != "" {
			ref.ChannelId = got.RoomID
		}
		if got.ThreadID != "" {
			ref.ThreadId = got.ThreadID
		}
	}
	return ref
}

// lookup returns the message with id, or nil when Rocket.Chat says it has
// none (chat.getMessage answers a missing message with a bare 400).
func (s *Sink) lookup(ctx context.Context, id string) (*inMessage, error) {
	ar, err := s.call(ctx, http.MethodGet, "chat.getMessage", url.Values{"msgId": {id}}, nil)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest && sinks.Classify(err) == sinks.ClassPermanent {
			return nil, nil
		}
		return nil, err
	}
	if ar.Message == nil || ar.Message.ID == "" {
		return nil, nil
	}
	return ar.Message, nil
}

// channel is the target's channel, or the sink's default.
func (s *Sink) channel(to sinks.Target) string {
	if to.Channel != "" {
		return to.Channel
	}
	return s.cfg.Channel
}

// roomID resolves "#name" to its room id once (rooms.info) and caches it; a
// channel without "#" is taken as a room id.
func (s *Sink) roomID(ctx context.Context, ch string) (string, error) {
	if ch == "" {
		return "", sinks.Permanent(errors.New("rocketchat: no channel: the route names none and the sink has no default"))
	}
	if err := checkChannel(ch); err != nil {
		return "", sinks.Permanent(fmt.Errorf("rocketchat: channel %w", err))
	}
	name, ok := strings.CutPrefix(ch, "#")
	if !ok {
		return ch, nil
	}
	if id, ok := s.rooms.Load(name); ok {
		return id.(string), nil
	}
	ar, err := s.call(ctx, http.MethodGet, "rooms.info", url.Values{"roomName": {name}}, nil)
	if err != nil {
		return "", fmt.Errorf("rocketchat: looking up #%s: %w", name, err)
	}
	if ar.Room == nil || ar.Room.ID == "" {
		return "", fmt.Errorf("rocketchat: looking up #%s: the answer has no room id", name)
	}
	s.rooms.Store(name, ar.Room.ID)
	return ar.Room.ID, nil
}

// forgetRoom drops a cached room id; it reports whether it was cached.
func (s *Sink) forgetRoom(id string) bool {
	found := false
	s.rooms.Range(func(k, v any) bool {
		if v == id {
			s.rooms.Delete(k)
			found = true
		}
		return true
	})
	return found
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
func (s *Sink) render(ctx context.Context, t *template.Template, n *heraldv1.Notification, o renderOpts) rendered {
	msg, err := s.r.render(t, n, o)
	if err != nil {
		s.log.ErrorContext(ctx, "template failed; message rendered with the defaults", "notification", n.GetId(), "error", err)
	}
	return msg
}

// SendBatch posts ns as one digest message (see sinks.Batcher). A batch of
// one is a plain Send. In REST mode the digest's id is derived from the
// set of notification ids, so a retry does not post it twice.
func (s *Sink) SendBatch(ctx context.Context, ns []*heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
	ns = slices.DeleteFunc(slices.Clone(ns), func(n *heraldv1.Notification) bool { return n == nil })
	switch len(ns) {
	case 0:
		return sinks.Receipt{}, nil
	case 1:
		return s.Send(ctx, ns[0], to)
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
	msg, err := s.r.renderDigest(t, ns)
	if err != nil {
		s.log.ErrorContext(ctx, "digest template failed; rendered with the defaults", "error", err)
	}
	if s.cfg.Mode == ModeWebhook {
		return sinks.Receipt{}, s.postWebhook(ctx, msg, to)
	}
	rid, err := s.roomID(ctx, s.channel(to))
	if err != nil {
		return sinks.Receipt{}, err
	}
	ids := make([]string, len(ns))
	for i, n := range ns {
		ids[i] = notificationKey(n)
	}
	slices.Sort(ids)
	ref, err := s.sendOnce(ctx, outMessage{
		ID: MessageID(s.name, strings.Join(ids, ","), roleDigest), RoomID: rid,
		Msg: msg.Text, Attachments: msg.Attachments,
	}, to.Attempt)
	if err != nil {
		return sinks.Receipt{}, err
	}
	// The digest stands for each group it shows that has no message of its
	// own yet: their later notifications reply in its thread.
	return sinks.Receipt{Message: ref, Parent: &heraldv1.MessageRef{ChannelId: ref.GetChannelId(), MessageId: ref.GetMessageId(), Digest: true}}, nil
}

// postWebhook posts msg to the incoming hook, if its rate limit has room.
func (s *Sink) postWebhook(ctx context.Context, msg rendered, to sinks.Target) error {
	if wait := s.pace.reserve(time.Now()); wait > 0 {
		return sinks.Throttled(ErrPaced, wait)
	}
	req := webhookRequest{Text: msg.Text, Attachments: msg.Attachments, Alias: s.cfg.Alias, Emoji: s.cfg.Emoji, Avatar: s.cfg.Avatar}
	if s.cfg.WebhookOverrideChannel {
		req.Channel = s.channel(to)
	} else if to.Channel != "" {
		if _, seen := s.ignoredChannels.LoadOrStore(to.Channel, true); !seen {
			s.log.WarnContext(ctx, "the route's channel is ignored: an incoming webhook posts to its own channel unless webhook_override_channel is true",
				"route", to.Route, "channel", to.Channel)
		}
	}
	_, err := s.call(ctx, http.MethodPost, "webhook", nil, req)
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest && strings.Contains(ae.Reason, "overriding destination channel is disabled") {
		// ae, not err: the refusal is no longer permanent (see
		// ErrOverrideRefused).
		return fmt.Errorf("%w; allow it on the hook, or set webhook_override_channel: false to post to the hook's own channel instead of %s: %w",
			ErrOverrideRefused, req.Channel, ae)
	}
	return err
}

// Wait says how long until the sink may send to the target without being
// throttled (see sinks.Pacer): the rest of a rate limit the server
// reported, and in webhook mode the hook's own window.
func (s *Sink) Wait(to sinks.Target) time.Duration {
	now := time.Now()
	w := s.blocked.wait(now)
	if s.cfg.Mode == ModeWebhook {
		w = max(w, s.pace.peek(now))
	}
	return w
}

// observe learns from every answer: a rate limit blocks later sends until
// its reset, and a refused credential is logged once.
func (s *Sink) observe(ctx context.Context, resp *http.Response, err error) {
	now := time.Now()
	if wait, ok := sinks.ThrottleWait(err); ok {
		s.blocked.until(now.Add(wait))
	} else if resp.Header.Get("X-RateLimit-Remaining") == "0" {
		if ms, perr := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); perr == nil {
			s.blocked.until(time.UnixMilli(ms).Add(time.Millisecond))
		}
	}
	var ae *APIError
	switch {
	case err == nil:
		s.authLogged.Store(false)
	case errors.As(err, &ae) && (ae.StatusCode == http.StatusUnauthorized || ae.StatusCode == http.StatusForbidden):
		if s.authLogged.CompareAndSwap(false, true) {
			s.log.ErrorContext(ctx, "Rocket.Chat refused herald's credentials or permissions; check user_id, token or the hook, and the bot's roles",
				"status", ae.StatusCode, "reason", ae.Reason)
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

// window allows at most count requests in any span of per: a sliding log.
// It is at least as strict as Rocket.Chat's fixed windows, whatever their
// alignment, since each of them is such a span.
type window struct {
	mu    sync.Mutex
	count int
	per   time.Duration
	sent  []time.Time // oldest first, at most count
}

func newWindow(count int, per time.Duration) *window {
	return &window{count: count, per: per}
}

// reserve takes a slot now, or returns how long until one frees.
func (w *window) reserve(now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if d := w.peekLocked(now); d > 0 {
		return d
	}
	w.sent = append(w.sent, now)
	return 0
}

func (w *window) peek(now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peekLocked(now)
}

func (w *window) peekLocked(now time.Time) time.Duration {
	for len(w.sent) > 0 && !now.Before(w.sent[0].Add(w.per)) {
		w.sent = w.sent[1:]
	}
	if len(w.sent) < w.count {
		return 0
	}
	return w.sent[0].Add(w.per).Sub(now)
}
