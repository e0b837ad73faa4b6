package mattermost

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/secret"
)

// Mode is how the sink talks to Mattermost.
type Mode string

const (
	// ModeREST posts as a bot through API v4 with a personal or bot access
	// token: one root post per alert group, patched as the group changes,
	// with every later notification as a reply in its thread. The
	// recommended mode.
	ModeREST Mode = "rest"
	// ModeWebhook posts through an incoming webhook: no post id, so no
	// patch and no thread.
	ModeWebhook Mode = "webhook"
)

// Defaults applied by Validate.
const (
	DefaultTimeout = 5 * time.Second
	// DefaultMaxPostSize is Mattermost's limit on a post's message, in
	// runes: model.PostMessageMaxRunesV2, what the server reports for the
	// Posts.Message column of every current schema (the server's
	// MaxPostSize, shown to clients as MaxPostSize in the client config).
	DefaultMaxPostSize = 16383
	// minPostSize is the smallest limit accepted: model.PostMessageMaxRunesV1,
	// the limit of the oldest schema.
	minPostSize = 4000
)

// Config is one Mattermost sink in the config file's `sinks` section.
// Decode it strictly (yaml KnownFields) and call Validate before use.
//
//	mattermost:
//	  mode: rest
//	  base_url: https://chat.example.com
//	  token_file: /run/secrets/mattermost-token
//	  team: ops
//	  channel: alerts
//	  mentions: {critical: "@channel"}
type Config struct {
	// Mode is "rest" or "webhook". Empty means rest when token is set and
	// webhook when webhook_url is set.
	Mode Mode `yaml:"mode"`
	// BaseURL is the server's base URL, e.g. https://chat.example.com (the
	// API is under <base_url>/api/v4/). REST mode.
	BaseURL string `yaml:"base_url"`
	// Token is a bot account's access token (or a user's personal access
	// token), sent as "Authorization: Bearer". REST mode.
	Token     secret.String `yaml:"token"`
	TokenFile string        `yaml:"token_file"`
	// Team is the name of the team (as in its URL) whose channels are
	// named by channel names. REST mode; required when a channel is given
	// by name.
	Team string `yaml:"team"`
	// Channel is used when the route names no channel for this sink: a
	// channel name ("alerts", "~alerts" or "#alerts") or a channel id (26
	// lowercase letters and digits). REST mode requires one of the two. In
	// webhook mode it overrides the hook's own channel.
	Channel string `yaml:"channel"`
	// WebhookURL is the incoming webhook URL, <server>/hooks/<key>; the key
	// is a credential, so it is a secret. Webhook mode.
	WebhookURL     secret.String `yaml:"webhook_url"`
	WebhookURLFile string        `yaml:"webhook_url_file"`
	// WebhookOverrideChannel sends the route's channel (or channel) with
	// each webhook post. A hook locked to its channel refuses that (403).
	WebhookOverrideChannel bool `yaml:"webhook_override_channel"`
	// Username, IconURL and IconEmoji override the poster's name and icon
	// of webhook posts; Mattermost ignores them unless "Enable integrations
	// to override usernames / profile picture icons" is on. Webhook mode.
	Username  string `yaml:"username"`
	IconURL   string `yaml:"icon_url"`
	IconEmoji string `yaml:"icon_emoji"`
	// Timeout bounds one Send, all its requests together; default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxPostSize is the server's limit on a message, in runes, default
	// 16383. Longer messages are shortened, never refused.
	MaxPostSize int `yaml:"max_post_size"`
	// Mentions maps a severity (critical, warning, info) to the mentions
	// put on firing posts of that severity: "@channel", "@here", "@all",
	// "@username", several separated by spaces.
	Mentions map[string]string `yaml:"mentions"`
	// RemindMentionEvery says, per severity, which reminders carry the
	// mention (Alertmanager repeating a group that did not change): every
	// Nth, 1 for every one. Left out or 0, reminders mention no one.
	RemindMentionEvery map[string]int `yaml:"remind_mention_every"`
	// Template is a file of Go text/template definitions overriding
	// "text" and/or "attachment" (see message.Data); a route may override
	// it again.
	Template string `yaml:"template"`
}

var (
	mentionToken = regexp.MustCompile(`^@(all|here|channel|[a-z0-9._-]+)$`)
	emojiName    = regexp.MustCompile(`^:?[a-z0-9_+-]+:?$`)
	// channelID is the shape of Mattermost ids, channels' and posts'
	// (model.NewId: 26 characters of base32 without padding, lowercase).
	channelID   = regexp.MustCompile(`^[a-z0-9]{26}$`)
	channelName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	teamName    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	severities  = map[string]bool{"critical": true, "warning": true, "info": true}
)

