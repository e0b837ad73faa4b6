package server

import (
	"slices"
	"time"
)

// Scope names a kind of request a client may make. Health, /healthz,
// /readyz and /metrics need none; reflection needs only valid credentials.
type Scope string

const (
	// ScopePublish allows POST /webhooks/alertmanager and Publish.
	ScopePublish Scope = "publish"
	// ScopeRead allows the RPCs that only read: notifications, their
	// delivery and the dead letters.
	ScopeRead Scope = "read"
	// ScopeAdmin allows the RPCs that change something other than by
	// publishing, such as ReplayDeadLetters, and POST /-/reload.
	ScopeAdmin Scope = "admin"
)

// AllScopes returns every scope, in the order check-config prints them.
func AllScopes() []Scope { return []Scope{ScopePublish, ScopeRead, ScopeAdmin} }

// Client is a caller the server accepts: a bearer token, or a username and
// password, with the scopes it has.
type Client struct {
	Name     string
	Token    string // a bearer token; when empty, Username and Password
	Username string
	Password string
	Scopes   []Scope
}

func (c Client) allows(s Scope) bool { return slices.Contains(c.Scopes, s) }

// TLS turns on TLS, and mTLS when ClientCAFile is set.
type TLS struct {
	CertFile     string
	KeyFile      string
	ClientCAFile string
}

// Timeouts bound a request's phases, as http.Server's fields of the same
// names do (zero: none), and Shutdown bounds how long in-flight requests
// may take to finish when Serve's context ends (zero:
// DefaultShutdownTimeout).
type Timeouts struct {
	ReadHeader time.Duration
	Read       time.Duration
	Write      time.Duration
	Idle       time.Duration
	Shutdown   time.Duration
}

// DefaultShutdownTimeout is Timeouts.Shutdown when it is zero.
const DefaultShutdownTimeout = 20 * time.Second
