package webhook

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/secret"
)

// Defaults applied by Validate.
const (
	// DefaultTimeout bounds one Send: a receiver that hangs holds the
	// notification only that long before the chain's next sink takes it.
	DefaultTimeout = 10 * time.Second
)

// Config is one webhook sink in the config file's `sinks` section. Decode
// it strictly (yaml KnownFields) and call Validate before use.
//
//	webhook:
//	  url_file: /run/secrets/oncall-webhook-url
//	  bearer_token_file: /run/secrets/oncall-token
//	  hmac_secret_file: /run/secrets/oncall-hmac
//	  headers: {X-Team: sre}
//	  timeout: 10s
type Config struct {
	// URL is where every notification is POSTed, e.g.
	// https://oncall.example.com/hooks/herald?token=…. It often embeds a
	// credential (in its path or query), so it is a secret.
	URL     secret.String `yaml:"url"`
	URLFile string        `yaml:"url_file"`
	// Headers are sent with every request. Their values are never logged
	// and are removed from error texts, but they are plain config: put a
	// credential in bearer_token or basic_auth, which have *_file twins.
	// Headers herald sets itself (Content-Type, Idempotency-Key,
	// X-Herald-*) cannot be set here; Authorization only when neither
	// bearer_token nor basic_auth is set.
	Headers map[string]string `yaml:"headers"`
	// BearerToken is sent as "Authorization: Bearer <token>".
	BearerToken     secret.String `yaml:"bearer_token"`
	BearerTokenFile string        `yaml:"bearer_token_file"`
	// BasicAuth is sent as HTTP basic authentication.
	BasicAuth *BasicAuth `yaml:"basic_auth"`
	// HMACSecret signs every request: see Sign and Verify.
	HMACSecret     secret.String `yaml:"hmac_secret"`
	HMACSecretFile string        `yaml:"hmac_secret_file"`
	// Timeout bounds one Send, the request and its answer; default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxAlerts is the most alerts the default body lists; the others are
	// counted in truncated_alerts. Zero lists them all, like
	// Alertmanager's webhook max_alerts.
	MaxAlerts int `yaml:"max_alerts"`
	// Template is a file of Go text/template definitions whose "body"
	// replaces the default JSON body (see TemplateData). It must produce
	// valid JSON. A route may name another file for this sink.
	Template string `yaml:"template"`
}

// BasicAuth is a user name and password for HTTP basic authentication.
type BasicAuth struct {
	Username     string        `yaml:"username"`
	Password     secret.String `yaml:"password"`
	PasswordFile string        `yaml:"password_file"`
}

// reservedHeaders are set by the sink on every request; headers may not
// override them.
var reservedHeaders = []string{
	"Content-Type", "Content-Length", "Content-Encoding", "Transfer-Encoding", "Host", "Connection",
	"Idempotency-Key", HeaderSignature, HeaderTimestamp, HeaderAttempt,
}

// Validate applies defaults, resolves the *_file secrets, checks the URL
// and headers, and parses the body template and runs it on a sample
// notification. Errors name the YAML key and never hold a secret.
func (c *Config) Validate() error {
	if err := secret.Resolve(&c.URL, c.URLFile, "url"); err != nil {
		return err
	}
	if err := secret.Resolve(&c.BearerToken, c.BearerTokenFile, "bearer_token"); err != nil {
		return err
	}
	if err := secret.Resolve(&c.HMACSecret, c.HMACSecretFile, "hmac_secret"); err != nil {
		return err
	}
	if !c.URL.IsSet() {
		return errors.New("url: required (or url_file)")
	}
	if err := checkURL(c.URL.Value()); err != nil {
		return err
	}
	if c.BasicAuth != nil {
		if err := secret.Resolve(&c.BasicAuth.Password, c.BasicAuth.PasswordFile, "basic_auth.password"); err != nil {
			return err
		}
		if c.BasicAuth.Username == "" {
			return errors.New("basic_auth.username: required")
		}
		if strings.Contains(c.BasicAuth.Username, ":") || strings.ContainsAny(c.BasicAuth.Username, "\r\n\x00") {
			return errors.New("basic_auth.username: must not contain ':' or line breaks")
		}
		if !c.BasicAuth.Password.IsSet() {
			return errors.New("basic_auth.password: required (or password_file)")
		}
		if c.BearerToken.IsSet() {
			return errors.New("bearer_token, basic_auth: both set; use one")
		}
	}
	if c.BearerToken.IsSet() && !validHeaderValue(c.BearerToken.Value()) {
		return errors.New("bearer_token: must not contain line breaks or control characters")
	}
	for name, v := range c.Headers {
		if !validHeaderName(name) {
			return fmt.Errorf("headers: %q is not a valid header name", name)
		}
		canon := http.CanonicalHeaderKey(name)
		if slices.Contains(reservedHeaders, canon) {
			return fmt.Errorf("headers: %s is set by herald and cannot be overridden", canon)
		}
		if canon == "Authorization" && (c.BearerToken.IsSet() || c.BasicAuth != nil) {
			return errors.New("headers: Authorization conflicts with bearer_token or basic_auth; use one")
		}
		if !validHeaderValue(v) {
			// The value may be a credential: not printed.
			return fmt.Errorf("headers.%s: the value must not contain line breaks or control characters", name)
		}
	}
	switch {
	case c.Timeout == 0:
		c.Timeout = DefaultTimeout
	case c.Timeout < 0:
		return errors.New("timeout: must be positive")
	}
	if c.MaxAlerts < 0 {
		return errors.New("max_alerts: must not be negative (0 lists every alert)")
	}
	if c.Template != "" {
		if _, err := ParseTemplateFile(c.Template); err != nil {
			return fmt.Errorf("template: %w", err)
		}
	}
	return nil
}

// Warnings lists what in a valid config is probably a mistake but does not
// stop the sink, each starting with the key it is about. Call it after
// Validate.
func (c *Config) Warnings() []string {
	var warns []string
	u, err := url.Parse(c.URL.Value())
	if err == nil && u.Scheme == "http" {
		authHeader := slices.ContainsFunc(slices.Collect(maps.Keys(c.Headers)), func(k string) bool {
			return http.CanonicalHeaderKey(k) == "Authorization"
		})
		if c.BearerToken.IsSet() || c.BasicAuth != nil || authHeader {
			warns = append(warns, "url: plain http sends the credentials (bearer_token, basic_auth or Authorization) unencrypted; use https")
		} else if c.HMACSecret.IsSet() {
			warns = append(warns, "url: plain http: the body is signed but readable by anyone on the path; use https")
		}
	}
	return warns
}

// checkURL checks the receiver's URL without ever printing it.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("url: not an absolute http(s) URL")
	}
	if u.User != nil {
		return errors.New("url: must not contain a user or password; use basic_auth")
	}
	if u.Fragment != "" {
		return errors.New("url: must not have a #fragment")
	}
	return nil
}

// validHeaderName reports whether s is an HTTP token (RFC 9110, 5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s can be sent as a header value: no
// control characters other than tab.
func validHeaderValue(s string) bool {
	for _, r := range s {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return false
		}
	}
	return true
}
