// Package webhooktest is a fake webhook receiver for tests: an httptest
// server that checks every request against the contract the webhook sink
// documents (docs/sinks/webhook.md), refuses what a careful receiver would
// refuse, dedupes by Idempotency-Key, records what it accepted, and can be
// told to fail (status, Retry-After, slow answers).
//
// Rules and their sources:
//   - POST with Content-Type application/json, else 405 / 415: the sink's
//     contract.
//   - Credentials (bearer token, basic auth, required headers) when
//     configured, else 401.
//   - X-Herald-Signature checked with webhook.Verify when Secret is set
//     (Stripe's scheme, https://docs.stripe.com/webhooks#verify-manually):
//     a missing, malformed, wrong or stale signature is a 401; and
//     X-Herald-Timestamp must repeat its t.
//   - Idempotency-Key required, at most 255 characters (Stripe's limit on
//     its own keys, https://docs.stripe.com/api/idempotent_requests), else
//     400. A key already accepted is a duplicate: answered with the first
//     answer and not stored again; a key whose first request is still
//     being answered gets 409 Conflict
//     (draft-ietf-httpapi-idempotency-key-header, section 2.6).
//   - X-Herald-Attempt a positive integer, else 400.
//   - The body valid JSON of at most MaxBodySize bytes, else 400 / 413;
//     unless AnyJSON, a webhook.Payload with every field present, no
//     unknown field, version "1", id equal to the Idempotency-Key,
//     known status and severity, else 422.
package webhooktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herald-notify/herald/sinks/webhook"
)

// DefaultMaxBodySize is the largest body the fake accepts unless told
// otherwise.
const DefaultMaxBodySize = 1 << 20

// Options configure what the fake requires.
type Options struct {
	// Secret, when set, requires a valid X-Herald-Signature made with it,
	// within Tolerance (webhook.DefaultTolerance when zero).
	Secret    string
	Tolerance time.Duration
	// BearerToken, when set, requires "Authorization: Bearer <token>".
	BearerToken string
	// Username and Password, when Username is set, require basic auth.
	Username, Password string
	// Headers must be present with these exact values.
	Headers map[string]string
	// AnyJSON accepts any JSON document (a body template's) instead of
	// requiring herald's default schema.
	AnyJSON bool
	// MaxBodySize is the largest body accepted; DefaultMaxBodySize when
	// zero.
	MaxBodySize int64
	// MessageIDs makes accepted requests answer {"message_id": "m<n>"}, and
	// duplicates the message_id of their first request.
	MessageIDs bool
	// Now is the fake's clock for signatures; time.Now when nil.
	Now func() time.Time
}

// Request is one request the fake accepted.
type Request struct {
	Header http.Header
	Body   []byte
	// Payload is the decoded default body, nil with AnyJSON.
	Payload *webhook.Payload
	// Key is the Idempotency-Key; Attempt the X-Herald-Attempt.
	Key     string
	Attempt int
	// MessageID is what the fake answered, with MessageIDs.
	MessageID string
}

// Rejection is a request the fake refused as malformed, with its status
// and the reason it gave.
type Rejection struct {
	Status int
	Reason string
}

// Answer is a failure (or a slow success) the fake is told to give.
type Answer struct {
	// Status is the answer's status; 0 means the normal 200. A 2xx status
	// accepts the request (it is stored, and a later request with the same
	// key is a duplicate); any other answer does not.
	Status int
	// RetryAfter is sent as Retry-After when set.
	RetryAfter string
	// Body is the answer's body for a non-2xx status.
	Body string
	// Delay holds the answer back, after the request was accepted (for a
	// 2xx) or before it is refused; it ends early when the client gives
	// up, but an accepted request stays accepted.
	Delay time.Duration
}

// Server is the fake receiver. Its URL field is the URL to configure.
type Server struct {
	*httptest.Server
	o Options

	mu         sync.Mutex
	script     []Answer
	down       *Answer
	accepted   []Request
	byKey      map[string]int // key -> index in accepted
	inFlight   map[string]bool
	duplicates []Request
	seen       []Seen
	rejected   []Rejection
}

// Seen is a valid request and the status the fake answered it with.
type Seen struct {
	Request
	Status int
}

