package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/herald-notify/herald/gen/herald/v1/heraldv1connect"
	"github.com/herald-notify/herald/internal/telemetry"
)

// maxLoggedValue bounds what a log line takes from a request anyone can
// send, such as its path.
const maxLoggedValue = 256

// authenticator checks bearer tokens and basic credentials against the
// configured clients, and the scopes of the client a request comes from.
// Comparisons are of SHA-256 digests in constant time, over every client,
// so timing reveals neither a token nor which client matched. Credentials
// are never logged.
type authenticator struct {
	// clients are replaced whole by set (a reload).
	clients atomic.Pointer[[]credential]
	logger  *slog.Logger
}

// client is an authenticated caller, as a request's context carries it.
type client struct {
	name   string
	scopes map[Scope]bool
}

type credential struct {
	client
	bearer bool
	digest [sha256.Size]byte // of the token, or of "username:password"
}

type clientKey struct{}

// ClientName returns the name of the authenticated client, if any.
func ClientName(ctx context.Context) string {
	if c, ok := ctx.Value(clientKey{}).(*client); ok {
		return c.name
	}
	return ""
}

func newAuthenticator(clients []Client, logger *slog.Logger) *authenticator {
	a := &authenticator{logger: logger}
	a.set(clients)
	return a
}

// set makes clients the accepted callers from the next request on.
func (a *authenticator) set(clients []Client) {
	creds := make([]credential, 0, len(clients))
	for _, c := range clients {
		cl := client{name: c.Name, scopes: map[Scope]bool{}}
		for _, s := range AllScopes() {
			cl.scopes[s] = c.allows(s)
		}
		if c.Token != "" {
			creds = append(creds, credential{client: cl, bearer: true, digest: sha256.Sum256([]byte(c.Token))})
		} else {
			creds = append(creds, credential{client: cl, digest: sha256.Sum256([]byte(c.Username + ":" + c.Password))})
		}
	}
	a.clients.Store(&creds)
}

// enabled reports whether any client is configured; without clients every
// request is let through.
func (a *authenticator) enabled() bool { return len(*a.clients.Load()) > 0 }

// identify returns the client the request's credentials belong to.
func (a *authenticator) identify(r *http.Request) (*client, bool) {
	var bearer bool
	var digest [sha256.Size]byte
	h := r.Header.Get("Authorization")
	if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		bearer, digest = true, sha256.Sum256([]byte(strings.TrimSpace(tok)))
	} else if user, pass, ok := r.BasicAuth(); ok {
		digest = sha256.Sum256([]byte(user + ":" + pass))
	} else {
		return nil, false
	}
	clients := *a.clients.Load()
	match := -1
	for i, c := range clients {
		eq := subtle.ConstantTimeCompare(digest[:], c.digest[:])
		if eq == 1 && c.bearer == bearer && match < 0 {
			match = i
		}
	}
	if match < 0 {
		return nil, false
	}
	return &clients[match].client, true
}

// wrap refuses requests without valid credentials with 401. Connect, gRPC
// and gRPC-Web clients read a 401 as Unauthenticated.
func (a *authenticator) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.enabled() {
			next.ServeHTTP(w, r)
			return
		}
		c, ok := a.identify(r)
		if !ok {
			a.logger.InfoContext(r.Context(), "request refused: missing or wrong credentials",
				"path", telemetry.Clip(r.URL.Path, maxLoggedValue), "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
			http.Error(w, "unauthenticated: missing or wrong credentials", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, c)))
	})
}

// procedureScopes is the scope each procedure of NotificationService needs.
// New refuses to serve a service with a procedure missing here, so that no
// procedure is served before someone decided who may call it.
var procedureScopes = map[string]Scope{
	heraldv1connect.NotificationServicePublishProcedure:           ScopePublish,
	heraldv1connect.NotificationServiceGetNotificationProcedure:   ScopeRead,
	heraldv1connect.NotificationServiceListNotificationsProcedure: ScopeRead,
	heraldv1connect.NotificationServiceListDeadLettersProcedure:   ScopeRead,
	heraldv1connect.NotificationServiceReplayDeadLettersProcedure: ScopeAdmin,
	heraldv1connect.NotificationServiceListSinksProcedure:         ScopeRead,
}

// checkProcedureScopes returns an error naming every procedure of
// NotificationService that has no scope in procedureScopes.
func checkProcedureScopes() error {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(heraldv1connect.NotificationServiceName)
	if err != nil {
		return fmt.Errorf("server: %s: %w", heraldv1connect.NotificationServiceName, err)
	}
	svc, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return fmt.Errorf("server: %s is a %T, not a service", heraldv1connect.NotificationServiceName, d)
	}
	var missing []string
	for i := range svc.Methods().Len() {
		p := "/" + string(svc.FullName()) + "/" + string(svc.Methods().Get(i).Name())
		if _, ok := procedureScopes[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("server: no scope for %s: add it to procedureScopes in internal/server/auth.go",
			strings.Join(missing, ", "))
	}
	return nil
}

// procedureScope returns the scope the request's procedure needs, and
// false for a path that names no procedure (the service answers it with
// NotFound).
func procedureScope(r *http.Request) (Scope, bool) {
	s, ok := procedureScopes[r.URL.Path]
	return s, ok
}

// needs returns a scopeOf for handlers that need one scope for every
// request.
func needs(s Scope) func(*http.Request) (Scope, bool) {
	return func(*http.Request) (Scope, bool) { return s, true }
}

// require hands a request to next when its client, which wrap put in the
// context, has the scope that scopeOf names for the request, and answers
// it with deny (403, PermissionDenied) when not. It goes inside wrap and
// before anything that reads the body or waits for a slot. With auth off
// every request goes through.
func (a *authenticator) require(scopeOf func(*http.Request) (Scope, bool),
	deny func(http.ResponseWriter, *http.Request, error), next http.Handler,
) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.enabled() {
			next.ServeHTTP(w, r)
			return
		}
		scope, ok := scopeOf(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		c, _ := r.Context().Value(clientKey{}).(*client)
		if c != nil && c.scopes[scope] {
			next.ServeHTTP(w, r)
			return
		}
		name := ""
		if c != nil {
			name = c.name
		}
		a.logger.WarnContext(r.Context(), "request refused: the client lacks the scope it needs",
			"client", telemetry.Clip(name, maxLoggedValue), "scope", scope,
			"path", telemetry.Clip(r.URL.Path, maxLoggedValue), "remote", r.RemoteAddr)
		deny(w, r, fmt.Errorf("client %q lacks scope %q, which %s needs: add it to the client's scopes in herald's auth.clients",
			name, scope, r.URL.Path))
	})
}

// httpDenied answers 403 with the reason as text. Alertmanager does not
// retry a 4xx, which suits a mistake in the config.
func httpDenied(w http.ResponseWriter, _ *http.Request, err error) {
	http.Error(w, "permission denied: "+err.Error(), http.StatusForbidden)
}

// connectDenied answers PermissionDenied in the request's protocol (HTTP
// 403 for Connect unary).
func connectDenied(w http.ResponseWriter, r *http.Request, err error) {
	if !rpcErrors.IsSupported(r) {
		httpDenied(w, r, err)
		return
	}
	_ = rpcErrors.Write(w, r, connect.NewError(connect.CodePermissionDenied, err))
}
