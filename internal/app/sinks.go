package app

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/email"
	"github.com/herald-notify/herald/sinks/logsink"
	"github.com/herald-notify/herald/sinks/mattermost"
	"github.com/herald-notify/herald/sinks/rocketchat"
	"github.com/herald-notify/herald/sinks/slack"
	"github.com/herald-notify/herald/sinks/teams"
	"github.com/herald-notify/herald/sinks/webhook"
)

// sinkTransport is the traced transport every sink's HTTP client goes
// through, on base (nil: herald's own), whose spans never show a hook
// URL's token.
func sinkTransport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		// The dispatcher runs up to max_in_flight_per_sink (32 by default)
		// requests to a sink at once, mostly to one chat server: keep up
		// to 256 connections idle, or most requests dial (and close) a new
		// one. The transport outlives reloads, which may raise the bound.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 256
		// A chat message's request (up to about 12 KB of JSON for a full
		// Rocket.Chat message) and the server's answer, which echoes it,
		// each go through one system call instead of three or four with
		// the default 4 KB buffers.
		t.WriteBufferSize = 16 << 10
		t.ReadBufferSize = 16 << 10
		base = t
	}
	return telemetry.HTTPTransport(base)
}

// BuildSinks constructs every configured sink on transport (which herald
// wraps for tracing; `herald template` gives one that captures requests).
// This switch is the one list of sink types herald knows; each type's
// constructor validates its own config.
func BuildSinks(cfgs []config.SinkConfig, logger *slog.Logger, transport http.RoundTripper) (map[string]sinks.Sink, error) {
	out := make(map[string]sinks.Sink, len(cfgs))
	for _, c := range cfgs {
		deps := sinks.Deps{Logger: logger.With("sink", c.Name), Transport: transport}
		var (
			s   sinks.Sink
			err error
		)
		switch {
		case c.Log != nil:
			s, err = logsink.New(c.Name, *c.Log, deps)
		case c.RocketChat != nil:
			s, err = rocketchat.New(c.Name, *c.RocketChat, deps)
		case c.Slack != nil:
			s, err = slack.New(c.Name, *c.Slack, deps)
		case c.Mattermost != nil:
			s, err = mattermost.New(c.Name, *c.Mattermost, deps)
		case c.Email != nil:
			s, err = email.New(c.Name, *c.Email, deps)
		case c.Webhook != nil:
			s, err = webhook.New(c.Name, *c.Webhook, deps)
		case c.Teams != nil:
			s, err = teams.New(c.Name, *c.Teams, deps)
		default:
			err = fmt.Errorf("no sink type set")
		}
		if err != nil {
			return nil, fmt.Errorf("sink %q: %w", c.Name, err)
		}
		out[c.Name] = s
	}
	return out, nil
}