// NewServer starts a fake receiver; close it with Close.
func NewServer(o Options) *Server {
	if o.MaxBodySize == 0 {
		o.MaxBodySize = DefaultMaxBodySize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, byKey: map[string]int{}, inFlight: map[string]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Queue makes the next requests, one each, get these answers (after they
// pass validation); then requests are accepted normally again.
func (s *Server) Queue(a ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, a...)
}

// SetDown makes every valid request get a until SetDown(nil).
func (s *Server) SetDown(a *Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = a
}

// Requests returns the requests accepted, the first of each key.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.accepted...)
}

// Duplicates returns the requests whose key had been accepted before.
func (s *Server) Duplicates() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.duplicates...)
}

// Seen returns every valid request in arrival order, whatever its answer:
// accepted, duplicate, conflicting or failed on purpose.
func (s *Server) Seen() []Seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Seen(nil), s.seen...)
}

// Rejected returns the requests refused as malformed or unauthorized.
func (s *Server) Rejected() []Rejection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Rejection(nil), s.rejected...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	req, status, reason := s.check(r)
	if status != 0 {
		s.mu.Lock()
		s.rejected = append(s.rejected, Rejection{Status: status, Reason: reason})
		s.mu.Unlock()
		writeError(w, status, reason)
		return
	}

	s.mu.Lock()
	if s.inFlight[req.Key] {
		s.duplicates = append(s.duplicates, req)
		s.seen = append(s.seen, Seen{req, http.StatusConflict})
		s.mu.Unlock()
		writeError(w, http.StatusConflict, "a request with this Idempotency-Key is being processed")
		return
	}
	if i, ok := s.byKey[req.Key]; ok {
		s.duplicates = append(s.duplicates, req)
		s.seen = append(s.seen, Seen{req, http.StatusOK})
		first := s.accepted[i]
		s.mu.Unlock()
		s.writeOK(w, first.MessageID)
		return
	}
	a := Answer{Status: http.StatusOK}
	switch {
	case len(s.script) > 0:
		a, s.script = s.script[0], s.script[1:]
	case s.down != nil:
		a = *s.down
	}
	if a.Status == 0 {
		a.Status = http.StatusOK
	}
	ok := a.Status >= 200 && a.Status < 300
	if ok {
		req.MessageID = fmt.Sprintf("m%d", len(s.accepted)+1)
	}
	s.seen = append(s.seen, Seen{req, a.Status})
	if ok {
		s.byKey[req.Key] = len(s.accepted)
		s.accepted = append(s.accepted, req)
	}
	if a.Delay > 0 {
		// Still being processed: a retry now gets 409.
		s.inFlight[req.Key] = true
	}
	s.mu.Unlock()

	if a.Delay > 0 {
		t := time.NewTimer(a.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
		s.mu.Lock()
		delete(s.inFlight, req.Key)
		s.mu.Unlock()
	}
	if !ok {
		if a.RetryAfter != "" {
			w.Header().Set("Retry-After", a.RetryAfter)
		}
		w.WriteHeader(a.Status)
		_, _ = w.Write([]byte(a.Body))
		return
	}
	if a.RetryAfter != "" {
		w.Header().Set("Retry-After", a.RetryAfter)
	}
	s.writeOK(w, req.MessageID)
}

func (s *Server) writeOK(w http.ResponseWriter, messageID string) {
	w.Header().Set("Content-Type", "application/json")
	if s.o.MessageIDs {
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "message_id": messageID})
		return
	}
	_, _ = w.Write([]byte(`{"ok":true}`))
}

func writeError(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": reason})
}

