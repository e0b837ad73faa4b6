package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/route"
	"github.com/herald-notify/herald/internal/secret"
	"github.com/herald-notify/herald/internal/severity"
	"github.com/herald-notify/herald/internal/shim"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/email"
	"github.com/herald-notify/herald/sinks/logsink"
	"github.com/herald-notify/herald/sinks/slack"
	"github.com/herald-notify/herald/sinks/teams"
)

// previewID is the id the previewed notification carries where herald
// would assign one on publish.
const previewID = "preview"

// templateCmd renders a notification as herald serve would deliver it and
// prints, for every route it takes and every sink of each chain, the exact
// requests the sink would send, with their sizes against the sink's limits.
// Nothing leaves the machine: the sinks' HTTP goes to a transport that
// records each request and answers it as the chat server would a success.
func templateCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("template",
		"-config FILE -file FILE|- [-json]\n-config FILE [-status firing|resolved] [-title TEXT] [-annotation k=v ...] [-json] [label=value ...]",
		"Prints the exact request each sink of each route's chain would send for a\n"+
			"notification, as herald serve would route and render it, with its size\n"+
			"against the sink's limits. The notification is an Alertmanager webhook\n"+
			"(-file, - for stdin) or built from labels and flags, previewed as the\n"+
			"first of its group (a new message, no update or thread reply) on its\n"+
			"first attempt. It runs offline: no request leaves the machine, each is\n"+
			"answered as a success, and secrets show as <secret>.")
	cfgPath := fs.String("config", "", "the config file (required)")
	file := fs.String("file", "", "an Alertmanager webhook JSON `file`; - reads stdin")
	status := fs.String("status", "firing", "firing or resolved, without -file")
	title := fs.String("title", "", "the title, without -file (default: the alertname label)")
	source := fs.String("source", "alertmanager", "the notification's source, without -file")
	var annotations kvFlag
	fs.Var(&annotations, "annotation", "an annotation `k=v`, without -file (repeatable)")
	asJSON := fs.Bool("json", false, "print JSON: one object per step")
	// Labels and flags may come in any order: parse again after each label.
	var labels []string
	for {
		if err := parseFlags(fs, args, stdout, stderr); err != nil {
			if errors.Is(err, errHelp) {
				return nil
			}
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		labels = append(labels, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if *cfgPath == "" {
		return usageErrorf(fs, "-config is required")
	}
	var ns []*heraldv1.Notification
	if *file != "" {
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name != "config" && f.Name != "file" && f.Name != "json" })
		if explicit || len(labels) > 0 {
			return usageErrorf(fs, "-file gives the whole notification: no labels, -status, -title, -source or -annotation with it")
		}
		var err error
		if ns, err = readWebhook(*file); err != nil {
			return err
		}
	} else {
		n, err := flagNotification(labels, *status, *title, *source, annotations)
		if err != nil {
			return usageErrorf(fs, "%v", err)
		}
		ns = []*heraldv1.Notification{n}
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	// What the sinks warn about (a template that failed and was replaced
	// by the default, a route channel a hook ignores) goes to stderr.
	logged := &countErrors{Handler: slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}), n: new(atomic.Int64)}
	steps, err := previewAll(context.Background(), cfg, ns, time.Now(), slog.New(logged))
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(steps); err != nil {
			return err
		}
	} else {
		for i, s := range steps {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			s.print(stdout)
		}
	}
	failed := 0
	for _, s := range steps {
		if s.Error != "" {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d sinks would fail to send (see error: above)", failed, len(steps))
	}
	if n := logged.n.Load(); n > 0 {
		return fmt.Errorf("the sinks logged %d errors (above), such as a template that failed", n)
	}
	return nil
}

// countErrors is a slog handler that counts the records of level Error
// and above it handles.
type countErrors struct {
	slog.Handler
	n *atomic.Int64
}

func (h *countErrors) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h *countErrors) WithAttrs(as []slog.Attr) slog.Handler {
	return &countErrors{Handler: h.Handler.WithAttrs(as), n: h.n}
}

