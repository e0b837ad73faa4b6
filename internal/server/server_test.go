package server_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/reflect/protoreflect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/gen/herald/v1/heraldv1connect"
	"github.com/herald-notify/herald/internal/server"
	"github.com/herald-notify/herald/internal/service"
	"github.com/herald-notify/herald/internal/store/storetest"
)

const token = "test-token-0123456789"

type harness struct {
	server   *server.Server
	url      string
	store    *storetest.Memory
	registry *prometheus.Registry
	log      *syncBuffer
	cancel   context.CancelFunc
	done     chan error
}

// syncBuffer collects the server's log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs a real server on a free loopback port with one bearer client
// and one basic-auth client.
func start(t *testing.T, wrap func(heraldv1connect.NotificationServiceHandler) heraldv1connect.NotificationServiceHandler) *harness {
	return startWith(t, wrap, nil)
}

// startWith is start with server options changed by edit.
func startWith(t *testing.T, wrap func(heraldv1connect.NotificationServiceHandler) heraldv1connect.NotificationServiceHandler,
	edit func(*server.Options),
) *harness {
	t.Helper()
	st := storetest.NewMemory()
	var svc heraldv1connect.NotificationServiceHandler = service.New(st, service.Options{})
	if wrap != nil {
		svc = wrap(svc)
	}
	logs := &syncBuffer{}
	opts := server.Options{
		MaxBodyBytes: 64 << 10,
		Clients: []server.Client{
			{Name: "am", Token: token, Scopes: server.AllScopes()},
			{Name: "ops", Username: "ops", Password: "pw-ops", Scopes: server.AllScopes()},
		},
		Service:  svc,
		Webhook:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hooked")) }),
		Registry: prometheus.NewRegistry(),
		Logger:   slog.New(slog.NewJSONHandler(logs, nil)),
	}
	if edit != nil {
		edit(&opts)
	}
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{server: srv, url: "http://" + l.Addr().String(), store: st, registry: opts.Registry, log: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-h.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return h
}

func h2c() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Protocols = new(http.Protocols)
	t.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: t}
}

func withToken(tok string) connect.ClientOption {
	return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if tok != "" {
				req.Header().Set("Authorization", "Bearer "+tok)
			}
			return next(ctx, req)
		}
	}))
}

var protocols = []struct {
	name string
	opts []connect.ClientOption
}{
	{"connect", nil},
	{"connect-json", []connect.ClientOption{connect.WithProtoJSON()}},
	{"grpc", []connect.ClientOption{connect.WithGRPC()}},
	{"grpc-web", []connect.ClientOption{connect.WithGRPCWeb()}},
}

func client(h *harness, tok string, opts ...connect.ClientOption) heraldv1connect.NotificationServiceClient {
	return heraldv1connect.NewNotificationServiceClient(h2c(), h.url, append(opts, withToken(tok))...)
}

func valid() *heraldv1.Notification {
	return &heraldv1.Notification{
		Source: "billing", Severity: heraldv1.Severity_SEVERITY_CRITICAL,
		Title: "Payments failing", Text: "5xx > 5%", Labels: map[string]string{"team": "pay"},
		GroupKey: "g1",
	}
}

func TestPublishAndGetOverEveryProtocol(t *testing.T) {
	h := start(t, nil)
	ctx := t.Context()
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c := client(h, token, p.opts...)
			n := valid()
			n.IdempotencyKey = "key-" + p.name
			res, err := c.Publish(ctx, connect.NewRequest(&heraldv1.PublishRequest{Notification: n}))
			if err != nil {
				t.Fatal(err)
			}
			if res.Msg.GetId() == "" || res.Msg.GetDuplicate() {
				t.Fatalf("Publish = %v", res.Msg)
			}
			again, err := c.Publish(ctx, connect.NewRequest(&heraldv1.PublishRequest{Notification: n}))
			if err != nil {
				t.Fatal(err)
			}
			if again.Msg.GetId() != res.Msg.GetId() || !again.Msg.GetDuplicate() {
				t.Errorf("second Publish with the same key = %v, want id %s duplicate", again.Msg, res.Msg.GetId())
			}
			got, err := c.GetNotification(ctx, connect.NewRequest(&heraldv1.GetNotificationRequest{Id: res.Msg.GetId()}))
			if err != nil {
				t.Fatal(err)
			}
			gn := got.Msg.GetNotification()
			if gn.GetTitle() != "Payments failing" || gn.GetLabels()["team"] != "pay" || gn.GetReceivedAt() == nil ||
				gn.GetStatus() != heraldv1.Status_STATUS_FIRING {
				t.Errorf("GetNotification = %v", gn)
			}
			if got.Msg.GetDelivery().GetState() != heraldv1.DeliveryState_DELIVERY_STATE_PENDING {
				t.Errorf("delivery state = %v, want PENDING", got.Msg.GetDelivery().GetState())
			}
			_, err = c.GetNotification(ctx, connect.NewRequest(&heraldv1.GetNotificationRequest{Id: "nope"}))
			if connect.CodeOf(err) != connect.CodeNotFound {
				t.Errorf("GetNotification(unknown) = %v, want NotFound", err)
			}
		})
	}
	list, err := client(h, token).ListNotifications(ctx, connect.NewRequest(&heraldv1.ListNotificationsRequest{PageSize: 3}))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Msg.GetNotifications()) != 3 || list.Msg.GetNextPageToken() == "" {
		t.Fatalf("ListNotifications(page 3) = %d items, token %q", len(list.Msg.GetNotifications()), list.Msg.GetNextPageToken())
	}
	if a, b := list.Msg.GetNotifications()[0].GetNotification().GetId(), list.Msg.GetNotifications()[1].GetNotification().GetId(); a < b {
		t.Errorf("ListNotifications not newest first: %s before %s", a, b)
	}
}

