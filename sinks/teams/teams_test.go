package teams

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/sinktest"
	"github.com/herald-notify/herald/sinks/teams/teamstest"
)

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	s, err := New("teams", cfg, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSendPostsACard(t *testing.T) {
	srv := teamstest.NewServer()
	defer srv.Close()
	s := newSink(t, Config{WebhookURL: secret.String(srv.WebhookURL())})
	to := sinks.Target{Channel: "#ignored", Parent: &heraldv1.MessageRef{MessageId: "m1"}}
	for _, n := range []*heraldv1.Notification{firing(), resolved(), many(300), hostile()} {
		rcpt, err := s.Send(t.Context(), n, to)
		if err != nil {
			t.Fatalf("%s: %v", n.Id, err)
		}
		if rcpt.Parent != nil || rcpt.Message != nil {
			t.Errorf("%s: receipt = %+v, want none (a workflow cannot address its cards)", n.Id, rcpt)
		}
	}
	if f := srv.Failures(); len(f) > 0 {
		t.Fatalf("flow runs failed: %q", f)
	}
	cards := srv.Cards()
	if len(cards) != 4 {
		t.Fatalf("%d cards posted, want 4 (every notification a new card)", len(cards))
	}
	want, _ := testRenderer().render(defaultTemplates, firing(), to)
	if got := srv.Runs()[0].Body; string(got) != string(want) {
		t.Errorf("posted\n%s\nwant\n%s", got, want)
	}
}

// TestDefaultLimitLeavesTeamsMargin sends a card as large as the default
// limit allows, then one as large as Teams' own limit: the webhook accepts
// both (202), but Teams refuses to post the second, because it stores more
// than it is sent.
func TestDefaultLimitLeavesTeamsMargin(t *testing.T) {
	n := many(300)
	n.Text = strings.Repeat("Zusammenfassung über die Größe ", 400)
	for _, a := range n.Alerts {
		a.Annotations["summary"] = strings.Repeat("ü", 150)
	}
	srv := teamstest.NewServer()
	defer srv.Close()
	if _, err := newSink(t, Config{WebhookURL: secret.String(srv.WebhookURL())}).Send(t.Context(), n, sinks.Target{}); err != nil {
		t.Fatal(err)
	}
	if f := srv.Failures(); len(f) > 0 {
		t.Fatalf("the default limit is too large for Teams: %q", f)
	}
	edge := newSink(t, Config{WebhookURL: secret.String(srv.WebhookURL()), MaxCardBytes: TeamsMessageLimit})
	if _, err := edge.Send(t.Context(), n, sinks.Target{}); err != nil {
		t.Fatalf("the webhook answered %v; a real one accepts the request and fails the run", err)
	}
	if f := srv.Failures(); len(f) != 1 || !strings.Contains(f[0], "MessageSizeExceeded") {
		t.Errorf("failures = %q, want one MessageSizeExceeded", f)
	}
}

func TestSendErrors(t *testing.T) {
	cases := []struct {
		name  string
		setup func(srv *teamstest.Server) string // returns the webhook URL
		want  sinks.Class
		wait  time.Duration
	}{
		{"flow deleted", func(srv *teamstest.Server) string { u := srv.WebhookURL(); srv.DeleteFlow("alerts"); return u }, sinks.ClassPermanent, 0},
		{"flow disabled", func(srv *teamstest.Server) string { srv.DisableFlow("alerts"); return srv.WebhookURL() }, sinks.ClassPermanent, 0},
		{"wrong signature", func(srv *teamstest.Server) string {
			u, _ := url.Parse(srv.WebhookURL())
			q := u.Query()
			q.Set("sig", "forgedsignature0000")
			u.RawQuery = q.Encode()
			return u.String()
		}, sinks.ClassPermanent, 0},
		{"throttled", func(srv *teamstest.Server) string { srv.Throttle(1, ""); return srv.WebhookURL() }, sinks.ClassThrottled, DefaultThrottleWait},
		{"throttled with Retry-After", func(srv *teamstest.Server) string { srv.Throttle(1, "7"); return srv.WebhookURL() }, sinks.ClassThrottled, 7 * time.Second},
		{"503", func(srv *teamstest.Server) string { srv.Fail(teamstest.Failure{Status: 503}); return srv.WebhookURL() }, sinks.ClassRetryable, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := teamstest.NewServer()
			defer srv.Close()
			hook := c.setup(srv)
			_, err := newSink(t, Config{WebhookURL: secret.String(hook)}).Send(t.Context(), firing(), sinks.Target{})
			if got := sinks.Classify(err); got != c.want {
				t.Fatalf("class = %s, want %s (err: %v)", got, c.want, err)
			}
			if w, _ := sinks.ThrottleWait(err); w != c.wait {
				t.Errorf("wait = %v, want %v", w, c.wait)
			}
			u, _ := url.Parse(hook)
			sinktest.AssertNoSecret(t, err, []string{hook, u.Query().Get("sig")})
			if len(srv.Cards()) != 0 {
				t.Errorf("a card was posted")
			}
		})
	}
}

