package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/gen/herald/v1/heraldv1connect"
)

// clientFlags are the flags every API subcommand shares.
type clientFlags struct {
	server   string
	token    string
	protocol string
	timeout  time.Duration
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", envOr("HERALD_SERVER", "http://localhost:8093"), "herald base URL (env HERALD_SERVER)")
	fs.StringVar(&c.token, "token", "", "bearer token (default: env HERALD_TOKEN)")
	fs.StringVar(&c.protocol, "protocol", "connect", "wire protocol: connect, grpc or grpcweb")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "request timeout")
}

func (c *clientFlags) client() (heraldv1connect.NotificationServiceClient, error) {
	var opts []connect.ClientOption
	switch c.protocol {
	case "connect":
	case "grpc":
		opts = append(opts, connect.WithGRPC())
	case "grpcweb":
		opts = append(opts, connect.WithGRPCWeb())
	default:
		return nil, fmt.Errorf("-protocol: %q is not connect, grpc or grpcweb", c.protocol)
	}
	token := c.token
	if token == "" {
		token = os.Getenv("HERALD_TOKEN")
	}
	if token != "" {
		opts = append(opts, connect.WithInterceptors(bearer(token)))
	}
	httpClient := &http.Client{Timeout: c.timeout}
	if strings.HasPrefix(c.server, "http://") && c.protocol == "grpc" {
		httpClient.Transport = h2cTransport()
	}
	return heraldv1connect.NewNotificationServiceClient(httpClient, c.server, opts...), nil
}

func h2cTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Protocols = new(http.Protocols)
	t.Protocols.SetUnencryptedHTTP2(true)
	return t
}

// bearer adds the Authorization header to every request.
func bearer(token string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// labelFlags collects repeated -label k=v flags.
type labelFlags map[string]string

func (l labelFlags) String() string { return fmt.Sprint(map[string]string(l)) }
func (l labelFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not name=value", v)
	}
	l[k] = val
	return nil
}

func send(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("send", "-title TEXT [flags]",
		"Publishes one notification to a running herald and prints its id.")
	var cf clientFlags
	cf.register(fs)
	severity := fs.String("severity", "info", "critical, warning or info")
	status := fs.String("status", "firing", "firing or resolved")
	title := fs.String("title", "", "title (required)")
	text := fs.String("text", "", "text")
	source := fs.String("source", "herald-cli", "source name")
	group := fs.String("group", "", "group key: notifications of one group share a chat message")
	key := fs.String("idempotency-key", "", "publishes with the same key are stored once")
	labels := labelFlags{}
	fs.Var(labels, "label", "label name=value (repeatable)")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf(fs, "unexpected argument %q", fs.Arg(0))
	}
	sev, ok := heraldv1.Severity_value["SEVERITY_"+strings.ToUpper(*severity)]
	if !ok || sev == 0 {
		return fmt.Errorf("-severity: %q is not critical, warning or info", *severity)
	}
	st, ok := heraldv1.Status_value["STATUS_"+strings.ToUpper(*status)]
	if !ok || st == 0 {
		return fmt.Errorf("-status: %q is not firing or resolved", *status)
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	res, err := client.Publish(ctx, connect.NewRequest(&heraldv1.PublishRequest{Notification: &heraldv1.Notification{
		Source:         *source,
		Severity:       heraldv1.Severity(sev),
		Status:         heraldv1.Status(st),
		Title:          *title,
		Text:           *text,
		Labels:         labels,
		GroupKey:       *group,
		IdempotencyKey: *key,
	}}))
	if err != nil {
		return describe(err)
	}
	if res.Msg.GetDuplicate() {
		fmt.Fprintf(stdout, "%s (duplicate of an earlier publish)\n", res.Msg.GetId())
		return nil
	}
	fmt.Fprintln(stdout, res.Msg.GetId())
	return nil
}

// describe turns a Connect error into a message for a person at a terminal.
func describe(err error) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	switch ce.Code() {
	case connect.CodeUnauthenticated:
		return fmt.Errorf("unauthenticated: check -token or HERALD_TOKEN (%s)", ce.Message())
	case connect.CodePermissionDenied:
		return fmt.Errorf("this token's client lacks a scope (auth.clients[].scopes in herald's config): %s", ce.Message())
	case connect.CodeInvalidArgument:
		return fmt.Errorf("invalid notification: %s", ce.Message())
	case connect.CodeUnavailable:
		return fmt.Errorf("herald is unavailable, try again: %s", ce.Message())
	}
	return err
}
