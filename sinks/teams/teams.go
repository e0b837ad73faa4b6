// Package teams delivers notifications to Microsoft Teams through a Power
// Automate "Workflows" webhook (the trigger "When a Teams webhook request
// is received", usually from the template "Post to a channel when a
// webhook request is received"), as one Adaptive Card per notification.
// The Office 365 connectors' Incoming Webhooks are retired and not
// supported. The caller of a workflow cannot address a card it posted, so
// every notification is a new card and Receipt.Parent is always nil. The
// sink paces itself to the Flow bot's rate limit (sinks.Pacer) and posts a
// backlog as digest cards (sinks.Batcher).
package teams

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/message"
)

// Sink posts cards to one Workflows webhook. It is safe for concurrent
// use. It implements sinks.Sink, sinks.Pacer and sinks.Batcher.
type Sink struct {
	name    string
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	secrets []string
	r       *renderer
	tmpl    *template.Template
	// routeTmpl caches parsed per-route template files by path.
	routeTmpl sync.Map
	// ignoredChannels holds the route channels the sink was asked for and
	// said it ignores.
	ignoredChannels sync.Map
	// pace keeps to cfg.Rate; blocked holds sends back after a 429.
	pace *window
}

var (
	_ sinks.Sink    = (*Sink)(nil)
	_ sinks.Pacer   = (*Sink)(nil)
	_ sinks.Batcher = (*Sink)(nil)
)

// ErrPaced is the cause of the throttle error Send returns, without a
// request, while the sink's rate (see Config.Rate) or a 429's wait has no
// room left.
var ErrPaced = errors.New("teams: rate limit reached, waiting for room")

// New builds the sink named name. cfg must have passed Validate (New calls
// it again, so defaults are applied either way).
func New(name string, cfg Config, deps sinks.Deps) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("teams sink %q: %w", name, err)
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
		secrets: secretsOf(cfg.WebhookURL.Value()),
		r:       &renderer{version: cfg.CardVersion, max: cfg.MaxCardBytes},
		tmpl:    defaultTemplates,
		pace:    &window{count: cfg.Rate.Count, per: cfg.Rate.Per},
	}
	if cfg.Template != "" {
		t, err := ParseTemplateFile(cfg.Template)
		if err != nil {
			return nil, fmt.Errorf("teams sink %q: template: %w", name, err)
		}
		s.tmpl = t
	}
	return s, nil
}

// noRedirect keeps the client from following redirects: a redirected POST
// loses its body, and the signed URL must go nowhere else.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Name is the configured name of the sink.
func (s *Sink) Name() string { return s.name }

// Send posts n as a new card, in one attempt. The workflow posts to the
// channel or chat it was made for: to.Channel cannot choose another, and
// to.Parent is ignored (a workflow can neither edit nor reply).
func (s *Sink) Send(ctx context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
	if n == nil {
		return sinks.Receipt{}, sinks.Permanent(errors.New("teams: nil notification"))
	}
	if err := ctx.Err(); err != nil {
		return sinks.Receipt{}, err
	}
	if to.Channel != "" {
		if _, seen := s.ignoredChannels.LoadOrStore(to.Channel, true); !seen {
			s.log.WarnContext(ctx, "the route's channel is ignored: a Teams workflow posts where it was made to post",
				"route", to.Route, "channel", to.Channel)
		}
	}
	return sinks.Receipt{}, s.deliver(ctx, func(t *template.Template) []byte {
		body, err := s.r.render(t, n, to)
		if err != nil {
			s.log.ErrorContext(ctx, "template failed; card rendered with the defaults", "notification", n.GetId(), "error", err)
		}
		return body
	}, to)
}

// deliver posts the card render makes with the target's template, when
// the sink's pace allows.
func (s *Sink) deliver(ctx context.Context, render func(*template.Template) []byte, to sinks.Target) error {
	if wait := s.pace.reserve(time.Now()); wait > 0 {
		return sinks.Throttled(ErrPaced, wait)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	err := s.post(ctx, render(s.template(ctx, to)))
	if w, ok := sinks.ThrottleWait(err); ok {
		s.pace.block(time.Now().Add(w))
	}
	return err
}

// SendBatch posts ns as one digest card (see sinks.Batcher), in one
// attempt; a batch of one is a plain Send.
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
	return sinks.Receipt{}, s.deliver(ctx, func(t *template.Template) []byte {
		body, err := s.r.renderDigest(t, ns, to)
		if err != nil {
			s.log.ErrorContext(ctx, "digest template failed; card rendered with the defaults", "notifications", len(ns), "error", err)
		}
		return body
	}, to)
}

// Wait says how long until the sink may post without being throttled (see
// sinks.Pacer): the rest of a 429's wait, or until its rate has room.
func (s *Sink) Wait(sinks.Target) time.Duration { return s.pace.peek(time.Now()) }