func (h *countErrors) WithGroup(name string) slog.Handler {
	return &countErrors{Handler: h.Handler.WithGroup(name), n: h.n}
}

// kvFlag is a repeatable k=v flag.
type kvFlag map[string]string

func (f *kvFlag) String() string { return "" }

func (f *kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want k=v", s)
	}
	if *f == nil {
		*f = kvFlag{}
	}
	(*f)[k] = v
	return nil
}

// readWebhook reads an Alertmanager webhook from path (- for stdin) and
// converts it as herald's webhook does.
func readWebhook(path string) ([]*heraldv1.Notification, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	m, err := shim.Decode(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ns, err := shim.Convert(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ns, nil
}

// flagNotification builds the notification of a command line without
// -file: its labels, severity from the severity label as the webhook
// derives it, status, title and annotations.
func flagNotification(labels []string, status, title, source string, annotations map[string]string) (*heraldv1.Notification, error) {
	n := &heraldv1.Notification{Source: source, Labels: map[string]string{}, Annotations: annotations}
	for _, kv := range labels {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: labels are name=value", kv)
		}
		n.Labels[k] = v
	}
	n.Severity = severity.Parse(n.Labels["severity"])
	switch status {
	case "firing":
		n.Status = heraldv1.Status_STATUS_FIRING
	case "resolved":
		n.Status = heraldv1.Status_STATUS_RESOLVED
	default:
		return nil, fmt.Errorf("-status %q: want firing or resolved", status)
	}
	n.Title = title
	if n.Title == "" {
		n.Title = cmpOr(n.Labels["alertname"], "herald template")
	}
	return n, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// A previewStep is one sink of one route's chain and what it would send.
type previewStep struct {
	Route   string `json:"route"`
	Step    int    `json:"step"`
	Sink    string `json:"sink"`
	Type    string `json:"type"`
	Channel string `json:"channel,omitempty"`
	// Template is the route's template file for the sink, if any.
	Template       string `json:"template,omitempty"`
	FallbackFrom   string `json:"fallback_from,omitempty"`
	FallbackReason string `json:"fallback_reason,omitempty"`
	// Requests are the HTTP requests the sink made, in order.
	Requests []previewRequest `json:"requests,omitempty"`
	// Mail is the MIME message an email sink would send.
	Mail      string `json:"mail,omitempty"`
	MailBytes int    `json:"mail_bytes,omitempty"`
	// LogLine is the line the log sink would log.
	LogLine string `json:"log_line,omitempty"`
	// Error is what the sink's Send returned, if it failed.
	Error string `json:"error,omitempty"`
}

// previewRequest is one captured request, with secrets shown as <secret>.
type previewRequest struct {
	Method string      `json:"method"`
	URL    string      `json:"url"`
	Header http.Header `json:"header"`
	// Body is the exact body (secrets aside); BodyBytes its length as sent.
	Body      string `json:"body"`
	BodyBytes int    `json:"body_bytes"`
	// Sizes are the body's measures against the sink's limits.
	Sizes []string `json:"sizes,omitempty"`
	// Answer says what the preview answered when later requests carry
	// it (a room or channel id standing in for the server's).
	Answer string `json:"answer,omitempty"`
}

// previewAll sends each notification through every step of every route
// it takes, on sinks built with a capturing transport and logging to log
// (a template that fails, a channel a hook ignores). A notification
// without an id gets previewID, as the service would give it one.
func previewAll(ctx context.Context, cfg *config.Config, ns []*heraldv1.Notification, now time.Time, log *slog.Logger) ([]previewStep, error) {
	table, err := route.New(cfg.Routes)
	if err != nil {
		return nil, err
	}
	secrets := configSecrets(cfg)
	capt := &capturing{secrets: secrets}
	built, err := app.BuildSinks(cfg.Sinks, log, capt)
	if err != nil {
		return nil, err
	}
	types := map[string]config.SinkConfig{}
	for _, c := range cfg.Sinks {
		types[c.Name] = c
	}
	var out []previewStep
	for _, n := range ns {
		if n.GetId() == "" {
			n.Id = previewID
		}
		for _, d := range table.Routes(n) {
			var failed []string
			for j, st := range d.Chain {
				sc := types[st.Sink]
				ps := previewStep{Route: d.Route, Step: j + 1, Sink: st.Sink, Type: sc.Type(), Channel: st.Channel, Template: d.Templates[st.Sink]}
				to := sinks.Target{Channel: st.Channel, Route: d.Route, Attempt: 1, Template: d.Templates[st.Sink]}
				if j > 0 {
					// As the dispatcher says it when the earlier sinks
					// did not take the notification.
					to.FallbackFrom = d.Chain[0].Sink
					to.FallbackReason = strings.Join(failed, "; ")
					ps.FallbackFrom, ps.FallbackReason = to.FallbackFrom, to.FallbackReason
				}
				failed = append(failed, st.Sink+": not reached (preview)")
				s := built[st.Sink]
				switch s := s.(type) {
				case *email.Sink:
					msg, err := s.Preview(ctx, n, to, now)
					if err != nil {
						ps.Error = redact(err.Error(), secrets)
					}
					ps.Mail, ps.MailBytes = redact(string(msg), secrets), len(msg)
				case *logsink.Sink:
					ps.LogLine = logsink.Render(n)
				default:
					capt.start(sc)
					_, err := s.Send(ctx, n, to)
					if err != nil {
						ps.Error = redact(err.Error(), secrets)
					}
					ps.Requests = capt.take()
				}
				out = append(out, ps)
			}
		}
	}
	return out, nil
}

// configSecrets are the values of every secret in the sinks' config, to
// show as <secret> wherever a request carries them.
func configSecrets(cfg *config.Config) []string {
	var out []string
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := range v.NumField() {
				walk(v.Field(i))
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Map:
			for it := v.MapRange(); it.Next(); {
				walk(it.Value())
			}
		case reflect.String:
			if v.Type() == reflect.TypeFor[secret.String]() && len(v.String()) >= 4 {
				s := v.String()
				out = append(out, s, url.QueryEscape(s), url.PathEscape(s))
			}
		}
	}
	walk(reflect.ValueOf(cfg.Sinks))
	// The longest first, so a secret inside another is not replaced first.
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out)
}