func TestAuth(t *testing.T) {
	h := start(t, nil)
	for _, p := range protocols {
		for name, tok := range map[string]string{"missing": "", "wrong": "not-the-token", "prefix": token[:10]} {
			t.Run(p.name+"/"+name, func(t *testing.T) {
				_, err := client(h, tok, p.opts...).Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{Notification: valid()}))
				if connect.CodeOf(err) != connect.CodeUnauthenticated {
					t.Errorf("Publish with %s token: %v, want Unauthenticated", name, err)
				}
			})
		}
	}
	if n := len(h.store.All()); n != 0 {
		t.Errorf("%d notifications stored by unauthenticated calls", n)
	}
	do := func(method, path string, auth func(*http.Request)) int {
		req, _ := http.NewRequest(method, h.url+path, strings.NewReader("{}"))
		if auth != nil {
			auth(req)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	checks := []struct {
		name   string
		method string
		path   string
		auth   func(*http.Request)
		want   int
	}{
		{"webhook without credentials", "POST", server.WebhookPath, nil, 401},
		{"webhook with wrong basic", "POST", server.WebhookPath, func(r *http.Request) { r.SetBasicAuth("ops", "wrong") }, 401},
		{"webhook with basic", "POST", server.WebhookPath, func(r *http.Request) { r.SetBasicAuth("ops", "pw-ops") }, 200},
		{"webhook with bearer", "POST", server.WebhookPath, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }, 200},
		{"basic password as bearer", "POST", server.WebhookPath, func(r *http.Request) { r.Header.Set("Authorization", "Bearer pw-ops") }, 401},
		{"bearer token as basic password", "POST", server.WebhookPath, func(r *http.Request) { r.SetBasicAuth("am", token) }, 401},
		{"webhook GET", "GET", server.WebhookPath, nil, 405},
		{"healthz open", "GET", "/healthz", nil, 200},
		{"readyz open", "GET", "/readyz", nil, 200},
		{"metrics open", "GET", "/metrics", nil, 200},
		{"reflection v1 without credentials", "POST", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", nil, 401},
		{"reflection v1alpha without credentials", "POST", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", nil, 401},
	}
	for _, c := range checks {
		if got := do(c.method, c.path, c.auth); got != c.want {
			t.Errorf("%s: HTTP %d, want %d", c.name, got, c.want)
		}
	}
}

func TestInvalidArgumentNamesTheField(t *testing.T) {
	h := start(t, nil)
	c := client(h, token)
	tests := []struct {
		field string
		edit  func(n *heraldv1.Notification)
	}{
		{"notification.source", func(n *heraldv1.Notification) { n.Source = "" }},
		{"notification.title", func(n *heraldv1.Notification) { n.Title = "  " }},
		{"notification.severity", func(n *heraldv1.Notification) { n.Severity = heraldv1.Severity_SEVERITY_UNSPECIFIED }},
		{"notification.severity", func(n *heraldv1.Notification) { n.Severity = 42 }},
		{"notification.status", func(n *heraldv1.Notification) { n.Status = 9 }},
		{"notification.id", func(n *heraldv1.Notification) { n.Id = "mine" }},
		{"notification.title", func(n *heraldv1.Notification) { n.Title = strings.Repeat("x", 2000) }},
		{"notification.labels", func(n *heraldv1.Notification) { n.Labels = map[string]string{"": "x"} }},
		{"notification.alerts[0].status", func(n *heraldv1.Notification) { n.Alerts = []*heraldv1.Alert{{}} }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			n := valid()
			tt.edit(n)
			_, err := c.Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{Notification: n}))
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Publish = %v, want InvalidArgument naming %s", err, tt.field)
			}
		})
	}
	_, err := c.Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "notification: required") {
		t.Errorf("Publish(empty) = %v", err)
	}
	if n := len(h.store.All()); n != 0 {
		t.Errorf("%d invalid notifications stored", n)
	}
}

