package slack

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/secret"
)

// Mode is how the sink talks to Slack.
type Mode string

const (
	// ModeBot posts with a bot token through the Web API (chat.postMessage,
	// chat.update): one message per group, updated as the group changes,
	// details in its thread. The recommended mode.
	ModeBot Mode = "bot"
	// ModeWebhook posts through an incoming webhook: post only, no message
	// id, so no updates and no threads.
	ModeWebhook Mode = "webhook"
)

// Defaults applied by Validate.
const (
	DefaultAPIURL  = "https://slack.com/api/"
	DefaultTimeout = 10 * time.Second
	// DefaultPace is the smallest gap between two posts to one channel:
	// Slack allows about one message per second per channel.
	DefaultPace = time.Second
)

// Config is one Slack sink in the config file's `sinks` section. Decode it
// strictly (yaml KnownFields) and call Validate before use.
type Config struct {
	// Mode is "bot" or "webhook". Empty means bot when token is set and
	// webhook when webhook_url is set.
	Mode Mode `yaml:"mode"`
	// APIURL is the Web API base URL, default https://slack.com/api/. Set it
	// for tests, proxies and Slack-compatible servers. Bot mode only.
	APIURL string `yaml:"api_url"`
	// Token is the bot token (xoxb-...). Bot mode. Scopes: chat:write
	// (chat:write.public to post in channels the bot has not joined);
	// channels:history and groups:history so that a retry after a lost
	// answer finds the message instead of posting it twice; channels:read
	// and groups:read so that it can do so for a channel given by name
	// that the sink has not had an answer from yet (after a restart, or
	// when the first post to it lost its answer). Without them the retry
	// posts anyway, a possible duplicate rather than a loss, and the sink
	// logs the missing scope once.
	Token     secret.String `yaml:"token"`
	TokenFile string        `yaml:"token_file"`
	// WebhookURL is the incoming webhook URL; it embeds a credential, so it
	// is a secret. Webhook mode.
	WebhookURL     secret.String `yaml:"webhook_url"`
	WebhookURLFile string        `yaml:"webhook_url_file"`
	// Channel is used when the route names no channel for this sink. In
	// webhook mode it is only a hint: Slack's current webhooks always post to
	// the channel they were created for.
	Channel string `yaml:"channel"`
	// Timeout bounds one HTTP request, default 10s. A Send in bot mode may
	// make two requests (update and thread reply).
	Timeout time.Duration `yaml:"timeout"`
	// Pace is the smallest gap between two sends to one channel, default
	// 1s. A send that comes sooner is refused as throttled, without a
	// request, so the dispatcher waits. 0 keeps the default; a negative
	// value turns pacing off (a channel Slack rate limited is still held
	// until its Retry-After).
	Pace time.Duration `yaml:"pace"`
	// Mentions maps a severity (critical, warning, info) to the mentions
	// put on firing messages of that severity, in Slack syntax: "<!here>",
	// "<!channel>", "<@U123ABC>", "<!subteam^S123>". "@here", "@channel" and
	// "@everyone" are accepted as shorthands.
	Mentions map[string]string `yaml:"mentions"`
	// RemindMentionEvery says, per severity, which reminders carry the
	// mention (Alertmanager repeating a group that did not change): every
	// Nth, 1 for every one. Left out or 0, reminders mention no one.
	RemindMentionEvery map[string]int `yaml:"remind_mention_every"`
	// Username and IconEmoji override the poster's name and icon, when the
	// app is allowed to (chat:write.customize).
	Username  string `yaml:"username"`
	IconEmoji string `yaml:"icon_emoji"`
	// Template is a file of Go text/template definitions overriding the
	// default "title", "summary", "alert" and "text" templates (see View
	// and templates/default.tmpl); a route may override it again.
	Template string `yaml:"template"`

	// resolved is set once the *_file twins have been read, so that
	// Validate can run again on a validated config.
	resolved bool
}

var (
	// mentionToken is one mention in Slack's own syntax.
	mentionToken = regexp.MustCompile(`^<(!here|!channel|!everyone|@[UW][A-Z0-9]{2,}|!subteam\^[A-Z0-9]{2,}(\|[^<>|]*)?)>$`)
	emojiName    = regexp.MustCompile(`^:[a-z0-9_+'-]+:$`)
	// severities are the keys Mentions accepts.
	severities = map[string]bool{"critical": true, "warning": true, "info": true}
)