func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		s = strings.ReplaceAll(s, sec, "<secret>")
	}
	return s
}

// capturing is the only transport of the previewed sinks: it records each
// request and answers it with the smallest success the sink's server
// would give. It never dials.
type capturing struct {
	secrets []string
	mu      sync.Mutex
	sink    config.SinkConfig
	reqs    []previewRequest
}

// tokens are the secrets other than URLs: telemetry.RedactURL already
// shows of a secret URL only what herald's traces show.
func (c *capturing) tokens() []string {
	return slices.DeleteFunc(slices.Clone(c.secrets), func(s string) bool { return strings.Contains(s, "://") || strings.Contains(s, "%3A%2F%2F") })
}

func (c *capturing) start(sc config.SinkConfig) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sink, c.reqs = sc, nil
}

func (c *capturing) take() []previewRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reqs
	c.reqs = nil
	return r
}

// hiddenHeaders are the request headers that carry credentials.
var hiddenHeaders = []string{"Authorization", "X-Auth-Token", "Cookie", "X-User-Id"}

func (c *capturing) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	c.mu.Lock()
	sc := c.sink
	c.mu.Unlock()
	h := r.Header.Clone()
	for _, k := range hiddenHeaders {
		if h.Get(k) != "" {
			h.Set(k, "<secret>")
		}
	}
	for k, vs := range h {
		for i := range vs {
			vs[i] = redact(vs[i], c.secrets)
		}
		h[k] = vs
	}
	pr := previewRequest{
		Method:    r.Method,
		URL:       redact(telemetry.RedactURL(r.URL).String(), c.tokens()),
		Header:    h,
		Body:      redact(string(body), c.secrets),
		BodyBytes: len(body),
	}
	pr.Sizes = sizes(sc, r, body)
	resp, note := answer(sc, r, body)
	pr.Answer = note
	c.mu.Lock()
	c.reqs = append(c.reqs, pr)
	c.mu.Unlock()
	return resp, nil
}

