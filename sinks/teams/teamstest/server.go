// Package teamstest is a fake Power Automate "Workflows" webhook for tests:
// the trigger "When a Teams webhook request is received" followed by the
// action that posts each attached Adaptive Card to a channel, as the
// template "Post to a channel when a webhook request is received" builds
// it. It is as strict as the real service is documented (or seen) to be,
// in two places, like the real one:
//
//   - the trigger answers the HTTP request: 404 for an unknown workflow,
//     401 for a missing or wrong signature (the sig query parameter), 400
//     for a body that is not a JSON object, 429 when told to throttle, and
//     otherwise 202 Accepted with no body;
//   - the flow run then checks the message and posts its cards, or fails.
//     A real run's failure is never reported to the caller, who already has
//     its 202: the fake records it (Runs, Failures) so a test can see that
//     a card was never posted. WithSyncErrors makes the fake answer those
//     failures instead, as 400 (a bad message) or 413 (too large), the way
//     the retired Office 365 connectors did.
//
// Sources: the Request Body Schema of the trigger and its throttling
// limits (learn.microsoft.com/en-us/connectors/teams/#microsoft-teams-webhook);
// 202 with no body (github.com/idealista/prom2teams/pull/351); the size
// limit of 28672 bytes of "message properties", larger than the request
// (github.com/MicrosoftDocs/msteams-docs/issues/11274); the run errors
// "Property 'type' must be 'AdaptiveCard'" and "the result of the
// evaluation of 'foreach' expression '@triggerOutputs()?['body']?
// ['attachments']' is of type 'Null'" (seen by users of the template);
// the error body {"error":{"code":…,"message":…}} of Logic Apps, on which
// Power Automate runs (learn.microsoft.com/en-us/azure/logic-apps/). The
// codes of the 401 and 404 answers are those public clients of the service
// handle; the statuses and codes for a disabled flow (409), a GET (405)
// and a throttled trigger (429) are the fake's best guess, not documented.
package teamstest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// MessageLimit is Teams' limit on the stored properties of a message, in
// bytes ("max allowed size is 28672 bytes").
const MessageLimit = 28672

// StoredOverhead estimates what Teams adds to a message before it applies
// MessageLimit: a request of 24,453 bytes was stored as 28,897
// (msteams-docs issue 11274). The fake counts the request with every
// non-ASCII character as its \uXXXX escape, plus this.
const StoredOverhead = 4500

// MaxBody bounds the request the trigger reads (the real one takes far
// more; a card can never be this large).
const MaxBody = 1 << 20

// Server is a fake Workflows webhook service. Its methods are safe for
// concurrent use.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	flows    map[string]*flow
	runs     []Run
	fails    []Failure
	requests int
	sync     bool
}

type flow struct {
	sig      string
	disabled bool
}

// Run is one run of a flow: the message it got and what came of it.
type Run struct {
	Flow string
	// Body is the request body as sent.
	Body []byte
	// Cards are the cards the run posted, as JSON objects; none when it
	// failed.
	Cards []map[string]any
	// Error is why the run failed, in the words of the real one; "" when
	// it posted its cards.
	Error string
}

// Failure is an answer the fake gives instead of the real one.
type Failure struct {
	// Status, Header and Body are the answer.
	Status int
	Header http.Header
	Body   string
	// Delay holds the answer back this long (or until the client gives
	// up).
	Delay time.Duration
	// Times is how many requests get this answer; 0 means one.
	Times int
}

// Option configures a Server.
type Option func(*Server)

// WithSyncErrors makes the fake answer a run's failure: 400 with a Logic
// Apps error body for a bad message, 413 for one too large.
func WithSyncErrors() Option { return func(s *Server) { s.sync = true } }

