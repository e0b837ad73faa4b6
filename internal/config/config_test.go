package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/herald-notify/herald/internal/dispatch"
	"github.com/herald-notify/herald/internal/server"
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
		{"unknown top-level key", "listen: \":1\"\nlisten_adress: x\n" + minimal, "herald.yml: line 2: listen_adress: unknown key (known: listen, data_dir, log, server, tls, auth, webhook, queue, dispatch, sinks, routes)"},
		{"unknown nested key", "server:\n  read_timeout: 1s\n  raed_timeout: 2s\n" + minimal, "herald.yml: line 3: server.raed_timeout: unknown key, did you mean read_timeout? (known: read_header_timeout, read_timeout, write_timeout, idle_timeout, max_body_bytes, shutdown_timeout)"},
		{"unknown key in a sink", "sinks:\n  - name: log\n    log: {}\n    colour: red\nroutes: [{name: d, chain: [log]}]\n", "herald.yml: line 4: sinks[0].colour: unknown key (known: name, log, rocketchat, slack, mattermost, email, webhook, teams)"},
		{"wrong type", "listen: [1]\n" + minimal, "herald.yml: line 1: listen: expected a single value, got a list"},
		{"bad duration", "server:\n  read_timeout: soon\n" + minimal, `herald.yml: line 2: server.read_timeout: expected a duration such as 30s, 5m or 1h30m, got "soon"`},
		{"unset env", "listen: ${HERALD_TEST_UNSET_VAR}\n" + minimal, "line 1: ${HERALD_TEST_UNSET_VAR} is not set"},
		{"unset env deeper", "auth:\n  clients:\n    - name: am\n      token: ${HERALD_TEST_UNSET_VAR}\n" + minimal, "herald.yml: line 4: ${HERALD_TEST_UNSET_VAR} is not set"},
		{"unset env in a literal block", "auth:\n  clients:\n    - name: am\n      token: |\n        a\n        ${HERALD_TEST_UNSET_VAR}\n" + minimal, "herald.yml: line 6: ${HERALD_TEST_UNSET_VAR} is not set"},
		{"unset env and unknown key together", "queue:\n  replicaz: 3\nlisten: ${HERALD_TEST_UNSET_VAR}\n" + minimal, "herald.yml: line 2: queue.replicaz: unknown key, did you mean replicas? (known: url, credentials_file, token, token_file, listen, replicas, partitions, max_in_hand, sync, sync_interval, max_storage, duplicate_window, retention, ack_wait, publish_timeout)\nherald.yml: line 3: ${HERALD_TEST_UNSET_VAR} is not set"},
		{"unknown key in dispatch", "dispatch:\n  quick_retriez: 1\n" + minimal, "herald.yml: line 2: dispatch.quick_retriez: unknown key, did you mean quick_retries?"},
		{"unquoted reference in a flow mapping", "auth:\n  clients: [{name: am, token: ${HERALD_TEST_UNSET_VAR}}]\n" + minimal, `quote a reference: "${NAME}"`},
		{"unquoted reference in a flow mapping on line 1", "queue: {partitions: ${HERALD_TEST_UNSET_VAR}}\n" + minimal, `quote a reference: "${NAME}"`},
		{"two documents", minimal + "---\nlisten: x\n", "only one YAML document"},
		{"bad listen", "listen: nonsense\n" + minimal, `listen: "nonsense" is not host:port`},
		{"bad log level", "log: {level: loud}\n" + minimal, `log.level: "loud"`},
		{"no sinks", "routes: [{name: d, chain: [x]}]\n", "sinks: at least one sink"},
		{"no routes", "sinks: [{name: rc, log: {}}]\n", "herald.yml: routes: at least one route is required: a sink receives only what a route sends it, such as routes: [{name: default, chain: [rc]}]"},
		{"sink without type", "sinks: [{name: a}]\nroutes: [{name: d, chain: [a]}]\n", "one of log, rocketchat, slack, mattermost, email"},
		{"route to unknown sink", "sinks: [{name: a, log: {}}]\nroutes: [{name: d, chain: [b]}]\n", `no sink is named "b"`},
		{"client without credentials", "auth:\n  clients: [{name: am}]\n" + minimal, "auth.clients[0]: token or username and password required"},
		{"token and token_file", "auth:\n  clients: [{name: am, token: x, token_file: /nonexistent}]\n" + minimal, "token and token_file are both set"},
		{"unknown scope", "auth:\n  clients:\n    - {name: am, token: x, scopes: [publish]}\n    - {name: ops, token: y, scopes: [raed, admin]}\n" + minimal,
			`herald.yml: line 4: auth.clients[1].scopes[0]: unknown scope "raed": one of publish, read, admin`},
		{"scope in capitals", "auth:\n  clients: [{name: am, token: x, scopes: [Publish]}]\n" + minimal, `auth.clients[0].scopes[0]: unknown scope "Publish"`},
		{"scope listed twice", "auth:\n  clients: [{name: am, token: x, scopes: [read, read]}]\n" + minimal, `auth.clients[0].scopes[1]: "read" is listed twice`},
		{"empty scopes", "auth:\n  clients: [{name: am, token: x, scopes: []}]\n" + minimal, "herald.yml: line 2: auth.clients[0].scopes: empty: list one or more of publish, read, admin"},
		{"scopes key without a value", "auth:\n  clients:\n    - name: am\n      token: x\n      scopes:\n" + minimal, "herald.yml: line 5: auth.clients[0].scopes: empty"},
		{"scopes as a string", "auth:\n  clients: [{name: am, token: x, scopes: publish}]\n" + minimal,
			`herald.yml: line 2: auth.clients[0].scopes: expected a list, got "publish" (a list of one is written [publish])`},
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
			for _, v := range []string{"RC_USER_ID", "RC_TOKEN", "SLACK_TOKEN", "HERALD_AM_TOKEN", "HERALD_DEPLOY_BOT_TOKEN", "HERALD_OPERATOR_TOKEN", "ONCALL_WEBHOOK_SECRET"} {
				t.Setenv(v, "x")
			}
			t.Setenv("ONCALL_WEBHOOK_URL", "https://oncall.example.com/hooks/herald")
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