// answer is the success the server of sc's type gives to r, and a note
// on the ids it makes up for later requests to carry.
func answer(sc config.SinkConfig, r *http.Request, body []byte) (_ *http.Response, note string) {
	status, ctype, text := http.StatusOK, "application/json", "{}"
	endpoint := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	switch sc.Type() {
	case "rocketchat":
		text = `{"success":true}`
		switch endpoint {
		case "rooms.info":
			id := previewRoomID(r.URL.Query().Get("roomName"))
			text = fmt.Sprintf(`{"success":true,"room":{"_id":%q}}`, id)
			note = "with room id " + id + ", standing in for the server's"
		case "chat.sendMessage":
			var m struct {
				Message json.RawMessage `json:"message"`
			}
			_ = json.Unmarshal(body, &m)
			text = fmt.Sprintf(`{"success":true,"message":%s}`, cmpOr(string(m.Message), "{}"))
		case "chat.getMessage":
			status, text = http.StatusBadRequest, `{"success":false,"error":"no such message"}`
		}
	case "slack":
		if strings.Contains(r.URL.Path, "/api/") {
			form, _ := url.ParseQuery(string(body))
			text = fmt.Sprintf(`{"ok":true,"channel":%q,"ts":"1700000000.000100"}`, cmpOr(form.Get("channel"), "C0PREVIEW"))
		} else {
			ctype, text = "text/plain", "ok"
		}
	case "mattermost":
		switch {
		case !strings.Contains(r.URL.Path, "/api/v4/"):
			ctype, text = "text/plain", "ok"
		case strings.Contains(r.URL.Path, "/channels/name/"):
			text = fmt.Sprintf(`{"id":%q}`, previewChannelID)
			note = "with channel id " + previewChannelID + ", standing in for the server's"
		case r.Method == http.MethodPost:
			status, text = http.StatusCreated, `{"id":"previewpostid00000000000000"}`
		}
	case "teams":
		status, text = http.StatusAccepted, ""
	case "webhook":
		text = ""
	}
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {ctype}},
		Body:          io.NopCloser(strings.NewReader(text)),
		ContentLength: int64(len(text)),
		Request:       r,
	}, note
}

// previewChannelID is the channel id the preview's Mattermost gives every
// channel name.
const previewChannelID = "previewchannelid0000000000"

// previewRoomID is the room id the preview's Rocket.Chat gives room name.
func previewRoomID(name string) string { return "ROOM-" + name }

// sizes measures body against the limits of sc's type.
func sizes(sc config.SinkConfig, r *http.Request, body []byte) []string {
	endpoint := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case sc.RocketChat != nil && (endpoint == "chat.sendMessage" || endpoint == "chat.update" || !strings.Contains(r.URL.Path, "/api/")):
		var m struct {
			Message struct {
				Msg string `json:"msg"`
			} `json:"message"`
			Text string `json:"text"`
		}
		if json.Unmarshal(body, &m) != nil {
			return nil
		}
		text := cmpOr(m.Message.Msg, m.Text)
		return []string{fmt.Sprintf("text %s of %s UTF-16 units (Rocket.Chat Message_MaxAllowedSize)",
			thousands(len(utf16.Encode([]rune(text)))), thousands(sc.RocketChat.MaxMessageSize))}
	case sc.Slack != nil && len(body) > 0:
		var text string
		var blocks []json.RawMessage
		if mt == "application/json" {
			var m struct {
				Text   string            `json:"text"`
				Blocks []json.RawMessage `json:"blocks"`
			}
			if json.Unmarshal(body, &m) != nil {
				return nil
			}
			text, blocks = m.Text, m.Blocks
		} else {
			form, err := url.ParseQuery(string(body))
			if err != nil {
				return nil
			}
			text = form.Get("text")
			if b := form.Get("blocks"); b != "" {
				_ = json.Unmarshal([]byte(b), &blocks)
			}
		}
		return []string{
			fmt.Sprintf("text %s of %s characters (Slack)", thousands(utf8.RuneCountInString(text)), thousands(slack.MaxText)),
			fmt.Sprintf("blocks %d of %d (Slack)", len(blocks), slack.MaxBlocks),
		}
	case sc.Mattermost != nil && r.Method != http.MethodGet && len(body) > 0:
		var m struct {
			Message string `json:"message"`
			Text    string `json:"text"`
		}
		if json.Unmarshal(body, &m) != nil {
			return nil
		}
		return []string{fmt.Sprintf("message %s of %s characters (Mattermost MaxPostSize)",
			thousands(utf8.RuneCountInString(cmpOr(m.Message, m.Text))), thousands(sc.Mattermost.MaxPostSize))}
	case sc.Teams != nil:
		return []string{fmt.Sprintf("card %s of %s bytes with non-ASCII escaped (max_card_bytes; Teams refuses over %s)",
			thousands(teams.CardSize(body)), thousands(sc.Teams.MaxCardBytes), thousands(teams.TeamsMessageLimit))}
	}
	return nil
}

