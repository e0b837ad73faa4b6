// Package sinktest is the conformance suite every sink passes: for a table
// of HTTP answers (status, headers, body) it checks the class of the error
// Send returns (sinks.Classify), that no configured secret appears in any
// error, and that Send honours its context's cancellation and deadline.
//
// A sink package runs it from a test:
//
//	func TestConformance(t *testing.T) {
//		sinktest.Run(t, sinktest.Harness{
//			New: func(t testing.TB, baseURL string) (sinks.Sink, []string) {
//				s, err := mysink.New("x", mysink.Config{URL: baseURL, Token: "tok-secret"}, sinks.Deps{})
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s, []string{"tok-secret"}
//			},
//			Target: sinks.Target{Channel: "C123"},
//			Cases:  []sinktest.Case{{Name: "ok false", Status: 200, Body: `{"ok":false}`, Want: sinks.ClassPermanent}},
//		})
//	}
package sinktest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
)

// Harness tells the suite how to build and drive one sink.
type Harness struct {
	// New builds the sink under test so that every request it makes goes to
	// baseURL (an httptest server; its URL has no trailing slash), and
	// returns the secrets it was configured with: tokens, passwords, secret
	// URLs. New is called once per case.
	New func(t testing.TB, baseURL string) (s sinks.Sink, secrets []string)
	// Notification is what every case sends; nil means Notification().
	Notification *heraldv1.Notification
	// Target is where every case sends.
	Target sinks.Target
	// Cases are the sink's own answers and their expected class. They run
	// after the common cases (see CommonCases) unless SkipCommon is set.
	Cases []Case
	// SkipCommon leaves out CommonCases, for sinks whose protocol is not
	// plain HTTP status codes.
	SkipCommon bool
	// Passthrough, when set, answers the requests for which it returns
	// true instead of the case: for example a channel lookup that must
	// succeed before the request the case is about.
	Passthrough func(r *http.Request) bool
	// PassthroughHandler answers the requests Passthrough selects.
	PassthroughHandler http.Handler
}

// Case is one answer of the server and what the sink must make of it.
type Case struct {
	Name string
	// Status, Header and Body are the answer to every request the sink
	// makes (except passthrough ones). Status 0 means 200.
	Status int
	Header http.Header
	Body   string
	// Respond, when set, writes the answer instead of Status/Header/Body.
	Respond func(w http.ResponseWriter, r *http.Request)
	// Want is the class the returned error must have (ClassNone: no error).
	Want sinks.Class
	// WantWait, when non-zero and Want is ClassThrottled, is the least wait
	// the throttle error must carry.
	WantWait time.Duration
	// Check, when set, runs extra assertions on Send's results.
	Check func(t *testing.T, r sinks.Receipt, err error)
}

// CommonCases are answers every HTTP sink must classify the same way:
// 5xx and 408 retryable, 429 throttled, 401/403 permanent, a closed
// connection retryable, and a server that echoes the request's secrets
// back in its error text. (A 200 whose body is cut short is not among them:
// whether it was a delivery depends on the sink; see TruncatedBody. Nor is
// a 404: a service that answers a missing channel or hook with it makes it
// permanent, one that never does takes it for a proxy's and retries.)
func CommonCases() []Case {
	return []Case{
		{Name: "500", Status: 500, Body: "internal error", Want: sinks.ClassRetryable},
		{Name: "502 html", Status: 502, Header: http.Header{"Content-Type": {"text/html"}}, Body: "<html><body>Bad Gateway</body></html>", Want: sinks.ClassRetryable},
		{Name: "503", Status: 503, Body: `{"success":false,"ok":false,"error":"Service Unavailable"}`, Want: sinks.ClassRetryable},
		{Name: "504 empty", Status: 504, Want: sinks.ClassRetryable},
		{Name: "408", Status: 408, Want: sinks.ClassRetryable},
		{Name: "401", Status: 401, Body: `{"success":false,"ok":false,"error":"unauthorized"}`, Want: sinks.ClassPermanent},
		{Name: "403", Status: 403, Body: `{"success":false,"ok":false,"error":"forbidden"}`, Want: sinks.ClassPermanent},
		{Name: "429 bare", Status: 429, Want: sinks.ClassThrottled},
		{Name: "429 retry-after", Status: 429, Header: http.Header{"Retry-After": {"30"}}, Want: sinks.ClassThrottled},
		{Name: "connection closed", Respond: CloseConnection, Want: sinks.ClassRetryable},
		{Name: "echoes secrets 400", Respond: echoSecrets(400), Want: sinks.ClassPermanent},
		{Name: "echoes secrets 500", Respond: echoSecrets(500), Want: sinks.ClassRetryable},
	}
}

