// Package emailtest is a fake SMTP server for tests of the email sink and
// of what uses it: a real SMTP protocol implementation
// (github.com/emersion/go-smtp) that records the messages it accepts,
// checks them as a strict receiver would, and can be told to refuse a
// stage of the session with any reply code, to hang, or to drop the
// connection.
//
// What it enforces, and where the rule comes from:
//   - the protocol itself (command order, line length, STARTTLS, AUTH
//     only after TLS unless AllowInsecureAuth): go-smtp, after RFC 5321,
//     RFC 3207 and RFC 4954 section 4 ("a server ... SHOULD NOT advertise
//     ... PLAIN ... unless a strong encryption layer is active");
//   - MAIL refused with 530 5.7.0 before authentication when RequireAuth
//     is set, as RFC 4954 section 6 describes;
//   - messages: CRLF line ends only and lines of at most 998 characters
//     (RFC 5322 section 2.1.1 and 2.3), 7-bit bytes unless the client
//     asked for BODY=8BITMIME (RFC 6152), a header that parses, with the
//     fields RFC 5322 section 3.6 requires (Date, From) and a Message-ID
//     (section 3.6.4: SHOULD; the email sink promises one). Refusals are
//     554 5.6.0, as a strict server (Postfix with strict_rfc821_envelopes,
//     Exchange's header checks) would answer;
//   - size and recipient limits (MaxMessageBytes → 552 5.3.4, MaxRecipients
//     → 452 4.5.3), from go-smtp after RFC 1870 and RFC 5321 4.5.3.1.8.
package emailtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Stages of a session a failure can be injected at.
const (
	StageGreeting = "greeting"
	StageHello    = "hello"
	StageAuth     = "auth"
	StageMail     = "mail"
	StageRcpt     = "rcpt"
	StageData     = "data"
)

// Options shape the fake server.
type Options struct {
	// Users are the accounts AUTH accepts (user → password). Nil: the
	// server offers no AUTH.
	Users map[string]string
	// Mechanisms are the AUTH mechanisms offered; default PLAIN and LOGIN.
	Mechanisms []string
	// STARTTLS offers STARTTLS with a self-signed certificate for
	// "localhost" and 127.0.0.1 (see Server.CAFile).
	STARTTLS bool
	// Implicit speaks TLS from the first byte (port 465 style).
	Implicit bool
	// AllowInsecureAuth offers AUTH without TLS.
	AllowInsecureAuth bool
	// RequireAuth refuses MAIL with 530 5.7.0 until the client logged in.
	RequireAuth bool
	// MaxMessageBytes and MaxRecipients are the server's limits; zero
	// means 10 MiB and 100.
	MaxMessageBytes int64
	MaxRecipients   int
}

// Message is one message the server accepted.
type Message struct {
	Hello string
	User  string // the authenticated user, or ""
	TLS   bool
	From  string
	To    []string
	Data  []byte
}

// failure is an injected answer.
type failure struct {
	err   *smtp.SMTPError
	hang  bool
	close bool
}

// Server is a running fake SMTP server.
type Server struct {
	// Addr is host:port of the listener.
	Addr string
	// CAFile is a PEM file of the certificate the server presents when
	// STARTTLS or Implicit is set; CertPool holds the same certificate.
	CAFile   string
	CertPool *x509.CertPool

	srv     *smtp.Server
	opts    Options
	release chan struct{}

	mu       sync.Mutex
	fail     map[string]failure
	reject   map[string]*smtp.SMTPError
	msgs     []Message
	sessions int
}

// Start starts a fake server on a free loopback port; t's cleanup stops it.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Mechanisms == nil {
		o.Mechanisms = []string{sasl.Plain, sasl.Login}
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 10 << 20
	}
	if o.MaxRecipients == 0 {
		o.MaxRecipients = 100
	}
	s := &Server{opts: o, fail: map[string]failure{}, reject: map[string]*smtp.SMTPError{}, release: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(s.newSession))
	s.srv.Domain = "fake.smtp.test"
	s.srv.AllowInsecureAuth = o.AllowInsecureAuth
	s.srv.MaxMessageBytes = o.MaxMessageBytes
	s.srv.MaxRecipients = o.MaxRecipients
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	if o.STARTTLS || o.Implicit {
		cfg, pool, pemFile := selfSigned(t)
		s.CertPool, s.CAFile = pool, pemFile
		s.srv.TLSConfig = cfg
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.Implicit {
		ln = tls.NewListener(ln, s.srv.TLSConfig)
	}
	s.Addr = ln.Addr().String()
	go func() { _ = s.srv.Serve(&greetingListener{Listener: ln, s: s}) }()
	t.Cleanup(func() {
		close(s.release)
		_ = s.srv.Close()
	})
	return s
}

// Fail makes every later session answer stage with code and text (an
// enhanced code such as "5.7.8" may start the text).
func (s *Server) Fail(stage string, code int, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[stage] = failure{err: smtpError(code, text)}
}

// Hang makes every later session stop answering at stage until the
// server stops; at StageData the message is read (and recorded) first, so
// the client loses the answer to a delivered message.
func (s *Server) Hang(stage string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[stage] = failure{hang: true}
}

// Drop makes every later session close the connection at stage; at
// StageData after recording the message.
func (s *Server) Drop(stage string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[stage] = failure{close: true}
}

// Reject makes RCPT refuse addr with code and text.
func (s *Server) Reject(addr string, code int, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject[strings.ToLower(addr)] = smtpError(code, text)
}

// Heal removes every injected failure and rejection.
func (s *Server) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = map[string]failure{}
	s.reject = map[string]*smtp.SMTPError{}
}

// Messages returns the messages accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Sessions counts the sessions that said hello.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