// check validates r; it returns a non-zero status and a reason when the
// request must be refused.
func (s *Server) check(r *http.Request) (Request, int, string) {
	if r.Method != http.MethodPost {
		return Request{}, http.StatusMethodNotAllowed, "only POST"
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return Request{}, http.StatusUnsupportedMediaType, "Content-Type must be application/json"
	}
	if st, why := s.checkAuth(r); st != 0 {
		return Request{}, st, why
	}
	body, err := readBody(r, s.o.MaxBodySize)
	if err != nil {
		return Request{}, http.StatusRequestEntityTooLarge, err.Error()
	}
	if s.o.Secret != "" {
		sig := r.Header.Get(webhook.HeaderSignature)
		if err := webhook.Verify(s.o.Secret, sig, body, s.o.Tolerance, s.o.Now()); err != nil {
			return Request{}, http.StatusUnauthorized, err.Error()
		}
		t, _, _ := strings.Cut(strings.TrimPrefix(sig, "t="), ",")
		if r.Header.Get(webhook.HeaderTimestamp) != t {
			return Request{}, http.StatusUnauthorized, webhook.HeaderTimestamp + " does not repeat the signature's t"
		}
	}
	req := Request{Header: r.Header.Clone(), Body: body, Key: r.Header.Get(webhook.HeaderIdempotencyKey)}
	if req.Key == "" || len(req.Key) > 255 {
		return Request{}, http.StatusBadRequest, "Idempotency-Key: required, at most 255 characters"
	}
	req.Attempt, err = strconv.Atoi(r.Header.Get(webhook.HeaderAttempt))
	if err != nil || req.Attempt < 1 {
		return Request{}, http.StatusBadRequest, webhook.HeaderAttempt + ": must be a positive integer"
	}
	if !json.Valid(body) {
		return Request{}, http.StatusBadRequest, "the body is not valid JSON"
	}
	if s.o.AnyJSON {
		return req, 0, ""
	}
	p, why := checkPayload(body)
	if why != "" {
		return Request{}, http.StatusUnprocessableEntity, why
	}
	if p.ID != req.Key {
		return Request{}, http.StatusUnprocessableEntity, "id differs from the Idempotency-Key"
	}
	req.Payload = p
	return req, 0, ""
}

func (s *Server) checkAuth(r *http.Request) (int, string) {
	if s.o.BearerToken != "" && r.Header.Get("Authorization") != "Bearer "+s.o.BearerToken {
		return http.StatusUnauthorized, "bad or missing bearer token"
	}
	if s.o.Username != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != s.o.Username || p != s.o.Password {
			return http.StatusUnauthorized, "bad or missing basic auth"
		}
	}
	for k, v := range s.o.Headers {
		if r.Header.Get(k) != v {
			return http.StatusUnauthorized, "header " + k + " missing or wrong"
		}
	}
	return 0, ""
}

func readBody(r *http.Request, limit int64) ([]byte, error) {
	var b bytes.Buffer
	n, err := b.ReadFrom(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("body larger than %d bytes (read %d)", limit, n)
	}
	return b.Bytes(), nil
}

// checkPayload decodes the default body strictly: every field of the
// schema present, none unknown, known values.
func checkPayload(body []byte) (*webhook.Payload, string) {
	if why := requireFields(body, reflect.TypeFor[webhook.Payload](), ""); why != "" {
		return nil, why
	}
	var p webhook.Payload
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, "body: " + err.Error()
	}
	if p.Version != webhook.SchemaVersion {
		return nil, fmt.Sprintf("version %q, want %q", p.Version, webhook.SchemaVersion)
	}
	if p.ID == "" {
		return nil, "id: empty"
	}
	okStatus := func(s string) bool { return s == "firing" || s == "resolved" }
	if !okStatus(p.Status) {
		return nil, fmt.Sprintf("status %q", p.Status)
	}
	switch p.Severity {
	case "critical", "warning", "info", "":
	default:
		return nil, fmt.Sprintf("severity %q", p.Severity)
	}
	for i, a := range p.Alerts {
		if !okStatus(a.Status) {
			return nil, fmt.Sprintf("alerts[%d].status %q", i, a.Status)
		}
	}
	if p.TruncatedAlerts < 0 {
		return nil, "truncated_alerts out of range"
	}
	return &p, ""
}

// requireFields checks that the JSON object b has every json field of the
// struct type t, with a non-null value unless the field is a pointer, and
// recurses into nested structs and lists of structs.
func requireFields(b []byte, t reflect.Type, path string) string {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		return path + ": not a JSON object"
	}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		raw, ok := obj[name]
		where := strings.TrimPrefix(path+"."+name, ".")
		if !ok {
			return where + ": missing"
		}
		if string(raw) == "null" {
			if f.Type.Kind() == reflect.Pointer {
				continue
			}
			return where + ": null"
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]():
			if why := requireFields(raw, ft, where); why != "" {
				return why
			}
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			var items []json.RawMessage
			if err := json.Unmarshal(raw, &items); err != nil {
				return where + ": not a list"
			}
			for i, it := range items {
				if why := requireFields(it, ft.Elem(), fmt.Sprintf("%s[%d]", where, i)); why != "" {
					return why
				}
			}
		}
	}
	return ""
}