// Validate applies defaults, resolves the *_file secrets, parses the
// template file and checks the fields against each other. Errors name the
// YAML key.
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
		if err := checkBaseURL(c.BaseURL); err != nil {
			return err
		}
		if !c.Token.IsSet() {
			return errors.New("token: required in rest mode (or token_file)")
		}
		if c.WebhookURL.IsSet() {
			return errors.New("webhook_url: not used in rest mode")
		}
		if c.Team != "" && !teamName.MatchString(c.Team) {
			return fmt.Errorf("team: %q is not a team name (the name in the team's URL)", c.Team)
		}
		if c.Channel != "" {
			if _, isName, err := parseChannel(c.Channel); err != nil {
				return fmt.Errorf("channel: %w", err)
			} else if isName && c.Team == "" {
				return errors.New("team: required to find channel by its name")
			}
		}
		if c.Username != "" || c.IconURL != "" || c.IconEmoji != "" || c.WebhookOverrideChannel {
			return errors.New("username, icon_url, icon_emoji, webhook_override_channel: used in webhook mode only")
		}
	case ModeWebhook:
		if !c.WebhookURL.IsSet() {
			return errors.New("webhook_url: required in webhook mode (or webhook_url_file)")
		}
		if err := checkWebhookURL(c.WebhookURL.Value()); err != nil {
			return err
		}
		if c.Token.IsSet() || c.Team != "" {
			return errors.New("token, team: not used in webhook mode")
		}
		if c.BaseURL != "" {
			return errors.New("base_url: not used in webhook mode (webhook_url is complete)")
		}
		if c.Channel != "" {
			if _, _, err := parseChannel(c.Channel); err != nil {
				return fmt.Errorf("channel: %w", err)
			}
		}
		if c.IconURL != "" {
			if u, err := url.Parse(c.IconURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return errors.New("icon_url: must be an http(s) URL")
			}
		}
		if c.IconEmoji != "" && !emojiName.MatchString(c.IconEmoji) {
			return fmt.Errorf("icon_emoji: %q is not an emoji name like :bell: or bell", c.IconEmoji)
		}
		if strings.ContainsAny(c.Username, "\r\n") || len(c.Username) > 64 {
			return errors.New("username: one line of at most 64 bytes")
		}
	default:
		return fmt.Errorf("mode: %q is not rest or webhook", c.Mode)
	}
	switch {
	case c.Timeout == 0:
		c.Timeout = DefaultTimeout
	case c.Timeout < 0:
		return errors.New("timeout: must be positive")
	}
	switch {
	case c.MaxPostSize == 0:
		c.MaxPostSize = DefaultMaxPostSize
	case c.MaxPostSize < minPostSize:
		return fmt.Errorf("max_post_size: must be at least %d", minPostSize)
	}
	for sev, m := range c.Mentions {
		if !severities[sev] {
			return fmt.Errorf("mentions: %q is not a severity (critical, warning, info)", sev)
		}
		for _, tok := range strings.Fields(m) {
			if !mentionToken.MatchString(tok) {
				return fmt.Errorf("mentions.%s: %q is not a mention (@channel, @here, @all or @username)", sev, tok)
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
	if c.Mode == ModeWebhook && c.Channel != "" && !c.WebhookOverrideChannel {
		warns = append(warns, fmt.Sprintf("channel: %q is ignored: an incoming webhook posts to its own channel unless webhook_override_channel is true", c.Channel))
	}
	if c.Mode == ModeREST && c.Channel == "" {
		warns = append(warns, "channel: no default channel; every route must name one for this sink")
	}
	return warns
}

// parseChannel reads a channel as the config or a route gives it: "#name",
// "~name" or a bare name (Mattermost's names are lowercase: "#Alerts" is
// "alerts"), or a channel id. It returns the name or the id.
func parseChannel(ch string) (v string, isName bool, err error) {
	if name, ok := strings.CutPrefix(ch, "#"); ok {
		ch, isName = name, true
	} else if name, ok := strings.CutPrefix(ch, "~"); ok {
		ch, isName = name, true
	}
	if isName || !channelID.MatchString(ch) {
		ch = strings.ToLower(ch)
	}
	switch {
	case ch == "":
		return "", false, errors.New("empty channel name")
	case strings.HasPrefix(ch, "@"):
		return "", false, fmt.Errorf("%q: direct messages are not supported; use a channel name or id", ch)
	case !isName && channelID.MatchString(ch):
		return ch, false, nil
	case !channelName.MatchString(ch) || len(ch) > 64:
		return "", false, fmt.Errorf("%q: not a channel name (lowercase letters, digits, - and _, as in the channel's URL) or id", ch)
	}
	return ch, true, nil
}

func checkBaseURL(s string) error {
	if s == "" {
		return errors.New("base_url: required in rest mode")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("base_url: %q is not an http(s) URL", s)
	}
	if u.User != nil {
		return errors.New("base_url: must not contain credentials")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("base_url: must not have a query or fragment")
	}
	if strings.Contains(u.Path, "/api/v4") {
		return errors.New("base_url: the server's URL, without /api/v4")
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
		return errors.New("webhook_url: the path must be /hooks/<key>")
	}
	return nil
}