// Notification returns a small firing notification suitable for any sink.
func Notification() *heraldv1.Notification {
	start := timestamppb.New(time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC))
	return &heraldv1.Notification{
		Id:       "01JCONFORMANCE0000000000000",
		Source:   "alertmanager",
		Severity: heraldv1.Severity_SEVERITY_CRITICAL,
		Status:   heraldv1.Status_STATUS_FIRING,
		Title:    "DiskFull on db-1",
		Text:     "Disk /var is 99% full",
		GroupKey: `{}:{alertname="DiskFull"}`,
		Labels:   map[string]string{"alertname": "DiskFull", "severity": "critical"},
		Alerts: []*heraldv1.Alert{{
			Fingerprint: "abc123",
			Status:      heraldv1.Status_STATUS_FIRING,
			Labels:      map[string]string{"alertname": "DiskFull", "instance": "db-1", "severity": "critical"},
			Annotations: map[string]string{"summary": "Disk /var is 99% full"},
			StartsAt:    start,
		}},
		ReceivedAt: start,
	}
}

// Run runs the common cases (unless h.SkipCommon), h.Cases, and the
// context checks against the sink h builds.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("sinktest: Harness.New is nil")
	}
	cases := h.Cases
	if !h.SkipCommon {
		cases = append(CommonCases(), h.Cases...)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) { runCase(t, h, c) })
	}
	t.Run("context canceled", func(t *testing.T) { runCancel(t, h, false) })
	t.Run("context deadline", func(t *testing.T) { runCancel(t, h, true) })
	t.Run("server gone", func(t *testing.T) { runGone(t, h) })
}

// secretsKey carries the sink's secrets to echoSecrets.
type secretsKey struct{}

func (h Harness) notification() *heraldv1.Notification {
	if h.Notification != nil {
		return h.Notification
	}
	return Notification()
}

// server starts an httptest server that answers passthrough requests with
// h.PassthroughHandler and every other one with answer.
func (h Harness) server(t *testing.T, secrets *[]string, answer http.HandlerFunc) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.Passthrough != nil && h.Passthrough(r) {
			h.PassthroughHandler.ServeHTTP(w, r)
			return
		}
		answer(w, r.WithContext(context.WithValue(r.Context(), secretsKey{}, *secrets)))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func runCase(t *testing.T, h Harness, c Case) {
	var secrets []string
	srv := h.server(t, &secrets, func(w http.ResponseWriter, r *http.Request) {
		if c.Respond != nil {
			c.Respond(w, r)
			return
		}
		for k, vs := range c.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		status := c.Status
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(c.Body))
	})
	s, sec := h.New(t, srv.URL)
	secrets = sec
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r, err := s.Send(ctx, h.notification(), h.Target)
	if got := sinks.Classify(err); got != c.Want {
		t.Errorf("class = %s, want %s (err: %v)", got, c.Want, err)
	}
	if c.Want == sinks.ClassThrottled && c.WantWait > 0 {
		if w, ok := sinks.ThrottleWait(err); !ok || w < c.WantWait {
			t.Errorf("throttle wait = %v, want at least %v", w, c.WantWait)
		}
	}
	AssertNoSecret(t, err, sec)
	if c.Check != nil {
		c.Check(t, r, err)
	}
}