// window is a sliding window of at most count posts per per, and a time
// before which nothing is posted (after a 429).
type window struct {
	mu      sync.Mutex
	count   int
	per     time.Duration
	sent    []time.Time // oldest first, at most count
	blocked time.Time
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
	if d := w.blocked.Sub(now); d > 0 {
		return d
	}
	for len(w.sent) > 0 && !now.Before(w.sent[0].Add(w.per)) {
		w.sent = w.sent[1:]
	}
	if len(w.sent) < w.count {
		return 0
	}
	return w.sent[0].Add(w.per).Sub(now)
}

// block holds every post back until t.
func (w *window) block(t time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t.After(w.blocked) {
		w.blocked = t
	}
}

// template is the route's template when it names a usable one, else the
// sink's.
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

// maxAnswer bounds how much of an answer is read.
const maxAnswer = 64 << 10

// post sends body and classifies the answer. A workflow's trigger answers
// 202 Accepted with no body once it has queued a run (200 when the flow
// has a Response action); what the run then does is not reported back.
func (s *Sink) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.WebhookURL.Value(), bytes.NewReader(body))
	if err != nil {
		return sinks.Permanent(errors.New("teams: cannot build the request to the webhook URL"))
	}
	// The charset matters: without it the service has been seen to count
	// the body as UTF-16 against its limit.
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := s.client.Do(req)
	if err != nil {
		return s.transportError(ctx, err)
	}
	defer resp.Body.Close()
	answer, rerr := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// The card is queued; a body cut short changes nothing.
		return nil
	}
	if rerr != nil && ctx.Err() != nil {
		return fmt.Errorf("teams: reading the answer (HTTP %d): %w", resp.StatusCode, ctx.Err())
	}
	return s.classify(resp, answer)
}

// transportError is err without the URL that *url.Error carries.
func (s *Sink) transportError(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%v: %w", s.scrub(err.Error()), ctx.Err())
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("teams: POST to the webhook: %w", err)
	}
	return fmt.Errorf("teams: POST to the webhook: %s", s.scrub(err.Error()))
}

// classify turns a non-2xx answer into an error of its class:
//   - 400 (the trigger refused the body, e.g. TriggerInputSchemaMismatch),
//     413 and other 4xx: permanent;
//   - 401/403 (a bad signature, a trigger not open to "Anyone"), 404 (the
//     flow was deleted) and 409 (the flow is turned off): permanent, and
//     the sink is unusable until its config changes (sinks.IsBroken);
//   - 429: throttled for Retry-After, or DefaultThrottleWait without one;
//   - 408, 5xx and 1xx/3xx: retryable.
func (s *Sink) classify(resp *http.Response, answer []byte) error {
	reason := s.reason(answer)
	wait := DefaultThrottleWait
	if resp.StatusCode == http.StatusTooManyRequests {
		if d, ok := sinks.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			wait = d
		}
	}
	err := sinks.ClassifyStatus(resp.StatusCode, reason, wait)
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusConflict {
		// The flow was deleted or turned off: nothing reaches Teams
		// through this sink until it is back or the config changes.
		err = sinks.Broken(err)
	}
	return fmt.Errorf("teams: %w", err)
}

// logicAppsError is the error body of Power Automate and Logic Apps
// triggers: {"error":{"code":"...","message":"..."}}.
type logicAppsError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// reason is a short, secret-free explanation from an error answer.
func (s *Sink) reason(answer []byte) string {
	var e logicAppsError
	if json.Unmarshal(answer, &e) != nil || e.Error.Code == "" && e.Error.Message == "" {
		return ""
	}
	r := strings.TrimSpace(e.Error.Code + ": " + e.Error.Message)
	r = strings.TrimPrefix(strings.TrimSuffix(r, ":"), ": ")
	return message.Shorten(s.scrub(message.Clean(r, false)), 300)
}

// scrub replaces every form of the webhook URL and its signature in s.
func (s *Sink) scrub(str string) string {
	for _, sec := range s.secrets {
		str = strings.ReplaceAll(str, sec, "<secret>")
	}
	return str
}

// secretsOf returns the forms in which the webhook URL's credential can
// appear in an error: the URL, its path and query, the signature, each raw
// and escaped; longest first, so a URL is replaced whole before its parts.
func secretsOf(webhook string) []string {
	var out []string
	add := func(v string) {
		if len(v) >= 4 {
			out = append(out, v, url.QueryEscape(v), url.PathEscape(v))
		}
	}
	add(webhook)
	if u, err := url.Parse(webhook); err == nil {
		add(u.Path)
		add(u.EscapedPath())
		add(u.RawQuery)
		if un, err := url.QueryUnescape(u.RawQuery); err == nil {
			add(un)
		}
		add(u.Query().Get("sig"))
		for _, part := range strings.Split(u.RawQuery, "&") {
			if v, ok := strings.CutPrefix(part, "sig="); ok {
				add(v)
			}
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && len(out[j]) > len(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
