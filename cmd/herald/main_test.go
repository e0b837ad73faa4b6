package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app/apptest"
)

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "rc-token")
	os.WriteFile(tokFile, []byte("rc-token-from-file-XYZ\n"), 0o600)
	good := filepath.Join(dir, "good.yml")
	os.WriteFile(good, []byte(`
auth:
  clients: [{name: am, token: am-inline-secret-123}]
sinks:
  - name: rc
    rocketchat: {url: "http://127.0.0.1:1", user_id: bot, token_file: `+tokFile+`, channel: "#a"}
  - name: slack
    slack: {webhook_url: "https://hooks.example.com/services/T0/B0/slack-hook-secret"}
routes:
  - {name: default, chain: [rc, slack]}
`), 0o600)
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("listen: \":1\"\nsinks:\n  - name: rc\n    log: {}\n    tokn: oops\nroutes: [{name: d, chain: [rc]}]\n"), 0o600)

	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"check-config", good}, &out, &errOut); code != 0 {
		t.Fatalf("check-config good.yml = %d: %s", code, errOut.String())
	}
	for _, s := range []string{"am-inline-secret-123", "rc-token-from-file-XYZ", "slack-hook-secret"} {
		if strings.Contains(out.String()+errOut.String(), s) {
			t.Errorf("check-config printed the secret %q", s)
		}
	}
	if !strings.Contains(out.String(), "<secret>") {
		t.Errorf("check-config output shows no <secret>:\n%s", out.String())
	}

	out.Reset()
	errOut.Reset()
	if code := run(t.Context(), []string{"check-config", bad}, &out, &errOut); code == 0 {
		t.Fatal("check-config bad.yml exited 0")
	}
	if want := `bad.yml: line 5: sinks[0].tokn: unknown key (known: name, log, rocketchat,`; !strings.Contains(errOut.String(), want) {
		t.Errorf("check-config bad.yml said %q, want it to contain %q", errOut.String(), want)
	}
	if code := run(t.Context(), []string{"check-config", filepath.Join(dir, "missing.yml")}, &out, &errOut); code == 0 {
		t.Error("check-config of a missing file exited 0")
	}
}

