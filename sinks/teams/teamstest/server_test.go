package teamstest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func card(mutate func(msg, att, content map[string]any)) string {
	content := map[string]any{
		"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
		"type":    "AdaptiveCard", "version": "1.4",
		"body":    []any{map[string]any{"type": "TextBlock", "text": "hello", "wrap": true}},
		"actions": []any{map[string]any{"type": "Action.OpenUrl", "title": "x", "url": "https://example.com"}},
	}
	att := map[string]any{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": nil, "content": content}
	msg := map[string]any{"type": "message", "attachments": []any{att}}
	if mutate != nil {
		mutate(msg, att, content)
	}
	b, _ := json.Marshal(msg)
	return string(b)
}

func post(t *testing.T, u, ctype, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(u, ctype, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTrigger(t *testing.T) {
	srv := NewServer()
	defer srv.Close()
	good := card(nil)
	if code, body := post(t, srv.WebhookURL(), "application/json", good); code != 202 || body != "" {
		t.Fatalf("good card: %d %q, want 202 and no body", code, body)
	}
	if len(srv.Cards()) != 1 || len(srv.Failures()) != 0 {
		t.Fatalf("cards %d, failures %q", len(srv.Cards()), srv.Failures())
	}
	u, _ := url.Parse(srv.WebhookURL())
	q := u.Query()
	q.Del("sig")
	u.RawQuery = q.Encode()
	noSig := u.String()
	q.Set("sig", "forged")
	u.RawQuery = q.Encode()
	forged := u.String()
	for _, c := range []struct {
		name, url, ctype, body string
		code                   int
		errCode                string
	}{
		{"no sig", noSig, "application/json", good, 401, "DirectApiAuthorizationRequired"},
		{"forged sig", forged, "application/json", good, 401, "DirectApiInvalidAuthorizationSignature"},
		{"unknown flow", srv.URL() + "/workflows/nope/triggers/manual/paths/invoke?sig=x", "application/json", good, 404, "WorkflowNotFound"},
		{"not JSON", srv.WebhookURL(), "application/json", "{", 400, "InvalidRequestContent"},
		{"text/plain", srv.WebhookURL(), "text/plain", good, 400, "TriggerInputSchemaMismatch"},
	} {
		code, body := post(t, c.url, c.ctype, c.body)
		if code != c.code || !strings.Contains(body, `"code":"`+c.errCode+`"`) {
			t.Errorf("%s: %d %s, want %d %s", c.name, code, body, c.code, c.errCode)
		}
	}
	resp, err := http.Get(srv.WebhookURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
}

// TestRunFailures posts messages the trigger accepts and the flow cannot
// post: the trigger answers 202 as the real one does and the run fails, or,
// WithSyncErrors, the fake answers the failure.
func TestRunFailures(t *testing.T) {
	huge := strings.Repeat("ü", 5000)
	bad := map[string]string{
		"type":             card(func(m, _, _ map[string]any) { m["type"] = "card" }),
		"no attachments":   card(func(m, _, _ map[string]any) { delete(m, "attachments") }),
		"contentType":      card(func(_, a, _ map[string]any) { a["contentType"] = "application/vnd.microsoft.card.hero" }),
		"no contentUrl":    card(func(_, a, _ map[string]any) { delete(a, "contentUrl") }),
		"MessageCard":      card(func(_, _, c map[string]any) { c["type"] = "MessageCard" }),
		"version 1.6":      card(func(_, _, c map[string]any) { c["version"] = "1.6" }),
		"no version":       card(func(_, _, c map[string]any) { delete(c, "version") }),
		"empty body":       card(func(_, _, c map[string]any) { c["body"] = []any{} }),
		"unknown element":  card(func(_, _, c map[string]any) { c["body"] = []any{map[string]any{"type": "Marquee"}} }),
		"TextBlock x text": card(func(_, _, c map[string]any) { c["body"] = []any{map[string]any{"type": "TextBlock"}} }),
		"relative url": card(func(_, _, c map[string]any) {
			c["actions"] = []any{map[string]any{"type": "Action.OpenUrl", "url": "/x"}}
		}),
		"too large": card(func(_, _, c map[string]any) {
			c["body"] = []any{map[string]any{"type": "TextBlock", "text": huge}}
		}),
	}
	for name, body := range bad {
		t.Run(name, func(t *testing.T) {
			srv := NewServer()
			defer srv.Close()
			if code, _ := post(t, srv.WebhookURL(), "application/json; charset=utf-8", body); code != 202 {
				t.Errorf("trigger answered %d, want 202", code)
			}
			if f := srv.Failures(); len(f) != 1 || len(srv.Cards()) != 0 {
				t.Errorf("failures %q, cards %d; want one failure and no card", f, len(srv.Cards()))
			}
			sync := NewServer(WithSyncErrors())
			defer sync.Close()
			want := 400
			if name == "too large" {
				want = 413
			}
			if code, resp := post(t, sync.WebhookURL(), "application/json", body); code != want {
				t.Errorf("WithSyncErrors: %d %s, want %d", code, resp, want)
			}
		})
	}
}
