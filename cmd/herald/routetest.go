package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/route"
	"github.com/herald-notify/herald/internal/severity"
)

// routeTest prints the routes a notification with the given labels takes,
// as `herald serve` would route it: every route that delivers it (more
// than one with continue: true) and each one's chain of sinks, channels
// and templates, in the order they are tried.
func routeTest(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("route test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "the config file (required)")
	source := fs.String("source", "alertmanager", "the notification's source")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: herald route test -config FILE [-source NAME] [label=value ...]")
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] != "test" {
		fs.Usage()
		return errors.New("usage: herald route test -config FILE [label=value ...]")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *cfgPath == "" {
		fs.Usage()
		return errors.New("-config is required")
	}
	n := &heraldv1.Notification{Source: *source, Labels: map[string]string{}}
	for _, kv := range fs.Args() {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("%q: labels are name=value", kv)
		}
		n.Labels[k] = v
	}
	// The severity the notification is rendered with, as the webhook
	// derives it from the label.
	n.Severity = severity.Parse(n.Labels["severity"])
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	table, err := route.New(cfg.Routes)
	if err != nil {
		return err
	}
	for i, d := range table.Routes(n) {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "route %s", d.Route)
		if i == 0 {
			fmt.Fprintf(stdout, " (severity %s)", severity.Name(n.Severity))
		}
		fmt.Fprintln(stdout)
		for j, step := range d.Chain {
			line := "  " + step.Sink
			if step.Channel != "" {
				line += " → " + step.Channel
			}
			if t := d.Templates[step.Sink]; t != "" {
				line += " (template " + t + ")"
			}
			if j > 0 {
				line += " — fallback"
			}
			fmt.Fprintln(stdout, line)
		}
	}
	return nil
}