// Validate applies defaults, resolves the *_file secrets and checks the
// config. Its errors name the YAML key and never contain a secret.
func (c *Config) Validate() error {
	var errs []error
	if !c.resolved {
		if err := secret.Resolve(&c.Token, c.TokenFile, "token"); err != nil {
			errs = append(errs, err)
		}
		if err := secret.Resolve(&c.WebhookURL, c.WebhookURLFile, "webhook_url"); err != nil {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		c.resolved = true
	}
	switch c.Mode {
	case "":
		switch {
		case c.Token.IsSet() && c.WebhookURL.IsSet():
			errs = append(errs, errors.New("mode: token and webhook_url are both set; set mode to bot or webhook and keep one"))
		case c.Token.IsSet():
			c.Mode = ModeBot
		case c.WebhookURL.IsSet():
			c.Mode = ModeWebhook
		default:
			errs = append(errs, errors.New("token or webhook_url (or their _file twins) is required"))
		}
	case ModeBot, ModeWebhook:
	default:
		errs = append(errs, fmt.Errorf("mode: %q is not bot or webhook", string(c.Mode)))
	}
	switch c.Mode {
	case ModeBot:
		if !c.Token.IsSet() {
			errs = append(errs, errors.New("token: required in bot mode"))
		}
		if c.WebhookURL.IsSet() {
			errs = append(errs, errors.New("webhook_url: not used in bot mode; remove it"))
		}
	case ModeWebhook:
		if !c.WebhookURL.IsSet() {
			errs = append(errs, errors.New("webhook_url: required in webhook mode"))
		} else if err := checkURL(c.WebhookURL.Value()); err != nil {
			// The URL is a secret: say what is wrong, not what it is.
			errs = append(errs, fmt.Errorf("webhook_url: %w", err))
		}
		if c.Token.IsSet() {
			errs = append(errs, errors.New("token: not used in webhook mode; remove it"))
		}
	}

	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	if err := checkURL(c.APIURL); err != nil {
		errs = append(errs, fmt.Errorf("api_url: %w", err))
	} else if u, _ := url.Parse(c.APIURL); u.User != nil {
		errs = append(errs, errors.New("api_url: must not embed credentials"))
	} else if !strings.HasSuffix(c.APIURL, "/") {
		// slack-go appends the method name to the base URL.
		c.APIURL += "/"
	}

	switch {
	case c.Timeout == 0:
		c.Timeout = DefaultTimeout
	case c.Timeout < 0:
		errs = append(errs, fmt.Errorf("timeout: %s is negative", c.Timeout))
	}
	if c.Pace == 0 {
		c.Pace = DefaultPace
	}

	for sev, m := range c.Mentions {
		if !severities[sev] {
			errs = append(errs, fmt.Errorf("mentions: %q is not a severity (critical, warning, info)", sev))
			continue
		}
		norm, err := normalizeMentions(m)
		if err != nil {
			errs = append(errs, fmt.Errorf("mentions.%s: %w", sev, err))
			continue
		}
		c.Mentions[sev] = norm
	}
	for sev, every := range c.RemindMentionEvery {
		if !severities[sev] {
			errs = append(errs, fmt.Errorf("remind_mention_every: %q is not a severity (critical, warning, info)", sev))
		} else if every < 0 {
			errs = append(errs, fmt.Errorf("remind_mention_every.%s: %d: 0 (never) or more", sev, every))
		}
	}
	if c.IconEmoji != "" && !emojiName.MatchString(c.IconEmoji) {
		errs = append(errs, fmt.Errorf("icon_emoji: %q is not an emoji name like :rotating_light:", c.IconEmoji))
	}
	if c.Template != "" {
		if _, err := ParseTemplateFile(c.Template); err != nil {
			errs = append(errs, fmt.Errorf("template: %w", err))
		}
	}
	if strings.ContainsAny(c.Username, "<>&") {
		errs = append(errs, fmt.Errorf("username: %q must not contain <, > or &", c.Username))
	}
	return errors.Join(errs...)
}

// normalizeMentions checks a space-separated list of mentions and rewrites
// the @here/@channel/@everyone shorthands into Slack's syntax.
func normalizeMentions(s string) (string, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return "", errors.New("empty; remove the key instead")
	}
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		switch f {
		case "@here", "@channel", "@everyone":
			f = "<!" + f[1:] + ">"
		}
		if !mentionToken.MatchString(f) {
			return "", fmt.Errorf("%q is not a Slack mention such as <!here>, <!channel>, <@U123ABC> or <!subteam^S123ABC>", f)
		}
		out = append(out, f)
	}
	return strings.Join(out, " "), nil
}

// checkURL accepts absolute http and https URLs. Its errors do not repeat the
// URL, which may be secret.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must be an http or https URL")
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	return nil
}