// thousands writes n with commas between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// print writes the step for people: a header line, then each request with
// its headers, its body (indented when JSON) and its sizes.
func (s previewStep) print(w io.Writer) {
	fmt.Fprintf(w, "route %s · step %d %s (%s)", s.Route, s.Step, s.Sink, s.Type)
	if s.Channel != "" {
		fmt.Fprintf(w, " → %s", s.Channel)
	}
	if s.Template != "" {
		fmt.Fprintf(w, " (template %s)", s.Template)
	}
	fmt.Fprintln(w)
	if s.FallbackReason != "" {
		fmt.Fprintf(w, "fallback from %s: %s\n", s.FallbackFrom, s.FallbackReason)
	}
	for _, r := range s.Requests {
		fmt.Fprintf(w, "\n%s %s\n", r.Method, r.URL)
		for _, k := range slices.Sorted(maps.Keys(r.Header)) {
			for _, v := range r.Header[k] {
				fmt.Fprintf(w, "%s: %s\n", k, v)
			}
		}
		if r.BodyBytes > 0 {
			fmt.Fprintln(w)
			fmt.Fprintln(w, readableBody(r))
		}
		if r.BodyBytes == 0 && len(r.Sizes) == 0 {
			fmt.Fprintln(w, "no body")
		} else {
			fmt.Fprintf(w, "body %s bytes", thousands(r.BodyBytes))
		}
		for _, sz := range r.Sizes {
			fmt.Fprintf(w, "; %s", sz)
		}
		if r.BodyBytes > 0 || len(r.Sizes) > 0 {
			fmt.Fprintln(w)
		}
		if r.Answer != "" {
			fmt.Fprintf(w, "(answered %s)\n", r.Answer)
		}
	}
	if s.Mail != "" {
		fmt.Fprintf(w, "\n%s\n", strings.ReplaceAll(strings.TrimRight(s.Mail, "\r\n"), "\r\n", "\n"))
		fmt.Fprintf(w, "message %s bytes\n", thousands(s.MailBytes))
	}
	if s.LogLine != "" {
		fmt.Fprintf(w, "\nlogs: %s\n", s.LogLine)
	}
	if s.Error != "" {
		fmt.Fprintf(w, "error: %s\n", s.Error)
	}
}

// readableBody is r's body for people: JSON indented, a form one field a
// line (URL-decoded, JSON values indented), anything else as sent.
func readableBody(r previewRequest) string {
	var pretty bytes.Buffer
	if json.Indent(&pretty, []byte(r.Body), "", "  ") == nil {
		return pretty.String()
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	form, err := url.ParseQuery(r.Body)
	if mt != "application/x-www-form-urlencoded" || err != nil {
		return r.Body
	}
	var b strings.Builder
	b.WriteString("(form, decoded)\n")
	for _, k := range slices.Sorted(maps.Keys(form)) {
		for _, v := range form[k] {
			pretty.Reset()
			if strings.HasPrefix(v, "[") || strings.HasPrefix(v, "{") {
				if json.Indent(&pretty, []byte(v), "", "  ") == nil {
					v = pretty.String()
				}
			}
			fmt.Fprintf(&b, "%s=%s\n", k, v)
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}
