// Package email is the email sink: it sends each notification as one
// multipart/alternative message (text and HTML) through an SMTP smarthost,
// threading a group's notifications under the group's first message with
// In-Reply-To and References.
package email

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
)

// Sink sends notifications by email. It is safe for concurrent use; each
// Send opens its own SMTP connection.
type Sink struct {
	name      string
	cfg       Config
	log       *slog.Logger
	tmpl      *Templates
	routeTmpl sync.Map // path → *Templates
	secrets   []string
}

// New builds the sink named name from cfg, which it validates.
func New(name string, cfg Config, deps sinks.Deps) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("email sink %q: %w", name, err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{
		name:    name,
		cfg:     cfg,
		log:     log,
		tmpl:    defaultTemplates,
		secrets: secretForms(cfg.Auth),
	}
	if cfg.Template != "" {
		t, err := ParseTemplateFile(cfg.Template)
		if err != nil {
			return nil, fmt.Errorf("email sink %q: template: %w", name, err)
		}
		s.tmpl = t
	}
	return s, nil
}

// Name is the configured name of the sink.
func (s *Sink) Name() string { return s.name }

// Send sends n as one email in one SMTP transaction. The first
// notification of a group starts a thread: its Message-ID becomes the
// Receipt's Parent. When to.Parent names that message, the email replies
// to it (In-Reply-To, References) so that mail readers show the group's
// notifications, resolved included, as one thread.
//
// SMTP has no idempotency: when the connection fails after the server took
// the message but before its answer arrived, a retry sends it again. The
// Message-ID is the same on every attempt, so readers that drop duplicate
// Message-IDs show it once.
func (s *Sink) Send(ctx context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
	if n == nil {
		return sinks.Receipt{}, sinks.Permanent(errors.New("email: nil notification"))
	}
	if err := ctx.Err(); err != nil {
		return sinks.Receipt{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	m, err := s.compose(ctx, n, to, time.Now())
	if err != nil {
		return sinks.Receipt{}, err
	}
	rcpts, id, parent, msg := m.rcpts, m.id, m.parent, m.msg
	envelope := make([]string, len(rcpts))
	for i, a := range rcpts {
		envelope[i] = a.Address
	}
	refused, err := s.deliver(ctx, envelope, msg)
	if err != nil {
		return sinks.Receipt{}, err
	}
	for _, r := range refused {
		s.log.ErrorContext(ctx, "a recipient was refused; the email went to the others",
			"notification", n.GetId(), "recipient", r.rcpt, "error", r.err)
	}
	self := &heraldv1.MessageRef{ChannelId: strings.Join(envelope, ","), MessageId: id}
	if parent == "" {
		return sinks.Receipt{Parent: self, Message: self}, nil
	}
	self.ThreadId = parent
	return sinks.Receipt{Parent: to.Parent, Message: self}, nil
}

// composed is an email ready to go: its recipients, Message-ID, the
// Message-ID it replies to ("" for a thread's first) and the whole message.
type composed struct {
	rcpts      []*mail.Address
	id, parent string
	msg        []byte
}

// compose writes the message Send sends for n and to, dated date: the
// recipients, the Message-ID, the threading headers, the templates and the
// MIME encoding. Preview shows the same.
func (s *Sink) compose(ctx context.Context, n *heraldv1.Notification, to sinks.Target, date time.Time) (composed, error) {
	rcpts, err := s.recipients(to)
	if err != nil {
		return composed{}, err
	}
	id := messageID(s.name, groupOf(n), notificationKey(n), s.cfg.fromHost)
	parent := to.Parent.GetMessageId()
	switch {
	case parent == id:
		// This notification started the group's thread (a redelivery).
		parent = ""
	case parent != "" && !validMsgID(parent):
		s.log.WarnContext(ctx, "the group's parent is no Message-ID; starting a new thread", "notification", n.GetId())
		parent = ""
	}
	d := renderData(n, to, parent != "")
	content, err := renderWith(s.template(ctx, to), d)
	if err != nil {
		s.log.ErrorContext(ctx, "template failed; email rendered with the defaults", "notification", n.GetId(), "error", err)
	}
	msg := buildMessage(email{
		date: date, from: s.cfg.from, to: rcpts,
		messageID: id, inReplyTo: parent,
		extra:   extraHeaders(s.cfg.Headers, d.Status, d.Severity),
		content: content,
	})
	return composed{rcpts: rcpts, id: id, parent: parent, msg: msg}, nil
}

// validMsgID reports whether id can go between the angle brackets of a
// Message-ID header: printable ASCII, no space or bracket, with an "@".
func validMsgID(id string) bool {
	if len(id) > 250 || !strings.Contains(id, "@") {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '<' || c == '>' {
			return false
		}
	}
	return true
}

// recipients are the route's channel, a comma-separated address list,
// when set, and the configured ones otherwise.
func (s *Sink) recipients(to sinks.Target) ([]*mail.Address, error) {
	if strings.TrimSpace(to.Channel) == "" {
		return s.cfg.to, nil
	}
	as, err := parseAddressList(to.Channel)
	if err != nil {
		return nil, sinks.Permanent(fmt.Errorf("email: route channel: %w", err))
	}
	return as, nil
}

// template is the templates the route chose, or the sink's own.
func (s *Sink) template(ctx context.Context, to sinks.Target) *Templates {
	if to.Template == "" {
		return s.tmpl
	}
	if t, ok := s.routeTmpl.Load(to.Template); ok {
		return t.(*Templates)
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

// groupOf is the key that threads n: its group key, else its id.
func groupOf(n *heraldv1.Notification) string {
	if g := n.GetGroupKey(); g != "" {
		return g
	}
	return notificationKey(n)
}

// notificationKey identifies n across attempts: its id, or a hash of its
// content when it has none.
func notificationKey(n *heraldv1.Notification) string {
	if n.GetId() != "" {
		return n.GetId()
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(n)
	sum := sha256.Sum256(b)
	return fmt.Sprintf("content-%x", sum[:16])
}

// tlsConfig is the TLS client config for the smarthost.
func (s *Sink) tlsConfig() *tls.Config {
	name := s.cfg.TLSConfig.ServerName
	if name == "" {
		name, _, _ = net.SplitHostPort(s.cfg.Smarthost)
	}
	return &tls.Config{
		ServerName:         name,
		RootCAs:            s.cfg.rootCAs,
		InsecureSkipVerify: s.cfg.TLSConfig.InsecureSkipVerify, //nolint:gosec // the operator's choice, warned about
		MinVersion:         tls.VersionTLS12,
	}
}
