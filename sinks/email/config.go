package email

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/secret"
)

// TLSMode is how the sink protects its SMTP connection.
type TLSMode string

const (
	// TLSStartTLS upgrades a plain connection with STARTTLS and refuses a
	// server that does not offer it. The default (submission port 587).
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte (submissions port 465).
	TLSImplicit TLSMode = "implicit"
	// TLSNone sends in plain text: a relay on the same host or network only.
	TLSNone TLSMode = "none"
)

// DefaultTimeout bounds one Send: connect, TLS, authentication and the
// whole transaction. Mail servers may scan a message before they answer
// the final dot, so it is longer than the chat sinks'.
const DefaultTimeout = 30 * time.Second

// Config is one email sink in the config file's `sinks` section. Decode it
// strictly (yaml KnownFields) and call Validate before use.
//
//	email:
//	  smarthost: smtp.example.com:587
//	  from: "Herald <herald@example.com>"
//	  to: [oncall@example.com]
//	  auth: {username: herald, password_file: /run/secrets/smtp-password}
type Config struct {
	// Smarthost is the SMTP server, host:port.
	Smarthost string `yaml:"smarthost"`
	// From is the sender, "Name <addr@domain>" or "addr@domain". Its domain
	// ends every Message-ID the sink makes.
	From string `yaml:"from"`
	// To are the recipients used when the route names no channel for this
	// sink. A route's channel is a comma-separated address list that
	// replaces To for that route.
	To []string `yaml:"to"`
	// Hello is the name the sink gives in EHLO; default this host's name.
	Hello string `yaml:"hello"`
	// Auth logs in with PLAIN or LOGIN, whichever the server offers
	// (PLAIN first), only over TLS unless InsecureSkipTLS.
	Auth Auth `yaml:"auth"`
	// TLS is starttls (default), implicit or none.
	TLS TLSMode `yaml:"tls"`
	// TLSConfig checks the server's certificate.
	TLSConfig TLSConfig `yaml:"tls_config"`
	// InsecureSkipTLS allows auth with tls: none, sending the password in
	// plain text. For a test server only.
	InsecureSkipTLS bool `yaml:"insecure_skip_tls"`
	// Timeout bounds one Send; default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// Headers are extra header fields put on every message, such as
	// Reply-To or X-Priority. They cannot replace the fields the sink
	// writes itself (From, To, Subject, Date, Message-ID, threading, MIME).
	Headers map[string]string `yaml:"headers"`
	// Template is a file of Go template definitions that override the
	// defaults "subject", "text" (text/template) and "html" (html/template,
	// which escapes what it prints).
	Template string `yaml:"template"`

	from     *mail.Address
	to       []*mail.Address
	rootCAs  *x509.CertPool
	fromHost string
	fromFile bool // Auth.Password was read from Auth.PasswordFile
}

// Auth are the SMTP login credentials.
type Auth struct {
	Username     string        `yaml:"username"`
	Password     secret.String `yaml:"password"`
	PasswordFile string        `yaml:"password_file"`
}

// TLSConfig says how the server's certificate is checked.
type TLSConfig struct {
	// CAFile is a PEM file of CA certificates trusted instead of the
	// system's.
	CAFile string `yaml:"ca_file"`
	// ServerName is the name the certificate must carry; default the
	// smarthost's host.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any certificate. For a test server only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// reservedHeaders are written by the sink itself.
var reservedHeaders = map[string]bool{
	"From": true, "To": true, "Cc": true, "Bcc": true, "Subject": true, "Date": true,
	"Message-Id": true, "In-Reply-To": true, "References": true, "Mime-Version": true,
	"Content-Type": true, "Content-Transfer-Encoding": true, "Auto-Submitted": true,
	"Sender": true, "Return-Path": true,
}

// headerName is a field name as RFC 5322 section 3.6.8 allows (printable
// ASCII but colon), restricted to the usual letters, digits and dashes.
var headerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)