func smtpError(code int, text string) *smtp.SMTPError {
	e := &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: text}
	if f := strings.SplitN(text, " ", 2); len(f) == 2 {
		var a, b, c int
		if n, _ := fmt.Sscanf(f[0], "%d.%d.%d", &a, &b, &c); n == 3 {
			e.EnhancedCode, e.Message = smtp.EnhancedCode{a, b, c}, f[1]
		}
	}
	return e
}

// at applies the failure injected at stage, if any: it returns the error
// to answer with, or blocks (hang), or closes conn.
func (s *Server) at(stage string, conn net.Conn) error {
	s.mu.Lock()
	f, ok := s.fail[stage]
	s.mu.Unlock()
	switch {
	case !ok:
		return nil
	case f.hang:
		<-s.release
		return smtp.ErrServerClosed
	case f.close:
		_ = conn.Close()
		return errors.New("connection dropped")
	}
	return f.err
}

// greetingListener answers the greeting itself when a failure is injected
// there (go-smtp always greets with 220).
type greetingListener struct {
	net.Listener
	s *Server
}

func (l *greetingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.s.mu.Lock()
		f, ok := l.s.fail[StageGreeting]
		l.s.mu.Unlock()
		switch {
		case !ok:
			return c, nil
		case f.hang:
			go func() { <-l.s.release; _ = c.Close() }()
		case f.close:
			_ = c.Close()
		default:
			go func() {
				fmt.Fprintf(c, "%d %d.%d.%d %s\r\n", f.err.Code, f.err.EnhancedCode[0], f.err.EnhancedCode[1], f.err.EnhancedCode[2], f.err.Message)
				_ = c.Close()
			}()
		}
	}
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	if err := s.at(StageHello, c.Conn()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.sessions++
	s.mu.Unlock()
	_, isTLS := c.TLSConnectionState()
	return &session{s: s, conn: c, msg: Message{Hello: c.Hostname(), TLS: isTLS}}, nil
}

// session is one SMTP session.
type session struct {
	s      *Server
	conn   *smtp.Conn
	msg    Message
	eight  bool
	authed bool
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.Users == nil {
		return nil
	}
	return ss.s.opts.Mechanisms
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if err := ss.s.at(StageAuth, ss.conn.Conn()); err != nil {
		return nil, err
	}
	check := func(user, pass string) error {
		if want, ok := ss.s.opts.Users[user]; !ok || want != pass {
			return smtp.ErrAuthFailed // 535 5.7.8, RFC 4954 section 6
		}
		ss.authed, ss.msg.User = true, user
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return smtp.ErrAuthFailed
			}
			return check(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if err := ss.s.at(StageMail, ss.conn.Conn()); err != nil {
		return err
	}
	if ss.s.opts.RequireAuth && !ss.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	_, isTLS := ss.conn.TLSConnectionState()
	ss.msg.TLS = isTLS
	ss.msg.From = from
	ss.eight = opts != nil && opts.Body == smtp.Body8BitMIME
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.s.at(StageRcpt, ss.conn.Conn()); err != nil {
		return err
	}
	ss.s.mu.Lock()
	rej := ss.s.reject[strings.ToLower(to)]
	ss.s.mu.Unlock()
	if rej != nil {
		return rej
	}
	ss.msg.To = append(ss.msg.To, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := checkMessage(b, ss.eight); err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: err.Error()}
	}
	m := ss.msg
	m.Data = b
	m.To = append([]string(nil), m.To...)
	ss.s.mu.Lock()
	f, failing := ss.s.fail[StageData]
	if !failing || f.hang || f.close {
		// Hang and Drop lose the answer, not the message.
		ss.s.msgs = append(ss.s.msgs, m)
	}
	ss.s.mu.Unlock()
	return ss.s.at(StageData, ss.conn.Conn())
}

func (ss *session) Reset()        { ss.msg = Message{Hello: ss.msg.Hello, User: ss.msg.User} }
func (ss *session) Logout() error { return nil }

// checkMessage applies the message rules listed in the package comment.
func checkMessage(b []byte, eightBit bool) error {
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		return errors.New("the message does not end with CRLF")
	}
	for i, line := range bytes.Split(b, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			return fmt.Errorf("line %d: bare CR or LF", i+1)
		}
		if len(line) > 998 {
			return fmt.Errorf("line %d: longer than 998 characters", i+1)
		}
		if !eightBit {
			for _, c := range line {
				if c >= 0x80 {
					return fmt.Errorf("line %d: 8-bit data without BODY=8BITMIME", i+1)
				}
			}
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("header: %v", err)
	}
	for _, k := range []string{"Date", "From", "Message-Id"} {
		if m.Header.Get(k) == "" {
			return fmt.Errorf("header: no %s field", k)
		}
	}
	if _, err := m.Header.Date(); err != nil {
		return fmt.Errorf("header: Date: %v", err)
	}
	if _, err := m.Header.AddressList("From"); err != nil {
		return fmt.Errorf("header: From: %v", err)
	}
	return nil
}

// loginServer is the server side of the LOGIN mechanism.
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if resp != nil {
			l.user, l.step = string(resp), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.user, string(resp))
}

// selfSigned makes a certificate for localhost and 127.0.0.1, and writes
// it to a PEM file in t's temporary directory.
func selfSigned(t testing.TB) (*tls.Config, *x509.CertPool, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(file, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, pool, file
}

// SelfSigned writes a self-signed certificate for localhost and 127.0.0.1
// and its key as PEM files in t's temporary directory, for real servers
// (mailpit) in tests, and returns their paths.
func SelfSigned(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	_, _, certFile = selfSigned(t)
	return certFile, filepath.Join(filepath.Dir(certFile), "key.pem")
}
