package server_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/gen/herald/v1/heraldv1connect"
	"github.com/herald-notify/herald/internal/server"
)

// procedureScopes is the scope each procedure of NotificationService needs,
// written out again here: a procedure added to the proto without a scope
// here fails TestScopes, and one without a scope in the server fails every
// test that starts a server.
var procedureScopes = map[string]server.Scope{
	heraldv1connect.NotificationServicePublishProcedure:           server.ScopePublish,
	heraldv1connect.NotificationServiceGetNotificationProcedure:   server.ScopeRead,
	heraldv1connect.NotificationServiceListNotificationsProcedure: server.ScopeRead,
	heraldv1connect.NotificationServiceListDeadLettersProcedure:   server.ScopeRead,
	heraldv1connect.NotificationServiceReplayDeadLettersProcedure: server.ScopeAdmin,
	heraldv1connect.NotificationServiceListSinksProcedure:         server.ScopeRead,
}

// scopedClients are bearer clients, each named for its scopes, with the
// token "tok-" + name.
var scopedClients = []server.Client{
	{Name: "publish", Token: "tok-publish", Scopes: []server.Scope{server.ScopePublish}},
	{Name: "read", Token: "tok-read", Scopes: []server.Scope{server.ScopeRead}},
	{Name: "admin", Token: "tok-admin", Scopes: []server.Scope{server.ScopeAdmin}},
	{Name: "read-admin", Token: "tok-read-admin", Scopes: []server.Scope{server.ScopeRead, server.ScopeAdmin}},
	{Name: "all", Token: "tok-all", Scopes: server.AllScopes()},
}

// withScopedClients adds scopedClients to the harness's clients, next to
// "am" (token, no scopes listed: every scope) and "ops" (basic, likewise).
func withScopedClients(t *testing.T) func(*server.Options) {
	return func(o *server.Options) {
		o.Clients = append(o.Clients, scopedClients...)
	}
}

// serviceMethods returns the procedures of NotificationService as the
// generated descriptor has them, so that a new one is seen here.
func serviceMethods(t *testing.T) map[string]protoreflect.MethodDescriptor {
	t.Helper()
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(heraldv1connect.NotificationServiceName)
	if err != nil {
		t.Fatal(err)
	}
	methods := d.(protoreflect.ServiceDescriptor).Methods()
	out := map[string]protoreflect.MethodDescriptor{}
	for i := range methods.Len() {
		m := methods.Get(i)
		out[fmt.Sprintf("/%s/%s", heraldv1connect.NotificationServiceName, m.Name())] = m
	}
	return out
}

// callEmpty calls procedure with an empty request, whatever its types.
func callEmpty(t *testing.T, h *harness, procedure string, m protoreflect.MethodDescriptor, tok string, opts ...connect.ClientOption) error {
	t.Helper()
	c := connect.NewClient[dynamicpb.Message, dynamicpb.Message](h2c(), h.url+procedure, append(opts,
		connect.WithSchema(m),
		connect.WithResponseInitializer(func(_ connect.Spec, msg any) error {
			*msg.(*dynamicpb.Message) = *dynamicpb.NewMessage(m.Output())
			return nil
		}),
		withToken(tok),
	)...)
	_, err := c.CallUnary(t.Context(), connect.NewRequest(dynamicpb.NewMessage(m.Input())))
	return err
}

// TestScopes calls every procedure of NotificationService, in every
// protocol, as clients of every scope: a client with the procedure's scope
// reaches the service (which answers an empty request as it will), any
// other gets PermissionDenied naming the scope it lacks.
func TestScopes(t *testing.T) {
	h := startWith(t, nil, withScopedClients(t))
	methods := serviceMethods(t)
	for procedure := range methods {
		if _, ok := procedureScopes[procedure]; !ok {
			t.Errorf("%s has no scope in this test: decide which it needs, in internal/server/auth.go and here", procedure)
		}
	}
	for procedure, scope := range procedureScopes {
		m, ok := methods[procedure]
		if !ok {
			t.Errorf("%s has a scope here but is not a procedure of %s", procedure, heraldv1connect.NotificationServiceName)
			continue
		}
		// A procedure that changes nothing is read; one that does is not.
		level := m.Options().(*descriptorpb.MethodOptions).GetIdempotencyLevel()
		if readOnly := level == descriptorpb.MethodOptions_NO_SIDE_EFFECTS; readOnly != (scope == server.ScopeRead) {
			t.Errorf("%s: scope %q, but its idempotency level is %v", procedure, scope, level)
		}
		clients := append(slices.Clone(scopedClients), server.Client{Name: "am", Token: token, Scopes: server.AllScopes()})
		for _, cl := range clients {
			allowed := slices.Contains(cl.Scopes, scope)
			for _, p := range protocols {
				t.Run(fmt.Sprintf("%s/%s/%s", m.Name(), cl.Name, p.name), func(t *testing.T) {
					err := callEmpty(t, h, procedure, m, cl.Token, p.opts...)
					code := connect.CodeOf(err)
					if !allowed {
						if code != connect.CodePermissionDenied || !strings.Contains(err.Error(), fmt.Sprintf("lacks scope %q", scope)) {
							t.Errorf("= %v, want PermissionDenied naming scope %q", err, scope)
						}
						return
					}
					if err != nil && (code == connect.CodePermissionDenied || code == connect.CodeUnauthenticated || code == connect.CodeUnimplemented) {
						t.Errorf("= %v, want the service's answer", err)
					}
				})
			}
		}
	}
	if n := len(h.store.All()); n != 0 {
		t.Errorf("%d notifications stored by empty requests", n)
	}
}

