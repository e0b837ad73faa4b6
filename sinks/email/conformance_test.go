package email

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/email/emailtest"
	"github.com/herald-notify/herald/sinks/sinktest"
)

// The HTTP conformance suite (sinktest.Run) does not apply to SMTP; these
// are its parts that do, over the fake SMTP server: replies → class, no
// secret in any error, context cancellation and deadline.

// TestErrorClasses is the email sink's conformance table: SMTP replies and
// connection failures at each stage of a session, and the class of the
// error Send returns. No error may contain the password.
func TestErrorClasses(t *testing.T) {
	type setup func(t *testing.T) (*emailtest.Server, func(*Config))
	fake := func(o emailtest.Options, inject func(*emailtest.Server)) setup {
		return func(t *testing.T) (*emailtest.Server, func(*Config)) {
			if o.Users == nil {
				o.Users = map[string]string{testUser: testPass}
			}
			srv := emailtest.Start(t, o)
			if inject != nil {
				inject(srv)
			}
			return srv, nil
		}
	}
	std := emailtest.Options{STARTTLS: true, RequireAuth: true}
	fail := func(stage string, code int, text string) setup {
		return fake(std, func(s *emailtest.Server) { s.Fail(stage, code, text) })
	}
	cases := []struct {
		name    string
		setup   setup
		want    sinks.Class
		wantErr error // in the chain, when set
	}{
		{"sent", fake(std, nil), sinks.ClassNone, nil},
		{"greeting 421", fail(emailtest.StageGreeting, 421, "4.3.2 Service not available"), sinks.ClassRetryable, nil},
		{"greeting 554", fail(emailtest.StageGreeting, 554, "5.3.2 No SMTP service here"), sinks.ClassPermanent, nil},
		{"greeting dropped", fake(std, func(s *emailtest.Server) { s.Drop(emailtest.StageGreeting) }), sinks.ClassRetryable, nil},
		{"hello 451", fail(emailtest.StageHello, 451, "4.3.0 Try later"), sinks.ClassRetryable, nil},
		{"auth 535", fail(emailtest.StageAuth, 535, "5.7.8 Authentication credentials invalid "+testPass), sinks.ClassPermanent, ErrAuth},
		{"auth wrong password", func(t *testing.T) (*emailtest.Server, func(*Config)) {
			srv := emailtest.Start(t, emailtest.Options{STARTTLS: true, Users: map[string]string{testUser: "other"}})
			return srv, nil
		}, sinks.ClassPermanent, ErrAuth},
		{"auth 535 echoes secrets", fail(emailtest.StageAuth, 535, "5.7.8 bad login "+testPass+" "+
			base64.StdEncoding.EncodeToString([]byte("\x00"+testUser+"\x00"+testPass))+" "+base64.StdEncoding.EncodeToString([]byte(testPass))), sinks.ClassPermanent, ErrAuth},
		{"data 451 echoes secrets", fail(emailtest.StageData, 451, "4.3.0 try later "+testPass), sinks.ClassRetryable, nil},
		{"auth 454", fail(emailtest.StageAuth, 454, "4.7.0 Temporary authentication failure"), sinks.ClassRetryable, nil},
		{"mail 530 auth required", func(t *testing.T) (*emailtest.Server, func(*Config)) {
			srv := emailtest.Start(t, emailtest.Options{STARTTLS: true, Users: map[string]string{testUser: testPass}, RequireAuth: true})
			return srv, func(c *Config) { c.Auth = Auth{} }
		}, sinks.ClassPermanent, ErrAuth},
		{"mail 421", fail(emailtest.StageMail, 421, "4.4.5 Too many connections"), sinks.ClassRetryable, nil},
		{"mail 452", fail(emailtest.StageMail, 452, "4.3.1 Insufficient system storage"), sinks.ClassRetryable, nil},
		{"mail 553", fail(emailtest.StageMail, 553, "5.7.1 Sender address rejected"), sinks.ClassPermanent, nil},
		{"rcpt 450", fail(emailtest.StageRcpt, 450, "4.2.1 Mailbox busy"), sinks.ClassRetryable, nil},
		{"rcpt 451", fail(emailtest.StageRcpt, 451, "4.7.1 Greylisted, try again"), sinks.ClassRetryable, nil},
		{"rcpt 550 all", fail(emailtest.StageRcpt, 550, "5.1.1 Mailbox unavailable"), sinks.ClassPermanent, nil},
		{"rcpt 553", fail(emailtest.StageRcpt, 553, "5.1.3 Bad address syntax"), sinks.ClassPermanent, nil},
		{"data 451", fail(emailtest.StageData, 451, "4.3.0 Local error in processing"), sinks.ClassRetryable, nil},
		{"data 552", fail(emailtest.StageData, 552, "5.3.4 Message too big"), sinks.ClassPermanent, nil},
		{"data 554", fail(emailtest.StageData, 554, "5.7.1 Rejected as spam"), sinks.ClassPermanent, nil},
		{"data dropped", fake(std, func(s *emailtest.Server) { s.Drop(emailtest.StageData) }), sinks.ClassRetryable, nil},
		{"no starttls offered", fake(emailtest.Options{RequireAuth: true}, nil), sinks.ClassPermanent, ErrNoStartTLS},
		{"certificate untrusted", func(t *testing.T) (*emailtest.Server, func(*Config)) {
			return startFake(t), func(c *Config) { c.TLSConfig.CAFile = "" }
		}, sinks.ClassPermanent, nil},
		{"certificate for another name", func(t *testing.T) (*emailtest.Server, func(*Config)) {
			return startFake(t), func(c *Config) { c.TLSConfig.ServerName = "smtp.example.org" }
		}, sinks.ClassPermanent, nil},
		{"implicit tls to a plain port", func(t *testing.T) (*emailtest.Server, func(*Config)) {
			return startFake(t), func(c *Config) { c.TLS = TLSImplicit }
		}, sinks.ClassPermanent, nil},
		{"no plain or login", fake(emailtest.Options{STARTTLS: true, Mechanisms: []string{"CRAM-MD5"}}, nil), sinks.ClassPermanent, ErrNoAuthMech},
		{"connection refused", func(t *testing.T) (*emailtest.Server, func(*Config)) {
			addr := testutil.FreeAddr(t)
			return startFake(t), func(c *Config) { c.Smarthost = addr }
		}, sinks.ClassRetryable, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, edit := c.setup(t)
			s := fakeSink(t, srv, edit)
			_, err := s.Send(t.Context(), sinktest.Notification(), sinks.Target{Attempt: 1})
			if got := sinks.Classify(err); got != c.want {
				t.Errorf("class = %s, want %s (err: %v)", got, c.want, err)
			}
			if c.wantErr != nil && !errors.Is(err, c.wantErr) {
				t.Errorf("err = %v, want %v in its chain", err, c.wantErr)
			}
			var e *Error
			if c.want != sinks.ClassNone && errors.As(err, &e) && (e.Stage == "" || e.Code < 400) {
				t.Errorf("SMTP error without stage or code: %#v", e)
			}
			t.Logf("err: %v", err)
			sinktest.AssertNoSecret(t, err, secretForms(s.cfg.Auth))
		})
	}
}