// runCancel sends to a server that never answers, then cancels the context
// (or lets its deadline pass) and expects Send to return the context's error.
func runCancel(t *testing.T, h Harness, deadline bool) {
	var secrets []string
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	srv := h.server(t, &secrets, func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	// Close the hanging handlers before the server itself is closed.
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	s, sec := h.New(t, srv.URL)
	secrets = sec

	var ctx context.Context
	var cancel context.CancelFunc
	want := context.Canceled
	if deadline {
		// A real, short deadline: nothing is asserted about how long Send
		// took, only that it returned the deadline's error.
		ctx, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
		want = context.DeadlineExceeded
	} else {
		ctx, cancel = context.WithCancel(t.Context())
		go func() {
			select {
			case <-arrived:
			case <-time.After(10 * time.Second):
			}
			cancel()
		}()
	}
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := s.Send(ctx, h.notification(), h.Target)
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Send did not return after its context ended")
	}
	if err == nil {
		t.Fatal("Send returned nil after its context ended")
	}
	if !errors.Is(err, want) {
		t.Errorf("err = %v, want errors.Is(err, %v)", err, want)
	}
	if got := sinks.Classify(err); got == sinks.ClassPermanent {
		t.Errorf("class = %s for a context error, want retryable", got)
	}
	AssertNoSecret(t, err, sec)
}

// runGone sends to a server that has already shut down.
func runGone(t *testing.T, h Harness) {
	var secrets []string
	srv := h.server(t, &secrets, func(w http.ResponseWriter, r *http.Request) {})
	s, sec := h.New(t, srv.URL)
	srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := s.Send(ctx, h.notification(), h.Target)
	if got := sinks.Classify(err); got != sinks.ClassRetryable {
		t.Errorf("class = %s, want retryable (err: %v)", got, err)
	}
	AssertNoSecret(t, err, sec)
}

// AssertNoSecret fails t if err's text, in any usual format, contains one
// of secrets or the path of a secret URL.
func AssertNoSecret(t testing.TB, err error, secrets []string) {
	t.Helper()
	if err == nil {
		return
	}
	texts := []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)}
	for _, s := range secretForms(secrets) {
		for _, txt := range texts {
			if strings.Contains(txt, s) {
				t.Errorf("error reveals a secret %q: %s", mask(s), txt)
				return
			}
		}
	}
}

// secretForms returns each secret and, for secret URLs, their path and
// its query-escaped form, which is where their credential lives.
func secretForms(secrets []string) []string {
	var out []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		out = append(out, s, url.QueryEscape(s))
		if u, err := url.Parse(s); err == nil && u.Host != "" && len(u.Path) > 1 {
			out = append(out, u.Path)
		}
	}
	return out
}

func mask(s string) string {
	if len(s) <= 4 {
		return "****"
	}
	return s[:2] + "…" + s[len(s)-2:]
}

// CloseConnection is a Case.Respond that hijacks the connection and closes
// it without answering.
func CloseConnection(w http.ResponseWriter, r *http.Request) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("sinktest: response writer cannot hijack")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(err)
	}
	_ = conn.Close()
}

// TruncatedBody is a Case.Respond that answers 200 with a JSON body cut
// short: the connection closes before the promised Content-Length.
func TruncatedBody(w http.ResponseWriter, r *http.Request) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("sinktest: response writer cannot hijack")
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	writeTruncated(buf)
}

func writeTruncated(buf *bufio.ReadWriter) {
	_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"success\":tr")
	_ = buf.Flush()
}

// echoSecrets answers status with a JSON error whose text repeats the
// request's URL, its headers and the sink's secrets, like a careless proxy.
func echoSecrets(status int) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		secrets, _ := r.Context().Value(secretsKey{}).([]string)
		var b strings.Builder
		b.WriteString("bad request to " + r.URL.String())
		for k, vs := range r.Header {
			b.WriteString(" " + k + "=" + strings.Join(vs, ","))
		}
		for _, s := range secrets {
			b.WriteString(" " + s)
		}
		msg := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(b.String())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"success":false,"ok":false,"error":"%s","message":"%s"}`, msg, msg)
	}
}
