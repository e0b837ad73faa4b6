package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
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
	if want := `bad.yml: line 5: unknown key "tokn"`; !strings.Contains(errOut.String(), want) {
		t.Errorf("check-config bad.yml said %q, want it to contain %q", errOut.String(), want)
	}
	if code := run(t.Context(), []string{"check-config", filepath.Join(dir, "missing.yml")}, &out, &errOut); code == 0 {
		t.Error("check-config of a missing file exited 0")
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
