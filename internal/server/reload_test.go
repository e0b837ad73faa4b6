package server_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/herald-notify/herald/internal/server"
)

func post(t *testing.T, url, tok string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReloadEndpoint: POST /-/reload needs scope admin, answers 200 once
// the reload took and 500 with the reason when it was refused; GET is 405.
func TestReloadEndpoint(t *testing.T) {
	var calls atomic.Int32
	var fail atomic.Bool
	h := startWith(t, nil, func(o *server.Options) {
		withScopedClients(t)(o)
		o.Reload = func(context.Context) error {
			calls.Add(1)
			if fail.Load() {
				return errors.New(`line 3: routes[0].sinks: unknown sink "nope"`)
			}
			return nil
		}
	})
	url := h.url + server.ReloadPath
	if code, body := post(t, url, "tok-read"); code != 403 || !strings.Contains(body, `lacks scope "admin"`) {
		t.Errorf("as read: %d %q, want 403", code, body)
	}
	if code, _ := post(t, url, "tok-wrong"); code != 401 {
		t.Errorf("with wrong credentials: %d, want 401", code)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("refused requests reloaded %d times", n)
	}
	if code, body := post(t, url, "tok-admin"); code != 200 || body != "config reloaded\n" {
		t.Errorf("as admin: %d %q, want 200", code, body)
	}
	fail.Store(true)
	if code, body := post(t, url, "tok-admin"); code != 500 || !strings.Contains(body, `unknown sink "nope"`) {
		t.Errorf("a refused reload: %d %q, want 500 with the reason", code, body)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET: %d Allow %q, want 405 Allow POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// TestSetClients: new credentials work and old ones stop from the next
// request on; setting none turns auth off, and setting some turns it on
// again.
func TestSetClients(t *testing.T) {
	var srv *server.Server
	h := startWith(t, nil, func(o *server.Options) {
		o.Clients = []server.Client{{Name: "old", Token: "tok-old", Scopes: server.AllScopes()}}
	})
	srv = h.server
	hook := h.url + server.WebhookPath
	if code, _ := post(t, hook, "tok-old"); code != 200 {
		t.Fatalf("old token before: %d", code)
	}
	srv.SetClients([]server.Client{{Name: "new", Token: "tok-new", Scopes: []server.Scope{server.ScopePublish}}})
	if code, _ := post(t, hook, "tok-old"); code != 401 {
		t.Errorf("old token after: %d, want 401", code)
	}
	if code, _ := post(t, hook, "tok-new"); code != 200 {
		t.Errorf("new token: %d, want 200", code)
	}
	srv.SetClients(nil)
	if code, _ := post(t, hook, ""); code != 200 {
		t.Errorf("no credentials with auth off: %d, want 200", code)
	}
	if !strings.Contains(h.log.String(), "accept requests from anyone") {
		t.Error("turning auth off logged no warning")
	}
	srv.SetClients([]server.Client{{Name: "new", Token: "tok-new", Scopes: []server.Scope{server.ScopeRead}}})
	if code, _ := post(t, hook, ""); code != 401 {
		t.Errorf("no credentials with auth on again: %d, want 401", code)
	}
	if code, _ := post(t, hook, "tok-new"); code != 403 {
		t.Errorf("a client without publish: %d, want 403", code)
	}
}
