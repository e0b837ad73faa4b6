package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/mattermost/mattermosttest"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
	"github.com/herald-notify/herald/sinks/slack/slackfake"
	"github.com/herald-notify/herald/sinks/teams/teamstest"
	"github.com/herald-notify/herald/sinks/webhook"
)

// setExampleEnv sets the variables deploy/herald.example.yml reads, each
// to a value that says it is a secret.
func setExampleEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"HERALD_AM_TOKEN", "HERALD_DEPLOY_BOT_TOKEN", "HERALD_OPERATOR_TOKEN",
		"RC_USER_ID", "RC_TOKEN", "SLACK_TOKEN", "ONCALL_WEBHOOK_SECRET"} {
		t.Setenv(k, "SECRET-"+k)
	}
	t.Setenv("ONCALL_WEBHOOK_URL", "https://oncall.example.com/hooks/SECRET-ONCALL-PATH?key=SECRET-ONCALL-KEY")
}

// timeVarying are the parts of the output that change with the clock: the
// webhook sink's signature and timestamp, and an email's Date.
var timeVarying = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`t=\d+,v1=[0-9a-f]{64}`), "t=TIMESTAMP,v1=SIGNATURE"},
	{regexp.MustCompile(`(X-Herald-Timestamp: )\d+`), "${1}TIMESTAMP"},
	{regexp.MustCompile(`("X-Herald-Timestamp": \[\s*")\d+`), "${1}TIMESTAMP"},
	{regexp.MustCompile(`Date: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [-+]\d{4}`), "Date: DATE"},
}

// TestTemplateGolden pins what herald template prints: for the example
// config the docs hand to new users, every route and every sink of each
// chain (the fallback told why it is one) for Alertmanager's firing and
// resolved webhooks; for a config with every other sink type and mode, a
// notification built from flags; and the -json form. No secret of the
// config shows.
func TestTemplateGolden(t *testing.T) {
	example := filepath.Join("..", "..", "deploy", "herald.example.yml")
	all := filepath.Join("testdata", "template", "all.yml")
	tests := []struct {
		name string
		args []string
	}{
		{"example-firing", []string{"-config", example, "-file", "../../deploy/examples/firing.json"}},
		{"example-resolved", []string{"-config", example, "-file", "../../deploy/examples/resolved.json"}},
		{"all-sinks", []string{"-config", all, "team=db", "severity=warning", "-annotation", "summary=Disk almost full", "-title", "DiskFull"}},
		{"example-flags-json", []string{"-json", "-config", example, "-status", "resolved", "alertname=Backup", "severity=warning"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setExampleEnv(t)
			var out, errOut bytes.Buffer
			if err := templateCmd(tt.args, &out, &errOut); err != nil {
				t.Fatalf("templateCmd: %v\n%s", err, errOut.String())
			}
			if errOut.Len() != 0 {
				t.Errorf("stderr: %s", errOut.String())
			}
			got := out.String()
			for _, s := range []string{"SECRET-", "HOOKTOKEN", "MMTOKEN", "MMHOOK", "SLACKHOOK", "TEAMSSIG", "TICKETPW"} {
				if strings.Contains(got, s) {
					t.Errorf("the output shows a secret (%s...)", s)
				}
			}
			for _, tv := range timeVarying {
				got = tv.re.ReplaceAllString(got, tv.with)
			}
			golden := filepath.Join("testdata", "template", tt.name+".golden")
			if _, ok := matchGolden(t, golden, got); !ok {
				t.Errorf("output differs from %s (go test -run TemplateGolden -update rewrites it):\n%s", golden, got)
			}
		})
	}
}

// recorder is a transport that keeps the body of every request it passes
// on to next.
type recorder struct {
	next   http.RoundTripper
	bodies [][]byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		r.bodies = append(r.bodies, b)
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	return r.next.RoundTrip(req)
}

