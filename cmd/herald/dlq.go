package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

const dlqUsage = `Usage: herald dlq list [flags]
       herald dlq replay [flags] ID... | -all

list prints the dead-lettered notifications with their last error; replay puts
them back on the queue to be delivered again. herald dlq list -h and
herald dlq replay -h show the flags.
`

// dlq lists and replays dead-lettered notifications through the API.
func dlq(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return errUsagePrinted
	}
	var fs *flag.FlagSet
	var all *bool
	var limit *uint
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, dlqUsage)
		return errHelp
	case "list":
		fs = newFlagSet("dlq list", "[flags]", "Lists dead-lettered notifications with their last error.")
		limit = fs.Uint("limit", 100, "at most this many")
	case "replay":
		fs = newFlagSet("dlq replay", "[flags] ID...\n[flags] -all",
			"Puts dead-lettered notifications back on the queue to be delivered again.")
		all = fs.Bool("all", false, "every dead letter")
	default:
		fmt.Fprintf(stderr, "herald dlq: unknown command %q: use list or replay\n\n%s", args[0], dlqUsage)
		return errUsagePrinted
	}
	var cf clientFlags
	cf.register(fs)
	if err := parseFlags(fs, args[1:], stdout, stderr); err != nil {
		return err
	}
	switch {
	case args[0] == "list" && fs.NArg() > 0:
		return usageErrorf(fs, "unexpected argument %q", fs.Arg(0))
	case args[0] == "replay" && fs.NArg() == 0 && !*all:
		return usageErrorf(fs, "name the IDs to replay, or -all")
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	if args[0] == "list" {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tRECEIVED\tSEVERITY\tTITLE\tLAST ERROR")
		token, n := "", uint(0)
		for n < *limit {
			res, err := client.ListDeadLetters(ctx, connect.NewRequest(&heraldv1.ListDeadLettersRequest{
				PageSize: uint32(min(*limit-n, 500)), PageToken: token,
			}))
			if err != nil {
				return describe(err)
			}
			for _, s := range res.Msg.GetNotifications() {
				n++
				nt := s.GetNotification()
				lastErr := ""
				for _, d := range s.GetDelivery().GetSinks() {
					if d.GetLastError() != "" {
						lastErr = d.GetSink() + ": " + d.GetLastError()
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", nt.GetId(), nt.GetReceivedAt().AsTime().Format("2006-01-02T15:04:05Z"),
					nt.GetSeverity(), nt.GetTitle(), lastErr)
			}
			if token = res.Msg.GetNextPageToken(); token == "" {
				break
			}
		}
		return tw.Flush()
	}
	res, err := client.ReplayDeadLetters(ctx, connect.NewRequest(&heraldv1.ReplayDeadLettersRequest{Ids: fs.Args(), All: *all}))
	if err != nil {
		return describe(err)
	}
	fmt.Fprintf(stdout, "replayed %d notification(s)\n", len(res.Msg.GetReplayedIds()))
	for _, id := range res.Msg.GetReplayedIds() {
		fmt.Fprintln(stdout, id)
	}
	return nil
}