// TestEnvValuesArriveByteForByte: a ${VAR} value is not YAML. Before, it
// was pasted into the text: " #" started a comment, quotes and outer spaces
// went, and inside double quotes \x41 became A.
func TestEnvValuesArriveByteForByte(t *testing.T) {
	values := []string{
		"abc #def",     // the token with " #"
		`p\x41ss`,      // the escape
		`"quoted"`,     // quotes kept
		`'single'`,     //
		"  spaced  ",   // outer spaces kept
		`back\slash\n`, //
		"a: b, c",      // YAML syntax in the value
		"- [x] {y} &z", //
		"#starts-a-comment",
		"null", "~", "true", "0x1F", "1e3", "2001-12-14",
		"multi\nline",
		"tab\there",
		"ünïcødé ✓",
	}
	forms := []struct{ name, token string }{
		{"plain", `${HERALD_TEST_TOKEN}`},
		{"double-quoted", `"${HERALD_TEST_TOKEN}"`},
		{"single-quoted", `'${HERALD_TEST_TOKEN}'`},
	}
	for _, f := range forms {
		for _, v := range values {
			t.Run(f.name+"/"+v, func(t *testing.T) {
				t.Setenv("HERALD_TEST_TOKEN", v)
				c, err := Parse("herald.yml", []byte("auth:\n  clients:\n    - name: am\n      token: "+f.token+"\n"+minimal))
				if err != nil {
					t.Fatal(err)
				}
				if got := c.Auth.Clients[0].Token.Value(); got != v {
					t.Errorf("token = %q, want %q", got, v)
				}
			})
		}
	}
}

