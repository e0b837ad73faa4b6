package rocketchat

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/secret"
)

// Mode is how the sink talks to Rocket.Chat.
type Mode string

const (
	// ModeREST posts as a bot user through the REST API (chat.sendMessage,
	// chat.update, chat.getMessage, rooms.info): message ids chosen by herald
	// so retries never duplicate, one message per group updated as the
	// group changes, details in its thread. The recommended mode.
	ModeREST Mode = "rest"
	// ModeWebhook posts through an incoming webhook: no message id, no
	// update, no thread, and the hook's rate limit (10 per minute by
	// default) paced by the sink.
	ModeWebhook Mode = "webhook"
)

// Defaults applied by Validate.
const (
	DefaultTimeout = 5 * time.Second
	// DefaultMaxMessageSize is Rocket.Chat's Message_MaxAllowedSize
	// default, in UTF-16 code units.
	DefaultMaxMessageSize = 5000
	// DefaultWebhookCount and DefaultWebhookPer are Rocket.Chat's default
	// API rate limit, which applies to each incoming webhook URL.
	DefaultWebhookCount = 10
	DefaultWebhookPer   = 60 * time.Second
)

// Config is one Rocket.Chat sink in the config file's `sinks` section.
// Decode it strictly (yaml KnownFields) and call Validate before use.
//
//	rocketchat:
//	  url: https://chat.example.com
//	  mode: rest
//	  user_id: aB3xYz
//	  token_file: /run/secrets/rocketchat-token
//	  channel: "#alerts"
//	  mentions: {critical: "@here"}
type Config struct {
	// URL is the server's base URL, e.g. https://chat.example.com. REST
	// mode; in webhook mode the hook URL is complete by itself.
	URL string `yaml:"url"`
	// Mode is "rest" or "webhook". Empty means rest when token is set and
	// webhook when webhook_url is set.
	Mode Mode `yaml:"mode"`
	// UserID is the bot user's id (X-User-Id). REST mode.
	UserID string `yaml:"user_id"`
	// Token is the bot's personal access token or login token
	// (X-Auth-Token). REST mode.
	Token     secret.String `yaml:"token"`
	TokenFile string        `yaml:"token_file"`
	// WebhookURL is the incoming webhook URL, .../hooks/<id>/<token>; it
	// embeds a credential, so it is a secret. Webhook mode.
	WebhookURL     secret.String `yaml:"webhook_url"`
	WebhookURLFile string        `yaml:"webhook_url_file"`
	// Channel is used when the route names no channel for this sink:
	// "#name" or a room id. REST mode requires one of the two.
	Channel string `yaml:"channel"`
	// Timeout bounds one Send, all its requests together; default 5s, so a
	// Rocket.Chat that hangs holds a critical alert only that long before
	// the fallback takes it.
	Timeout time.Duration `yaml:"timeout"`
	// MaxMessageSize is the server's Message_MaxAllowedSize in UTF-16 code
	// units, default 5000. Longer messages are shortened, never refused.
	MaxMessageSize int `yaml:"max_message_size"`
	// Mentions maps a severity (critical, warning, info) to the mentions put
	// on firing messages of that severity: "@here", "@all", "@username",
	// several separated by spaces.
	Mentions map[string]string `yaml:"mentions"`
	// RemindMentionEvery says, per severity, which reminders carry the
	// mention (Alertmanager repeating a group that did not change): every
	// Nth, 1 for every one. Left out or 0, reminders mention no one: the
	// group's first message did.
	RemindMentionEvery map[string]int `yaml:"remind_mention_every"`
	// WebhookRate is the incoming webhook's rate limit, default 10 per 60s.
	WebhookRate Rate `yaml:"webhook_rate"`
	// WebhookOverrideChannel sends the route's channel with each webhook
	// post. The hook must allow it ("Override destination channel");
	// otherwise the hook posts to its own channel and the route's channel
	// is ignored.
	WebhookOverrideChannel bool `yaml:"webhook_override_channel"`
	// Alias, Emoji and Avatar override the poster's display name and icon
	// (the bot needs the message-impersonate permission in REST mode).
	// Emoji is a shortcode such as ":rotating_light:"; Avatar a URL.
	Alias  string `yaml:"alias"`
	Emoji  string `yaml:"emoji"`
	Avatar string `yaml:"avatar"`
	// Template is a file of Go text/template definitions that override the
	// default templates (see Data and DigestData); a route may override it
	// again per route.
	Template string `yaml:"template"`
}

// Rate is a number of requests per period.
type Rate struct {
	Count int           `yaml:"count"`
	Per   time.Duration `yaml:"per"`
}

var (
	mentionToken = regexp.MustCompile(`^@(all|here|[A-Za-z0-9._-]+)$`)
	emojiName    = regexp.MustCompile(`^:[a-z0-9_+-]+:$`)
	severities   = map[string]bool{"critical": true, "warning": true, "info": true}
)