// NewServer starts a fake with one flow; WebhookURL is its URL. Close it
// when done.
func NewServer(opts ...Option) *Server {
	s := &Server{flows: map[string]*flow{}}
	for _, o := range opts {
		o(s)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.AddFlow("alerts")
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// URL is the server's base URL.
func (s *Server) URL() string { return s.srv.URL }

// WebhookURL is the trigger URL of the flow "alerts".
func (s *Server) WebhookURL() string { return s.FlowURL("alerts") }

// AddFlow creates a flow named name (a new signature if it exists) and
// returns its trigger URL.
func (s *Server) AddFlow(name string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	s.mu.Lock()
	s.flows[name] = &flow{sig: hex.EncodeToString(b)}
	s.mu.Unlock()
	return s.FlowURL(name)
}

// FlowURL is the trigger URL of the flow named name, in the shape Power
// Automate gives it.
func (s *Server) FlowURL(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.flows[name]
	sig := "none"
	if f != nil {
		sig = f.sig
	}
	return s.srv.URL + "/workflows/" + url.PathEscape(name) + "/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=" + sig
}

// DeleteFlow deletes a flow: its URL answers 404.
func (s *Server) DeleteFlow(name string) {
	s.mu.Lock()
	delete(s.flows, name)
	s.mu.Unlock()
}

// DisableFlow turns a flow off: its trigger answers 409, as Logic Apps
// does for a disabled workflow.
func (s *Server) DisableFlow(name string) {
	s.mu.Lock()
	if f := s.flows[name]; f != nil {
		f.disabled = true
	}
	s.mu.Unlock()
}

// Fail queues an answer for the next requests.
func (s *Server) Fail(f Failure) {
	if f.Times <= 0 {
		f.Times = 1
	}
	s.mu.Lock()
	s.fails = append(s.fails, f)
	s.mu.Unlock()
}

// Throttle answers the next n requests 429, with Retry-After when
// retryAfter is not "".
func (s *Server) Throttle(n int, retryAfter string) {
	h := http.Header{"Content-Type": {"application/json"}}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	s.Fail(Failure{Status: http.StatusTooManyRequests, Header: h, Times: n,
		Body: `{"error":{"code":"WorkflowRequestsThrottled","message":"Number of requests exceeded the limit."}}`})
}

// Runs returns every run so far.
func (s *Server) Runs() []Run {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Run(nil), s.runs...)
}

// Cards returns the cards posted so far, in order.
func (s *Server) Cards() []map[string]any {
	var out []map[string]any
	for _, r := range s.Runs() {
		out = append(out, r.Cards...)
	}
	return out
}

// Failures returns the errors of the runs that failed.
func (s *Server) Failures() []string {
	var out []string
	for _, r := range s.Runs() {
		if r.Error != "" {
			out = append(out, r.Error)
		}
	}
	return out
}

// Requests counts the requests the fake received.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func laError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	_, _ = w.Write(b)
}

