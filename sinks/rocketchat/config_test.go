package rocketchat

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func decode(t *testing.T, src string) (Config, error) {
	t.Helper()
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func TestConfigREST(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte("s3cret-token\n"), 0o600)
	c, err := decode(t, fmt.Sprintf(`
url: https://chat.example.com
user_id: aB3xYz
token_file: %s
channel: "#alerts"
timeout: 3s
max_message_size: 4000
mentions: {critical: "@here", warning: "@db-team @alice"}
alias: herald
emoji: ":rotating_light:"
`, tokFile))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeREST || c.Token.Value() != "s3cret-token" || c.Timeout != 3*time.Second || c.MaxMessageSize != 4000 {
		t.Errorf("config = %+v", c)
	}
	if c.WebhookRate != (Rate{Count: 10, Per: time.Minute}) {
		t.Errorf("webhook_rate default = %+v", c.WebhookRate)
	}
	for _, out := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(out, "s3cret-token") {
			t.Errorf("config prints its token: %s", out)
		}
	}
	dumped, _ := yaml.Marshal(c)
	if strings.Contains(string(dumped), "s3cret-token") || !strings.Contains(string(dumped), "<secret>") {
		t.Errorf("dumped config: %s", dumped)
	}
}

func TestConfigWebhook(t *testing.T) {
	c, err := decode(t, `
webhook_url: https://chat.example.com/hooks/abc/def
webhook_rate: {count: 5, per: 30s}
`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeWebhook || c.WebhookRate != (Rate{Count: 5, Per: 30 * time.Second}) || c.Timeout != DefaultTimeout || c.MaxMessageSize != DefaultMaxMessageSize {
		t.Errorf("config = %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	badTmpl := filepath.Join(dir, "bad.tmpl")
	os.WriteFile(badTmpl, []byte(`{{define "text"}}{{.Nope}}{{end}}`), 0o644)
	hook := "https://chat.example.com/hooks/ID123456/TOKsecretvalue"
	cases := []struct{ src, want string }{
		{"url: https://x\nuser_id: u\ntoken: t\nicon_emoji: \":x:\"", "field icon_emoji not found"},
		{"user_id: u\ntoken: t", "url: required"},
		{"url: ftp://x\nuser_id: u\ntoken: t", "url:"},
		{"url: https://u:p@x\nuser_id: u\ntoken: t", "credentials"},
		{"url: https://x\ntoken: t", "user_id: required"},
		{"url: https://x\nuser_id: u", "token: required"},
		{"url: https://x\nuser_id: u\ntoken: t\ntoken_file: /nonexistent", "token and token_file are both set"},
		{"url: https://x\nuser_id: u\ntoken_file: /nonexistent/file", "token_file:"},
		{"token: t\nwebhook_url: " + hook, "both token and webhook_url"},
		{"mode: rest\nurl: https://x\nuser_id: u\ntoken: t\nwebhook_url: " + hook, "webhook_url: not used"},
		{"mode: webhook", "webhook_url: required"},
		{"webhook_url: https://chat.example.com/api/v1/x", "/hooks/"},
		{"mode: smoke\nwebhook_url: " + hook, "mode:"},
		{"webhook_url: " + hook + "\nchannel: \"@alice\"", "direct messages"},
		{"webhook_url: " + hook + "\ntimeout: -1s", "timeout"},
		{"webhook_url: " + hook + "\ntimeout: soon", "time.Duration"},
		{"webhook_url: " + hook + "\nmax_message_size: 10", "max_message_size"},
		{"webhook_url: " + hook + "\nmentions: {page: \"@here\"}", "not a severity"},
		{"webhook_url: " + hook + "\nmentions: {critical: \"<!here>\"}", "not a mention"},
		{"webhook_url: " + hook + "\nwebhook_rate: {count: -1}", "webhook_rate"},
		{"webhook_url: " + hook + "\nemoji: bell", "emoji"},
		{"webhook_url: " + hook + "\navatar: javascript:x", "avatar"},
		{"webhook_url: " + hook + "\ntemplate: " + badTmpl, "template:"},
	}
	for _, c := range cases {
		_, err := decode(t, c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want it to say %q", c.src, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "TOKsecretvalue") {
			t.Errorf("%q: error reveals the hook token: %v", c.src, err)
		}
	}
}

// TestConfigWarnings: a channel that a webhook sink cannot honour is
// reported by check-config, not ignored without a word (issue 14, bug 10).
func TestConfigWarnings(t *testing.T) {
	hook := "webhook_url: https://chat.example.com/hooks/ID123456/TOKsecretvalue\n"
	rest := "url: https://x\nuser_id: u\ntoken: t\n"
	cases := []struct {
		name, src    string
		want         []string // substrings of the sink's warnings, in order
		routeChannel string
		wantRoute    bool
	}{
		{"webhook", hook, nil, "#alerts-critical", true},
		{"webhook with channel", hook + "channel: \"#alerts\"", []string{`channel: channel "#alerts" is ignored`}, "#alerts-critical", true},
		{"webhook with override", hook + "channel: \"#alerts\"\nwebhook_override_channel: true", nil, "#alerts-critical", false},
		{"webhook, route names no channel", hook, nil, "", false},
		{"rest", rest + "channel: \"#alerts\"", nil, "#alerts-critical", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := decode(t, c.src)
			if err != nil {
				t.Fatal(err)
			}
			warns := cfg.Warnings()
			if len(warns) != len(c.want) {
				t.Fatalf("warnings %q, want %d", warns, len(c.want))
			}
			for i, w := range c.want {
				if !strings.Contains(warns[i], w) || !strings.Contains(warns[i], "webhook_override_channel") {
					t.Errorf("warning %q does not say %q and name webhook_override_channel", warns[i], w)
				}
			}
			got := cfg.RouteChannelWarning(c.routeChannel)
			if (got != "") != c.wantRoute {
				t.Errorf("RouteChannelWarning(%q) = %q, want a warning: %v", c.routeChannel, got, c.wantRoute)
			}
			if got != "" && (!strings.Contains(got, c.routeChannel) || !strings.Contains(got, "webhook_override_channel")) {
				t.Errorf("RouteChannelWarning(%q) = %q: names neither the channel nor the setting", c.routeChannel, got)
			}
			for _, w := range append(warns, got) {
				if strings.Contains(w, "TOKsecretvalue") {
					t.Errorf("warning shows the hook token: %s", w)
				}
			}
		})
	}
}

// TestTemplateFileErrors: a template file's problems are reported against
// the user's file and line, not the defaults' default.tmpl, and a file that
// overrides nothing is refused (issue 14).
func TestTemplateFileErrors(t *testing.T) {
	cases := []struct{ name, file, want string }{
		{"unknown field", "{{define \"text\"}}\n{{.Nope}}{{end}}", "bad.tmpl:2:"},
		{"syntax error", "{{define \"attachment\"}}\n\n{{end}", "bad.tmpl:3:"},
		{"unknown field in digest", "{{define \"digest\"}}{{range .Items}}{{.Nope}}{{end}}{{end}}", "bad.tmpl:1:"},
		{"empty", "", `defines none of the templates "text", "attachment", "reminder", "digest"`},
		{"misnamed", "{{define \"message\"}}{{.Title}}{{end}}", "defines none"},
		{"no define", "{{.Title}} is {{.StatusText}}", "text outside {{define}}"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.tmpl")
			os.WriteFile(path, []byte(c.file), 0o644)
			_, err := decode(t, "webhook_url: https://chat.example.com/hooks/a/b\ntemplate: "+path)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "template:") {
				t.Fatalf("err = %v, want it to say %q", err, c.want)
			}
			if strings.Contains(err.Error(), "default.tmpl") {
				t.Errorf("err = %v names the defaults' file", err)
			}
		})
	}
}