func TestBodyOverLimitRefused(t *testing.T) {
	h := start(t, nil)
	n := valid()
	n.Text = strings.Repeat("x", 60<<10)
	n.Annotations = map[string]string{"a": strings.Repeat("y", 8<<10)}
	_, err := client(h, token).Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{Notification: n}))
	if code := connect.CodeOf(err); code != connect.CodeResourceExhausted {
		t.Errorf("oversized Publish = %v (%v), want ResourceExhausted", err, code)
	}
	res, err := http.Post(h.url+heraldv1connect.NotificationServicePublishProcedure, "application/json",
		bytes.NewReader(bytes.Repeat([]byte(" "), 200<<10)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode < 400 || res.StatusCode >= 500 {
		t.Errorf("oversized raw POST: HTTP %d, want a 4xx", res.StatusCode)
	}
	if n := len(h.store.All()); n != 0 {
		t.Errorf("%d oversized notifications stored", n)
	}
}

func TestUnavailableWhenStoreFails(t *testing.T) {
	h := start(t, nil)
	h.store.FailWith(errors.New("disk on fire"))
	_, err := client(h, token).Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{Notification: valid()}))
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("Publish with failing store = %v, want Unavailable", err)
	}
	if strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("internal error leaked to the caller: %v", err)
	}
}

// TestHealthAndReflection: health answers probes without credentials;
// reflection, which describes the whole API, wants them like the API.
func TestHealthAndReflection(t *testing.T) {
	h := start(t, nil)
	hc := grpchealth.NewClient(h2c(), h.url, connect.WithGRPC())
	res, err := hc.Check(t.Context(), &grpchealth.CheckRequest{Service: heraldv1connect.NotificationServiceName})
	if err != nil || res.Status != grpchealth.StatusServing {
		t.Errorf("health Check without credentials = %v, %v", res, err)
	}

	list := func(tok string) ([]protoreflect.FullName, error) {
		c := h2c()
		if tok != "" {
			c.Transport = bearerTransport{tok: tok, next: c.Transport}
		}
		stream := grpcreflect.NewClient(c, h.url).NewStream(t.Context())
		defer stream.Close()
		return stream.ListServices()
	}
	for name, tok := range map[string]string{"missing": "", "wrong": "not-the-token"} {
		if names, err := list(tok); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("reflection with %s token = %v, %v; want Unauthenticated", name, names, err)
		}
	}
	names, err := list(token)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range names {
		found = found || string(n) == heraldv1connect.NotificationServiceName
	}
	if !found {
		t.Errorf("reflection lists %v, not %s", names, heraldv1connect.NotificationServiceName)
	}
}

type bearerTransport struct {
	tok  string
	next http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return b.next.RoundTrip(r)
}

// blockingService holds Publish until released, to test shutdown.
type blockingService struct {
	heraldv1connect.NotificationServiceHandler
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingService) Publish(ctx context.Context, req *connect.Request[heraldv1.PublishRequest]) (*connect.Response[heraldv1.PublishResponse], error) {
	b.once.Do(func() { close(b.entered) })
	<-b.release
	return b.NotificationServiceHandler.Publish(ctx, req)
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	b := &blockingService{entered: make(chan struct{}), release: make(chan struct{})}
	h := start(t, func(s heraldv1connect.NotificationServiceHandler) heraldv1connect.NotificationServiceHandler {
		b.NotificationServiceHandler = s
		return b
	})
	type result struct {
		res *connect.Response[heraldv1.PublishResponse]
		err error
	}
	got := make(chan result, 1)
	go func() {
		res, err := client(h, token).Publish(context.Background(), connect.NewRequest(&heraldv1.PublishRequest{Notification: valid()}))
		got <- result{res, err}
	}()
	<-b.entered
	h.cancel() // SIGTERM
	// New connections are refused once shutdown began.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case r := <-got:
		t.Fatalf("in-flight request finished before release: %v %v", r.res, r.err)
	default:
	}
	close(b.release)
	r := <-got
	if r.err != nil || r.res.Msg.GetId() == "" {
		t.Fatalf("in-flight Publish during shutdown = %v, %v; want success", r.res, r.err)
	}
	if n := len(h.store.All()); n != 1 {
		t.Errorf("stored %d, want 1", n)
	}
}
