// Package webhook is herald's generic sink: it POSTs each notification as
// JSON to one URL, for receivers such as an on-call tool, a ticketing
// system or a service of one's own. The body is herald's versioned schema
// (Payload) or the output of a user's template; requests carry an
// Idempotency-Key that is the same on every attempt, and, with a shared
// secret, a Stripe-style HMAC signature that receivers check with Verify.
package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
)

// Sink POSTs notifications to one webhook receiver. It is safe for
// concurrent use. It implements sinks.Sink.
type Sink struct {
	name    string
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	secrets []string
	tmpl    *template.Template // nil: the default Payload
	// routeTmpl caches per-route body templates by path (a
	// *template.Template, or nil when the file is unusable).
	routeTmpl sync.Map
	now       func() time.Time
}

var _ sinks.Sink = (*Sink)(nil)

// Limits of what the sink reads and reports.
const (
	// defaultThrottle is the wait of a 429 without Retry-After.
	defaultThrottle = 10 * time.Second
	// maxThrottle caps the wait a receiver can ask for.
	maxThrottle = time.Hour
	// maxAnswer is the most of an answer's body the sink reads.
	maxAnswer = 64 << 10
	// maxReason is the most of an answer's text an error quotes.
	maxReason = 200
	// maxMessageID is the longest message_id taken from an answer.
	maxMessageID = 256
)

// ErrRedirect is in the permanent error of a Send the receiver answered
// with a redirect: the sink does not follow redirects, which would send
// the body, and its credentials, to another address.
var ErrRedirect = errors.New("the receiver answered with a redirect, which herald does not follow; set url to the final address")

// New builds the sink named name. cfg must have passed Validate (New calls
// it again, so defaults are applied either way).
func New(name string, cfg Config, deps sinks.Deps) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webhook sink %q: %w", name, err)
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
		now:     time.Now,
	}
	if cfg.Template != "" {
		t, err := ParseTemplateFile(cfg.Template)
		if err != nil {
			return nil, fmt.Errorf("webhook sink %q: template: %w", name, err)
		}
		s.tmpl = t
	}
	return s, nil
}

// noRedirect keeps the client from following redirects.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Name is the configured name of the sink.
func (s *Sink) Name() string { return s.name }

