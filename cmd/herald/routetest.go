package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/route"
	"github.com/herald-notify/herald/internal/severity"
)

const routeUsage = `Usage: herald route test -config FILE [-source NAME] [label=value ...]

route test prints the routes and sink chains a notification with these
labels takes. herald route test -h shows the flags.
`

// routeCmd runs herald route's one subcommand, test.
func routeCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, routeUsage)
		return errUsagePrinted
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, routeUsage)
		return errHelp
	case "test":
		return routeTest(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "herald route: unknown command %q: use test\n\n%s", args[0], routeUsage)
	return errUsagePrinted
}

// routeTest prints the routes a notification with the given labels takes,
// as `herald serve` would route it: every route that delivers it (more
// than one with continue: true) and each one's chain of sinks, channels
// and templates, in the order they are tried.
func routeTest(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("route test", "-config FILE [-source NAME] [label=value ...]",
		"Prints the routes a notification with these labels takes, as herald serve\n"+
			"would route it, each with its chain of sinks in the order they are tried.")
	cfgPath := fs.String("config", "", "the config file (required)")
	source := fs.String("source", "alertmanager", "the notification's source")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if *cfgPath == "" {
		return usageErrorf(fs, "-config is required")
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
