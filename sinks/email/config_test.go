package email

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/email/emailtest"
	"github.com/herald-notify/herald/sinks/message"
)

func validConfig() Config {
	return Config{Smarthost: "smtp.example.com:587", From: "herald@example.com", To: []string{"oncall@example.com"}}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateDefaults(t *testing.T) {
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.TLS != TLSStartTLS || c.Timeout != DefaultTimeout || c.Hello == "" || c.fromHost != "example.com" {
		t.Errorf("defaults: tls %q timeout %v hello %q host %q", c.TLS, c.Timeout, c.Hello, c.fromHost)
	}
	if len(c.Warnings()) != 0 {
		t.Errorf("warnings %v", c.Warnings())
	}
}

func TestValidatePasswordFileTwice(t *testing.T) {
	c := validConfig()
	c.Auth = Auth{Username: "u", PasswordFile: writeFile(t, "pw", "s3cret-pw\n")}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Auth.Password.Value() != "s3cret-pw" {
		t.Errorf("password %q", c.Auth.Password.Value())
	}
	// The wiring validates the config, then New validates it again.
	if _, err := New("mail", c, sinks.Deps{}); err != nil {
		t.Fatal(err)
	}
	c = validConfig()
	c.Auth = Auth{Username: "u", Password: "x", PasswordFile: writeFile(t, "pw", "y")}
	if err := c.Validate(); err == nil {
		t.Error("password and password_file both set: no error")
	}
}

func TestValidateErrors(t *testing.T) {
	bad := writeFile(t, "bad.pem", "not a certificate")
	cases := []struct {
		name string
		edit func(*Config)
		want string // in the error
	}{
		{"no smarthost", func(c *Config) { c.Smarthost = "" }, "smarthost: required"},
		{"smarthost without port", func(c *Config) { c.Smarthost = "smtp.example.com" }, "smarthost:"},
		{"smarthost bad port", func(c *Config) { c.Smarthost = "smtp.example.com:99999" }, "smarthost:"},
		{"no from", func(c *Config) { c.From = "" }, "from: required"},
		{"bad from", func(c *Config) { c.From = "herald" }, "from:"},
		{"non-ascii from", func(c *Config) { c.From = "hérald@example.com" }, "from:"},
		{"no to", func(c *Config) { c.To = nil }, "to:"},
		{"bad to", func(c *Config) { c.To = []string{"ok@example.com", "#alerts"} }, "to[1]:"},
		{"bad tls", func(c *Config) { c.TLS = "ssl" }, "tls:"},
		{"password without user", func(c *Config) { c.Auth.Password = "x" }, "auth.username"},
		{"user without password", func(c *Config) { c.Auth.Username = "u" }, "auth.password"},
		{"auth in plain text", func(c *Config) { c.TLS, c.Auth = TLSNone, Auth{Username: "u", Password: "p"} }, "insecure_skip_tls"},
		{"tls_config with none", func(c *Config) { c.TLS, c.TLSConfig.ServerName = TLSNone, "x" }, "tls_config:"},
		{"missing ca_file", func(c *Config) { c.TLSConfig.CAFile = "/nonexistent/ca.pem" }, "tls_config.ca_file"},
		{"ca_file without pem", func(c *Config) { c.TLSConfig.CAFile = bad }, "tls_config.ca_file"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "timeout:"},
		{"reserved header", func(c *Config) { c.Headers = map[string]string{"message-id": "x"} }, "headers:"},
		{"bad header name", func(c *Config) { c.Headers = map[string]string{"X Bad": "x"} }, "headers:"},
		{"header injection", func(c *Config) { c.Headers = map[string]string{"X-A": "a\r\nBcc: evil@example.com"} }, "headers.X-A"},
		{"bad hello", func(c *Config) { c.Hello = "a b" }, "hello:"},
		{"template file missing", func(c *Config) { c.Template = "/nonexistent.tmpl" }, "template:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestValidateInsecureAndWarnings(t *testing.T) {
	c := validConfig()
	c.Smarthost = "relay.example.com:25"
	c.TLS, c.InsecureSkipTLS, c.Auth = TLSNone, true, Auth{Username: "u", Password: secret.String("p")}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.HasPrefix(w[0], "tls:") {
		t.Errorf("warnings %v", w)
	}
	c = validConfig()
	c.Smarthost, c.TLS = "localhost:25", TLSNone
	if err := c.Validate(); err != nil || len(c.Warnings()) != 0 {
		t.Errorf("local relay: %v %v", err, c.Warnings())
	}
	c = validConfig()
	c.TLSConfig.InsecureSkipVerify = true
	c.Smarthost = "smtp.example.com:465"
	if err := c.Validate(); err != nil || len(c.Warnings()) != 2 {
		t.Errorf("skip verify on 465 with starttls: %v %v", err, c.Warnings())
	}
}

func TestTemplateFile(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"empty", "", "defines none"},
		{"outside define", "hello", "outside"},
		{"syntax", `{{define "subject"}}{{.Title{{end}}`, "bad.tmpl"},
		{"unknown field", `{{define "text"}}{{.Nope}}{{end}}`, "Nope"},
		{"html unknown field", `{{define "html"}}<p>{{.Nope}}</p>{{end}}`, "Nope"},
		{"empty subject", `{{define "subject"}}{{" "}}{{end}}`, "empty subject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTemplateFile(writeFile(t, "bad.tmpl", tc.content))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}

	path := writeFile(t, "ok.tmpl", `{{define "subject"}}ALERT {{.Title}}{{end}}{{define "html"}}<p class="x">{{.Title}}</p><a href="{{.Links.Generator}}">g</a>{{end}}`)
	ts, err := ParseTemplateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ts.render(message.New(hostile(), sinks.Target{}, message.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.Subject, "ALERT @all") || !strings.Contains(r.Text, "FIRING") {
		t.Errorf("subject %q, text keeps the default: %.40q", r.Subject, r.Text)
	}
	if strings.Contains(r.HTML, "<script") || !strings.Contains(r.HTML, "&lt;script&gt;") {
		t.Errorf("a user's html template does not escape: %s", r.HTML)
	}
}

func TestRouteTemplateOverFake(t *testing.T) {
	srv := emailtest.Start(t, emailtest.Options{})
	s, err := New("mail", Config{Smarthost: srv.Addr, From: "h@example.com", To: []string{"o@example.com"}, TLS: TLSNone}, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	good := writeFile(t, "route.tmpl", `{{define "subject"}}route {{.Title}}{{end}}`)
	broken := writeFile(t, "broken.tmpl", `{{define "subject"}}{{.Nope}}{{end}}`)
	for _, tmpl := range []string{good, broken} {
		if _, err := s.Send(t.Context(), firing(), sinks.Target{Template: tmpl}); err != nil {
			t.Fatal(err)
		}
	}
	msgs := srv.Messages()
	if got := headerOf(t, msgs[0]).Get("Subject"); got != "route DiskFull on db-1" {
		t.Errorf("route template subject %q", got)
	}
	if got := headerOf(t, msgs[1]).Get("Subject"); !strings.Contains(got, "FIRING") {
		t.Errorf("broken route template: subject %q, want the default", got)
	}
}
