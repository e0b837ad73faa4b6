package email

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/email/emailtest"
)

const (
	testUser = "herald"
	testPass = "pw-7c1e9a04d2b8-secret"
)

// fakeSink builds a sink sending to srv with STARTTLS (trusting srv's
// certificate) and auth, as most tests want; edit changes the config.
func fakeSink(t *testing.T, srv *emailtest.Server, edit func(*Config)) *Sink {
	t.Helper()
	c := Config{
		Smarthost: srv.Addr, From: "Herald <herald@example.com>", To: []string{"oncall@example.com"},
		Auth:      Auth{Username: testUser, Password: secret.String(testPass)},
		TLSConfig: TLSConfig{CAFile: srv.CAFile},
		Timeout:   10 * time.Second,
	}
	if edit != nil {
		edit(&c)
	}
	s, err := New("mail", c, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startFake(t *testing.T) *emailtest.Server {
	return emailtest.Start(t, emailtest.Options{STARTTLS: true, Users: map[string]string{testUser: testPass}, RequireAuth: true})
}

func headerOf(t *testing.T, m emailtest.Message) mail.Header {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	return msg.Header
}

func TestThreadOverFake(t *testing.T) {
	srv := startFake(t)
	s := fakeSink(t, srv, nil)
	first := firing()
	update := firing()
	update.Id = "01JUPDATE000000000000000000"
	rec1, err := s.Send(t.Context(), first, sinks.Target{Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rec1.Parent == nil || rec1.Message.GetMessageId() != rec1.Parent.GetMessageId() {
		t.Fatalf("first receipt = %v", rec1)
	}
	rec2, err := s.Send(t.Context(), update, sinks.Target{Parent: rec1.Parent})
	if err != nil {
		t.Fatal(err)
	}
	rec3, err := s.Send(t.Context(), resolved(), sinks.Target{Parent: rec2.Parent})
	if err != nil {
		t.Fatal(err)
	}
	if rec2.Parent != rec1.Parent || rec3.Parent != rec1.Parent || rec3.Message.GetThreadId() != rec1.Parent.GetMessageId() {
		t.Errorf("later receipts do not keep the group's first message: %v / %v", rec2, rec3)
	}
	msgs := srv.Messages()
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3", len(msgs))
	}
	root := "<" + rec1.Parent.GetMessageId() + ">"
	for i, m := range msgs {
		h := headerOf(t, m)
		if !m.TLS || m.User != testUser || m.From != "herald@example.com" || len(m.To) != 1 || m.To[0] != "oncall@example.com" {
			t.Errorf("message %d: tls %v user %q from %q to %v", i, m.TLS, m.User, m.From, m.To)
		}
		if i == 0 {
			if h.Get("Message-Id") != root || h.Get("In-Reply-To") != "" {
				t.Errorf("first message: Message-ID %q In-Reply-To %q", h.Get("Message-Id"), h.Get("In-Reply-To"))
			}
			continue
		}
		if h.Get("In-Reply-To") != root || h.Get("References") != root || h.Get("Message-Id") == root {
			t.Errorf("message %d: Message-ID %q In-Reply-To %q References %q, want replies to %s",
				i, h.Get("Message-Id"), h.Get("In-Reply-To"), h.Get("References"), root)
		}
	}
	if !strings.HasPrefix(root, "<herald-") || !strings.HasSuffix(root, "-01JCONFORMANCE0000000000000@example.com>") {
		t.Errorf("root Message-ID %s", root)
	}
}

func TestRedeliveryOfRootIsRoot(t *testing.T) {
	srv := startFake(t)
	s := fakeSink(t, srv, nil)
	rec, err := s.Send(t.Context(), firing(), sinks.Target{})
	if err != nil {
		t.Fatal(err)
	}
	// The same notification again, with its own message as the parent.
	if _, err := s.Send(t.Context(), firing(), sinks.Target{Parent: rec.Parent}); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	h0, h1 := headerOf(t, msgs[0]), headerOf(t, msgs[1])
	if h1.Get("In-Reply-To") != "" || h0.Get("Message-Id") != h1.Get("Message-Id") {
		t.Errorf("redelivery: Message-ID %q vs %q, In-Reply-To %q", h0.Get("Message-Id"), h1.Get("Message-Id"), h1.Get("In-Reply-To"))
	}
}

// TestLostAnswerSendsTwice shows SMTP's lack of idempotency: the server
// took the message but its answer was lost, so the retry sends it again,
// with the same Message-ID.
func TestLostAnswerSendsTwice(t *testing.T) {
	srv := startFake(t)
	s := fakeSink(t, srv, func(c *Config) { c.Timeout = 300 * time.Millisecond })
	srv.Drop(emailtest.StageData)
	_, err := s.Send(t.Context(), firing(), sinks.Target{})
	if sinks.Classify(err) != sinks.ClassRetryable {
		t.Fatalf("lost answer: class %s (%v), want retryable", sinks.Classify(err), err)
	}
	srv.Heal()
	if _, err := s.Send(t.Context(), firing(), sinks.Target{Attempt: 2}); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 2 || headerOf(t, msgs[0]).Get("Message-Id") != headerOf(t, msgs[1]).Get("Message-Id") {
		t.Fatalf("want the message twice with one Message-ID, got %d", len(msgs))
	}
}

func TestRouteChannelReplacesTo(t *testing.T) {
	srv := startFake(t)
	s := fakeSink(t, srv, nil)
	if _, err := s.Send(t.Context(), firing(), sinks.Target{Channel: "DBA <dba@example.com>, db-lead@example.com"}); err != nil {
		t.Fatal(err)
	}
	m := srv.Messages()[0]
	if strings.Join(m.To, ",") != "dba@example.com,db-lead@example.com" {
		t.Errorf("envelope to %v", m.To)
	}
	if got := headerOf(t, m).Get("To"); got != `"DBA" <dba@example.com>, <db-lead@example.com>` {
		t.Errorf("To: %s", got)
	}
	_, err := s.Send(t.Context(), firing(), sinks.Target{Channel: "#alerts-critical"})
	if sinks.Classify(err) != sinks.ClassPermanent {
		t.Errorf("channel that is no address: %v", err)
	}
}

func TestRecipientRefusedOthersGet(t *testing.T) {
	srv := startFake(t)
	srv.Reject("gone@example.com", 550, "5.1.1 Mailbox unavailable")
	s := fakeSink(t, srv, func(c *Config) { c.To = []string{"gone@example.com", "oncall@example.com"} })
	if _, err := s.Send(t.Context(), firing(), sinks.Target{}); err != nil {
		t.Fatal(err)
	}
	if m := srv.Messages(); len(m) != 1 || strings.Join(m[0].To, ",") != "oncall@example.com" {
		t.Errorf("messages %v", m)
	}
}

func TestLoginMechanism(t *testing.T) {
	srv := emailtest.Start(t, emailtest.Options{STARTTLS: true, Users: map[string]string{testUser: testPass}, Mechanisms: []string{"LOGIN"}, RequireAuth: true})
	s := fakeSink(t, srv, nil)
	if _, err := s.Send(t.Context(), firing(), sinks.Target{}); err != nil {
		t.Fatal(err)
	}
	if m := srv.Messages(); len(m) != 1 || m[0].User != testUser {
		t.Errorf("messages %v", m)
	}
}

func TestImplicitTLS(t *testing.T) {
	srv := emailtest.Start(t, emailtest.Options{Implicit: true, Users: map[string]string{testUser: testPass}, RequireAuth: true})
	s := fakeSink(t, srv, func(c *Config) { c.TLS = TLSImplicit })
	if _, err := s.Send(t.Context(), firing(), sinks.Target{}); err != nil {
		t.Fatal(err)
	}
	if m := srv.Messages(); len(m) != 1 || !m[0].TLS {
		t.Errorf("messages %v", m)
	}
}

func TestHelloName(t *testing.T) {
	srv := startFake(t)
	s := fakeSink(t, srv, func(c *Config) { c.Hello = "herald.example.com" })
	if _, err := s.Send(t.Context(), firing(), sinks.Target{}); err != nil {
		t.Fatal(err)
	}
	if m := srv.Messages(); m[0].Hello != "herald.example.com" {
		t.Errorf("hello %q", m[0].Hello)
	}
}

func TestAuthNeverInPlainText(t *testing.T) {
	// The server offers AUTH without TLS; the sink (tls: none and
	// insecure_skip_tls) is the only way to send the password in clear.
	srv := emailtest.Start(t, emailtest.Options{Users: map[string]string{testUser: testPass}, AllowInsecureAuth: true})
	_, err := New("mail", Config{Smarthost: srv.Addr, From: "h@example.com", To: []string{"o@example.com"}, TLS: TLSNone,
		Auth: Auth{Username: testUser, Password: secret.String(testPass)}}, sinks.Deps{})
	if err == nil || !strings.Contains(err.Error(), "insecure_skip_tls") {
		t.Fatalf("New = %v, want the plain-text auth refused", err)
	}
	s := fakeSink(t, srv, func(c *Config) { c.TLS, c.InsecureSkipTLS, c.TLSConfig = TLSNone, true, TLSConfig{} })
	if _, err := s.Send(t.Context(), firing(), sinks.Target{}); err != nil {
		t.Fatal(err)
	}
	if m := srv.Messages(); len(m) != 1 || m[0].TLS || m[0].User != testUser {
		t.Errorf("messages %v", m)
	}
}

func TestTimeoutBoundsSend(t *testing.T) {
	srv := startFake(t)
	srv.Hang(emailtest.StageMail)
	s := fakeSink(t, srv, func(c *Config) { c.Timeout = 200 * time.Millisecond })
	start := time.Now()
	_, err := s.Send(t.Context(), firing(), sinks.Target{})
	if sinks.Classify(err) != sinks.ClassRetryable || time.Since(start) > 5*time.Second {
		t.Errorf("err = %v after %v", err, time.Since(start))
	}
}

func TestNilNotification(t *testing.T) {
	srv := startFake(t)
	if _, err := fakeSink(t, srv, nil).Send(t.Context(), nil, sinks.Target{}); sinks.Classify(err) != sinks.ClassPermanent {
		t.Errorf("err = %v", err)
	}
}

// TestWireOverFake sends every golden case through the fake server, which
// checks line lengths, line ends and the required header fields, and
// checks what arrived decodes to what was rendered.
func TestWireOverFake(t *testing.T) {
	srv := startFake(t)
	s := fakeSink(t, srv, nil)
	for i, c := range renderCases() {
		if _, err := s.Send(t.Context(), c.n, sinks.Target{Route: "ops"}); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		r, _ := renderWith(defaultTemplates, renderData(c.n, sinks.Target{Route: "ops"}, false))
		checkWire(t, srv.Messages()[i].Data, r)
	}
}

func TestBadParentStartsThread(t *testing.T) {
	srv := startFake(t)
	s := fakeSink(t, srv, nil)
	parent := &heraldv1.MessageRef{MessageId: "x@y>\r\nBcc: evil@example.com"}
	rec, err := s.Send(t.Context(), firing(), sinks.Target{Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	h := headerOf(t, srv.Messages()[0])
	if h.Get("In-Reply-To") != "" || h.Get("Bcc") != "" || rec.Parent == parent {
		t.Errorf("In-Reply-To %q Bcc %q receipt %v", h.Get("In-Reply-To"), h.Get("Bcc"), rec)
	}
}