// TestScopesOverHTTP: the webhook needs publish and answers 403 with the
// missing scope in its text (Alertmanager does not retry a 4xx, right for
// a mistake in the config), logged at WARN with the client's name, capped;
// reflection needs only credentials; probes and metrics none.
func TestScopesOverHTTP(t *testing.T) {
	long := strings.Repeat("n", 300)
	h := startWith(t, nil, func(o *server.Options) {
		withScopedClients(t)(o)
		o.Clients = append(o.Clients,
			server.Client{Name: long, Token: "tok-long", Scopes: []server.Scope{server.ScopeRead}})
	})
	tests := []struct {
		name       string
		method     string
		path       string
		tok        string
		contentTyp string
		want       int
		wantBody   string
	}{
		{"webhook as publish", "POST", server.WebhookPath, "tok-publish", "application/json", 200, "hooked"},
		{"webhook as all", "POST", server.WebhookPath, "tok-all", "application/json", 200, "hooked"},
		{"webhook as a client with no scopes listed", "POST", server.WebhookPath, token, "application/json", 200, "hooked"},
		{"webhook as read", "POST", server.WebhookPath, "tok-read", "application/json", 403, `client "read" lacks scope "publish"`},
		{"webhook as admin", "POST", server.WebhookPath, "tok-admin", "application/json", 403, `lacks scope "publish"`},
		{"webhook as read-admin", "POST", server.WebhookPath, "tok-read-admin", "application/json", 403, `lacks scope "publish"`},
		{"webhook with wrong credentials", "POST", server.WebhookPath, "tok-nope", "application/json", 401, "unauthenticated"},
		{"raw Connect JSON replay as read", "POST", heraldv1connect.NotificationServiceReplayDeadLettersProcedure, "tok-read", "application/json", 403, `"code":"permission_denied"`},
		{"replay in an unknown encoding as read", "POST", heraldv1connect.NotificationServiceReplayDeadLettersProcedure, "tok-read", "text/plain", 403, `lacks scope "admin"`},
		{"unknown procedure as publish", "POST", "/herald.v1.NotificationService/Nope", "tok-publish", "application/json", 404, ""},
		{"reflection as publish", "POST", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "tok-publish", "application/grpc", 200, ""},
		{"healthz", "GET", "/healthz", "", "", 200, "ok"},
		{"readyz", "GET", "/readyz", "", "", 200, "ready"},
		{"metrics", "GET", "/metrics", "", "", 200, ""},
		{"webhook as a long-named read client", "POST", server.WebhookPath, "tok-long", "application/json", 403, `lacks scope "publish"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, h.url+tt.path, strings.NewReader("{}"))
			if tt.tok != "" {
				req.Header.Set("Authorization", "Bearer "+tt.tok)
			}
			if tt.contentTyp != "" {
				req.Header.Set("Content-Type", tt.contentTyp)
			}
			res, err := h2c().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.want || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("HTTP %d %q, want %d with %q", res.StatusCode, body, tt.want, tt.wantBody)
			}
		})
	}

	logs := h.log.String()
	for _, want := range []string{
		`"level":"WARN","msg":"request refused: the client lacks the scope it needs","client":"read","scope":"publish","path":"/webhooks/alertmanager"`,
		`"client":"admin","scope":"publish"`,
		`"client":"read","scope":"admin","path":"/herald.v1.NotificationService/ReplayDeadLetters"`,
		`"client":"` + long[:256] + `…(300 bytes)","scope":"publish"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, long[:257]) {
		t.Errorf("log has the long client name uncapped")
	}
	if strings.Contains(logs, "tok-") {
		t.Errorf("log shows a token:\n%s", logs)
	}

	// Reflection describes the API to any client, whatever its scopes.
	c := h2c()
	c.Transport = bearerTransport{tok: "tok-publish", next: c.Transport}
	stream := grpcreflect.NewClient(c, h.url).NewStream(t.Context())
	defer stream.Close()
	if names, err := stream.ListServices(); err != nil || !slices.Contains(names, protoreflect.FullName(heraldv1connect.NotificationServiceName)) {
		t.Errorf("reflection as publish = %v, %v", names, err)
	}
}

// TestAuthOff: with no clients configured, every procedure and the webhook
// are open, as before scopes existed.
func TestAuthOff(t *testing.T) {
	h := startWith(t, nil, func(o *server.Options) {
		o.Clients = nil
	})
	for procedure, m := range serviceMethods(t) {
		if code := connect.CodeOf(callEmpty(t, h, procedure, m, "")); code == connect.CodePermissionDenied || code == connect.CodeUnauthenticated {
			t.Errorf("%s without auth: %v", m.Name(), code)
		}
	}
	res, err := client(h, "").Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{Notification: valid()}))
	if err != nil || res.Msg.GetId() == "" {
		t.Errorf("Publish without auth = %v, %v", res, err)
	}
	resp, err := http.Post(h.url+server.WebhookPath, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("webhook without auth: HTTP %d", resp.StatusCode)
	}
}