// TestHelp: every command and subcommand answers -h, -help and --help
// with its usage on stdout and exit 0; a usage mistake exits 2 with the
// usage on stderr.
func TestHelp(t *testing.T) {
	commands := []struct {
		args []string
		// usage is the start of the command's usage.
		usage string
	}{
		{nil, "herald: a durable notification hub"},
		{[]string{"help"}, "herald: a durable notification hub"},
		{[]string{"serve"}, "Usage: herald serve [-config FILE] [flags]\n"},
		{[]string{"check-config"}, "Usage: herald check-config FILE\n"},
		{[]string{"send"}, "Usage: herald send -title TEXT [flags]\n"},
		{[]string{"dlq"}, "Usage: herald dlq list [flags]\n       herald dlq replay [flags] ID... | -all\n"},
		{[]string{"dlq", "list"}, "Usage: herald dlq list [flags]\n"},
		{[]string{"dlq", "replay"}, "Usage: herald dlq replay [flags] ID...\n       herald dlq replay [flags] -all\n"},
		{[]string{"sinks"}, "Usage: herald sinks [flags]\n"},
		{[]string{"route"}, "Usage: herald route test -config FILE"},
		{[]string{"route", "test"}, "Usage: herald route test -config FILE [-source NAME] [label=value ...]\n"},
		{[]string{"template"}, "Usage: herald template -config FILE -file FILE|- [-json]\n"},
		{[]string{"version"}, "Usage: herald version\n"},
	}
	for _, c := range commands {
		for _, h := range []string{"-h", "-help", "--help"} {
			args := append(slices.Clone(c.args), h)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				var out, errOut bytes.Buffer
				code := run(t.Context(), args, &out, &errOut)
				if code != 0 || !strings.HasPrefix(out.String(), c.usage) || errOut.Len() != 0 {
					t.Errorf("exit %d\nstdout %q\nstderr %q\nwant exit 0 and stdout starting %q", code, out.String(), errOut.String(), c.usage)
				}
			})
		}
	}
	// herald help COMMAND is herald COMMAND -h.
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"help", "check-config"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "Usage: herald check-config FILE\n") {
		t.Errorf("help check-config = %d, %q %q", code, out.String(), errOut.String())
	}
	// Every command is in herald's usage.
	out.Reset()
	run(t.Context(), []string{"help"}, &out, &errOut)
	for _, c := range commands {
		if len(c.args) == 1 && !strings.Contains(out.String(), "\n  herald "+c.args[0]+" ") {
			t.Errorf("herald's usage lacks %s:\n%s", c.args[0], out.String())
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		// want starts stderr; the usage follows.
		want, usage string
	}{
		{nil, "herald: a durable notification hub", ""},
		{[]string{"serv"}, `herald: unknown command "serv"`, "Usage:\n  herald serve"},
		{[]string{"serve", "-nosuchflag"}, "herald serve: flag provided but not defined: -nosuchflag\n\nUsage: herald serve", ""},
		{[]string{"send", "-timeout", "5"}, `herald send: invalid value "5" for flag -timeout: parse error`, "Usage: herald send"},
		{[]string{"serve", "herald.yml"}, `herald serve: unexpected argument "herald.yml" (a config file is given with -config FILE)`, "Usage: herald serve"},
		{[]string{"check-config"}, "herald check-config: one config file is required\n", "Usage: herald check-config FILE"},
		{[]string{"check-config", "a.yml", "b.yml"}, "herald check-config: one config file is required\n", "Usage: herald check-config FILE"},
		{[]string{"send", "-title", "x", "extra"}, `herald send: unexpected argument "extra"`, "Usage: herald send"},
		{[]string{"dlq"}, "Usage: herald dlq list", ""},
		{[]string{"dlq", "purge"}, `herald dlq: unknown command "purge": use list or replay`, "Usage: herald dlq list"},
		{[]string{"dlq", "replay"}, "herald dlq replay: name the IDs to replay, or -all\n", "Usage: herald dlq replay"},
		{[]string{"dlq", "list", "-all"}, "herald dlq list: flag provided but not defined: -all\n", "Usage: herald dlq list"},
		{[]string{"route"}, "Usage: herald route test", ""},
		{[]string{"route", "tset"}, `herald route: unknown command "tset": use test`, "Usage: herald route test"},
		{[]string{"route", "test"}, "herald route test: -config is required\n", "Usage: herald route test"},
		{[]string{"version", "x"}, `herald version: unexpected argument "x"`, "Usage: herald version"},
		{[]string{"help", "a", "b"}, "herald help: one command at most", "Usage:\n  herald serve"},
		{[]string{"help", "nosuch"}, `herald: unknown command "nosuch"`, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(t.Context(), tt.args, &out, &errOut)
			if code != 2 || out.Len() != 0 || !strings.HasPrefix(errOut.String(), tt.want) || !strings.Contains(errOut.String(), tt.usage) {
				t.Errorf("exit %d\nstdout %q\nstderr %q\nwant exit 2 and stderr starting %q with %q", code, out.String(), errOut.String(), tt.want, tt.usage)
			}
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"serv"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "serv"`) {
		t.Errorf("run(serv) = %d, %q", code, errOut.String())
	}
	if code := run(t.Context(), []string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "herald ") {
		t.Errorf("run(version) = %d, %q", code, out.String())
	}
}

func TestSendAndDLQAgainstRealHerald(t *testing.T) {
	h := apptest.Start(t, `
auth:
  clients: [{name: cli, token: cli-token-123}]
sinks: [{name: log, log: {}}]
routes: [{name: default, chain: [log]}]
`, apptest.Options{})
	for _, proto := range []string{"connect", "grpc", "grpcweb"} {
		var out, errOut bytes.Buffer
		code := run(t.Context(), []string{"send", "-server", h.URL, "-token", "cli-token-123", "-protocol", proto,
			"-severity", "critical", "-title", "Disk full", "-label", "host=db-1", "-idempotency-key", "k-" + proto}, &out, &errOut)
		if code != 0 {
			t.Fatalf("send over %s = %d: %s", proto, code, errOut.String())
		}
		id := strings.TrimSpace(out.String())
		got := h.WaitDelivered(t, id, heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, 10*time.Second)
		if n := got.GetNotification(); n.GetTitle() != "Disk full" || n.GetLabels()["host"] != "db-1" || n.GetSeverity() != heraldv1.Severity_SEVERITY_CRITICAL {
			t.Errorf("stored %v", n)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"send", "-server", h.URL, "-token", "wrong", "-title", "x"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "unauthenticated") {
		t.Errorf("send with a wrong token = %d, %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run(t.Context(), []string{"send", "-server", h.URL, "-token", "cli-token-123", "-severity", "loud", "-title", "x"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "-severity") {
		t.Errorf("send with a bad severity = %d, %q", code, errOut.String())
	}
	out.Reset()
	if code := run(t.Context(), []string{"dlq", "list", "-server", h.URL, "-token", "cli-token-123"}, &out, &errOut); code != 0 ||
		!strings.HasPrefix(out.String(), "ID") {
		t.Errorf("dlq list = %d, %q %q", code, out.String(), errOut.String())
	}
	if code := run(t.Context(), []string{"dlq", "replay", "-server", h.URL, "-token", "cli-token-123", "NOSUCHID"}, &out, &errOut); code != 1 {
		t.Errorf("dlq replay of an unknown id = %d, want 1", code)
	}
	// The log sink took the three notifications sent above.
	out.Reset()
	if code := run(t.Context(), []string{"sinks", "-server", h.URL, "-token", "cli-token-123"}, &out, &errOut); code != 0 ||
		!regexp.MustCompile(`(?m)^log +log +closed +\d+s ago +- +0s$`).MatchString(out.String()) {
		t.Errorf("sinks = %d, %q %q", code, out.String(), errOut.String())
	}
}

// TestRouteTest prints every route a notification takes with continue:
// true, each chain in order, the severity as the webhook derives it.
func TestRouteTest(t *testing.T) {
	tests := []struct {
		labels []string
		want   string
	}{
		{[]string{"severity=page", "team=db"}, `route page (severity critical)
  oncall

route critical
  rocketchat → #alerts-critical
  slack → #alerts-critical — fallback
`},
		{[]string{"severity=warning"}, `route default (severity warning)
  rocketchat
  slack — fallback
`},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		args := append([]string{"route", "test", "-config", "testdata/route/fanout.yml"}, tt.labels...)
		if code := run(t.Context(), args, &out, &errOut); code != 0 || out.String() != tt.want {
			t.Errorf("route test %v = %d:\n%s\nstderr %s\nwant:\n%s", tt.labels, code, out.String(), errOut.String(), tt.want)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"route", "test", "-config", "testdata/route/fanout.yml", "nolabel"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "labels are name=value") {
		t.Errorf("a bad label = %d, %q", code, errOut.String())
	}
}