// IdempotencyKey is the Idempotency-Key of n's requests: its id, or, for a
// notification herald did not store, a digest of its content. It is the
// same on every attempt.
func IdempotencyKey(n *heraldv1.Notification) string {
	if n.GetId() != "" {
		return n.GetId()
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(n)
	sum := sha256.Sum256(b)
	return fmt.Sprintf("content-%x", sum[:16])
}

// Send POSTs n in one attempt. A 2xx answer is a delivery; its receipt
// names the message the receiver reported (an answer {"message_id": …})
// or, failing that, the notification's id, and keeps the group's earlier
// message as its parent.
func (s *Sink) Send(ctx context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
	if n == nil {
		return sinks.Receipt{}, sinks.Permanent(errors.New("webhook: nil notification"))
	}
	if err := ctx.Err(); err != nil {
		return sinks.Receipt{}, err
	}
	body, err := s.body(ctx, n, to)
	if err != nil {
		return sinks.Receipt{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	key := IdempotencyKey(n)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL.Value(), bytes.NewReader(body))
	if err != nil {
		return sinks.Receipt{}, sinks.Permanent(errors.New("webhook: invalid request (check url)"))
	}
	s.setHeaders(req, body, key, max(to.Attempt, 1))
	resp, err := s.client.Do(req)
	if err != nil {
		return sinks.Receipt{}, s.transportFailure(ctx, err)
	}
	defer resp.Body.Close()
	answer, rerr := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return sinks.Receipt{}, s.statusError(resp, answer)
	}
	if rerr != nil {
		// A 2xx was received: the receiver has the notification even if
		// its answer was cut. The message id may be lost, nothing else.
		s.log.WarnContext(ctx, "could not read the receiver's answer after a 2xx; counted as delivered",
			"notification", n.GetId(), "error", s.redact(rerr.Error()))
	}
	id := messageID(answer, "")
	if id == "" {
		// The receiver keeps no message herald could refer to: no parent,
		// so a group that reached this sink as a fallback goes back to the
		// head of its chain.
		return sinks.Receipt{Message: &heraldv1.MessageRef{ChannelId: to.Channel, MessageId: key}}, nil
	}
	msg := &heraldv1.MessageRef{ChannelId: to.Channel, MessageId: id}
	parent := msg
	if to.Parent.GetMessageId() != "" {
		parent = to.Parent
	}
	return sinks.Receipt{Parent: parent, Message: msg}, nil
}

// body renders the request body: the default Payload, or the body template
// (the route's, else the sink's). A template that fails is a permanent
// error.
func (s *Sink) body(ctx context.Context, n *heraldv1.Notification, to sinks.Target) ([]byte, error) {
	t := s.template(ctx, to)
	if t == nil {
		b, err := NewPayload(n, to, s.cfg.MaxAlerts).Marshal()
		if err != nil {
			return nil, sinks.Permanent(fmt.Errorf("webhook: encoding the body: %w", err))
		}
		return b, nil
	}
	b, err := executeBody(t, newTemplateData(n, to, s.cfg.MaxAlerts))
	if err != nil {
		return nil, sinks.Permanent(fmt.Errorf("webhook: body template: %w", err))
	}
	return b, nil
}

// template is the route's body template for this sink, else the sink's
// own (nil: the default Payload). A route's file that cannot be used is
// logged once and the sink's own is used: alerts must go out.
func (s *Sink) template(ctx context.Context, to sinks.Target) *template.Template {
	if to.Template == "" {
		return s.tmpl
	}
	if t, ok := s.routeTmpl.Load(to.Template); ok {
		if t := t.(*template.Template); t != nil {
			return t
		}
		return s.tmpl
	}
	t, err := ParseTemplateFile(to.Template)
	if err != nil {
		s.log.ErrorContext(ctx, "route body template unusable; using the sink's body", "route", to.Route, "file", to.Template, "error", err)
	}
	s.routeTmpl.Store(to.Template, t)
	if t == nil {
		return s.tmpl
	}
	return t
}

// setHeaders sets the configured headers, then herald's own, which win.
func (s *Sink) setHeaders(req *http.Request, body []byte, key string, attempt int) {
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "herald")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderIdempotencyKey, key)
	req.Header.Set(HeaderAttempt, strconv.Itoa(attempt))
	switch {
	case s.cfg.BearerToken.IsSet():
		req.Header.Set("Authorization", "Bearer "+s.cfg.BearerToken.Value())
	case s.cfg.BasicAuth != nil:
		req.SetBasicAuth(s.cfg.BasicAuth.Username, s.cfg.BasicAuth.Password.Value())
	}
	if s.cfg.HMACSecret.IsSet() {
		now := s.now()
		req.Header.Set(HeaderSignature, Sign(s.cfg.HMACSecret.Value(), body, now))
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	}
}

// messageID is the message_id of a JSON answer {"message_id": "…"}, else
// fallback.
func messageID(answer []byte, fallback string) string {
	var a struct {
		MessageID any `json:"message_id"`
	}
	dec := json.NewDecoder(bytes.NewReader(answer))
	dec.UseNumber()
	if dec.Decode(&a) != nil {
		return fallback
	}
	switch v := a.MessageID.(type) {
	case string:
		if v != "" && len(v) <= maxMessageID && validHeaderValue(v) {
			return v
		}
	case json.Number:
		if len(v) <= maxMessageID {
			return v.String()
		}
	}
	return fallback
}