func TestThrottleThenSucceed(t *testing.T) {
	srv := teamstest.NewServer()
	defer srv.Close()
	srv.Throttle(1, "3")
	s := newSink(t, Config{WebhookURL: secret.String(srv.WebhookURL())})
	if _, err := s.Send(t.Context(), firing(), sinks.Target{}); sinks.Classify(err) != sinks.ClassThrottled {
		t.Fatalf("first send: %v, want throttled", err)
	}
	// Until the wait is over, the sink refuses without a request.
	if w := s.Wait(sinks.Target{}); w < 2*time.Second || w > 3*time.Second {
		t.Errorf("Wait = %v, want about 3s", w)
	}
	_, err := s.Send(t.Context(), firing(), sinks.Target{})
	if w, _ := sinks.ThrottleWait(err); !errors.Is(err, ErrPaced) || w < 2*time.Second {
		t.Fatalf("second send: %v, want ErrPaced for about 3s", err)
	}
	// The sink itself never waits: the dispatcher retries after the wait.
	s.pace.blocked = time.Now().Add(-time.Second)
	if _, err := s.Send(t.Context(), firing(), sinks.Target{}); err != nil {
		t.Fatal(err)
	}
	if srv.Requests() != 2 || len(srv.Cards()) != 1 {
		t.Errorf("%d requests, %d cards; want 2 and 1", srv.Requests(), len(srv.Cards()))
	}
}