// invokePath is the path of a trigger URL: Logic Apps hosts serve
// /workflows/<id>/triggers/manual/paths/invoke, Power Platform hosts put
// /powerautomate/automations/direct before it.
var invokePath = regexp.MustCompile(`^(?:/powerautomate/automations/direct)?/workflows/([^/]+)/triggers/manual/paths/invoke$`)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	// Read the body first: only then does the server notice a client that
	// gives up (r.Context ends), which a Delay must see.
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return
	}
	s.mu.Lock()
	s.requests++
	var fail *Failure
	if len(s.fails) > 0 {
		f := s.fails[0]
		fail = &f
		if s.fails[0].Times--; s.fails[0].Times <= 0 {
			s.fails = s.fails[1:]
		}
	}
	s.mu.Unlock()
	if fail != nil {
		if fail.Delay > 0 {
			select {
			case <-time.After(fail.Delay):
			case <-r.Context().Done():
				return
			}
		}
		if fail.Status != 0 {
			for k, vs := range fail.Header {
				w.Header()[k] = vs
			}
			w.WriteHeader(fail.Status)
			_, _ = io.WriteString(w, fail.Body)
			return
		}
	}

	m := invokePath.FindStringSubmatch(r.URL.EscapedPath())
	if m == nil {
		laError(w, http.StatusNotFound, "WorkflowNotFound", "The workflow could not be found.")
		return
	}
	name, _ := url.PathUnescape(m[1])
	s.mu.Lock()
	f := s.flows[name]
	var fl flow
	if f != nil {
		fl = *f
	}
	s.mu.Unlock()
	switch {
	case f == nil:
		laError(w, http.StatusNotFound, "WorkflowNotFound", "The workflow could not be found.")
		return
	case r.URL.Query().Get("sig") == "":
		laError(w, http.StatusUnauthorized, "DirectApiAuthorizationRequired", "The request must be authenticated only by Shared Access scheme.")
		return
	case r.URL.Query().Get("sig") != fl.sig:
		laError(w, http.StatusUnauthorized, "DirectApiInvalidAuthorizationSignature", "The provided authorization signature is not valid.")
		return
	case fl.disabled:
		laError(w, http.StatusConflict, "WorkflowTriggerIsNotEnabled", "The workflow is disabled.")
		return
	case r.Method != http.MethodPost:
		// "This trigger only supports POST requests."
		laError(w, http.StatusMethodNotAllowed, "TriggerRequestMethodNotValid", "The HTTP method for this request is not valid: expected 'Post'.")
		return
	}
	if len(body) > MaxBody {
		laError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request body is too large.")
		return
	}
	var msg map[string]any
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		laError(w, http.StatusBadRequest, "TriggerInputSchemaMismatch", "The input body for trigger 'manual' of type 'Request' must be JSON.")
		return
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		laError(w, http.StatusBadRequest, "InvalidRequestContent", "The request content is not valid and could not be deserialized.")
		return
	}
	run := Run{Flow: name, Body: body}
	status := http.StatusBadRequest
	run.Cards, run.Error = checkMessage(msg)
	if run.Error == "" {
		if size := storedSize(body); size > MessageLimit {
			run.Cards, status = nil, http.StatusRequestEntityTooLarge
			run.Error = fmt.Sprintf("MessageSizeExceeded-Message properties size exceeded. Actual message properties size: %d bytes, whereas max allowed size is %d bytes", size, MessageLimit)
		}
	}
	s.mu.Lock()
	s.runs = append(s.runs, run)
	s.mu.Unlock()
	if run.Error != "" && s.sync {
		laError(w, status, "FlowRunFailed", run.Error)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// storedSize estimates the size Teams gives the message of body.
func storedSize(body []byte) int {
	n := StoredOverhead
	for _, r := range string(body) {
		switch {
		case r < utf8.RuneSelf:
			n++
		case r > 0xFFFF:
			n += 12
		default:
			n += 6
		}
	}
	return n
}

// checkMessage checks a message as the trigger's schema and the flow's
// action do, and returns its cards or why the run failed.
func checkMessage(msg map[string]any) ([]map[string]any, string) {
	if t, _ := msg["type"].(string); t != "message" {
		return nil, `The request body's "type" must be "message".`
	}
	atts, ok := msg["attachments"].([]any)
	if !ok {
		return nil, "The execution of template action 'Send_each_adaptive_card' failed: the result of the evaluation of 'foreach' expression '@triggerOutputs()?['body']?['attachments']' is of type 'Null'. The result must be a valid array."
	}
	if len(atts) == 0 {
		return nil, "The message has no attachment: nothing was posted."
	}
	var cards []map[string]any
	for i, a := range atts {
		att, ok := a.(map[string]any)
		if !ok {
			return nil, fmt.Sprintf("attachments[%d] is not an object.", i)
		}
		if ct, _ := att["contentType"].(string); ct != "application/vnd.microsoft.card.adaptive" {
			return nil, fmt.Sprintf("The specified Teams flowbot adaptive card request is missing or invalid: attachments[%d].contentType is %q.", i, ct)
		}
		if cu, present := att["contentUrl"]; !present || cu != nil {
			return nil, fmt.Sprintf("attachments[%d].contentUrl must be present and null.", i)
		}
		card, ok := att["content"].(map[string]any)
		if !ok {
			return nil, "The specified Teams flowbot adaptive card request is missing or invalid."
		}
		if err := checkCard(card); err != "" {
			return nil, "The specified Teams flowbot adaptive card request is missing or invalid. ---> AdaptiveCards.AdaptiveSerializationException: " + err
		}
		cards = append(cards, card)
	}
	return cards, ""
}

var versionRE = regexp.MustCompile(`^1\.([0-9])$`)

// Element and action types of Adaptive Cards up to 1.5.
var (
	elementTypes = map[string]bool{
		"TextBlock": true, "Image": true, "Media": true, "RichTextBlock": true, "Container": true, "ColumnSet": true,
		"FactSet": true, "ImageSet": true, "ActionSet": true, "Table": true, "Input.Text": true, "Input.Number": true,
		"Input.Date": true, "Input.Time": true, "Input.Toggle": true, "Input.ChoiceSet": true,
	}
	actionTypes = map[string]bool{
		"Action.OpenUrl": true, "Action.Submit": true, "Action.ShowCard": true, "Action.ToggleVisibility": true, "Action.Execute": true,
	}
)

// checkCard checks what Teams needs of a card: its type, a version it
// renders (1.0 to 1.5), a body that shows something, and elements and
// actions of known types with their required properties.
func checkCard(card map[string]any) string {
	if t, _ := card["type"].(string); t != "AdaptiveCard" {
		return "Property 'type' must be 'AdaptiveCard'"
	}
	v, _ := card["version"].(string)
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return fmt.Sprintf("Property 'version' must be a version Teams renders (1.0 to 1.5), not %q", v)
	}
	if minor, _ := strconv.Atoi(m[1]); minor > 5 {
		return fmt.Sprintf("Teams renders Adaptive Cards up to 1.5, not %s", v)
	}
	body, ok := card["body"].([]any)
	if !ok || len(body) == 0 {
		return "The card's body is empty: Teams would post an empty card"
	}
	if err := checkElements(body, "body"); err != "" {
		return err
	}
	if acts, present := card["actions"]; present {
		list, ok := acts.([]any)
		if !ok {
			return "Property 'actions' must be an array"
		}
		for i, a := range list {
			act, _ := a.(map[string]any)
			t, _ := act["type"].(string)
			if !actionTypes[t] {
				return fmt.Sprintf("actions[%d]: unknown action type %q", i, t)
			}
			if t == "Action.OpenUrl" {
				u, _ := act["url"].(string)
				if p, err := url.Parse(u); err == nil && p.Scheme == "" || u == "" {
					return fmt.Sprintf("actions[%d]: Action.OpenUrl needs an absolute url", i)
				}
			}
		}
	}
	return ""
}

func checkElements(els []any, where string) string {
	for i, e := range els {
		el, ok := e.(map[string]any)
		at := fmt.Sprintf("%s[%d]", where, i)
		if !ok {
			return at + " is not an object"
		}
		t, _ := el["type"].(string)
		if !elementTypes[t] {
			return fmt.Sprintf("%s: unknown element type %q", at, t)
		}
		switch t {
		case "TextBlock":
			if _, ok := el["text"].(string); !ok {
				return at + ": TextBlock needs a text"
			}
		case "FactSet":
			facts, ok := el["facts"].([]any)
			if !ok || len(facts) == 0 {
				return at + ": FactSet needs facts"
			}
			for j, f := range facts {
				fact, _ := f.(map[string]any)
				_, tok := fact["title"].(string)
				_, vok := fact["value"].(string)
				if !tok || !vok {
					return fmt.Sprintf("%s.facts[%d]: a fact needs a title and a value", at, j)
				}
			}
		case "Container":
			items, ok := el["items"].([]any)
			if !ok {
				return at + ": Container needs items"
			}
			if err := checkElements(items, at+".items"); err != "" {
				return err
			}
		}
	}
	return ""
}
