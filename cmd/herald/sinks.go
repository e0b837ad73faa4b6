package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// sinksCmd prints every sink's health as the herald it asks sees it.
func sinksCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sinks", "[flags]",
		"Prints each sink of a running herald: its breaker, last success, last error\nand how long its pacing makes the next notification wait.")
	var cf clientFlags
	cf.register(fs)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf(fs, "unexpected argument %q", fs.Arg(0))
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	res, err := client.ListSinks(ctx, connect.NewRequest(&heraldv1.ListSinksRequest{}))
	if err != nil {
		return describe(err)
	}
	now := time.Now()
	ago := func(t interface{ AsTime() time.Time }, set bool) string {
		if !set {
			return "-"
		}
		return now.Sub(t.AsTime()).Round(time.Second).String() + " ago"
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SINK\tTYPE\tBREAKER\tLAST SUCCESS\tLAST ERROR\tPACE WAIT")
	for _, s := range res.Msg.GetSinks() {
		lastErr := "-"
		if s.GetLastErrorTime() != nil {
			lastErr = fmt.Sprintf("%s (%s): %s", ago(s.GetLastErrorTime(), true), s.GetLastErrorClass(), s.GetLastError())
		}
		breaker := strings.ToLower(strings.TrimPrefix(s.GetBreaker().String(), "BREAKER_STATE_"))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.GetName(), s.GetType(), breaker,
			ago(s.GetLastSuccessTime(), s.GetLastSuccessTime() != nil), lastErr, s.GetPaceWait().AsDuration())
	}
	return tw.Flush()
}
