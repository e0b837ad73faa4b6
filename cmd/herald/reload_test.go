package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const reloadConfigV1 = `
auth:
  clients:
    - {name: am, token: tok-am-1, scopes: [publish]}
    - {name: ops, token: tok-ops, scopes: [admin]}
sinks: [{name: log, log: {}}]
routes: [{name: default, chain: [log]}]
`

// TestSIGHUPAndReloadEndpoint runs herald serve in this process, changes
// its config file, and reloads it with SIGHUP, then with POST /-/reload:
// the new token works after each valid reload, a config with a mistake is
// refused with 500 and the old one keeps working.
func TestSIGHUPAndReloadEndpoint(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "herald.yml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(reloadConfigV1)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-config", file, "-listen", addr, "-data-dir", filepath.Join(dir, "data")}, io.Discard, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d: %s", code, stderr.String())
		}
	})
	base := "http://" + addr
	waitForReload(t, func() bool {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})

	hook := func(tok string) int {
		req, _ := http.NewRequest("POST", base+"/webhooks/alertmanager", strings.NewReader(`{"version":"4","status":"firing","receiver":"r","groupKey":"{}:{a=\"b\"}","alerts":[{"status":"firing","labels":{"alertname":"A"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"f1"}]}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := hook("tok-am-2"); code != 401 {
		t.Fatalf("the second token before any reload: %d", code)
	}

	write(strings.Replace(reloadConfigV1, "tok-am-1", "tok-am-2", 1))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForReload(t, func() bool { return hook("tok-am-2") == 200 })
	if code := hook("tok-am-1"); code != 401 {
		t.Errorf("the replaced token after SIGHUP: %d, want 401", code)
	}

	reload := func(tok string) (int, string) {
		req, _ := http.NewRequest("POST", base+"/-/reload", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	write(strings.Replace(reloadConfigV1, "chain: [log]", "chain: [log, nope]", 1))
	if code, body := reload("tok-ops"); code != 500 || !strings.Contains(body, "nope") {
		t.Errorf("reload of a broken config: %d %q, want 500 naming the problem", code, body)
	}
	if code := hook("tok-am-2"); code != 200 {
		t.Errorf("after a refused reload the running config's token: %d", code)
	}
	if code, _ := reload("tok-am-2"); code != 403 {
		t.Errorf("reload by a publish-only client: %d, want 403", code)
	}
	write(strings.Replace(reloadConfigV1, "tok-am-1", "tok-am-3", 1))
	if code, body := reload("tok-ops"); code != 200 {
		t.Errorf("reload: %d %q", code, body)
	}
	if code := hook("tok-am-3"); code != 200 {
		t.Errorf("the token after POST /-/reload: %d", code)
	}
}

func waitForReload(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