// Validate applies defaults, resolves password_file, and checks the fields
// against each other. Errors name the YAML key.
func (c *Config) Validate() error {
	// Validate runs again in New on a config already validated: the
	// password read from password_file is not "both set".
	if !c.fromFile {
		if err := secret.Resolve(&c.Auth.Password, c.Auth.PasswordFile, "auth.password"); err != nil {
			return err
		}
		c.fromFile = c.Auth.PasswordFile != ""
	}
	host, port, err := net.SplitHostPort(c.Smarthost)
	if c.Smarthost == "" {
		return errors.New("smarthost: required (host:port)")
	}
	if err != nil || host == "" {
		return fmt.Errorf("smarthost: %q is not host:port", c.Smarthost)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("smarthost: %q has no valid port", c.Smarthost)
	}
	if c.From == "" {
		return errors.New("from: required")
	}
	c.from, err = parseAddress(c.From)
	if err != nil {
		return fmt.Errorf("from: %w", err)
	}
	c.fromHost = c.from.Address[strings.LastIndexByte(c.from.Address, '@')+1:]
	if len(c.To) == 0 {
		return errors.New("to: at least one recipient is required")
	}
	c.to = nil
	for i, s := range c.To {
		as, err := parseAddressList(s)
		if err != nil {
			return fmt.Errorf("to[%d]: %w", i, err)
		}
		c.to = append(c.to, as...)
	}
	if c.Hello == "" {
		c.Hello = defaultHello()
	}
	if strings.ContainsAny(c.Hello, " \t\r\n") || !isASCII(c.Hello) {
		return fmt.Errorf("hello: %q is not a host name", c.Hello)
	}
	switch c.TLS {
	case "":
		c.TLS = TLSStartTLS
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return fmt.Errorf("tls: %q is not starttls, implicit or none", c.TLS)
	}
	if c.Auth.Password.IsSet() && c.Auth.Username == "" {
		return errors.New("auth.username: required with a password")
	}
	if c.Auth.Username != "" && !c.Auth.Password.IsSet() {
		return errors.New("auth.password: required with a username (or auth.password_file)")
	}
	if c.Auth.Username != "" && c.TLS == TLSNone && !c.InsecureSkipTLS {
		return errors.New("auth: refusing to send the password in plain text with tls: none; use starttls or implicit (or set insecure_skip_tls: true for a test server)")
	}
	if c.TLSConfig.CAFile != "" {
		pem, err := os.ReadFile(c.TLSConfig.CAFile)
		if err != nil {
			return fmt.Errorf("tls_config.ca_file: %w", err)
		}
		c.rootCAs = x509.NewCertPool()
		if !c.rootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls_config.ca_file: %s holds no PEM certificate", c.TLSConfig.CAFile)
		}
	}
	if c.TLS == TLSNone && (c.TLSConfig != TLSConfig{}) {
		return errors.New("tls_config: set but tls is none")
	}
	switch {
	case c.Timeout == 0:
		c.Timeout = DefaultTimeout
	case c.Timeout < 0:
		return errors.New("timeout: must be positive")
	}
	for k, v := range c.Headers {
		if !headerName.MatchString(k) {
			return fmt.Errorf("headers: %q is not a header field name", k)
		}
		if reservedHeaders[textproto.CanonicalMIMEHeaderKey(k)] {
			return fmt.Errorf("headers: %s is written by the sink and cannot be set", k)
		}
		if strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("headers.%s: the value must be one line", k)
		}
	}
	if c.Template != "" {
		if _, err := ParseTemplateFile(c.Template); err != nil {
			return fmt.Errorf("template: %w", err)
		}
	}
	return nil
}

// Warnings lists what in a valid config is probably a mistake but does not
// stop the sink, each starting with the key it is about.
func (c *Config) Warnings() []string {
	var warns []string
	if c.TLS == TLSNone {
		if host, _, err := net.SplitHostPort(c.Smarthost); err == nil && !isLoopback(host) {
			warns = append(warns, "tls: none to "+host+": messages cross the network in plain text")
		}
	}
	if c.TLSConfig.InsecureSkipVerify {
		warns = append(warns, "tls_config.insecure_skip_verify: any certificate is accepted, so anyone between herald and the server can read the mail and the password")
	}
	if c.TLS == TLSImplicit && strings.HasSuffix(c.Smarthost, ":587") {
		warns = append(warns, "tls: implicit on port 587, which usually speaks STARTTLS")
	}
	if c.TLS == TLSStartTLS && strings.HasSuffix(c.Smarthost, ":465") {
		warns = append(warns, "tls: starttls on port 465, which usually speaks implicit TLS")
	}
	return warns
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseAddress parses one address; the envelope takes ASCII only (the
// sink does not use SMTPUTF8).
func parseAddress(s string) (*mail.Address, error) {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not an email address", s)
	}
	if !isASCII(a.Address) || !strings.Contains(a.Address, "@") {
		return nil, fmt.Errorf("%q: only ASCII addresses are supported", s)
	}
	return a, nil
}

// parseAddressList parses a comma-separated list of addresses.
func parseAddressList(s string) ([]*mail.Address, error) {
	as, err := mail.ParseAddressList(s)
	if err != nil || len(as) == 0 {
		return nil, fmt.Errorf("%q is not a list of email addresses", s)
	}
	for _, a := range as {
		if !isASCII(a.Address) {
			return nil, fmt.Errorf("%q: only ASCII addresses are supported", a.Address)
		}
	}
	return as, nil
}

func defaultHello() string {
	h, err := os.Hostname()
	if err != nil || h == "" || strings.ContainsAny(h, " \t\r\n") || !isASCII(h) {
		return "localhost"
	}
	return h
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