func TestEnvExpansionRules(t *testing.T) {
	t.Setenv("HERALD_TEST_NUM", "3")
	t.Setenv("HERALD_TEST_PORT", "9999")
	t.Setenv("HERALD_TEST_EMPTY", "")
	t.Setenv("HERALD_TEST_KEY", "listen")
	t.Setenv("HERALD_TEST_CHAN", "#db ops")
	tests := []struct {
		name    string
		yaml    string
		got     func(*Config) string
		want    string
		wantErr string
	}{
		{name: "a plain number stays a number", yaml: "queue:\n  partitions: ${HERALD_TEST_NUM}\n" + minimal,
			got: func(c *Config) string { return strconv.Itoa(c.Queue.Partitions) }, want: "3"},
		{name: "part of a value", yaml: "listen: 127.0.0.1:${HERALD_TEST_PORT}\n" + minimal,
			got: func(c *Config) string { return c.Listen }, want: "127.0.0.1:9999"},
		{name: "empty is the default", yaml: "server:\n  max_body_bytes: ${HERALD_TEST_EMPTY}\n" + minimal,
			got: func(c *Config) string { return strconv.FormatInt(c.Server.MaxBodyBytes, 10) }, want: "4194304"},
		{name: "list items", yaml: `
sinks: [{name: log, log: {}}]
routes:
  - name: a
    matchers:
      - team="${HERALD_TEST_KEY}"
    chain: [log]
  - name: default
    chain: [log]
`, got: func(c *Config) string { return c.Routes[0].Matchers[0] }, want: `team="listen"`},
		{name: "bare $ and $$ are left alone", yaml: `
sinks: [{name: log, log: {}}]
routes:
  - name: a
    matchers: ['team=~"^db$$|x$"', 'cost="$5"', 'x="${}"']
    chain: [log]
  - name: default
    chain: [log]
`, got: func(c *Config) string { return strings.Join(c.Routes[0].Matchers, " ") }, want: `team=~"^db$$|x$" cost="$5" x="${}"`},
		{name: "an anchor is expanded for its aliases", yaml: `
sinks: [{name: log, log: {}}]
routes:
  - name: default
    chain: [log]
    channels: {log: &c "${HERALD_TEST_CHAN}"}
    templates: {log: *c}
`, got: func(c *Config) string { return c.Routes[0].Channels["log"] + "|" + c.Routes[0].Templates["log"] }, want: "#db ops|#db ops"},
		{name: "keys are not expanded", yaml: "${HERALD_TEST_KEY}: \":1\"\n" + minimal,
			wantErr: `line 1: ${HERALD_TEST_KEY}: unknown key (known: listen,`},
		{name: "map keys are not expanded", yaml: `
sinks: [{name: log, log: {}}]
routes:
  - name: default
    chain: [log]
    channels:
      ${HERALD_TEST_KEY}: "#x"
`, wantErr: `routes[0].channels: "${HERALD_TEST_KEY}" is not in the route's chain`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("herald.yml", []byte(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.got(c); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestURLCredentialsNeverShown: a URL's password (or NATS token in its user
// part) is a secret in the printed config and in every error.
func TestURLCredentialsNeverShown(t *testing.T) {
	c, err := Parse("herald.yml", []byte("queue:\n  url: nats://herald:PW-in-url@n1:4222,nats://tok-in-url@n2:4222\n"+minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Queue.URL != "nats://herald:PW-in-url@n1:4222,nats://tok-in-url@n2:4222" {
		t.Fatalf("queue.url changed to %q", c.Queue.URL)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "url: nats://herald:<secret>@n1:4222,nats://<secret>@n2:4222\n") {
		t.Errorf("queue.url not shown redacted:\n%s", out)
	}

	tests := []struct{ name, yaml, want string }{
		{"queue.url that does not parse", "queue:\n  url: nats://herald:PW-in-url#x@n1:4222\n" + minimal,
			"herald.yml: line 2: queue.url: server 1 is not a valid URL"},
		{"sink url with credentials", "sinks:\n  - name: rc\n    rocketchat: {url: 'ftp://bob:PW-in-url@chat', user_id: u, token: t}\nroutes: [{name: d, chain: [rc]}]\n",
			`herald.yml: line 3: sinks[0] (rc): url: "ftp://bob:<secret>@chat" is not an http(s) URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("herald.yml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "PW-in-url") {
				t.Errorf("Parse error = %v\nwant it to contain %q and no password", err, tt.want)
			}
		})
	}
}

func TestDispatchDefaultsApplied(t *testing.T) {
	c, err := Parse("herald.yml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Dispatch != dispatch.DefaultConfig() {
		t.Errorf("without a dispatch section, dispatch = %+v\nwant the defaults %+v", c.Dispatch, dispatch.DefaultConfig())
	}
	c, err = Parse("herald.yml", []byte("dispatch:\n  quick_retries: 0\n"+minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := dispatch.DefaultConfig()
	want.QuickRetries = 0
	if c.Dispatch != want {
		t.Errorf("with quick_retries: 0, dispatch = %+v", c.Dispatch)
	}
}

// TestProblemsNameTheirLine: a validation problem names the file and the
// line of the key it is about, or of the closest enclosing one.
func TestProblemsNameTheirLine(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"top-level key", "listen: nonsense\n" + minimal, `herald.yml: line 1: listen: "nonsense" is not host:port`},
		{"route list item", "sinks: [{name: a, log: {}}]\nroutes:\n  - name: x\n    chain: [a]\n  - name: d\n    chain:\n      - a\n      - b\n",
			`herald.yml: line 8: routes[1].chain[1]: no sink is named "b"`},
		{"section key after its name", "queue:\n  ack_wait: 1s\n  replicas: 9\n" + minimal, "herald.yml: line 3: queue: replicas: 9 is not between 1 and 5"},
		{"key in a sink's type section", "sinks:\n  - name: rc\n    rocketchat:\n      url: http://x\n      user_id: u\n      token: t\n      max_message_size: 3\nroutes: [{name: d, chain: [rc]}]\n",
			"herald.yml: line 7: sinks[0] (rc): max_message_size: must be at least 500"},
		{"key left out: its section", "sinks:\n  - name: rc\n    rocketchat:\n      url: http://x\n      token: t\nroutes: [{name: d, chain: [rc]}]\n",
			"herald.yml: line 2: sinks[0] (rc): user_id: required in rest mode"},
		{"several problems, one a line each", "listen: nonsense\nlog: {level: loud}\n" + minimal,
			"missing port in address\nherald.yml: line 2: log.level: \"loud\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("herald.yml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error =\n%v\nwant it to contain\n%s", err, tt.want)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	c, err := Parse("herald.yml", []byte(`
sinks: [{name: log, log: {}}]
routes:
  - name: all
    chain: [log]
  - name: db
    matchers: ['team="db"']
    chain: [log]
  - name: default
    chain: [log]
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`herald.yml: line 6: routes[1] ("db"): never reached: routes[0] ("all") before it matches every notification`,
		`herald.yml: line 9: routes[2] ("default"): never reached: routes[0] ("all") before it matches every notification`,
	}
	if got := c.Warnings(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Warnings =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c, _ := Parse("herald.yml", []byte(minimal)); len(c.Warnings()) != 0 {
		t.Errorf("minimal config warns: %q", c.Warnings())
	}
}

func TestSecretFileNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{fifo, "/dev/zero"} {
		_, err := Parse("herald.yml", []byte("auth:\n  clients:\n    - name: am\n      token_file: "+f+"\n"+minimal))
		want := "herald.yml: line 4: auth.clients[0]: token_file: " + f + " is a "
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse error = %v\nwant it to contain %q", err, want)
		}
	}
}

// A channel a Rocket.Chat webhook sink would ignore is a warning, named by
// its key and line, in the sink's config and in a route.
func TestWebhookChannelWarnings(t *testing.T) {
	c, err := Parse("herald.yml", []byte(`
sinks:
  - name: hook
    rocketchat: {mode: webhook, webhook_url: "https://chat.example.com/hooks/a/b", channel: "#ops"}
routes:
  - name: all
    channels: {hook: "#alerts-critical"}
    chain: [hook]
`))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{"sinks[0].rocketchat.channel", "routes[0].channels.hook", `"#alerts-critical" is ignored`, "webhook_override_channel"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings %q lack %q", got, want)
		}
	}
}

// TestScopes: a client has the scopes it lists; one that lists none has
// every scope, as before scopes existed, and check-config and the start
// warn about it with its line.
func TestScopes(t *testing.T) {
	c, err := Parse("herald.yml", []byte(`
auth:
  clients:
    - name: alertmanager
      token: am-token
      scopes: [publish]
    - name: ops
      username: ops
      password: pw
      scopes: [read, admin]
    - name: legacy
      token: legacy-token
    - name: everything
      token: all-token
      scopes: [publish, read, admin]
`+minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]server.Scope{
		"alertmanager": {server.ScopePublish},
		"ops":          {server.ScopeRead, server.ScopeAdmin},
		"legacy":       {server.ScopePublish, server.ScopeRead, server.ScopeAdmin},
		"everything":   {server.ScopePublish, server.ScopeRead, server.ScopeAdmin},
	}
	for _, cl := range c.Auth.Clients {
		if !slices.Equal(cl.Scopes, want[cl.Name]) {
			t.Errorf("%s: scopes %v, want %v", cl.Name, cl.Scopes, want[cl.Name])
		}
		for _, s := range server.AllScopes() {
			if got := cl.Allows(s); got != slices.Contains(want[cl.Name], s) {
				t.Errorf("%s: Allows(%s) = %v", cl.Name, s, got)
			}
		}
	}
	wantWarnings := []string{`herald.yml: line 11: auth.clients[2] ("legacy"): no scopes listed, so it has all of them (publish, read, admin); ` +
		`list only what it needs, such as scopes: [publish] for Alertmanager`}
	if got := c.Warnings(); !slices.Equal(got, wantWarnings) {
		t.Errorf("Warnings =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantWarnings, "\n"))
	}
	// Validated again (as tests and Default do), the client still warns.
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.Warnings(); !slices.Equal(got, wantWarnings) {
		t.Errorf("after a second Validate, Warnings = %q", got)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "name: legacy\n") || !strings.Contains(string(out), "scopes:\n            - publish\n            - read\n            - admin\n") {
		t.Errorf("check-config output does not show the scopes herald runs with:\n%s", out)
	}

	// Not read from a file, a client without scopes has every scope too.
	var zero ClientConfig
	for _, s := range server.AllScopes() {
		if !zero.Allows(s) {
			t.Errorf("a client without scopes lacks %s", s)
		}
	}
}

// goTypeName matches a qualified Go type name ("rocketchat.Config",
// "time.Duration") or a YAML tag ("!!str"): words that a config error must
// not show a user.
var goTypeName = regexp.MustCompile(`\b[a-z0-9]+\.[A-Z]\w*|\[\][a-z]|!!\w+`)

// TestErrorMessages pins whole error messages: each names the file, the
// line and the key path in the config's words, and says what is expected.
func TestErrorMessages(t *testing.T) {
	rc := func(body string) string {
		return "sinks:\n  - name: rc\n    rocketchat:\n      url: http://chat\n      user_id: u\n      token: t\n" + body + "routes: [{name: d, chain: [rc]}]\n"
	}
	tests := []struct{ name, yaml, want string }{
		{"unknown key in a sink's section", rc("      foo: 1\n"),
			"herald.yml: line 7: sinks[0].rocketchat.foo: unknown key (known: url, mode, user_id, token, token_file, webhook_url, webhook_url_file, " +
				"channel, timeout, max_message_size, mentions, remind_mention_every, webhook_rate, webhook_override_channel, alias, emoji, avatar, template)"},
		{"misspelt key", rc("      timout: 5s\n"),
			"herald.yml: line 7: sinks[0].rocketchat.timout: unknown key, did you mean timeout? (known: url, mode, user_id, token, token_file, webhook_url, webhook_url_file, " +
				"channel, timeout, max_message_size, mentions, remind_mention_every, webhook_rate, webhook_override_channel, alias, emoji, avatar, template)"},
		{"key in the wrong case", "Listen: \":1\"\n",
			"herald.yml: line 1: Listen: unknown key, did you mean listen? (known: listen, data_dir, log, server, tls, auth, webhook, queue, dispatch, sinks, routes)"},
		{"bad duration", rc("      timeout: 5x\n"),
			`herald.yml: line 7: sinks[0].rocketchat.timeout: expected a duration such as 30s, 5m or 1h30m, got "5x"`},
		{"duration without a unit", rc("      timeout: 5\n"),
			"herald.yml: line 7: sinks[0].rocketchat.timeout: expected a duration such as 30s, 5m or 1h30m, got 5 (a duration needs a unit: 5s)"},
		{"bad duration in a flow mapping", "sinks:\n  - {name: rc, rocketchat: {url: 'http://chat', user_id: u, token: t, webhook_rate: {count: 5, per: minute}}}\nroutes: [{name: d, chain: [rc]}]\n",
			`herald.yml: line 2: sinks[0].rocketchat.webhook_rate.per: expected a duration such as 30s, 5m or 1h30m, got "minute"`},
		{"bad duration two levels down", "dispatch:\n  breaker:\n    open_for: x\n" + minimal,
			`herald.yml: line 3: dispatch.breaker.open_for: expected a duration such as 30s, 5m or 1h30m, got "x"`},
		{"bad number", "queue:\n  partitions: many\n" + minimal,
			`herald.yml: line 2: queue.partitions: expected a whole number, got "many"`},
		{"bad bool", rc("      webhook_override_channel: sure\n"),
			`herald.yml: line 7: sinks[0].rocketchat.webhook_override_channel: expected true or false, got "sure"`},
		{"bad size: the type's own words", "queue:\n  max_storage: lots\n" + minimal,
			`herald.yml: line 2: queue.max_storage: "lots" is not a size (like 20GiB, 500MB or a number of bytes)`},
		{"a list for a value", "listen: [1]\n" + minimal, "herald.yml: line 1: listen: expected a single value, got a list"},
		{"a value for a section", "server: fast\n" + minimal,
			`herald.yml: line 1: server: expected a mapping with the keys read_header_timeout, read_timeout, write_timeout, idle_timeout, max_body_bytes, shutdown_timeout, got "fast"`},
		{"a mapping for a list", "sinks: {name: log}\n", "herald.yml: line 1: sinks: expected a list, got a mapping"},
		{"a value for a list", "auth:\n  clients: [{name: am, token: x, scopes: publish}]\n" + minimal,
			`herald.yml: line 2: auth.clients[0].scopes: expected a list, got "publish" (a list of one is written [publish])`},
		{"a value in a map", rc("      remind_mention_every: {all: often}\n"),
			`herald.yml: line 7: sinks[0].rocketchat.remind_mention_every.all: expected a whole number, got "often"`},
		{"every problem, in line order", "queue:\n  partitions: many\nserver:\n  read_timout: 1s\n  idle_timeout: soon\n" + minimal,
			"herald.yml: line 2: queue.partitions: expected a whole number, got \"many\"\n" +
				"herald.yml: line 4: server.read_timout: unknown key, did you mean read_timeout? (known: read_header_timeout, read_timeout, write_timeout, idle_timeout, max_body_bytes, shutdown_timeout)\n" +
				"herald.yml: line 5: server.idle_timeout: expected a duration such as 30s, 5m or 1h30m, got \"soon\""},
		{"a value with an unset variable is not checked", "server:\n  read_timeout: ${HERALD_TEST_UNSET_VAR}x\n" + minimal,
			"herald.yml: line 2: ${HERALD_TEST_UNSET_VAR} is not set"},
		{"unknown key through an alias", "server: &s {read_timeout: 1s, foo: 2}\nwebhook: {max_body_bytes: 10}\n" + minimal,
			"herald.yml: line 1: server.foo: unknown key (known: read_header_timeout, read_timeout, write_timeout, idle_timeout, max_body_bytes, shutdown_timeout)"},

		// Syntax errors name the line with the mistake; the YAML library
		// names the line before the block it is in.
		{"indentation", "sinks:\n  - name: rc\n    log: {}\n   bad: indent\nroutes: [{name: d, chain: [rc]}]\n",
			"herald.yml: line 4: did not find expected '-' indicator (check the indentation of this line against the lines above)"},
		{"unclosed flow mapping", "sinks:\n  - name: rc\n    log: {}\n  - name: x\n    log: {\nroutes: [{name: d, chain: [rc]}]\n",
			"herald.yml: line 5: did not find expected ',' or '}' (check that each [ and { from here on is closed, and items are separated by commas)"},
		{"unclosed quote", "listen: \":1\"\ndata_dir: \"/var/lib/herald\n" + minimal,
			"herald.yml: line 2: found unexpected end of stream (a quote, [ or { opened here is not closed)"},
		{"tab", "server:\n\tread_timeout: 1s\n",
			"herald.yml: line 2: found character that cannot start any token (a tab: YAML indents with spaces only)"},
		{"colon in a plain value", "listen: a: b\n",
			`herald.yml: line 1: mapping values are not allowed in this context (quote a value that has ": " in it, or check the indentation)`},
		{"list left open", "sinks: [{name: log, log: {}}]\nroutes: [\n  {name: d, chain: [log]},\n  {name: e, chain: [log]\n]\n",
			"herald.yml: line 4: did not find expected ',' or '}' (check that each [ and { from here on is closed, and items are separated by commas)"},
		{"key set twice", "listen: \":1\"\nsinks:\n  - name: a\n    log: {}\n    name: b\nlisten: \":2\"\n",
			"herald.yml: line 5: sinks[0].name: set twice: first on line 3\nherald.yml: line 6: listen: set twice: first on line 1"},
		{"second document", minimal + "---\nlisten: x\n", "herald.yml: line 8: only one YAML document is allowed"},

		// Sinks without routes, and routes without sinks, are mistakes.
		{"sinks without routes", "sinks: [{name: rc, log: {}}]\n",
			"herald.yml: routes: at least one route is required: a sink receives only what a route sends it, such as routes: [{name: default, chain: [rc]}]"},
		{"routes without sinks", "routes: [{name: d, chain: [log]}]\n",
			"herald.yml: sinks: at least one sink is required: the routes deliver to the sinks their chains name (leave out both sinks and routes to send every notification to the log)\n" +
				`herald.yml: line 1: routes[0].chain[0]: no sink is named "log"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("herald.yml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse accepted\n%s", tt.yaml)
			}
			if err.Error() != tt.want {
				t.Errorf("Parse error =\n%s\nwant\n%s", err, tt.want)
			}
			if m := goTypeName.FindString(err.Error()); m != "" {
				t.Errorf("the error shows %q, a Go or YAML type name", m)
			}
		})
	}
}

// TestMinimalConfig: a file that names neither sinks nor routes runs with
// the sink and route herald runs with when given no file, and says so.
func TestMinimalConfig(t *testing.T) {
	def := Default()
	for _, tt := range []struct{ name, yaml string }{
		{"listen only", "listen: \":9000\"\n"},
		{"empty", ""},
		{"comments only", "# herald with its defaults\n"},
		{"empty lists", "sinks: []\nroutes: []\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("herald.yml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Sinks, def.Sinks) || !reflect.DeepEqual(c.Routes, def.Routes) {
				t.Errorf("sinks %+v routes %+v\nwant Default()'s: sinks %+v routes %+v", c.Sinks, c.Routes, def.Sinks, def.Routes)
			}
			if c.DataDir != def.DataDir || c.Dispatch != def.Dispatch || c.Queue != def.Queue {
				t.Errorf("defaults differ from Default(): %+v", c)
			}
			want := "herald.yml: no sinks or routes: every notification goes to herald's log (the log sink), as with no config file; add sinks and routes to deliver to chat"
			if got := c.Warnings(); !slices.Equal(got, []string{want}) {
				t.Errorf("Warnings = %q, want %q", got, want)
			}
		})
	}
	if got := def.Warnings(); len(got) != 0 {
		t.Errorf("with no file, Warnings = %q, want none", got)
	}
	c, err := Parse("herald.yml", []byte("listen: \":9000\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":9000" {
		t.Errorf("listen = %q", c.Listen)
	}
}

// TestAliasesCheckedOnce: an anchored value is checked once however many
// aliases use it, so that aliases cannot make the check of a document
// quadratic (or worse) in its size.
func TestAliasesCheckedOnce(t *testing.T) {
	const n = 1000
	var b strings.Builder
	b.WriteString("sinks: [{name: log, log: {}}]\nroutes:\n  - &r {name: d, chain: [log], matchers: [")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`'a="b"'`)
	}
	b.WriteString("]}\n")
	for range n {
		b.WriteString("  - *r\n")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(b.String()), &doc); err != nil {
		t.Fatal(err)
	}
	c := checker{}
	c.walk(&doc, reflect.TypeFor[Config](), "", 0)
	if len(c.problems) != 0 {
		t.Errorf("problems: %v", c.problems)
	}
	// Linear in the document's size: without the anchors checked once,
	// the walk visits n*n nodes.
	if c.visits > 4*n {
		t.Errorf("walked %d nodes for a document of %d aliases of a route with %d matchers", c.visits, n, n)
	}
}