func TestContext(t *testing.T) {
	for _, stage := range []string{emailtest.StageGreeting, emailtest.StageRcpt, emailtest.StageData} {
		for _, deadline := range []bool{false, true} {
			name := stage + " canceled"
			if deadline {
				name = stage + " deadline"
			}
			t.Run(name, func(t *testing.T) {
				srv := startFake(t)
				srv.Hang(stage)
				s := fakeSink(t, srv, nil)
				var ctx context.Context
				var cancel context.CancelFunc
				want := context.Canceled
				if deadline {
					ctx, cancel = context.WithTimeout(t.Context(), 200*time.Millisecond)
					want = context.DeadlineExceeded
				} else {
					ctx, cancel = context.WithCancel(t.Context())
					time.AfterFunc(200*time.Millisecond, cancel)
				}
				defer cancel()
				done := make(chan error, 1)
				go func() { _, err := s.Send(ctx, firing(), sinks.Target{}); done <- err }()
				select {
				case err := <-done:
					if !errors.Is(err, want) || sinks.Classify(err) != sinks.ClassRetryable {
						t.Errorf("err = %v (%s), want %v, retryable", err, sinks.Classify(err), want)
					}
					sinktest.AssertNoSecret(t, err, secretForms(s.cfg.Auth))
				case <-time.After(10 * time.Second):
					t.Fatal("Send did not return after its context ended")
				}
			})
		}
	}
}
