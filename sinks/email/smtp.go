package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
	"unicode"

	"github.com/herald-notify/herald/sinks"
)

// Stages of an SMTP session, as Error.Stage names them.
const (
	StageConnect  = "connect"
	StageTLS      = "tls"
	StageGreeting = "greeting"
	StageHello    = "hello"
	StageStartTLS = "starttls"
	StageAuth     = "auth"
	StageMail     = "mail"
	StageRcpt     = "rcpt"
	StageData     = "data"
)

// Error is an SMTP server's refusal of one command. Its text holds the
// stage, the reply code and the server's own words, shortened and with the
// sink's password taken out.
type Error struct {
	Stage   string
	Code    int
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("email: SMTP %s refused: %d", e.Stage, e.Code)
	}
	return fmt.Sprintf("email: SMTP %s refused: %d %s", e.Stage, e.Code, e.Message)
}

// Temporary reports a 4xx reply: the same command may succeed later.
func (e *Error) Temporary() bool { return e.Code/100 == 4 }

// Is makes errors.Is(err, ErrAuth) report a refused login.
func (e *Error) Is(target error) bool {
	return target == ErrAuth && e.Code/100 == 5 &&
		(e.Stage == StageAuth || e.Code == 530 || e.Code == 538)
}

var (
	// ErrAuth is in the chain of every error that says the sink's
	// credentials or its auth settings are wrong: the server refused the
	// login (535, 534), or wants one the sink did not make (530). The error
	// is permanent and the sink's config needs fixing.
	ErrAuth = errors.New("email: authentication failed")
	// ErrNoStartTLS: tls is starttls and the server does not offer it.
	// Permanent: the sink never sends in plain text unless told to.
	ErrNoStartTLS = errors.New("email: the server does not offer STARTTLS (set tls: implicit for port 465, or tls: none for a plain-text relay)")
	// ErrNoAuthMech: the server offers neither PLAIN nor LOGIN.
	ErrNoAuthMech = errors.New("email: the server offers no PLAIN or LOGIN authentication")
	// ErrPlaintextAuth: a login would go over a connection without TLS.
	ErrPlaintextAuth = errors.New("email: refusing to authenticate without TLS")
)

// refusal is one recipient the server refused for good.
type refusal struct {
	rcpt string
	err  error
}

// deliver runs one SMTP transaction sending msg to rcpts. Recipients the
// server refuses with a 5xx are left out and returned; when it refuses
// them all, or a recipient with a 4xx, nothing is sent and the error is
// that of the first refusal.
func (s *Sink) deliver(ctx context.Context, rcpts []string, msg []byte) (refused []refusal, err error) {
	host, _, _ := net.SplitHostPort(s.cfg.Smarthost)
	conn, err := new(net.Dialer).DialContext(ctx, "tcp", s.cfg.Smarthost)
	if err != nil {
		return nil, s.classify(ctx, StageConnect, err)
	}
	// Every read and write ends with ctx: its end closes the connection
	// under them (so that the error is ctx's), and a deadline a little
	// later is the backstop.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl.Add(time.Second))
	}
	if s.cfg.TLS == TLSImplicit {
		tc := tls.Client(conn, s.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, s.classify(ctx, StageTLS, err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return nil, s.classify(ctx, StageGreeting, err)
	}
	defer c.Close()
	if err := c.Hello(s.cfg.Hello); err != nil {
		return nil, s.classify(ctx, StageHello, err)
	}
	if s.cfg.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return nil, sinks.Permanent(ErrNoStartTLS)
		}
		if err := c.StartTLS(s.tlsConfig()); err != nil {
			return nil, s.classify(ctx, StageStartTLS, err)
		}
	}
	if s.cfg.Auth.Username != "" {
		a, err := s.auth(c)
		if err != nil {
			return nil, err
		}
		if err := c.Auth(a); err != nil {
			return nil, s.classify(ctx, StageAuth, err)
		}
	}
	if err := c.Mail(s.cfg.from.Address); err != nil {
		return nil, s.classify(ctx, StageMail, err)
	}
	accepted := 0
	var firstErr error
	for _, r := range rcpts {
		err := c.Rcpt(r)
		if err == nil {
			accepted++
			continue
		}
		cerr := s.classify(ctx, StageRcpt, err)
		if sinks.Classify(cerr) != sinks.ClassPermanent {
			// A 4xx, or the connection failed: try everyone again later.
			_ = c.Reset()
			return nil, cerr
		}
		refused = append(refused, refusal{rcpt: r, err: cerr})
		if firstErr == nil {
			firstErr = cerr
		}
	}
	if accepted == 0 {
		_ = c.Reset()
		return nil, firstErr
	}
	w, err := c.Data()
	if err != nil {
		return nil, s.classify(ctx, StageData, err)
	}
	if _, err := w.Write(msg); err != nil {
		return nil, s.classify(ctx, StageData, err)
	}
	if err := w.Close(); err != nil {
		return nil, s.classify(ctx, StageData, err)
	}
	// The message is the server's now; a failing QUIT changes nothing.
	_ = c.Quit()
	return refused, nil
}

