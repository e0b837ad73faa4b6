package message_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/mattermost"
	"github.com/herald-notify/herald/sinks/mattermost/mattermosttest"
	"github.com/herald-notify/herald/sinks/rocketchat"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
	"github.com/herald-notify/herald/sinks/slack"
	"github.com/herald-notify/herald/sinks/slack/slackfake"
)

// portable is a user's template file written once: every sink that has a
// "text" template renders it from the same message.Data.
const portable = `{{define "text"}}PORTABLE {{.Emoji}} {{.StatusText}} {{.Title}} · {{.AlertCount}} alerts:{{range .Alerts}} {{.Name}}={{.Status}}{{end}}{{end}}`

// TestTemplateFileInThreeSinks sends one notification through Rocket.Chat,
// Mattermost and Slack configured with the same template file and checks
// that each posted what the file says, in its own syntax.
func TestTemplateFileInThreeSinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "team.tmpl")
	if err := os.WriteFile(path, []byte(portable), 0o600); err != nil {
		t.Fatal(err)
	}
	n := &heraldv1.Notification{
		Id: "n1", Source: "alertmanager", Title: "DiskFull", GroupKey: "g",
		Severity: heraldv1.Severity_SEVERITY_CRITICAL, Status: heraldv1.Status_STATUS_FIRING,
		Alerts: []*heraldv1.Alert{
			{Status: heraldv1.Status_STATUS_RESOLVED, Labels: map[string]string{"alertname": "DiskFull", "host": "db-2"}},
			{Status: heraldv1.Status_STATUS_FIRING, Labels: map[string]string{"alertname": "DiskFull", "host": "db-1"},
				Annotations: map[string]string{"summary": "db-1 at 98%"}},
		},
	}
	// Firing alerts first; an alert's Name is its summary, else its alertname.
	const want = "PORTABLE 🔴 FIRING DiskFull · 2 alerts: db-1 at 98%=firing DiskFull=resolved"

	send := func(t *testing.T, s sinks.Sink) {
		t.Helper()
		if _, err := s.Send(t.Context(), n, sinks.Target{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("rocketchat", func(t *testing.T) {
		srv := rocketchattest.NewServer(rocketchattest.WithRooms("alerts"))
		t.Cleanup(srv.Close)
		cfg := rocketchat.Config{Mode: rocketchat.ModeWebhook, WebhookURL: secret.String(srv.URL + srv.AddHook("alerts")), Template: path}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		s, err := rocketchat.New("rc", cfg, sinks.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		send(t, s)
		if got := srv.Messages("alerts"); len(got) != 1 || !strings.Contains(unescapeRC(got[0].Text), want) {
			t.Errorf("Rocket.Chat got %+v, want it to contain %q", got, want)
		}
	})
	t.Run("mattermost", func(t *testing.T) {
		srv := mattermosttest.NewServer("bot-token")
		t.Cleanup(srv.Close)
		ch := srv.AddChannel("ops", "alerts")
		cfg := mattermost.Config{Mode: mattermost.ModeWebhook, WebhookURL: secret.String(srv.AddHook("k1", ch, false)), Template: path}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		s, err := mattermost.New("mm", cfg, sinks.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		send(t, s)
		if got := srv.HookPosts(); len(got) != 1 || !strings.Contains(got[0].Text, "PORTABLE") || !strings.Contains(got[0].Text, "DiskFull") {
			t.Errorf("Mattermost got %+v, want the file's text", got)
		}
	})
	t.Run("slack", func(t *testing.T) {
		fake := slackfake.New("xoxb-test")
		t.Cleanup(fake.Close)
		fake.AddChannel("alerts")
		cfg := slack.Config{APIURL: fake.APIURL(), Token: "xoxb-test", Channel: "#alerts", Template: path, Pace: -1}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		s, err := slack.New("slack", cfg, sinks.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		send(t, s)
		if got := fake.Messages("alerts"); len(got) != 1 || !strings.Contains(got[0].Text, want) {
			t.Errorf("Slack got %+v, want its text to contain %q", got, want)
		}
	})
}

// unescapeRC undoes the Rocket.Chat escaper's inert forms of the few
// characters this test's text has.
func unescapeRC(s string) string {
	return strings.NewReplacer("\u200b", "", "\\", "").Replace(s)
}
