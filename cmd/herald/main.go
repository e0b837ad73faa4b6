// Command herald is the notification hub: `herald serve` runs it,
// `herald check-config` checks a config file, `herald send` publishes a
// notification, `herald version` says which build this is.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/herald-notify/herald/internal/version"
)

// A command is one subcommand of herald.
type command struct {
	name string
	// args and summary make the command's line in herald's usage:
	// "herald <name> <args>", then what it does.
	args, summary string
	// run runs the command on the arguments after its name. It answers
	// -h with errHelp and a wrong command line with errUsagePrinted or a
	// usageError, so that run can exit 0 or 2.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is the one list of herald's subcommands, in the order the usage
// shows them. A new subcommand is one more entry here, whose run builds its
// flags with newFlagSet and parses them with parseFlags.
var commands = []command{
	{"serve", "[-config FILE] [flags]", "run herald (no config: embedded queue, log sink, :8093)", serve},
	{"check-config", "FILE", "check a config file; non-zero exit on any problem", checkConfig},
	{"send", "[flags]", "publish a notification", send},
	{"dlq", "list|replay [flags]", "list or replay dead-lettered notifications", dlq},
	{"sinks", "[flags]", "each sink's breaker, last success and error, pace wait", sinksCmd},
	{"route", "test -config FILE [label=value ...]", "the routes and sink chains a notification takes", routeCmd},
	{"template", "-config FILE [-file FILE|-] [label=value ...]", "the exact requests each sink of the chain would send, offline",
		func(_ context.Context, args []string, stdout, stderr io.Writer) error {
			return templateCmd(args, stdout, stderr)
		}},
	{"version", "", "print the version", versionCmd},
	{"help", "[COMMAND]", "this help, or a command's", nil}, // run by run itself
}

// usage is herald's own usage, listing every command.
func usage() string {
	var b strings.Builder
	b.WriteString("herald: a durable notification hub for Alertmanager and services.\n\nUsage:\n")
	for _, c := range commands {
		line := strings.TrimSpace(c.name + " " + c.args)
		if len(line) > 34 {
			fmt.Fprintf(&b, "  herald %s\n  %-41s %s\n", line, "", c.summary)
		} else {
			fmt.Fprintf(&b, "  herald %-34s %s\n", line, c.summary)
		}
	}
	b.WriteString("\nEvery command prints its own usage and flags with -h.\n")
	return b.String()
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one subcommand and returns the process exit code: 0 on
// success and for -h, 2 for a usage error (usage on stderr), 1 otherwise.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, usage())
		return 0
	case "-version", "--version":
		name = "version"
	case "help":
		// herald help COMMAND is herald COMMAND -h.
		switch {
		case len(args) == 1 || len(args) == 2 && (isHelpFlag(args[1]) || args[1] == "help"):
			fmt.Fprint(stdout, usage())
			return 0
		case len(args) == 2:
			return run(ctx, []string{args[1], "-h"}, stdout, stderr)
		}
		fmt.Fprintf(stderr, "herald help: one command at most\n\n%s", usage())
		return 2
	}
	for _, c := range commands {
		if c.name == name && c.run != nil {
			return exitCode(c.run(ctx, args[1:], stdout, stderr), name, stderr)
		}
	}
	fmt.Fprintf(stderr, "herald: unknown command %q\n\n%s", args[0], usage())
	return 2
}

// exitCode reports a command's error on stderr and returns the exit code
// for it.
func exitCode(err error, name string, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsagePrinted):
		return 2
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "herald %s: %s\n\n", ue.fs.Name(), ue.msg)
		ue.fs.SetOutput(stderr)
		ue.fs.Usage()
		return 2
	}
	fmt.Fprintf(stderr, "herald %s: %v\n", name, err)
	return 1
}

var (
	// errHelp is returned by a command that printed its usage on request.
	errHelp = errors.New("help requested")
	// errUsagePrinted is returned by a command whose command line was
	// wrong, after it printed the problem and its usage on stderr.
	errUsagePrinted = errors.New("usage error")
)

// usageError is a command line a command cannot run: run prints msg and the
// command's usage on stderr and exits 2.
type usageError struct {
	fs  *flag.FlagSet
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usageErrorf(fs *flag.FlagSet, format string, a ...any) error {
	return &usageError{fs: fs, msg: fmt.Sprintf(format, a...)}
}

func isHelpFlag(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

// newFlagSet returns the flag set of the subcommand "herald <name>", whose
// usage shows synopsis (the arguments after the name, one form a line),
// then about, then the flags if it has any.
func newFlagSet(name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		for i, form := range strings.Split(synopsis, "\n") {
			prefix := "Usage:"
			if i > 0 {
				prefix = "      "
			}
			fmt.Fprintln(w, strings.TrimRight(prefix+" herald "+name+" "+form, " "))
		}
		if about != "" {
			fmt.Fprintf(w, "\n%s\n", about)
		}
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(w, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses a subcommand's arguments. -h, -help or --help print
// its usage on stdout and return errHelp; a wrong flag is a usageError.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = stdout.Write(out.Bytes())
		return errHelp
	case err != nil:
		return &usageError{fs: fs, msg: err.Error()}
	}
	return nil
}

func versionCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "", "Prints herald's version.")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf(fs, "unexpected argument %q", fs.Arg(0))
	}
	fmt.Fprintln(stdout, version.String())
	return nil
}
