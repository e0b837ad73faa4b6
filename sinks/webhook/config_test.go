package webhook

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

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigFull(t *testing.T) {
	urlFile := writeFile(t, "url", "https://oncall.example/hook?token=url-s3cret\n")
	tokFile := writeFile(t, "tok", "bearer-s3cret\n")
	hmacFile := writeFile(t, "hmac", "hmac-s3cret\n")
	c, err := decode(t, fmt.Sprintf(`
url_file: %s
bearer_token_file: %s
hmac_secret_file: %s
headers: {X-Team: sre, x-source: herald}
timeout: 3s
max_alerts: 50
`, urlFile, tokFile, hmacFile))
	if err != nil {
		t.Fatal(err)
	}
	if c.URL.Value() != "https://oncall.example/hook?token=url-s3cret" || c.BearerToken.Value() != "bearer-s3cret" ||
		c.HMACSecret.Value() != "hmac-s3cret" || c.Timeout != 3*time.Second || c.MaxAlerts != 50 {
		t.Errorf("config = %+v", c)
	}
	dumped, _ := yaml.Marshal(c)
	for _, out := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), string(dumped)} {
		for _, sec := range []string{"url-s3cret", "bearer-s3cret", "hmac-s3cret"} {
			if strings.Contains(out, sec) {
				t.Errorf("config prints a secret: %s", out)
			}
		}
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings = %q", w)
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := decode(t, `url: https://oncall.example/hook`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Timeout != DefaultTimeout || c.MaxAlerts != 0 {
		t.Errorf("config = %+v", c)
	}
}

func TestConfigBasicAuth(t *testing.T) {
	pw := writeFile(t, "pw", "pass-s3cret\n")
	c, err := decode(t, fmt.Sprintf(`
url: http://oncall.example/hook
basic_auth: {username: herald, password_file: %s}
`, pw))
	if err != nil {
		t.Fatal(err)
	}
	if c.BasicAuth.Password.Value() != "pass-s3cret" {
		t.Errorf("password = %q", c.BasicAuth.Password.Value())
	}
	if w := c.Warnings(); len(w) != 1 || !strings.HasPrefix(w[0], "url: plain http") {
		t.Errorf("warnings = %q", w)
	}
}

func TestConfigErrors(t *testing.T) {
	badTmpl := writeFile(t, "bad.tmpl", `{{define "body"}}{"title": {{.Title}}}{{end}}`)
	for _, tt := range []struct {
		name, src, want string
	}{
		{"no url", `timeout: 1s`, "url: required"},
		{"url and url_file", "url: https://a.example/x\nurl_file: /nonexistent", "url and url_file are both set"},
		{"not http", `url: ftp://a.example/x?token=url-s3cret`, "url: not an absolute http(s) URL"},
		{"relative", `url: /hook?token=url-s3cret`, "url: not an absolute http(s) URL"},
		{"userinfo", `url: https://u:url-s3cret@a.example/x`, "use basic_auth"},
		{"fragment", `url: https://a.example/x#url-s3cret`, "fragment"},
		{"bearer and basic", "url: https://a.example/x\nbearer_token: t0k3n\nbasic_auth: {username: u, password: p}", "use one"},
		{"basic without password", "url: https://a.example/x\nbasic_auth: {username: u}", "basic_auth.password: required"},
		{"basic without user", "url: https://a.example/x\nbasic_auth: {password: p}", "basic_auth.username: required"},
		{"reserved header", "url: https://a.example/x\nheaders: {content-type: text/plain}", "Content-Type is set by herald"},
		{"idempotency header", "url: https://a.example/x\nheaders: {Idempotency-Key: x}", "Idempotency-Key is set by herald"},
		{"signature header", "url: https://a.example/x\nheaders: {X-Herald-Signature: x}", "X-Herald-Signature is set by herald"},
		{"authorization twice", "url: https://a.example/x\nbearer_token: t0k3n\nheaders: {Authorization: x}", "Authorization conflicts"},
		{"bad header name", "url: https://a.example/x\nheaders: {\"X Team\": a}", "not a valid header name"},
		{"header value with newline", "url: https://a.example/x\nheaders: {X-Key: \"hdr-s3cret\\r\\nX-Evil: 1\"}", "headers.X-Key: the value must not contain line breaks"},
		{"negative timeout", "url: https://a.example/x\ntimeout: -1s", "timeout: must be positive"},
		{"negative max_alerts", "url: https://a.example/x\nmax_alerts: -1", "max_alerts"},
		{"unknown key", "url: https://a.example/x\nsecret: x", "field secret not found"},
		{"template not JSON", "url: https://a.example/x\ntemplate: " + badTmpl, "template: " + badTmpl + ": on a sample notification: the body template's output is not valid JSON"},
		{"template missing", "url: https://a.example/x\ntemplate: /nonexistent.tmpl", "template: open /nonexistent.tmpl"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode(t, tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			for _, sec := range []string{"url-s3cret", "hdr-s3cret"} {
				if strings.Contains(err.Error(), sec) {
					t.Errorf("error reveals a secret: %v", err)
				}
			}
		})
	}
}