// TestTemplateBodiesAreWhatSinksSend: the bodies herald template prints
// for Rocket.Chat (REST) and Slack (bot, as the fallback) are, byte for
// byte, what the same sinks send their strict fakes for the same
// notification and target (the Rocket.Chat room id aside, which the fake
// chooses); and the webhook sink's signature checks against the printed
// body, so that body is the one signed.
func TestTemplateBodiesAreWhatSinksSend(t *testing.T) {
	for _, file := range []string{"firing.json", "resolved.json"} {
		t.Run(file, func(t *testing.T) {
			rc := rocketchattest.NewServer(rocketchattest.WithCredentials("rc-user", "rc-token-1234"), rocketchattest.WithRooms("alerts-critical"))
			defer rc.Close()
			sl := slackfake.New("xoxb-slack-token-1234")
			defer sl.Close()
			sl.AddChannel("alerts-critical")
			cfgText := `
sinks:
  - name: rocketchat
    rocketchat: {url: ` + rc.URL + `, mode: rest, user_id: rc-user, token: rc-token-1234, mentions: {critical: "@here"}}
  - name: slack
    slack: {mode: bot, token: xoxb-slack-token-1234, api_url: ` + sl.APIURL() + `, mentions: {critical: "<!here>"}}
  - name: hook
    webhook: {url: "http://127.0.0.1:1/hook", hmac_secret: hmac-secret-1234}
routes:
  - name: page
    chain: [hook]
    continue: true
  - name: critical
    channels: {rocketchat: "#alerts-critical", slack: "#alerts-critical"}
    chain: [rocketchat, slack]
`
			cfg, err := config.Parse("test.yml", []byte(cfgText))
			if err != nil {
				t.Fatal(err)
			}
			ns, err := readWebhook(filepath.Join("..", "..", "deploy", "examples", file))
			if err != nil {
				t.Fatal(err)
			}
			steps, err := previewAll(t.Context(), cfg, ns, time.Now(), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			if len(steps) != 3 {
				t.Fatalf("%d steps, want hook, rocketchat, slack", len(steps))
			}
			hook, rcStep, slStep := steps[0], steps[1], steps[2]

			// The same sinks, on a real transport to the fakes.
			rec := &recorder{next: http.DefaultTransport}
			real, err := app.BuildSinks(cfg.Sinks, slog.New(slog.DiscardHandler), rec)
			if err != nil {
				t.Fatal(err)
			}
			before := len(rc.Requests())
			n := ns[0]
			if _, err := real["rocketchat"].Send(t.Context(), n, sinks.Target{Channel: "#alerts-critical", Route: "critical", Attempt: 1}); err != nil {
				t.Fatal(err)
			}
			reqs := rc.Requests()[before:]
			if len(reqs) != len(rcStep.Requests) {
				t.Fatalf("rocketchat: the fake got %d requests, herald template printed %d", len(reqs), len(rcStep.Requests))
			}
			rid := rc.RoomID("alerts-critical")
			for i, r := range reqs {
				p := rcStep.Requests[i]
				if !strings.HasSuffix(p.URL, r.Path) && !strings.Contains(p.URL, r.Path+"?") || p.Method != methodOf(r.Endpoint) {
					t.Errorf("rocketchat request %d: printed %s %s, the fake got %s", i, p.Method, p.URL, r.Path)
				}
				want := strings.ReplaceAll(string(r.Body), `"rid":"`+rid+`"`, `"rid":"`+previewRoomID("alerts-critical")+`"`)
				if p.Body != want || p.BodyBytes != len(want) {
					t.Errorf("rocketchat request %d body:\nprinted %s\nfake got %s", i, p.Body, r.Body)
				}
			}
			if len(reqs) == 0 || reqs[len(reqs)-1].Endpoint != "chat.sendMessage" {
				t.Errorf("rocketchat: the fake's last request is not chat.sendMessage: %+v", reqs)
			}

			rec.bodies = nil
			if _, err := real["slack"].Send(t.Context(), n, sinks.Target{Channel: "#alerts-critical", Route: "critical", Attempt: 1,
				FallbackFrom: "rocketchat", FallbackReason: "rocketchat: not reached (preview)"}); err != nil {
				t.Fatal(err)
			}
			if len(rec.bodies) != 1 || len(slStep.Requests) != 1 {
				t.Fatalf("slack: %d requests sent to the fake, %d printed; want 1 each", len(rec.bodies), len(slStep.Requests))
			}
			sent := rec.bodies[0]
			if got, want := slStep.Requests[0].Body, strings.ReplaceAll(string(sent), "xoxb-slack-token-1234", "<secret>"); got != want || slStep.Requests[0].BodyBytes != len(sent) {
				t.Errorf("slack body:\nprinted %s\nsent    %s", got, sent)
			}
			if msgs := sl.Messages("alerts-critical"); len(msgs) == 0 {
				t.Error("slack: the fake stored no message: it refused what the sink sent")
			}

			h := hook.Requests[0]
			ts, err := strconv.ParseInt(h.Header.Get(webhook.HeaderTimestamp), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			if want := webhook.Sign("hmac-secret-1234", []byte(h.Body), time.Unix(ts, 0)); h.Header.Get(webhook.HeaderSignature) != want {
				t.Errorf("webhook: signature %q does not sign the printed body (want %q)", h.Header.Get(webhook.HeaderSignature), want)
			}
		})
	}
}

// methodOf is the HTTP method of a Rocket.Chat REST endpoint herald calls.
func methodOf(endpoint string) string {
	if endpoint == "rooms.info" || endpoint == "chat.getMessage" {
		return http.MethodGet
	}
	return http.MethodPost
}

// failDialing is http.DefaultTransport while a test runs: any request
// that reaches it fails the test.
type failDialing struct{ t *testing.T }

func (f failDialing) RoundTrip(r *http.Request) (*http.Response, error) {
	f.t.Errorf("a request went to the network: %s %s", r.Method, r.URL.Host)
	return nil, errors.New("no network in this test")
}

// TestTemplateNeverDials: with every sink (the email sink's SMTP server
// too) pointed at a listening socket, herald template completes every
// step and the socket accepts no connection; no request reaches
// http.DefaultTransport either.
func TestTemplateNeverDials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	orig := http.DefaultTransport
	http.DefaultTransport = failDialing{t}
	defer func() { http.DefaultTransport = orig }()

	text := strings.ReplaceAll(`
sinks:
  - name: rc
    rocketchat: {url: "http://ADDR", mode: rest, user_id: u, token: rc-token-1234, channel: "#alerts"}
  - name: rc-hook
    rocketchat: {mode: webhook, webhook_url: "http://ADDR/hooks/id/token-1234"}
  - name: slack
    slack: {mode: bot, token: xoxb-1234, channel: "#alerts", api_url: "http://ADDR/api/"}
  - name: slack-hook
    slack: {mode: webhook, webhook_url: "http://ADDR/services/T0/B0/hook-1234"}
  - name: mm
    mattermost: {base_url: "http://ADDR", token: mm-token-1234, team: ops, channel: alerts}
  - name: mm-hook
    mattermost: {mode: webhook, webhook_url: "http://ADDR/hooks/mm-1234"}
  - name: teams
    teams: {webhook_url: "http://ADDR/workflows/x?sig=sig-1234"}
  - name: mail
    email: {smarthost: "ADDR", tls: none, from: herald@example.com, to: [oncall@example.com]}
  - name: tickets
    webhook: {url: "http://ADDR/api/alerts"}
  - name: log
    log: {}
routes:
  - name: chat
    chain: [rc, rc-hook, slack, slack-hook, mm, mm-hook, teams]
    continue: true
  - name: other
    chain: [mail, tickets, log]
`, "ADDR", ln.Addr().String())
	path := filepath.Join(t.TempDir(), "herald.yml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := templateCmd([]string{"-config", path, "-json", "severity=critical"}, &out, &errOut); err != nil {
		t.Fatalf("templateCmd: %v\n%s%s", err, out.String(), errOut.String())
	}
	for _, want := range []string{`"sink": "rc-hook"`, `"sink": "mm"`, `"sink": "mm-hook"`, `"sink": "slack-hook"`, `"sink": "teams"`, `"sink": "rc"`, `"sink": "slack"`, `"sink": "mail"`, `"sink": "tickets"`, `"sink": "log"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no step for %s", want)
		}
	}
	// Accepting happens in its own goroutine: give a connection made
	// time to show.
	select {
	case <-accepted:
		t.Error("herald template connected to a sink's server")
	case <-time.After(100 * time.Millisecond):
	}
}

// TestTemplateStdin: -file - reads the webhook from stdin, with the same
// output as from the file.
func TestTemplateStdin(t *testing.T) {
	setExampleEnv(t)
	example := filepath.Join("..", "..", "deploy", "herald.example.yml")
	file := filepath.Join("..", "..", "deploy", "examples", "resolved.json")
	var fromFile, fromStdin bytes.Buffer
	if err := templateCmd([]string{"-config", example, "-file", file}, &fromFile, io.Discard); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	orig := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = orig }()
	if err := templateCmd([]string{"-config", example, "-file", "-"}, &fromStdin, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, tv := range timeVarying {
		fromFile = *bytes.NewBufferString(tv.re.ReplaceAllString(fromFile.String(), tv.with))
		fromStdin = *bytes.NewBufferString(tv.re.ReplaceAllString(fromStdin.String(), tv.with))
	}
	if fromFile.String() != fromStdin.String() || !strings.Contains(fromStdin.String(), "RESOLVED") {
		t.Errorf("stdin gave\n%s\nthe file gave\n%s", fromStdin.String(), fromFile.String())
	}
}

// TestTemplateCommandLine: -h prints the usage on stdout and succeeds;
// mistakes are usage errors; a sink that would fail makes the command
// fail after printing the step with its error.
func TestTemplateCommandLine(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := templateCmd([]string{"-h"}, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "Usage: herald template -config FILE") || errOut.Len() != 0 {
		t.Errorf("-h: %v, stdout %q, stderr %q", err, out.String(), errOut.String())
	}
	all := filepath.Join("testdata", "template", "all.yml")
	for _, args := range [][]string{
		{"severity=critical"},
		{"-config", all, "-file", "x.json", "severity=critical"},
		{"-config", all, "-file", "x.json", "-status", "resolved"},
		{"-config", all, "-status", "pending"},
		{"-config", all, "novalue"},
		{"-config", all, "-annotation", "novalue"},
	} {
		var ue *usageError
		if err := templateCmd(args, io.Discard, io.Discard); !errors.As(err, &ue) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}

	path := filepath.Join(t.TempDir(), "herald.yml")
	bad := `
sinks:
  - name: mm
    mattermost: {base_url: "http://127.0.0.1:1", token: tok-1234}
  - name: log
    log: {}
routes:
  - name: default
    channels: {mm: "#alerts"}
    chain: [mm, log]
`
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err := templateCmd([]string{"-config", path, "severity=info"}, &out, io.Discard)
	if err == nil || !strings.Contains(out.String(), "error: mattermost: channel") || !strings.Contains(out.String(), "step 2 log (log)") {
		t.Errorf("a sink that cannot send: %v\n%s", err, out.String())
	}
}

// TestTemplateFailingTemplate: a route template that fails is reported
// on stderr, the step still shows what the sink would send (rendered with
// its default, as herald serve does), and the command fails.
func TestTemplateFailingTemplate(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "broken.tmpl")
	if err := os.WriteFile(tmpl, []byte(`{{define "text"}}{{template "nosuch" .}}{{end}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "herald.yml")
	cfg := `
sinks:
  - name: rc
    rocketchat: {mode: webhook, webhook_url: "http://127.0.0.1:1/hooks/id/token-1234"}
routes:
  - name: default
    templates: {rc: "` + tmpl + `"}
    chain: [rc]
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err := templateCmd([]string{"-config", path, "alertname=X"}, &out, &errOut)
	if err == nil || !strings.Contains(errOut.String(), "nosuch") || !strings.Contains(out.String(), "*X*") {
		t.Errorf("err %v\nstdout %s\nstderr %s", err, out.String(), errOut.String())
	}
}

// TestFlagNotification: labels, severity as the webhook derives it from
// the severity label, status, title (the alertname by default) and
// annotations.
func TestFlagNotification(t *testing.T) {
	n, err := flagNotification([]string{"alertname=DiskFull", "severity=critical"}, "resolved", "", "alertmanager", map[string]string{"summary": "s"})
	if err != nil {
		t.Fatal(err)
	}
	if n.GetTitle() != "DiskFull" || n.GetStatus() != heraldv1.Status_STATUS_RESOLVED || n.GetSeverity() != heraldv1.Severity_SEVERITY_CRITICAL ||
		n.GetLabels()["alertname"] != "DiskFull" || n.GetAnnotations()["summary"] != "s" {
		t.Errorf("flagNotification = %v", n)
	}
}

// TestTemplateBodiesAreWhatTeamsAndMattermostGet: as for Rocket.Chat and
// Slack, the Teams card and the Mattermost post herald template prints
// are, byte for byte, what the sinks send their strict fakes (which store
// them: the fakes accepted them). The Mattermost channel is given by id:
// a name's id would be the preview's stand-in, and so would the post ids
// derived from it.
func TestTemplateBodiesAreWhatTeamsAndMattermostGet(t *testing.T) {
	tm := teamstest.NewServer()
	defer tm.Close()
	mm := mattermosttest.NewServer("mm-token-1234")
	defer mm.Close()
	chID := mm.AddChannel("ops", "alerts")
	cfgText := `
sinks:
  - name: teams
    teams: {webhook_url: "` + tm.WebhookURL() + `"}
  - name: mm
    mattermost: {base_url: "` + mm.URL + `", token: mm-token-1234, team: ops, channel: ` + chID + `}
routes:
  - name: default
    chain: [mm, teams]
`
	cfg, err := config.Parse("test.yml", []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := readWebhook(filepath.Join("..", "..", "deploy", "examples", "firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := previewAll(t.Context(), cfg, ns, time.Now(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 2 {
		t.Fatalf("%d steps, want mm, teams", len(steps))
	}
	rec := &recorder{next: http.DefaultTransport}
	real, err := app.BuildSinks(cfg.Sinks, slog.New(slog.DiscardHandler), rec)
	if err != nil {
		t.Fatal(err)
	}
	targets := []sinks.Target{
		{Route: "default", Attempt: 1},
		{Route: "default", Attempt: 1, FallbackFrom: "mm", FallbackReason: "mm: not reached (preview)"},
	}
	for i, step := range steps {
		rec.bodies = nil
		if _, err := real[step.Sink].Send(t.Context(), ns[0], targets[i]); err != nil {
			t.Fatalf("%s: %v", step.Sink, err)
		}
		var printed []previewRequest
		for _, r := range step.Requests {
			if r.BodyBytes > 0 {
				printed = append(printed, r)
			}
		}
		if len(rec.bodies) != len(printed) || len(printed) != 1 {
			t.Fatalf("%s: %d bodies sent to the fake, %d printed; want 1 each", step.Sink, len(rec.bodies), len(printed))
		}
		want := string(rec.bodies[0])
		if printed[0].Body != want || printed[0].BodyBytes != len(want) {
			t.Errorf("%s body:\nprinted %s\nsent    %s", step.Sink, printed[0].Body, rec.bodies[0])
		}
	}
	if len(mm.Posts()) != 1 || len(tm.Cards()) != 1 || len(tm.Failures()) != 0 {
		t.Errorf("the fakes stored %d posts and %d cards (failures %v), want 1 each", len(mm.Posts()), len(tm.Cards()), tm.Failures())
	}
}
