package teams

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/secret"
)

// Defaults applied by Validate.
const (
	DefaultTimeout = 10 * time.Second
	// DefaultCardVersion is the Adaptive Cards version the card declares.
	// Teams renders cards up to 1.5; the card uses nothing newer than 1.2,
	// so card_version may be lowered for clients that lag behind.
	DefaultCardVersion = "1.4"
	// DefaultMaxCardBytes bounds the request body, counting each non-ASCII
	// character as its \uXXXX escape (see CardSize). Teams refuses a
	// message whose stored properties exceed 28672 bytes, and stores more
	// than it was sent: a 24,453-byte request was refused as 28,897 bytes
	// (github.com/MicrosoftDocs/msteams-docs/issues/11274). 20,000 leaves
	// that margin.
	DefaultMaxCardBytes = 20000
	// TeamsMessageLimit is Teams' own limit on a message, in bytes ("The
	// message size limit is 28 KB", Create Incoming Webhooks, Teams
	// platform docs; 28672 in the error above).
	TeamsMessageLimit = 28672
	// DefaultThrottleWait is the wait of a 429 answer without Retry-After:
	// Power Automate's throttling windows are minutes long (learn.microsoft
	// .com/en-us/power-automate/limits-and-config), so a short retry would
	// only be throttled again.
	DefaultThrottleWait = 30 * time.Second
	// DefaultRateCount and DefaultRatePer are the Teams connector's limit
	// on the Flow bot's posts: 25 "Non-Get requests per connection (…
	// Post an Adaptive Card as Flow bot …)" per 300 seconds (Microsoft
	// Teams connector reference, Throttling Limits). Past it the flow's
	// post is throttled after the trigger has answered 202, and may fail
	// where no one sees it; the sink paces itself instead.
	DefaultRateCount = 25
	DefaultRatePer   = 300 * time.Second
)

// Rate is a number of requests per period.
type Rate struct {
	Count int           `yaml:"count"`
	Per   time.Duration `yaml:"per"`
}

// cardVersions are the Adaptive Cards versions a card may declare: the
// card uses Container styles and bleed (1.2), and Teams renders up to 1.5.
var cardVersions = map[string]bool{"1.2": true, "1.3": true, "1.4": true, "1.5": true}

// Config is one Microsoft Teams sink in the config file's `sinks` section:
// a Power Automate "Workflows" webhook that posts each card to a channel or
// chat. Decode it strictly (yaml KnownFields) and call Validate before use.
//
//	teams:
//	  webhook_url_file: /run/secrets/teams-webhook-url
//	  timeout: 10s
type Config struct {
	// WebhookURL is the URL of the flow's trigger "When a Teams webhook
	// request is received", as Teams shows it when the workflow is
	// created. Its sig query parameter is the credential, so the whole URL
	// is a secret.
	WebhookURL     secret.String `yaml:"webhook_url"`
	WebhookURLFile string        `yaml:"webhook_url_file"`
	// Template is a file of Go text/template definitions that override
	// the default "title", "subtitle", "text" and "alert" templates; a
	// route may override it again per route.
	Template string `yaml:"template"`
	// Timeout bounds one Send; default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// CardVersion is the Adaptive Cards version the card declares: 1.2 to
	// 1.5, default 1.4.
	CardVersion string `yaml:"card_version"`
	// MaxCardBytes bounds the request, default 20000 (see
	// DefaultMaxCardBytes); alerts are left out from the end of the card
	// until it fits.
	MaxCardBytes int `yaml:"max_card_bytes"`
	// Rate is the most cards the sink posts per period, default 25 per
	// 5m, the Flow bot's limit per connection. Workflows that share a
	// connection (made by one owner) share the limit: give each sink a
	// part of it.
	Rate Rate `yaml:"rate"`
}

// Validate applies defaults, resolves webhook_url_file, checks the URL
// (without ever printing it) and parses the template file. Errors name the
// YAML key.
func (c *Config) Validate() error {
	if err := secret.Resolve(&c.WebhookURL, c.WebhookURLFile, "webhook_url"); err != nil {
		return err
	}
	if !c.WebhookURL.IsSet() {
		return errors.New("webhook_url: required (or webhook_url_file)")
	}
	if err := checkWebhookURL(c.WebhookURL.Value()); err != nil {
		return err
	}
	switch {
	case c.Timeout == 0:
		c.Timeout = DefaultTimeout
	case c.Timeout < 0:
		return errors.New("timeout: must be positive")
	}
	if c.CardVersion == "" {
		c.CardVersion = DefaultCardVersion
	}
	if !cardVersions[c.CardVersion] {
		return fmt.Errorf("card_version: %q is not one of 1.2, 1.3, 1.4, 1.5", c.CardVersion)
	}
	switch {
	case c.MaxCardBytes == 0:
		c.MaxCardBytes = DefaultMaxCardBytes
	case c.MaxCardBytes < 4000 || c.MaxCardBytes > TeamsMessageLimit:
		return fmt.Errorf("max_card_bytes: must be between 4000 and %d", TeamsMessageLimit)
	}
	if c.Rate.Count == 0 {
		c.Rate.Count = DefaultRateCount
	}
	if c.Rate.Per == 0 {
		c.Rate.Per = DefaultRatePer
	}
	if c.Rate.Count < 0 || c.Rate.Per < 0 {
		return errors.New("rate: count and per must be positive")
	}
	if c.Template != "" {
		if _, err := ParseTemplateFile(c.Template); err != nil {
			return fmt.Errorf("template: %w", err)
		}
	}
	return nil
}

// Warnings lists what in a valid config is probably a mistake, each
// starting with its key. Call it after Validate.
func (c *Config) Warnings() []string {
	var warns []string
	if u, err := url.Parse(c.WebhookURL.Value()); err == nil && u.Scheme == "http" {
		warns = append(warns, "webhook_url: plain http sends the URL's signature unencrypted; Workflows URLs are https")
	}
	if c.MaxCardBytes > DefaultMaxCardBytes+4000 {
		warns = append(warns, fmt.Sprintf("max_card_bytes: Teams stores more than it is sent and refuses messages over %d bytes; above about %d a large card may be accepted by the webhook and never posted", TeamsMessageLimit, DefaultMaxCardBytes+4000))
	}
	return warns
}

// checkWebhookURL checks the webhook URL; its errors never contain it.
func checkWebhookURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("webhook_url: not an http(s) URL")
	}
	if u.User != nil {
		return errors.New("webhook_url: must not contain user credentials")
	}
	host := strings.ToLower(u.Hostname())
	if host == "outlook.office.com" || strings.HasSuffix(host, ".webhook.office.com") || host == "webhook.office.com" {
		return errors.New(`webhook_url: this is an Office 365 connector ("Incoming Webhook") URL; those connectors are retired: create a workflow from the template "Post to a channel when a webhook request is received" and use its URL`)
	}
	// Workflows URLs are signed: .../triggers/manual/paths/invoke?
	// api-version=...&sp=...&sv=1.0&sig=<signature>. A URL without sig is
	// refused by the trigger (or expects an OAuth token, which the sink
	// does not send).
	if u.Query().Get("sig") == "" {
		return errors.New(`webhook_url: no "sig" query parameter: copy the whole URL of the workflow's trigger "When a Teams webhook request is received", set to be triggered by "Anyone"`)
	}
	return nil
}
