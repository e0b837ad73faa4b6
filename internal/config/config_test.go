package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const minimal = `
sinks:
  - name: log
    log: {}
routes:
  - name: default
    chain: [log]
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown top-level key", "listen: \":1\"\nlisten_adress: x\n" + minimal, `herald.yml: line 2: unknown key "listen_adress"`},
		{"unknown nested key", "server:\n  read_timeout: 1s\n  raed_timeout: 2s\n" + minimal, `line 3: unknown key "raed_timeout"`},
		{"unknown key in a sink", "sinks:\n  - name: log\n    log: {}\n    colour: red\nroutes: [{name: d, chain: [log]}]\n", `line 4: unknown key "colour"`},
		{"wrong type", "listen: [1]\n" + minimal, "line 1"},
		{"bad duration", "server:\n  read_timeout: soon\n" + minimal, "line 2"},
		{"unset env", "listen: ${HERALD_TEST_UNSET_VAR}\n" + minimal, "line 1: ${HERALD_TEST_UNSET_VAR} is not set"},
		{"empty file", "", "the file is empty"},
		{"two documents", minimal + "---\nlisten: x\n", "only one YAML document"},
		{"bad listen", "listen: nonsense\n" + minimal, `listen: "nonsense" is not host:port`},
		{"bad log level", "log: {level: loud}\n" + minimal, `log.level: "loud"`},
		{"no sinks", "routes: [{name: d, chain: [x]}]\n", "sinks: at least one sink"},
		{"sink without type", "sinks: [{name: a}]\nroutes: [{name: d, chain: [a]}]\n", "one of log, rocketchat or slack is required"},
		{"route to unknown sink", "sinks: [{name: a, log: {}}]\nroutes: [{name: d, chain: [b]}]\n", `no sink is named "b"`},
		{"client without credentials", "auth:\n  clients: [{name: am}]\n" + minimal, "auth.clients[0]: token or username and password required"},
		{"token and token_file", "auth:\n  clients: [{name: am, token: x, token_file: /nonexistent}]\n" + minimal, "token and token_file are both set"},
		{"missing token_file", "auth:\n  clients: [{name: am, token_file: /nonexistent/token}]\n" + minimal, "token_file: open /nonexistent/token"},
		{"retry budget outlives retention", "queue: {retention: 12h}\n" + minimal, "dispatch.retry_budget (24h0m0s) must be shorter than queue.retention"},
		{"tls half", "tls: {cert_file: a.pem}\n" + minimal, "cert_file and key_file go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("herald.yml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDefaultsApplied(t *testing.T) {
	c, err := Parse("herald.yml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8093" || c.DataDir != "data" || c.Webhook.MaxBodyBytes != 4<<20 || c.Server.ReadHeaderTimeout == 0 {
		t.Errorf("defaults not applied: %+v", c)
	}
	if d := Default(); d.Sinks[0].Type() != "log" || d.Routes[0].Chain[0] != "log" {
		t.Errorf("Default() = %+v", d)
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("HERALD_TEST_PORT", "9999")
	t.Setenv("HERALD_TEST_TOKEN", "s3cr3t-from-env")
	c, err := Parse("herald.yml", []byte("listen: \"127.0.0.1:${HERALD_TEST_PORT}\"\nauth:\n  clients: [{name: am, token: \"${HERALD_TEST_TOKEN}\"}]\n"+minimal+
		"# a bare $ stays: ^foo$\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9999" || c.Auth.Clients[0].Token.Value() != "s3cr3t-from-env" {
		t.Errorf("expansion: listen %q token set %v", c.Listen, c.Auth.Clients[0].Token.IsSet())
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("hunter2-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse("herald.yml", []byte(`
auth:
  clients:
    - {name: am, token: tok-inline-123}
    - {name: ops, username: ops, password_file: `+pwFile+`}
`+minimal))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Auth.Clients[1].Password.Value(); got != "hunter2-from-file" {
		t.Fatalf("password_file read as %q", got)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"tok-inline-123", "hunter2"} {
		if strings.Contains(string(out), s) {
			t.Errorf("marshalled config reveals %q:\n%s", s, out)
		}
	}
	if !strings.Contains(string(out), "<secret>") {
		t.Errorf("marshalled config does not show <secret>:\n%s", out)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	matches, _ := filepath.Glob("../../deploy/*.yml")
	for _, f := range matches {
		if strings.HasSuffix(f, "rules.yml") || strings.Contains(f, "compose") {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			for _, v := range []string{"RC_USER_ID", "RC_TOKEN", "SLACK_TOKEN", "HERALD_AM_TOKEN", "HERALD_DEPLOY_BOT_TOKEN"} {
				t.Setenv(v, "x")
			}
			if _, err := Load(f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestEnvNotExpandedInComments(t *testing.T) {
	t.Setenv("HERALD_TEST_LEVEL", "debug")
	c, err := Parse("herald.yml", []byte("# use ${UNSET_IN_COMMENT} here\nlog: {level: \"${HERALD_TEST_LEVEL}\"} # ${ALSO_UNSET}\n"+minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Level != "debug" {
		t.Errorf("log.level = %q", c.Log.Level)
	}
}
