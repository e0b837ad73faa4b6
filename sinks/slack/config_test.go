package slack

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/herald-notify/herald/sinks"
)

// decode parses one sink's YAML strictly, as the config loader does.
func decode(t testing.TB, src string) (Config, error) {
	t.Helper()
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("xoxb-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hookFile := filepath.Join(dir, "hook")
	if err := os.WriteFile(hookFile, []byte("https://hooks.slack.com/services/T1/B1/filesecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name    string
		yaml    string
		wantErr string // substring; "" means valid
		check   func(t *testing.T, c Config)
	}{
		{name: "bot minimal", yaml: "token: xoxb-1\n", check: func(t *testing.T, c Config) {
			if c.Mode != ModeBot || c.APIURL != DefaultAPIURL || c.Timeout != DefaultTimeout || c.Pace != DefaultPace {
				t.Errorf("defaults not applied: %+v", c)
			}
		}},
		{name: "token file", yaml: "token_file: " + tokenFile + "\n", check: func(t *testing.T, c Config) {
			if c.Token.Value() != "xoxb-from-file" || c.Mode != ModeBot {
				t.Errorf("token from file = %q, mode %q", c.Token.Value(), c.Mode)
			}
		}},
		{name: "webhook file", yaml: "webhook_url_file: " + hookFile + "\n", check: func(t *testing.T, c Config) {
			if c.Mode != ModeWebhook || !strings.HasSuffix(c.WebhookURL.Value(), "/filesecret") {
				t.Errorf("mode %q, webhook not read from file", c.Mode)
			}
		}},
		{name: "api url gets a slash", yaml: "token: x\napi_url: http://slack-proxy:8080/api\n", check: func(t *testing.T, c Config) {
			if c.APIURL != "http://slack-proxy:8080/api/" {
				t.Errorf("api_url = %q", c.APIURL)
			}
		}},
		{name: "mentions", yaml: "token: x\nmentions:\n  critical: '@here <@U024BE7LH>'\n  warning: <!subteam^S0123ABC|oncall>\n", check: func(t *testing.T, c Config) {
			if c.Mentions["critical"] != "<!here> <@U024BE7LH>" || c.Mentions["warning"] != "<!subteam^S0123ABC|oncall>" {
				t.Errorf("mentions = %q", c.Mentions)
			}
		}},
		{name: "durations", yaml: "token: x\ntimeout: 3s\npace: 250ms\n", check: func(t *testing.T, c Config) {
			if c.Timeout != 3*time.Second || c.Pace != 250*time.Millisecond {
				t.Errorf("timeout %v pace %v", c.Timeout, c.Pace)
			}
		}},
		{name: "unknown key", yaml: "token: x\nchanel: '#a'\n", wantErr: "field chanel not found"},
		{name: "nothing", yaml: "channel: '#a'\n", wantErr: "token or webhook_url"},
		{name: "both secrets", yaml: "token: x\nwebhook_url: https://hooks.slack.com/services/x\n", wantErr: "set mode"},
		{name: "token and file", yaml: "token: x\ntoken_file: " + tokenFile + "\n", wantErr: "token and token_file are both set"},
		{name: "missing file", yaml: "token_file: /nonexistent/t\n", wantErr: "token_file"},
		{name: "bad mode", yaml: "mode: rtm\ntoken: x\n", wantErr: `mode: "rtm"`},
		{name: "bot without token", yaml: "mode: bot\nwebhook_url: https://h/x\n", wantErr: "token: required in bot mode"},
		{name: "webhook not a url", yaml: "webhook_url: 'ftp://hooks.slack.com/services/T/B/s3cr3tvalue'\n", wantErr: "webhook_url: must be an http or https URL"},
		{name: "api url with credentials", yaml: "token: x\napi_url: https://u:p@proxy/\n", wantErr: "must not embed credentials"},
		{name: "bad mention", yaml: "token: x\nmentions:\n  critical: '@oncall'\n", wantErr: "mentions.critical"},
		{name: "mention for unknown severity", yaml: "token: x\nmentions:\n  page: <!here>\n", wantErr: `"page" is not a severity`},
		{name: "bad icon", yaml: "token: x\nicon_emoji: siren\n", wantErr: "icon_emoji"},
		{name: "negative timeout", yaml: "token: x\ntimeout: -1s\n", wantErr: "timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := decode(t, c.yaml)
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				c.check(t, cfg)
				// A validated config builds a sink: Validate runs again
				// in New and must agree.
				if _, err := New("x", cfg, sinks.Deps{}); err != nil {
					t.Errorf("New on a validated config: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, c.wantErr)
			}
			if strings.Contains(err.Error(), "s3cr3tvalue") {
				t.Errorf("error reveals the webhook URL: %v", err)
			}
		})
	}
}

func TestConfigDumpHidesSecrets(t *testing.T) {
	cfg, err := decode(t, "token: xoxb-dump-secret\n")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := yaml.NewEncoder(&buf).Encode(cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "xoxb-dump-secret") || !strings.Contains(buf.String(), "<secret>") {
		t.Errorf("dumped config:\n%s", buf.String())
	}
}

// FuzzConfig decodes and validates arbitrary YAML: no panic, and a config
// that validates builds a sink.
func FuzzConfig(f *testing.F) {
	f.Add("token: xoxb-1\nmentions:\n  critical: '@here'\n")
	f.Add("webhook_url: https://hooks.slack.com/services/a\npace: -1s\n")
	f.Add("mode: bot\ntoken: x\napi_url: '%zz'\n")
	f.Fuzz(func(t *testing.T, src string) {
		cfg, err := decode(t, src)
		if err != nil {
			return
		}
		if _, err := New("fuzz", cfg, sinks.Deps{}); err != nil {
			t.Errorf("validated config does not build: %v", err)
		}
	})
}
