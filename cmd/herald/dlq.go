package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// dlq lists and replays dead-lettered notifications through the API.
func dlq(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: herald dlq list|replay [flags]")
	}
	fs := flag.NewFlagSet("dlq "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	all := fs.Bool("all", false, "replay: every dead letter")
	limit := fs.Uint("limit", 100, "list: at most this many")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	switch args[0] {
	case "list":
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
	case "replay":
		ids := fs.Args()
		if len(ids) == 0 && !*all {
			return errors.New("usage: herald dlq replay ID... | --all")
		}
		res, err := client.ReplayDeadLetters(ctx, connect.NewRequest(&heraldv1.ReplayDeadLettersRequest{Ids: ids, All: *all}))
		if err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "replayed %d notification(s)\n", len(res.Msg.GetReplayedIds()))
		for _, id := range res.Msg.GetReplayedIds() {
			fmt.Fprintln(stdout, id)
		}
		return nil
	}
	return fmt.Errorf("unknown dlq command %q: use list or replay", args[0])
}
