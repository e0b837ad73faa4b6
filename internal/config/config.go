// Package config reads herald's YAML configuration: strictly (an unknown key
// is an error with its line), with ${ENV} expansion, defaults and
// cross-field checks next to each part, and secrets that print as <secret>.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/herald-notify/herald/internal/dispatch"
	"github.com/herald-notify/herald/internal/queue"
	"github.com/herald-notify/herald/internal/route"
	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/sinks/logsink"
	"github.com/herald-notify/herald/sinks/rocketchat"
	"github.com/herald-notify/herald/sinks/slack"
)

// Config is the whole configuration file.
type Config struct {
	// Listen is the address of the one HTTP listener (h2c and HTTP/1.1).
	Listen string `yaml:"listen"`
	// DataDir holds the embedded queue's files.
	DataDir string        `yaml:"data_dir"`
	Log     LogConfig     `yaml:"log"`
	Server  ServerConfig  `yaml:"server"`
	TLS     TLSConfig     `yaml:"tls"`
	Auth    AuthConfig    `yaml:"auth"`
	Webhook WebhookConfig `yaml:"webhook"`
	// Queue is the JetStream queue: embedded in data_dir unless queue.url
	// names an external NATS cluster.
	Queue queue.Config `yaml:"queue"`
	// Dispatch tunes retries, fallback and the circuit breakers.
	Dispatch dispatch.Config `yaml:"dispatch"`
	Sinks    []SinkConfig    `yaml:"sinks"`
	Routes   []route.Config  `yaml:"routes"`
}