func TestSendBatch(t *testing.T) {
	srv := teamstest.NewServer()
	defer srv.Close()
	s := newSink(t, Config{WebhookURL: secret.String(srv.WebhookURL()), Rate: Rate{Count: 2, Per: time.Hour}})
	if _, err := s.SendBatch(t.Context(), digestOf(), sinks.Target{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendBatch(t.Context(), []*heraldv1.Notification{nil, firing()}, sinks.Target{}); err != nil {
		t.Fatal(err)
	}
	if f := srv.Failures(); len(f) > 0 {
		t.Fatalf("flow runs failed: %q", f)
	}
	cards := srv.Cards()
	if len(cards) != 2 {
		t.Fatalf("%d cards, want a digest and a plain card", len(cards))
	}
	title := func(i int) string {
		return cards[i]["body"].([]any)[0].(map[string]any)["items"].([]any)[0].(map[string]any)["text"].(string)
	}
	if title(0) != "🔴 3 notifications" || !strings.Contains(title(1), "FIRING") {
		t.Errorf("titles %q, %q", title(0), title(1))
	}
	if _, err := s.SendBatch(t.Context(), digestOf(), sinks.Target{}); !errors.Is(err, ErrPaced) {
		t.Errorf("third post: %v, want ErrPaced", err)
	}
}

func TestPacing(t *testing.T) {
	srv := teamstest.NewServer()
	defer srv.Close()
	s := newSink(t, Config{WebhookURL: secret.String(srv.WebhookURL()), Rate: Rate{Count: 2, Per: time.Hour}})
	for range 2 {
		if w := s.Wait(sinks.Target{}); w != 0 {
			t.Fatalf("Wait = %v with room left", w)
		}
		if _, err := s.Send(t.Context(), firing(), sinks.Target{}); err != nil {
			t.Fatal(err)
		}
	}
	if w := s.Wait(sinks.Target{}); w < 59*time.Minute {
		t.Errorf("Wait = %v, want about an hour", w)
	}
	_, err := s.Send(t.Context(), firing(), sinks.Target{})
	if w, _ := sinks.ThrottleWait(err); !errors.Is(err, ErrPaced) || w < 59*time.Minute {
		t.Fatalf("third send: %v, want ErrPaced for about an hour", err)
	}
	if srv.Requests() != 2 {
		t.Errorf("%d requests, want 2", srv.Requests())
	}
	// The window slides: a slot frees an hour after the first post.
	if w := s.pace.peek(time.Now().Add(time.Hour + time.Second)); w != 0 {
		t.Errorf("an hour later, Wait = %v", w)
	}
}

func TestSlowWebhookTimesOut(t *testing.T) {
	srv := teamstest.NewServer()
	defer srv.Close()
	srv.Fail(teamstest.Failure{Delay: 5 * time.Second})
	s := newSink(t, Config{WebhookURL: secret.String(srv.WebhookURL()), Timeout: 50 * time.Millisecond})
	_, err := s.Send(t.Context(), firing(), sinks.Target{})
	if !errors.Is(err, context.DeadlineExceeded) || sinks.Classify(err) != sinks.ClassRetryable {
		t.Fatalf("err = %v, want a retryable deadline", err)
	}
	sinktest.AssertNoSecret(t, err, []string{srv.WebhookURL()})
}

func TestRouteTemplate(t *testing.T) {
	srv := teamstest.NewServer()
	defer srv.Close()
	dir := t.TempDir()
	good := filepath.Join(dir, "route.tmpl")
	os.WriteFile(good, []byte(`{{define "title"}}route: {{.Title}}{{end}}`), 0o644)
	s := newSink(t, Config{WebhookURL: secret.String(srv.WebhookURL())})
	for _, tmpl := range []string{good, filepath.Join(dir, "missing.tmpl")} {
		if _, err := s.Send(t.Context(), firing(), sinks.Target{Template: tmpl}); err != nil {
			t.Fatal(err)
		}
	}
	cards := srv.Cards()
	title := func(i int) string {
		return cards[i]["body"].([]any)[0].(map[string]any)["items"].([]any)[0].(map[string]any)["text"].(string)
	}
	if title(0) != "route: DiskFull: 3 hosts" || !strings.Contains(title(1), "FIRING") {
		t.Errorf("titles %q, %q", title(0), title(1))
	}
}

func TestConfig(t *testing.T) {
	const hook = "https://prod-12.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=S3cr3tSignatureValue"
	dir := t.TempDir()
	hookFile := filepath.Join(dir, "hook")
	os.WriteFile(hookFile, []byte(hook+"\n"), 0o600)
	badTmpl := filepath.Join(dir, "bad.tmpl")
	os.WriteFile(badTmpl, []byte(`{{define "title"}}{{.Nope}}{{end}}`), 0o644)

	c := Config{WebhookURLFile: hookFile}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.WebhookURL.Value() != hook || c.Timeout != DefaultTimeout || c.CardVersion != "1.4" || c.MaxCardBytes != DefaultMaxCardBytes ||
		c.Rate != (Rate{DefaultRateCount, DefaultRatePer}) {
		t.Errorf("defaults not applied: %+v", c)
	}
	if len(c.Warnings()) != 0 {
		t.Errorf("warnings %q", c.Warnings())
	}
	bad := []struct {
		name string
		c    Config
		want string
	}{
		{"missing", Config{}, "webhook_url: required"},
		{"both", Config{WebhookURL: hook, WebhookURLFile: hookFile}, "both set"},
		{"not a URL", Config{WebhookURL: "ftp://x/y?sig=abc"}, "not an http(s) URL"},
		{"connector", Config{WebhookURL: "https://contoso.webhook.office.com/webhookb2/a@b/IncomingWebhook/c/d?sig=x"}, "retired"},
		{"no sig", Config{WebhookURL: "https://prod-12.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=1"}, `"sig"`},
		{"version", Config{WebhookURL: hook, CardVersion: "1.6"}, "card_version"},
		{"size", Config{WebhookURL: hook, MaxCardBytes: 40000}, "max_card_bytes"},
		{"timeout", Config{WebhookURL: hook, Timeout: -time.Second}, "timeout"},
		{"rate", Config{WebhookURL: hook, Rate: Rate{Count: -1}}, "rate"},
		{"template", Config{WebhookURL: hook, Template: badTmpl}, "template"},
	}
	for _, b := range bad {
		err := b.c.Validate()
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: err = %v, want %q", b.name, err, b.want)
		}
		if err != nil && (strings.Contains(err.Error(), "S3cr3t") || strings.Contains(err.Error(), "IncomingWebhook")) {
			t.Errorf("%s: the error reveals the URL: %v", b.name, err)
		}
	}
	plain := Config{WebhookURL: "http://teams.internal/workflows/x/triggers/manual/paths/invoke?sig=abc", MaxCardBytes: TeamsMessageLimit}
	if err := plain.Validate(); err != nil {
		t.Fatal(err)
	}
	if w := plain.Warnings(); len(w) != 2 {
		t.Errorf("warnings %q, want plain http and max_card_bytes", w)
	}
}
