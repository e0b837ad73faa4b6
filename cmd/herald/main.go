// Command herald is the notification hub: `herald serve` runs it,
// `herald check-config` checks a config file, `herald send` publishes a
// notification, `herald version` says which build this is.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/herald-notify/herald/internal/version"
)

const usage = `herald: a durable notification hub for Alertmanager and services.

Usage:
  herald serve [-config FILE]         run herald (no config: embedded queue, log sink, :8093)
  herald check-config FILE            check a config file; non-zero exit on any problem
  herald send [flags]                 publish a notification (herald send -h)
  herald dlq list|replay [flags]      list or replay dead-lettered notifications
  herald sinks [flags]                each sink's breaker, last success and error, pace wait
  herald route test -config FILE [label=value ...]
                                      the routes and sink chains a notification takes
  herald version                      print the version
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "check-config":
		err = checkConfig(args[1:], stdout, stderr)
	case "send":
		err = send(ctx, args[1:], stdout, stderr)
	case "dlq":
		err = dlq(ctx, args[1:], stdout, stderr)
	case "sinks":
		err = sinksCmd(ctx, args[1:], stdout, stderr)
	case "route":
		err = routeTest(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, version.String())
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "herald: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintf(stderr, "herald %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
