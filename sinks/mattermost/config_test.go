package mattermost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "tok")
	if err := os.WriteFile(tokFile, []byte("file-token-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.tmpl")
	os.WriteFile(good, []byte(`{{define "text"}}{{.Emoji}} {{.Title}} ({{.AlertCount}}){{end}}`), 0o600)
	badField := filepath.Join(dir, "bad.tmpl")
	os.WriteFile(badField, []byte(`{{define "text"}}{{.NoSuchField}}{{end}}`), 0o600)

	rest := func(mod func(*Config)) Config {
		c := Config{BaseURL: "https://chat.example.com", Token: "tok-1234", Team: "ops", Channel: "alerts"}
		mod(c2(&c))
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		err  string
	}{
		{"rest ok", rest(func(*Config) {}), ""},
		{"token file", rest(func(c *Config) { c.Token, c.TokenFile = "", tokFile }), ""},
		{"channel id without team", rest(func(c *Config) { c.Team, c.Channel = "", "abcdefghijkmnopqrstuvwxyz1" }), ""},
		{"template", rest(func(c *Config) { c.Template = good }), ""},
		{"no base_url", rest(func(c *Config) { c.BaseURL = "" }), "base_url: required"},
		{"api in base_url", rest(func(c *Config) { c.BaseURL = "https://chat.example.com/api/v4" }), "base_url:"},
		{"credentials in base_url", rest(func(c *Config) { c.BaseURL = "https://u:p@chat.example.com" }), "base_url:"},
		{"no token", rest(func(c *Config) { c.Token = "" }), "token: required"},
		{"name without team", rest(func(c *Config) { c.Team = "" }), "team: required"},
		{"bad channel", rest(func(c *Config) { c.Channel = "alerts room" }), "channel:"},
		{"capitals", rest(func(c *Config) { c.Channel = "#Alerts-Critical" }), ""},
		{"dm channel", rest(func(c *Config) { c.Channel = "@bob" }), "channel:"},
		{"bad mention", rest(func(c *Config) { c.Mentions = map[string]string{"critical": "channel"} }), "mentions.critical"},
		{"bad severity", rest(func(c *Config) { c.Mentions = map[string]string{"page": "@here"} }), "mentions:"},
		{"small size", rest(func(c *Config) { c.MaxPostSize = 100 }), "max_post_size"},
		{"negative timeout", rest(func(c *Config) { c.Timeout = -1 }), "timeout"},
		{"webhook options in rest", rest(func(c *Config) { c.Username = "x" }), "webhook mode only"},
		{"template bad field", rest(func(c *Config) { c.Template = badField }), "template:"},
		{"template missing", rest(func(c *Config) { c.Template = filepath.Join(dir, "none") }), "template:"},
		{"both", rest(func(c *Config) { c.WebhookURL = "https://chat.example.com/hooks/abc" }), "mode:"},
		{"webhook ok", Config{WebhookURL: "https://chat.example.com/hooks/abc123", Channel: "alerts", WebhookOverrideChannel: true, IconEmoji: ":bell:", IconURL: "https://x.example/i.png"}, ""},
		{"webhook not a hook", Config{WebhookURL: "https://chat.example.com/abc123"}, "webhook_url:"},
		{"webhook with token", Config{Mode: ModeWebhook, WebhookURL: "https://chat.example.com/hooks/a", Token: "t"}, "token, team"},
		{"webhook bad icon", Config{WebhookURL: "https://chat.example.com/hooks/a", IconURL: "ftp://x"}, "icon_url"},
		{"bad mode", Config{Mode: "smtp"}, "mode:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			err := c.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.err)
			}
			if strings.Contains(err.Error(), "tok-1234") || strings.Contains(err.Error(), "hooks/a") {
				t.Errorf("error reveals a secret: %v", err)
			}
		})
	}
}

func c2(c *Config) *Config { return c }

func TestValidateDefaults(t *testing.T) {
	c := Config{WebhookURL: secret.String("https://chat.example.com/hooks/abc"), Channel: "alerts"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeWebhook || c.Timeout != DefaultTimeout || c.MaxPostSize != DefaultMaxPostSize {
		t.Errorf("defaults: %+v", c)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.HasPrefix(w[0], "channel:") {
		t.Errorf("warnings = %v", w)
	}
}

func TestUserTemplate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.tmpl")
	os.WriteFile(path, []byte(`{{define "text"}}custom {{.Title}}{{end}}`), 0o600)
	s, err := New("mm", Config{BaseURL: "https://chat.example.com", Token: "tok-1234", Channel: "abcdefghijkmnopqrstuvwxyz1", Template: path}, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.r.render(s.tmpl, firing(), sinks.Target{}, renderOpts{})
	if err != nil || msg.Text != "custom DiskFull on db-1" || !strings.Contains(msg.Attachment.Text, "Runbook") {
		t.Errorf("render = %+v, %v", msg, err)
	}
}