// Validate applies defaults, resolves the *_file secrets, and checks the
// fields against each other. Errors name the YAML key.
func (c *Config) Validate() error {
	if err := secret.Resolve(&c.Token, c.TokenFile, "token"); err != nil {
		return err
	}
	if err := secret.Resolve(&c.WebhookURL, c.WebhookURLFile, "webhook_url"); err != nil {
		return err
	}
	if c.Mode == "" {
		switch {
		case c.Token.IsSet() && c.WebhookURL.IsSet():
			return errors.New("mode: both token and webhook_url are set; set mode to rest or webhook")
		case c.WebhookURL.IsSet():
			c.Mode = ModeWebhook
		default:
			c.Mode = ModeREST
		}
	}
	switch c.Mode {
	case ModeREST:
		if err := checkBaseURL(c.URL); err != nil {
			return err
		}
		if c.UserID == "" {
			return errors.New("user_id: required in rest mode")
		}
		if !c.Token.IsSet() {
			return errors.New("token: required in rest mode (or token_file)")
		}
		if c.WebhookURL.IsSet() {
			return errors.New("webhook_url: not used in rest mode")
		}
	case ModeWebhook:
		if !c.WebhookURL.IsSet() {
			return errors.New("webhook_url: required in webhook mode (or webhook_url_file)")
		}
		if err := checkWebhookURL(c.WebhookURL.Value()); err != nil {
			return err
		}
		if c.Token.IsSet() || c.UserID != "" {
			return errors.New("token, user_id: not used in webhook mode")
		}
		if c.URL != "" {
			if err := checkBaseURL(c.URL); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("mode: %q is not rest or webhook", c.Mode)
	}
	if c.Channel != "" {
		if err := checkChannel(c.Channel); err != nil {
			return fmt.Errorf("channel: %w", err)
		}
	}
	switch {
	case c.Timeout == 0:
		c.Timeout = DefaultTimeout
	case c.Timeout < 0:
		return errors.New("timeout: must be positive")
	}
	switch {
	case c.MaxMessageSize == 0:
		c.MaxMessageSize = DefaultMaxMessageSize
	case c.MaxMessageSize < 500:
		return errors.New("max_message_size: must be at least 500")
	}
	for sev, m := range c.Mentions {
		if !severities[sev] {
			return fmt.Errorf("mentions: %q is not a severity (critical, warning, info)", sev)
		}
		for _, tok := range strings.Fields(m) {
			if !mentionToken.MatchString(tok) {
				return fmt.Errorf("mentions.%s: %q is not a mention (@here, @all or @username)", sev, tok)
			}
		}
	}
	for sev, every := range c.RemindMentionEvery {
		if !severities[sev] {
			return fmt.Errorf("remind_mention_every: %q is not a severity (critical, warning, info)", sev)
		}
		if every < 0 {
			return fmt.Errorf("remind_mention_every.%s: %d: 0 (never) or more", sev, every)
		}
	}
	if c.WebhookRate.Count == 0 {
		c.WebhookRate.Count = DefaultWebhookCount
	}
	if c.WebhookRate.Per == 0 {
		c.WebhookRate.Per = DefaultWebhookPer
	}
	if c.WebhookRate.Count < 0 || c.WebhookRate.Per < 0 {
		return errors.New("webhook_rate: count and per must be positive")
	}
	if c.Emoji != "" && !emojiName.MatchString(c.Emoji) {
		return fmt.Errorf("emoji: %q is not a shortcode like :bell:", c.Emoji)
	}
	if c.Avatar != "" {
		if u, err := url.Parse(c.Avatar); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("avatar: must be an http(s) URL")
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
// stop the sink, each starting with the key it is about. Call it after
// Validate; check-config and serve show it (see internal/config).
func (c *Config) Warnings() []string {
	var warns []string
	if c.Mode == ModeWebhook && c.Channel != "" && !c.WebhookOverrideChannel {
		warns = append(warns, "channel: "+c.RouteChannelWarning(c.Channel))
	}
	return warns
}

// RouteChannelWarning says why the sink ignores channel when a route names
// it for the sink, or returns "" when the sink posts there: in webhook mode
// without webhook_override_channel, the hook posts to the channel it was
// made for. Call it after Validate.
func (c *Config) RouteChannelWarning(channel string) string {
	if c.Mode != ModeWebhook || c.WebhookOverrideChannel || channel == "" {
		return ""
	}
	return fmt.Sprintf("channel %q is ignored: an incoming webhook posts to its own channel unless webhook_override_channel is true (and the hook allows overriding its channel in Rocket.Chat)", channel)
}

func checkBaseURL(s string) error {
	if s == "" {
		return errors.New("url: required in rest mode")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url: %q is not an http(s) URL", s)
	}
	if u.User != nil {
		return errors.New("url: must not contain credentials")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("url: must not have a query or fragment")
	}
	return nil
}

// checkWebhookURL checks the hook URL without ever printing it.
func checkWebhookURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("webhook_url: not an http(s) URL")
	}
	if !strings.Contains(u.Path, "/hooks/") {
		return errors.New("webhook_url: the path must contain /hooks/<id>/<token>")
	}
	return nil
}

// checkChannel accepts "#name" or a room id.
func checkChannel(ch string) error {
	switch {
	case strings.HasPrefix(ch, "@"):
		return fmt.Errorf("%q: direct messages are not supported; use #channel or a room id", ch)
	case strings.HasPrefix(ch, "#") && len(ch) == 1:
		return errors.New("empty channel name")
	case strings.ContainsAny(ch, " \t\r\n/?&"):
		return fmt.Errorf("%q: not a channel name or room id", ch)
	}
	return nil
}
