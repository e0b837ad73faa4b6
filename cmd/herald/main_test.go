package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
