package email

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/email/emailtest"
	"github.com/herald-notify/herald/sinks/sinktest"
)

// mailpit is a real SMTP server (github.com/axllent/mailpit) run for one
// test, read back through its HTTP API.
type mailpit struct {
	smtp string // host:port
	api  string // http://host:port
}

// startMailpit runs .tools/bin/mailpit (scripts/install-mailpit.sh) on
// free loopback ports with args added. Without the binary the test is
// skipped, or fails in CI (testutil.Missing).
func startMailpit(t *testing.T, args ...string) *mailpit {
	t.Helper()
	bin := filepath.Join(repoRoot(t), ".tools", "bin", "mailpit")
	if _, err := os.Stat(bin); err != nil {
		testutil.Missing(t, "mailpit not found: "+err.Error(), "run scripts/install-mailpit.sh or make tools")
	}
	m := &mailpit{smtp: testutil.FreeAddr(t)}
	httpAddr := testutil.FreeAddr(t)
	m.api = "http://" + httpAddr
	dir := t.TempDir()
	cmd := exec.Command(bin, append([]string{
		"--smtp", m.smtp, "--listen", httpAddr,
		"--database", filepath.Join(dir, "mailpit.db"),
		"--disable-version-check", "--smtp-disable-rdns", "--quiet",
	}, args...)...)
	cmd.Stdout = testutil.LogWriter(t, "mailpit: ")
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	testutil.Eventually(t, 20*time.Second, "mailpit answers", func() bool {
		select {
		case <-exited:
			t.Fatal("mailpit exited")
		default:
		}
		var l messageList
		return m.get("/api/v1/messages", &l) == nil
	})
	return m
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func (m *mailpit) get(path string, v any) error {
	resp, err := http.Get(m.api + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

type messageList struct {
	Total    int `json:"total"`
	Messages []struct {
		ID        string `json:"ID"`
		MessageID string `json:"MessageID"`
	} `json:"messages"`
}

type mpAddress struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

// mpMessage is what GET /api/v1/message/{ID} answers.
type mpMessage struct {
	ID        string      `json:"ID"`
	MessageID string      `json:"MessageID"`
	From      mpAddress   `json:"From"`
	To        []mpAddress `json:"To"`
	Subject   string      `json:"Subject"`
	Text      string      `json:"Text"`
	HTML      string      `json:"HTML"`
	Username  string      `json:"Username"`
	Headers   map[string][]string
}

// messages returns every message mailpit holds, oldest first, with their
// headers, once it holds want of them.
func (m *mailpit) messages(t *testing.T, want int) []mpMessage {
	t.Helper()
	var l messageList
	testutil.Eventually(t, 10*time.Second, strconv.Itoa(want)+" messages in mailpit", func() bool {
		return m.get("/api/v1/messages", &l) == nil && l.Total >= want
	})
	var out []mpMessage
	for i := len(l.Messages) - 1; i >= 0; i-- { // the list is newest first
		var msg mpMessage
		if err := m.get("/api/v1/message/"+url.PathEscape(l.Messages[i].ID), &msg); err != nil {
			t.Fatal(err)
		}
		if err := m.get("/api/v1/message/"+url.PathEscape(l.Messages[i].ID)+"/headers", &msg.Headers); err != nil {
			t.Fatal(err)
		}
		out = append(out, msg)
	}
	return out
}

func mailpitSink(t *testing.T, m *mailpit, edit func(*Config)) *Sink {
	t.Helper()
	c := Config{Smarthost: m.smtp, From: "Herald Alerts <herald@example.com>", To: []string{"oncall@example.com", "dba@example.com"}, TLS: TLSNone}
	if edit != nil {
		edit(&c)
	}
	s, err := New("mail", c, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMailpitThread sends firing → update → resolved of one group through
// a real SMTP server and reads back what arrived.
func TestMailpitThread(t *testing.T) {
	m := startMailpit(t)
	s := mailpitSink(t, m, nil)
	update := firing()
	update.Id = "01JUPDATE000000000000000000"
	update.Alerts = append(update.Alerts, manyAlerts(2).Alerts...)
	rec, err := s.Send(t.Context(), firing(), sinks.Target{Route: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(t.Context(), update, sinks.Target{Route: "ops", Parent: rec.Parent}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(t.Context(), resolved(), sinks.Target{Route: "ops", Parent: rec.Parent}); err != nil {
		t.Fatal(err)
	}
	msgs := m.messages(t, 3)
	if len(msgs) != 3 {
		t.Fatalf("%d messages", len(msgs))
	}
	wantSubjects := []string{
		"🔴 [FIRING:1] DiskFull on db-1 (critical)",
		"🔴 [FIRING:3] DiskFull on db-1 (critical)",
		"✅ [RESOLVED] DiskFull on db-1 (critical)",
	}
	root := rec.Parent.GetMessageId()
	for i, msg := range msgs {
		if msg.Subject != wantSubjects[i] {
			t.Errorf("message %d: subject %q, want %q", i, msg.Subject, wantSubjects[i])
		}
		if msg.From.Address != "herald@example.com" || msg.From.Name != "Herald Alerts" || len(msg.To) != 2 {
			t.Errorf("message %d: from %v to %v", i, msg.From, msg.To)
		}
		if !strings.Contains(msg.Text, "DiskFull on db-1") || !strings.Contains(msg.HTML, "<strong>DiskFull on db-1</strong>") {
			t.Errorf("message %d: parts do not show the title:\n%s\n%s", i, msg.Text, msg.HTML)
		}
		h := msg.Headers
		if i == 0 {
			if msg.MessageID != root || len(h["In-Reply-To"]) != 0 {
				t.Errorf("first message: Message-ID %q, In-Reply-To %v; want %q and none", msg.MessageID, h["In-Reply-To"], root)
			}
			continue
		}
		if msg.MessageID == root || strings.Join(h["In-Reply-To"], "") != "<"+root+">" || strings.Join(h["References"], "") != "<"+root+">" {
			t.Errorf("message %d: Message-ID %q In-Reply-To %v References %v, want replies to <%s>", i, msg.MessageID, h["In-Reply-To"], h["References"], root)
		}
		if strings.Join(h["Auto-Submitted"], "") != "auto-generated" {
			t.Errorf("message %d: Auto-Submitted %v", i, h["Auto-Submitted"])
		}
	}
	if !strings.Contains(msgs[1].Text, "3 alerts: 3 firing, 0 resolved") {
		t.Errorf("update text:\n%s", msgs[1].Text)
	}
	if !strings.Contains(msgs[2].Text, "Ended:   2026-11-27 03:42 UTC") || !strings.Contains(msgs[2].HTML, "#2ea44f") {
		t.Errorf("resolved parts:\n%s\n%s", msgs[2].Text, msgs[2].HTML)
	}
}

func TestMailpitHostile(t *testing.T) {
	m := startMailpit(t)
	s := mailpitSink(t, m, nil)
	if _, err := s.Send(t.Context(), hostile(), sinks.Target{}); err != nil {
		t.Fatal(err)
	}
	msg := m.messages(t, 1)[0]
	for _, bad := range []string{"<script", "<img", "<b>", "<i>", "<style", `href="javascript`, `href="data`, "\u202e"} {
		if strings.Contains(msg.HTML, bad) {
			t.Errorf("HTML part as received holds %q", bad)
		}
	}
	if !strings.Contains(msg.HTML, "&lt;script&gt;alert(1)&lt;/script&gt;") || !strings.Contains(msg.HTML, "db-1&lt;b&gt;@all&lt;/b&gt;") {
		t.Errorf("HTML part does not show the hostile text escaped:\n%s", msg.HTML)
	}
	if !strings.Contains(msg.Subject, "<script>alert(1)</script> = ?utf-8?q?=41?=") && !strings.Contains(msg.Subject, "<script>alert(1)</script> =?utf-8?q?=41?=") {
		t.Errorf("subject %q", msg.Subject)
	}
	if strings.Contains(msg.Subject, "A (critical)") {
		t.Errorf("the fake encoded word in the subject was decoded: %q", msg.Subject)
	}
}

func TestMailpitSTARTTLSAndAuth(t *testing.T) {
	cert, key := emailtest.SelfSigned(t)
	authFile := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(authFile, []byte(testUser+":"+testPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := startMailpit(t, "--smtp-tls-cert", cert, "--smtp-tls-key", key, "--smtp-require-starttls", "--smtp-auth-file", authFile)
	s := mailpitSink(t, m, func(c *Config) {
		c.TLS = TLSStartTLS
		c.TLSConfig = TLSConfig{CAFile: cert, ServerName: "localhost"}
		c.Auth = Auth{Username: testUser, Password: secret.String(testPass)}
	})
	if _, err := s.Send(t.Context(), firing(), sinks.Target{}); err != nil {
		t.Fatal(err)
	}
	if msg := m.messages(t, 1)[0]; msg.Username != testUser {
		t.Errorf("username %q", msg.Username)
	}

	bad := mailpitSink(t, m, func(c *Config) {
		c.TLS = TLSStartTLS
		c.TLSConfig = TLSConfig{CAFile: cert, ServerName: "localhost"}
		c.Auth = Auth{Username: testUser, Password: "wrong-password-secret"}
	})
	_, err := bad.Send(t.Context(), firing(), sinks.Target{})
	if sinks.Classify(err) != sinks.ClassPermanent || !errors.Is(err, ErrAuth) {
		t.Errorf("wrong password: %v (%s), want permanent ErrAuth", err, sinks.Classify(err))
	}
	sinktest.AssertNoSecret(t, err, []string{"wrong-password-secret"})

	untrusted := mailpitSink(t, m, func(c *Config) {
		c.TLS = TLSStartTLS
		c.Auth = Auth{Username: testUser, Password: secret.String(testPass)}
	})
	if _, err := untrusted.Send(t.Context(), firing(), sinks.Target{}); sinks.Classify(err) != sinks.ClassPermanent {
		t.Errorf("self-signed certificate not in ca_file: %v", err)
	}

	plain := mailpitSink(t, m, nil) // tls: none, no auth
	if _, err := plain.Send(t.Context(), firing(), sinks.Target{}); sinks.Classify(err) != sinks.ClassPermanent {
		t.Errorf("plain text to a server requiring STARTTLS: %v (%s)", err, sinks.Classify(err))
	}
}

func TestMailpitRejectsRecipient(t *testing.T) {
	m := startMailpit(t, "--smtp-allowed-recipients", "^oncall@")
	s := mailpitSink(t, m, func(c *Config) { c.To = []string{"nobody@example.com"} })
	_, err := s.Send(t.Context(), firing(), sinks.Target{})
	var e *Error
	if sinks.Classify(err) != sinks.ClassPermanent || !errors.As(err, &e) || e.Code != 550 || e.Stage != StageRcpt {
		t.Errorf("refused recipient: %v (%s)", err, sinks.Classify(err))
	}
	// With one good recipient the others' refusal does not stop it.
	s = mailpitSink(t, m, func(c *Config) { c.To = []string{"nobody@example.com", "oncall@example.com"} })
	if _, err := s.Send(t.Context(), firing(), sinks.Target{}); err != nil {
		t.Fatal(err)
	}
	if msgs := m.messages(t, 1); len(msgs) != 1 {
		t.Errorf("%d messages", len(msgs))
	}
}