// auth picks the login mechanism: PLAIN when offered, else LOGIN.
func (s *Sink) auth(c *smtp.Client) (smtp.Auth, error) {
	ok, mechs := c.Extension("AUTH")
	if !ok {
		return nil, sinks.Permanent(fmt.Errorf("%w: the server offers no AUTH", ErrNoAuthMech))
	}
	a := credentials{user: s.cfg.Auth.Username, pass: s.cfg.Auth.Password.Value(), insecure: s.cfg.InsecureSkipTLS}
	for _, m := range strings.Fields(strings.ToUpper(mechs)) {
		if m == "PLAIN" {
			return plainAuth{a}, nil
		}
	}
	for _, m := range strings.Fields(strings.ToUpper(mechs)) {
		if m == "LOGIN" {
			return &loginAuth{credentials: a}, nil
		}
	}
	return nil, sinks.Permanent(fmt.Errorf("%w (it offers %s)", ErrNoAuthMech, clean(mechs, nil)))
}

type credentials struct {
	user, pass string
	insecure   bool
}

func (a credentials) check(si *smtp.ServerInfo) error {
	if !si.TLS && !a.insecure {
		return ErrPlaintextAuth
	}
	return nil
}

// plainAuth is SASL PLAIN (RFC 4616) with an initial response.
type plainAuth struct{ credentials }

func (a plainAuth) Start(si *smtp.ServerInfo) (string, []byte, error) {
	if err := a.check(si); err != nil {
		return "", nil, err
	}
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
}

func (a plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("email: unexpected challenge after AUTH PLAIN")
	}
	return nil, nil
}

// loginAuth is the LOGIN mechanism (draft-murchison-sasl-login): the
// server asks for the user name, then the password.
type loginAuth struct {
	credentials
	step int
}

func (a *loginAuth) Start(si *smtp.ServerInfo) (string, []byte, error) {
	if err := a.check(si); err != nil {
		return "", nil, err
	}
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(challenge []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	a.step++
	prompt := strings.ToLower(string(challenge))
	switch {
	case strings.HasPrefix(prompt, "user"):
		return []byte(a.user), nil
	case strings.HasPrefix(prompt, "pass"):
		return []byte(a.pass), nil
	case a.step == 1:
		return []byte(a.user), nil
	case a.step == 2:
		return []byte(a.pass), nil
	}
	return nil, errors.New("email: unexpected challenge after AUTH LOGIN")
}

// classify turns what a stage of the session returned into a classified,
// secret-free error: the context's error when it ended; reply codes 4xx
// retryable and 5xx permanent; a certificate or TLS protocol mismatch
// permanent; every other network failure retryable.
func (s *Sink) classify(ctx context.Context, stage string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("email: %s: %w", stage, cerr)
	}
	var tpe *textproto.Error
	if errors.As(err, &tpe) {
		e := &Error{Stage: stage, Code: tpe.Code, Message: clean(tpe.Msg, s.secrets)}
		if tpe.Code/100 == 5 {
			return sinks.Permanent(e)
		}
		return e
	}
	switch {
	case errors.Is(err, ErrPlaintextAuth):
		return sinks.Permanent(err)
	case isCertError(err):
		return sinks.Permanent(fmt.Errorf("email: %s: the server's certificate is not trusted: %s", stage, clean(err.Error(), s.secrets)))
	}
	var rhe tls.RecordHeaderError
	if errors.As(err, &rhe) {
		return sinks.Permanent(fmt.Errorf("email: %s: the server does not speak TLS here (check tls and the port)", stage))
	}
	return fmt.Errorf("email: %s: %s", stage, clean(err.Error(), s.secrets))
}

func isCertError(err error) bool {
	var (
		cve *tls.CertificateVerificationError
		uae x509.UnknownAuthorityError
		hne x509.HostnameError
		cie x509.CertificateInvalidError
	)
	return errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &hne) || errors.As(err, &cie)
}

// maxReason is the most of a server's text an error keeps.
const maxReason = 200

// clean makes a server's text fit for an error: one line of printable
// characters, shortened, with every form of the secrets removed.
func clean(s string, secrets []string) string {
	for _, sec := range secrets {
		s = strings.ReplaceAll(s, sec, "<secret>")
	}
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxReason {
		s = strings.ToValidUTF8(s[:maxReason], "") + "…"
	}
	return s
}

// secretForms are the password and the ways it travels in an SMTP
// session, which a careless server might echo: plain, and base64 alone
// (LOGIN) or in a PLAIN response.
func secretForms(a Auth) []string {
	p := a.Password.Value()
	if p == "" {
		return nil
	}
	enc := base64.StdEncoding.EncodeToString
	return []string{
		enc([]byte("\x00" + a.Username + "\x00" + p)),
		enc([]byte(p)),
		p,
	}
}
