// Package config reads herald's YAML configuration: strictly (an unknown key
// or a value its key cannot take is an error naming the line and the key
// path), with ${ENV} expansion, defaults and cross-field checks next to
// each part, and secrets that print as <secret>.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/dispatch"
	"github.com/herald-notify/herald/internal/queue"
	"github.com/herald-notify/herald/internal/route"
	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/internal/server"
	"github.com/herald-notify/herald/sinks/email"
	"github.com/herald-notify/herald/sinks/logsink"
	"github.com/herald-notify/herald/sinks/mattermost"
	"github.com/herald-notify/herald/sinks/rocketchat"
	"github.com/herald-notify/herald/sinks/slack"
	"github.com/herald-notify/herald/sinks/teams"
	"github.com/herald-notify/herald/sinks/webhook"
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

	// warnings are Validate's findings that do not stop herald, by key path.
	warnings []string
	// logOnly records that Validate gave the config the default log sink
	// and route because it names neither sinks nor routes.
	logOnly bool
	// name and lines, set by Parse, place a key path in the file.
	name  string
	lines map[string]int
}

// Warnings lists what is probably a mistake but does not stop herald, such
// as a route that is never reached, each with its file and line when the
// config came from a file.
func (c *Config) Warnings() []string {
	out := make([]string, len(c.warnings))
	for i, w := range c.warnings {
		out[i] = c.where(w) + w
	}
	return out
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

// ClientConfig is one caller: a bearer token, or a username and password,
// and the scopes it has.
type ClientConfig struct {
	Name         string        `yaml:"name"`
	Token        secret.String `yaml:"token"`
	TokenFile    string        `yaml:"token_file"`
	Username     string        `yaml:"username"`
	Password     secret.String `yaml:"password"`
	PasswordFile string        `yaml:"password_file"`
	// Scopes are what the client may do. Left out, the client has every
	// scope, as all clients had before scopes existed, and Validate warns.
	Scopes []server.Scope `yaml:"scopes"`

	// allScopes records that Validate gave the client every scope because
	// its config lists none.
	allScopes bool
}

// Allows reports whether the client has scope s. A client whose scopes are
// left out has every scope.
func (c ClientConfig) Allows(s server.Scope) bool {
	return c.Scopes == nil || slices.Contains(c.Scopes, s)
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
	Mattermost *mattermost.Config `yaml:"mattermost"`
	Email      *email.Config      `yaml:"email"`
	Webhook    *webhook.Config    `yaml:"webhook"`
	Teams      *teams.Config      `yaml:"teams"`
}

// sinkSection is one type section of a SinkConfig.
type sinkSection struct {
	key      string
	set      bool
	validate func() error
	// warnings are the section's findings that do not stop herald; nil
	// for types that have none.
	warnings func() []string
}

// sections lists the type sections in the order the docs name them: the
// one list of sink types the config knows.
func (s *SinkConfig) sections() []sinkSection {
	return []sinkSection{
		{key: "log", set: s.Log != nil, validate: func() error { return s.Log.Validate() }},
		{key: "rocketchat", set: s.RocketChat != nil, validate: func() error { return s.RocketChat.Validate() },
			warnings: func() []string { return s.RocketChat.Warnings() }},
		{key: "slack", set: s.Slack != nil, validate: func() error { return s.Slack.Validate() }},
		{key: "mattermost", set: s.Mattermost != nil, validate: func() error { return s.Mattermost.Validate() },
			warnings: func() []string { return s.Mattermost.Warnings() }},
		{key: "email", set: s.Email != nil, validate: func() error { return s.Email.Validate() },
			warnings: func() []string { return s.Email.Warnings() }},
		{key: "webhook", set: s.Webhook != nil, validate: func() error { return s.Webhook.Validate() },
			warnings: func() []string { return s.Webhook.Warnings() }},
		{key: "teams", set: s.Teams != nil, validate: func() error { return s.Teams.Validate() },
			warnings: func() []string { return s.Teams.Warnings() }},
	}
}

// Type returns the name of the sink's type section.
func (s SinkConfig) Type() string {
	for _, sec := range s.sections() {
		if sec.set {
			return sec.key
		}
	}
	return ""
}

func (s *SinkConfig) validate() error {
	var set []sinkSection
	var keys []string
	for _, sec := range s.sections() {
		keys = append(keys, sec.key)
		if sec.set {
			set = append(set, sec)
		}
	}
	switch len(set) {
	case 0:
		return fmt.Errorf("one of %s is required", strings.Join(keys, ", "))
	case 1:
		return set[0].validate()
	default:
		return fmt.Errorf("only one of %s may be set", strings.Join(keys, ", "))
	}
}

// Default returns the configuration herald runs with when given no file:
// listen on :8093, an embedded queue in ./data, and one route to a sink that
// writes each notification to the log. A file that names neither sinks nor
// routes (an empty one too) runs with the same sink and route: Validate
// gives them.
func Default() *Config {
	c := &Config{}
	if err := c.Validate(); err != nil {
		panic("config: the default config is invalid: " + err.Error())
	}
	return c
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
	add(c.Auth.validate(func(path string) bool { return c.lines[path] > 0 }))
	if err := c.Queue.Validate(); err != nil {
		add(fmt.Errorf("queue: %w", err))
	}
	if err := c.Dispatch.Validate(); err != nil {
		add(fmt.Errorf("dispatch: %w", err))
	}
	add(checkQueueURL(c.Queue.URL))
	if c.Dispatch == (dispatch.Config{}) {
		// No dispatch section: what dispatch.New runs with, shown as such.
		c.Dispatch = dispatch.DefaultConfig()
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
	if most := int64(queue.EmbeddedMaxPayload - queue.PayloadHeadroom); c.Queue.URL == "" && c.Webhook.MaxBodyBytes > most {
		// With queue.url the servers' max_payload is checked at start.
		add(fmt.Errorf("webhook.max_body_bytes: %v, but the embedded queue stores notifications of at most %v: at most %v",
			queue.Size(c.Webhook.MaxBodyBytes), queue.Size(queue.EmbeddedMaxPayload), queue.Size(most)))
	}
	if len(c.Sinks) == 0 && len(c.Routes) == 0 {
		// Neither: the log sink and a route to it, as with no file. Only
		// one of the two is a mistake Validate names below: sinks that no
		// route sends to, or routes to sinks that do not exist.
		c.Sinks = []SinkConfig{{Name: "log", Log: &logsink.Config{}}}
		c.Routes = []route.Config{{Name: "default", Chain: []string{"log"}}}
		c.logOnly = true
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
	switch {
	case len(c.Sinks) == 0:
		add(errors.New("sinks: at least one sink is required: the routes deliver to the sinks their chains name " +
			"(leave out both sinks and routes to send every notification to the log)"))
	case len(c.Routes) == 0:
		add(fmt.Errorf("routes: at least one route is required: a sink receives only what a route sends it, "+
			"such as routes: [{name: default, chain: [%s]}]", cmp.Or(c.Sinks[0].Name, "NAME")))
	}
	if len(c.Routes) > 0 {
		add(route.Validate(c.Routes, names))
	}
	c.warnings = c.Auth.warnings()
	if c.logOnly && c.name != "" {
		c.warnings = append(c.warnings, "no sinks or routes: every notification goes to herald's log (the log sink), "+
			"as with no config file; add sinks and routes to deliver to chat")
	}
	c.warnings = append(c.warnings, route.Warnings(c.Routes)...)
	c.warnings = append(c.warnings, c.sinkWarnings()...)
	return errors.Join(errs...)
}

// sinkWarnings are the sinks' findings that do not stop herald, such as a
// channel a webhook sink would ignore, in its own config or (Rocket.Chat)
// a route's, by key path.
func (c *Config) sinkWarnings() []string {
	var out []string
	byName := map[string]*rocketchat.Config{}
	for i := range c.Sinks {
		for _, sec := range c.Sinks[i].sections() {
			if !sec.set || sec.warnings == nil {
				continue
			}
			for _, w := range sec.warnings() {
				out = append(out, fmt.Sprintf("sinks[%d].%s.%s", i, sec.key, w))
			}
		}
		if rc := c.Sinks[i].RocketChat; rc != nil {
			byName[c.Sinks[i].Name] = rc
		}
	}
	for i, r := range c.Routes {
		for _, name := range slices.Sorted(maps.Keys(r.Channels)) {
			if rc := byName[name]; rc != nil {
				if w := rc.RouteChannelWarning(r.Channels[name]); w != "" {
					out = append(out, fmt.Sprintf("routes[%d].channels.%s: %s", i, name, w))
				}
			}
		}
	}
	return out
}

// checkQueueURL checks that every server of queue.url parses as the NATS
// client will parse it, so that no connect error ever quotes the URL with
// its credentials. Its own errors say what is wrong, not what the URL is.
func checkQueueURL(list string) error {
	var errs []error
	for i, u := range strings.Split(list, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		// Not even the parser's reason: in "nats://u:p#ss@h" it would
		// quote the password's tail as the port.
		if _, err := url.Parse(u); err != nil {
			errs = append(errs, fmt.Errorf("queue.url: server %d is not a valid URL (a user or password must percent-encode characters such as # / ? @)", i+1))
		}
	}
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

// validate checks the clients and gives every scope to a client whose
// config lists none. inFile reports whether the file has a key path, so
// that "scopes:" with no value is an error rather than every scope.
func (c *AuthConfig) validate(inFile func(path string) bool) error {
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
		errs = append(errs, cl.validateScopes(where, inFile(where+".scopes")))
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

// scopeNames lists the scopes for messages: "publish, read, admin".
func scopeNames() string {
	names := make([]string, 0, len(server.AllScopes()))
	for _, s := range server.AllScopes() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

// validateScopes checks the client's scopes and, when its config has no
// scopes key, gives it every scope.
func (cl *ClientConfig) validateScopes(where string, keyInFile bool) error {
	if cl.Scopes == nil && !keyInFile {
		cl.Scopes, cl.allScopes = server.AllScopes(), true
		return nil
	}
	if len(cl.Scopes) == 0 {
		return fmt.Errorf("%s.scopes: empty: list one or more of %s (a client with none could do nothing)", where, scopeNames())
	}
	var errs []error
	seen := map[server.Scope]bool{}
	for j, s := range cl.Scopes {
		switch {
		case !slices.Contains(server.AllScopes(), s):
			errs = append(errs, fmt.Errorf("%s.scopes[%d]: unknown scope %q: one of %s", where, j, s, scopeNames()))
		case seen[s]:
			errs = append(errs, fmt.Errorf("%s.scopes[%d]: %q is listed twice", where, j, s))
		}
		seen[s] = true
	}
	return errors.Join(errs...)
}

// warnings name the clients that have every scope because their config
// lists none.
func (c *AuthConfig) warnings() []string {
	var out []string
	for i, cl := range c.Clients {
		if cl.allScopes {
			out = append(out, fmt.Sprintf("auth.clients[%d] (%q): no scopes listed, so it has all of them (%s); "+
				"list only what it needs, such as scopes: [publish] for Alertmanager", i, cl.Name, scopeNames()))
		}
	}
	return out
}