// statusError classifies a non-2xx answer: 408, 409, 425, 5xx retryable;
// 429 (and 503 with Retry-After) throttled; 3xx and other 4xx permanent.
// Its text holds the status and the start of the answer, redacted.
func (s *Sink) statusError(resp *http.Response, answer []byte) error {
	code := resp.StatusCode
	reason := shortText(s.redact(strings.ToValidUTF8(string(answer), "\uFFFD")), maxReason)
	serr := &sinks.StatusError{StatusCode: code, Reason: reason}
	wait, hasWait := sinks.ParseRetryAfter(resp.Header.Get("Retry-After"), s.now())
	switch {
	case code == http.StatusTooManyRequests:
		if !hasWait {
			wait = defaultThrottle
		}
		return sinks.Throttled(fmt.Errorf("webhook: %w", serr), min(wait, maxThrottle))
	case code == http.StatusServiceUnavailable && hasWait:
		return sinks.Throttled(fmt.Errorf("webhook: %w", serr), min(wait, maxThrottle))
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code >= 500:
		return fmt.Errorf("webhook: %w", serr)
	case code == http.StatusConflict:
		// The Idempotency-Key draft answers a retry that arrives while the
		// first attempt is still being processed with 409: wait and retry.
		return fmt.Errorf("webhook: %w", serr)
	case code >= 300 && code < 400:
		return sinks.Permanent(fmt.Errorf("webhook: %w%s: %w", serr, s.redirectTarget(resp), ErrRedirect))
	case code >= 400:
		return sinks.Permanent(fmt.Errorf("webhook: %w", serr))
	}
	// 1xx is no delivery: retry.
	return fmt.Errorf("webhook: %w", serr)
}

// redirectTarget says where a redirect pointed, scheme and host only
// (its path may hold the credential of the URL), or "".
func (s *Sink) redirectTarget(resp *http.Response) string {
	loc, err := resp.Location()
	if err != nil || loc.Host == "" {
		return ""
	}
	return " to " + s.redact(loc.Scheme+"://"+loc.Host)
}

// transportError is a failure to get an answer at all. Its text never
// holds the request URL (Go's *url.Error does).
type transportError struct {
	msg string
	err error
}

func (e *transportError) Error() string { return "webhook: " + e.msg }
func (e *transportError) Unwrap() error { return e.err }

// transportFailure turns a failed round trip into a retryable error that
// wraps the context's error when the context ended.
func (s *Sink) transportFailure(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return &transportError{msg: cerr.Error(), err: cerr}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &transportError{msg: shortText(s.redact(err.Error()), 300), err: err}
}

// redact replaces every configured secret by "<secret>".
func (s *Sink) redact(text string) string {
	for _, sec := range s.secrets {
		text = strings.ReplaceAll(text, sec, "<secret>")
	}
	return text
}

// secretsOf lists what redact removes, longest first: the URL, its path,
// query and query values, the bearer token, the password (and the basic
// credentials as sent), the HMAC secret and the header values, each also
// query- and path-escaped.
func secretsOf(c Config) []string {
	var out []string
	add := func(v string) {
		if len(v) >= 4 {
			out = append(out, v, url.QueryEscape(v), url.PathEscape(v))
		}
	}
	add(c.URL.Value())
	if u, err := url.Parse(c.URL.Value()); err == nil {
		if len(u.Path) > 1 {
			add(u.Path)
			add(u.EscapedPath())
		}
		add(u.RawQuery)
		for _, vs := range u.Query() {
			for _, v := range vs {
				add(v)
			}
		}
	}
	add(c.BearerToken.Value())
	add(c.HMACSecret.Value())
	if c.BasicAuth != nil {
		add(c.BasicAuth.Password.Value())
		// The Authorization header a careless server may echo back.
		add(base64.StdEncoding.EncodeToString([]byte(c.BasicAuth.Username + ":" + c.BasicAuth.Password.Value())))
	}
	for _, v := range c.Headers {
		add(v)
	}
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out)
}

// shortText keeps the first max bytes of s on one line, at a rune
// boundary.
func shortText(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= max {
		return s
	}
	cut := 0
	for i := range s {
		if i > max {
			break
		}
		cut = i
	}
	return s[:cut] + "…"
}
