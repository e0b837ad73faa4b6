// Package logsink is the sink herald uses when no chat server is
// configured: it writes each notification, rendered as plain text, to the
// log. It lets a new user see herald work end to end with nothing else
// running.
package logsink

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
)

// Config configures the log sink. It has no settings yet; the empty
// section `log: {}` selects the type.
type Config struct{}

// Validate checks the config.
func (c *Config) Validate() error { return nil }

// Sink writes notifications to a logger.
type Sink struct {
	name   string
	logger *slog.Logger
}

var _ sinks.Sink = (*Sink)(nil)

// New returns a log sink writing to deps.Logger.
func New(name string, _ Config, deps sinks.Deps) (*Sink, error) {
	l := deps.Logger
	if l == nil {
		l = slog.Default()
	}
	return &Sink{name: name, logger: l}, nil
}

func (s *Sink) Name() string { return s.name }

// Send logs the notification; it fails only when ctx is already done.
func (s *Sink) Send(ctx context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
	if err := ctx.Err(); err != nil {
		return sinks.Receipt{}, err
	}
	s.logger.InfoContext(ctx, "notification", "id", n.GetId(), "channel", to.Channel, "route", to.Route,
		"message", Render(n))
	return sinks.Receipt{}, nil
}

// Render formats a notification as one line of plain text.
func Render(n *heraldv1.Notification) string {
	var b strings.Builder
	status := strings.TrimPrefix(n.GetStatus().String(), "STATUS_")
	sev := strings.ToLower(strings.TrimPrefix(n.GetSeverity().String(), "SEVERITY_"))
	fmt.Fprintf(&b, "[%s] [%s] %s", status, sev, n.GetTitle())
	if t := n.GetText(); t != "" {
		fmt.Fprintf(&b, " — %s", strings.Join(strings.Fields(t), " "))
	}
	if len(n.GetLabels()) > 0 {
		b.WriteString(" {")
		for i, k := range slices.Sorted(maps.Keys(n.GetLabels())) {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s=%q", k, n.GetLabels()[k])
		}
		b.WriteString("}")
	}
	if c := len(n.GetAlerts()); c > 0 {
		fmt.Fprintf(&b, " (%d alerts)", c)
	}
	return b.String()
}