// LogConfig chooses the log format and level.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// ServerConfig bounds what one client can make the server do.
type ServerConfig struct {
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// MaxBodyBytes limits every request body (API and webhook).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// ShutdownTimeout is how long in-flight requests may take to finish
	// after SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// TLSConfig turns on TLS, and mTLS when ClientCAFile is set.
type TLSConfig struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether TLS is configured.
func (c TLSConfig) Enabled() bool { return c.CertFile != "" }

// AuthConfig lists the clients allowed to call the API and the webhook.
// With no clients, herald accepts every request and says so at startup.
type AuthConfig struct {
	Clients []ClientConfig `yaml:"clients"`
}

// ClientConfig is one caller: a bearer token, or a username and password.
type ClientConfig struct {
	Name         string        `yaml:"name"`
	Token        secret.String `yaml:"token"`
	TokenFile    string        `yaml:"token_file"`
	Username     string        `yaml:"username"`
	Password     secret.String `yaml:"password"`
	PasswordFile string        `yaml:"password_file"`
}

// WebhookConfig configures POST /webhooks/alertmanager.
type WebhookConfig struct {
	// MaxBodyBytes limits one webhook body; Alertmanager gets a 413 over it.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// SinkConfig is one named sink. Exactly one of the type sections is set.
type SinkConfig struct {
	Name string `yaml:"name"`
	// Log writes each notification to herald's log: the default when no
	// sink is configured.
	Log        *logsink.Config    `yaml:"log"`
	RocketChat *rocketchat.Config `yaml:"rocketchat"`
	Slack      *slack.Config      `yaml:"slack"`
}

// Type returns the name of the sink's type section.
func (s SinkConfig) Type() string {
	switch {
	case s.Log != nil:
		return "log"
	case s.RocketChat != nil:
		return "rocketchat"
	case s.Slack != nil:
		return "slack"
	}
	return ""
}

func (s *SinkConfig) validate() error {
	n := 0
	for _, set := range []bool{s.Log != nil, s.RocketChat != nil, s.Slack != nil} {
		if set {
			n++
		}
	}
	switch n {
	case 0:
		return errors.New("one of log, rocketchat or slack is required")
	case 1:
	default:
		return errors.New("only one of log, rocketchat or slack may be set")
	}
	switch {
	case s.Log != nil:
		return s.Log.Validate()
	case s.RocketChat != nil:
		return s.RocketChat.Validate()
	default:
		return s.Slack.Validate()
	}
}

// Default returns the configuration herald runs with when given no file:
// listen on :8093, an embedded queue in ./data, and one route to a sink that
// writes each notification to the log.
func Default() *Config {
	c := &Config{
		Sinks:  []SinkConfig{{Name: "log", Log: &logsink.Config{}}},
		Routes: []route.Config{{Name: "default", Chain: []string{"log"}}},
	}
	if err := c.Validate(); err != nil {
		panic("config: the default config is invalid: " + err.Error())
	}
	return c
}

// Load reads, expands and strictly parses the file at path, then validates it.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// Parse is Load for bytes already read; name is used in error messages.
func Parse(name string, b []byte) (*Config, error) {
	expanded, err := expandEnv(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: the file is empty", name)
		}
		return nil, fmt.Errorf("%s: %s", name, describeYAMLError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("%s:%d: only one YAML document is allowed", name, extra.Line)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${NAME} with the environment variable's value. An unset
// variable is an error: a missing token must not silently become "".
// A bare $ is left alone, so regular expressions keep their anchors, and
// comments are not expanded.
func expandEnv(b []byte) ([]byte, error) {
	var problems []string
	lines := bytes.Split(b, []byte("\n"))
	for i, line := range lines {
		code, comment := splitComment(line)
		expanded := envRef.ReplaceAllFunc(code, func(m []byte) []byte {
			name := string(m[2 : len(m)-1])
			v, ok := os.LookupEnv(name)
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("line %d: ${%s} is not set", i+1, name))
			case strings.ContainsAny(v, "\r\n"):
				problems = append(problems, fmt.Sprintf("line %d: ${%s} contains a newline", i+1, name))
				return nil
			}
			return []byte(v)
		})
		lines[i] = append(expanded, comment...)
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return bytes.Join(lines, []byte("\n")), nil
}

// splitComment splits a YAML line before its comment: a # at the start or
// after a blank, outside quotes.
func splitComment(line []byte) (code, comment []byte) {
	var quote byte
	for i, c := range line {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i:i], line[i:]
		}
	}
	return line, nil
}

var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (\S+)$`)

// describeYAMLError rewrites the YAML library's messages into
// "line N: unknown key "x" (in T)" lines.
func describeYAMLError(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		if m := unknownField.FindStringSubmatch(e); m != nil {
			msgs = append(msgs, fmt.Sprintf("line %s: unknown key %q (in %s)", m[1], m[2], m[3]))
			continue
		}
		msgs = append(msgs, e)
	}
	return strings.Join(msgs, "; ")
}

// Validate applies defaults and checks every part, returning all problems.
func (c *Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if c.Listen == "" {
		c.Listen = ":8093"
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		add(fmt.Errorf("listen: %q is not host:port: %w", c.Listen, err))
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		add(fmt.Errorf("listen: %q: bad port", c.Listen))
	}
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	add(c.Log.validate())
	add(c.Server.validate())
	add(c.TLS.validate())
	add(c.Auth.validate())
	if err := c.Queue.Validate(); err != nil {
		add(fmt.Errorf("queue: %w", err))
	}
	if err := c.Dispatch.Validate(); err != nil {
		add(fmt.Errorf("dispatch: %w", err))
	}
	budget := c.Dispatch.RetryBudget
	if budget == 0 {
		budget = dispatch.DefaultConfig().RetryBudget
	}
	if c.Queue.Retention > 0 && budget >= c.Queue.Retention {
		add(fmt.Errorf("dispatch.retry_budget (%s) must be shorter than queue.retention (%s): a notification still being retried would expire from the queue", budget, c.Queue.Retention))
	}
	if c.Webhook.MaxBodyBytes == 0 {
		c.Webhook.MaxBodyBytes = 4 << 20
	}
	if c.Webhook.MaxBodyBytes < 0 {
		add(errors.New("webhook.max_body_bytes: must be positive"))
	}
	names := map[string]bool{}
	for i := range c.Sinks {
		s := &c.Sinks[i]
		where := fmt.Sprintf("sinks[%d]", i)
		if s.Name == "" {
			add(fmt.Errorf("%s.name: required", where))
		} else if names[s.Name] {
			add(fmt.Errorf("%s.name: %q is used twice", where, s.Name))
		}
		names[s.Name] = true
		if err := s.validate(); err != nil {
			add(fmt.Errorf("%s (%s): %w", where, s.Name, err))
		}
	}
	if len(c.Sinks) == 0 {
		add(errors.New("sinks: at least one sink is required"))
	}
	add(route.Validate(c.Routes, names))
	return errors.Join(errs...)
}

func (c *LogConfig) validate() error {
	if c.Level == "" {
		c.Level = "info"
	}
	if c.Format == "" {
		c.Format = "text"
	}
	var errs []error
	switch c.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Level))
	}
	switch c.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not one of text, json", c.Format))
	}
	return errors.Join(errs...)
}

func (c *ServerConfig) validate() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, 10*time.Second)
	def(&c.ReadTimeout, 30*time.Second)
	def(&c.WriteTimeout, 30*time.Second)
	def(&c.IdleTimeout, 2*time.Minute)
	def(&c.ShutdownTimeout, 20*time.Second)
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 4 << 20
	}
	var errs []error
	for name, d := range map[string]time.Duration{
		"read_header_timeout": c.ReadHeaderTimeout, "read_timeout": c.ReadTimeout,
		"write_timeout": c.WriteTimeout, "idle_timeout": c.IdleTimeout, "shutdown_timeout": c.ShutdownTimeout,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("server.%s: must be positive", name))
		}
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, errors.New("server.max_body_bytes: must be positive"))
	}
	return errors.Join(errs...)
}

func (c *TLSConfig) validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("tls: cert_file and key_file go together")
	}
	if c.ClientCAFile != "" && c.CertFile == "" {
		return errors.New("tls.client_ca_file: needs cert_file and key_file")
	}
	for _, f := range []string{c.CertFile, c.KeyFile, c.ClientCAFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	return nil
}

func (c *AuthConfig) validate() error {
	var errs []error
	names := map[string]bool{}
	for i := range c.Clients {
		cl := &c.Clients[i]
		where := fmt.Sprintf("auth.clients[%d]", i)
		if cl.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: required", where))
		} else if names[cl.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", where, cl.Name))
		}
		names[cl.Name] = true
		tokErr := secret.Resolve(&cl.Token, cl.TokenFile, "token")
		pwErr := secret.Resolve(&cl.Password, cl.PasswordFile, "password")
		if tokErr != nil || pwErr != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, errors.Join(tokErr, pwErr)))
			continue
		}
		hasToken, hasBasic := cl.Token.IsSet(), cl.Username != "" || cl.Password.IsSet()
		switch {
		case hasToken && hasBasic:
			errs = append(errs, fmt.Errorf("%s: set token or username/password, not both", where))
		case !hasToken && !hasBasic:
			errs = append(errs, fmt.Errorf("%s: token or username and password required", where))
		case hasBasic && (cl.Username == "" || !cl.Password.IsSet()):
			errs = append(errs, fmt.Errorf("%s: username and password go together", where))
		}
	}
	return errors.Join(errs...)
}
