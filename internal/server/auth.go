package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/telemetry"
)

// maxLoggedValue bounds what a log line takes from a request anyone can
// send, such as its path.
const maxLoggedValue = 256

// authenticator checks bearer tokens and basic credentials against the
// configured clients. Comparisons are of SHA-256 digests in constant time,
// over every client, so timing reveals neither a token nor which client
// matched. Credentials are never logged.
type authenticator struct {
	clients []credential
	logger  *slog.Logger
}

type credential struct {
	name   string
	bearer bool
	digest [sha256.Size]byte // of the token, or of "username:password"
}

type clientKey struct{}

// ClientName returns the name of the authenticated client, if any.
func ClientName(ctx context.Context) string {
	s, _ := ctx.Value(clientKey{}).(string)
	return s
}

func newAuthenticator(cfg config.AuthConfig, logger *slog.Logger) *authenticator {
	a := &authenticator{logger: logger}
	for _, c := range cfg.Clients {
		if c.Token.IsSet() {
			a.clients = append(a.clients, credential{name: c.Name, bearer: true, digest: sha256.Sum256([]byte(c.Token.Value()))})
		} else {
			a.clients = append(a.clients, credential{name: c.Name, digest: sha256.Sum256([]byte(c.Username + ":" + c.Password.Value()))})
		}
	}
	return a
}

// enabled reports whether any client is configured; without clients every
// request is let through.
func (a *authenticator) enabled() bool { return len(a.clients) > 0 }

// identify returns the client the request's credentials belong to.
func (a *authenticator) identify(r *http.Request) (string, bool) {
	var bearer bool
	var digest [sha256.Size]byte
	h := r.Header.Get("Authorization")
	if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		bearer, digest = true, sha256.Sum256([]byte(strings.TrimSpace(tok)))
	} else if user, pass, ok := r.BasicAuth(); ok {
		digest = sha256.Sum256([]byte(user + ":" + pass))
	} else {
		return "", false
	}
	match := -1
	for i, c := range a.clients {
		eq := subtle.ConstantTimeCompare(digest[:], c.digest[:])
		if eq == 1 && c.bearer == bearer && match < 0 {
			match = i
		}
	}
	if match < 0 {
		return "", false
	}
	return a.clients[match].name, true
}

// wrap refuses requests without valid credentials with 401. Connect, gRPC
// and gRPC-Web clients read a 401 as Unauthenticated.
func (a *authenticator) wrap(next http.Handler) http.Handler {
	if !a.enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := a.identify(r)
		if !ok {
			a.logger.InfoContext(r.Context(), "request refused: missing or wrong credentials",
				"path", telemetry.Clip(r.URL.Path, maxLoggedValue), "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
			http.Error(w, "unauthenticated: missing or wrong credentials", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, name)))
	})
}
