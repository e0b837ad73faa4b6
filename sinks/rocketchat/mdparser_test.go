package rocketchat

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks/message"
)

// The tests in this file hand rendered messages to Rocket.Chat's own
// message parser, the npm package @rocket.chat/message-parser, run under
// node by testdata/mdparser/parse.mjs with every syntax switched on, and
// read back its syntax tree: text that came from an alert may change the
// words of a message, never its markup. scripts/install-tools.sh (make
// tools) installs node and the pinned parser; without them the tests fail
// in CI (CI=true) and are skipped elsewhere.

// mdParserDir holds parse.mjs, package.json and the lock file.
const mdParserDir = "testdata/mdparser"

// mdParser is one node process running parse.mjs.
type mdParser struct {
	mu     sync.Mutex
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *lockedBuffer
	cache  map[string]any
}

// lockedBuffer is node's standard error, written by exec's goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newMDParser starts the parser, or skips t (fails it in CI) when node or
// the package is missing.
func newMDParser(t *testing.T) *mdParser {
	t.Helper()
	dir, err := filepath.Abs(mdParserDir)
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable(t, "node is not installed")
	}
	want, got := pinnedParserVersion(t, dir), installedParserVersion(dir)
	switch {
	case got == "":
		unavailable(t, "@rocket.chat/message-parser is not installed in "+dir)
	case got != want:
		unavailable(t, fmt.Sprintf("@rocket.chat/message-parser %s is installed in %s, but package.json pins %s", got, dir, want))
	}
	cmd := exec.Command(node, "parse.mjs")
	cmd.Dir = dir
	p := &mdParser{cmd: cmd, stderr: new(lockedBuffer), cache: map[string]any{}}
	cmd.Stderr = p.stderr
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdout = bufio.NewReaderSize(out, 1<<20)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	t.Cleanup(func() {
		_ = p.stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return p
}

// unavailable skips t, or fails it in CI (testutil.Missing).
func unavailable(t *testing.T, why string) {
	t.Helper()
	testutil.Missing(t, why, `run "make tools": scripts/install-tools.sh installs nodejs, npm and the parser into sinks/rocketchat/`+mdParserDir+"/node_modules")
}

// pinnedParserVersion is the parser's version in package.json.
func pinnedParserVersion(t *testing.T, dir string) string {
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err == nil {
		err = json.Unmarshal(b, &pkg)
	}
	v := pkg.Dependencies["@rocket.chat/message-parser"]
	if err != nil || v == "" {
		t.Fatalf("%s/package.json does not pin @rocket.chat/message-parser: %v", mdParserDir, err)
	}
	return v
}

// installedParserVersion is the version in node_modules, or "".
func installedParserVersion(dir string) string {
	var pkg struct {
		Version string `json:"version"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "@rocket.chat", "message-parser", "package.json"))
	if err != nil || json.Unmarshal(b, &pkg) != nil {
		return ""
	}
	return pkg.Version
}

// parse returns the syntax trees of texts, in order.
func (p *mdParser) parse(t testing.TB, texts ...string) []any {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var todo []string
	seen := map[string]bool{}
	for _, s := range texts {
		if _, ok := p.cache[s]; !ok && !seen[s] {
			seen[s] = true
			todo = append(todo, s)
		}
	}
	// Write from another goroutine: node answers while it reads, and
	// neither pipe may fill up with the other side waiting.
	werr := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(p.stdin)
		for _, s := range todo {
			b, err := json.Marshal(s)
			if err != nil {
				werr <- err
				return
			}
			w.Write(b)
			w.WriteByte('\n')
		}
		werr <- w.Flush()
	}()
	for _, s := range todo {
		line, err := p.stdout.ReadBytes('\n')
		if err != nil {
			t.Fatalf("reading the parser's answer: %v\n%s", err, p.stderr)
		}
		var ast any
		if err := json.Unmarshal(line, &ast); err != nil {
			t.Fatalf("the parser's answer is not JSON: %v: %.200s", err, line)
		}
		if m, ok := ast.(map[string]any); ok && m["error"] != nil {
			// The parser throws on some texts, the empty one among them;
			// Rocket.Chat then shows the text as it is. Two texts that
			// both fail compare equal.
			ast = map[string]any{"type": "PARSE_ERROR"}
		}
		p.cache[s] = ast
	}
	if err := <-werr; err != nil {
		t.Fatalf("writing to the parser: %v\n%s", err, p.stderr)
	}
	out := make([]any, len(texts))
	for i, s := range texts {
		out[i] = p.cache[s]
	}
	return out
}

// markup is the shape of a syntax tree without its text: every node but
// plain text and Unicode emoji (which are characters, not markup) by type
// and nesting, a link with its label, a mention with its name, an emoji
// with its shortcode. Two messages with the same markup differ only in
// their words.
func markup(ast any) string {
	var b strings.Builder
	writeMarkup(&b, ast)
	return strings.TrimSpace(b.String())
}

func writeMarkup(b *strings.Builder, v any) {
	switch v := v.(type) {
	case []any:
		for _, c := range v {
			writeMarkup(b, c)
		}
	case map[string]any:
		typ, ok := v["type"].(string)
		if !ok {
			for _, k := range slices.Sorted(maps.Keys(v)) {
				writeMarkup(b, v[k])
			}
			return
		}
		switch typ {
		case "PLAIN_TEXT":
			return
		case "EMOJI":
			if sc, ok := v["shortCode"].(string); ok {
				fmt.Fprintf(b, "EMOJI:%s ", sc)
			}
			return
		case "LINK", "IMAGE":
			label := ""
			if m, ok := v["value"].(map[string]any); ok {
				label = plainOf(m["label"])
			}
			fmt.Fprintf(b, "%s[%s] ", typ, label)
			return
		case "MENTION_USER", "MENTION_CHANNEL":
			fmt.Fprintf(b, "%s{%s} ", typ, plainOf(v["value"]))
			return
		}
		b.WriteString(typ)
		b.WriteString("( ")
		writeMarkup(b, v["value"])
		b.WriteString(") ")
	}
}

// sameMarkup reports whether a text whose markup is got says nothing more
// than one whose markup is want: the same markup, or big emoji (a text of
// one to three emoji and nothing else) where the other is plain text.
func sameMarkup(got, want string) bool {
	if got == want {
		return true
	}
	if got != "BIG_EMOJI( )" {
		return false
	}
	for _, tok := range strings.Fields(want) {
		if tok != "PARAGRAPH(" && tok != "LINE_BREAK(" && tok != ")" {
			return false
		}
	}
	return true
}

// plainOf is the text of the plain-text nodes under v.
func plainOf(v any) string {
	switch v := v.(type) {
	case []any:
		var s string
		for _, c := range v {
			s += plainOf(c)
		}
		return s
	case map[string]any:
		if v["type"] == "PLAIN_TEXT" {
			s, _ := v["value"].(string)
			return s
		}
		return plainOf(v["value"])
	}
	return ""
}

// linkSources lists the targets of the links and images in ast.
func linkSources(ast any) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case []any:
			for _, c := range v {
				walk(c)
			}
		case map[string]any:
			if v["type"] == "LINK" || v["type"] == "IMAGE" {
				if m, ok := v["value"].(map[string]any); ok {
					out = append(out, plainOf(m["src"]))
				}
				return
			}
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(ast)
	return out
}

// twin is s with every character that is not white space, a control
// character or one clean drops replaced by a letter: text of the same
// shape (lines, words, lengths) that nothing can escape.
func twin(s string) string {
	var b strings.Builder
	i := 0
	for _, r := range s {
		if r == utf8.RuneError || !(unicode.IsSpace(r) || unicode.IsControl(r) || message.Clean(string(r), true) == "") {
			r = rune('a' + i%26)
			i++
		}
		b.WriteRune(r)
	}
	return b.String()
}

// twinURL is a URL that renders like u: a plain one where u survives
// safeURL, none where it does not.
func twinURL(u string) string {
	if safeURL(u) == "" {
		return ""
	}
	return "https://twin.example/x"
}

// hostile are texts an attacker or a careless rule author may put in an
// alert: every construct of Rocket.Chat's markdown, alone and in the
// combinations that once got through.
var hostile = []string{
	// Links: markdown, angle brackets, images, and the combination of
	// issue 14 (a "[" in one field, "](url)" in a label value).
	"[click here](http://evil.example/login)", "[x](http://evil)", "![i](http://evil.example/x.png)", "![](u)",
	"<http://evil.example|docs>", "<evil.example|docs>", "<http://evil.example>", "[", "](http://evil.example/login)",
	"[a `](http://evil.example/login)` b", "x [y] (http://evil.example)", "[x]\n(http://evil.example)", "[[x]](http://e.com)",
	"\\[x\\](http://evil.example)", "[x](<http://evil.example>)", "[x](evil.example)", "[x](+15551234567)",
	// Autolinks: URLs, bare domains, IPs, e-mail, phone numbers.
	"http://evil.example/login", "https://evil.com/x?a=1#f", "see evil.com now", "www.evil.com", "evil.co.uk/path",
	"README.md main.go backup.zip", "10.0.0.1", "http://10.0.0.1:9090/graph", "192.168.1.1:8080", "localhost:9090",
	"http://localhost:9090/x", "ops@example.com", "mailto:ops@example.com", "a.b@c.d.example.org", "+15551234567",
	"call +1-555-123-4567 now", "+44 20 7946 0958", "ftp://files.example.com/x", "HTTPS://EVIL.COM", "xn--80ak6aa92e.com",
	"пример.рф", "münchen.de", "evil.com.", "(evil.com)", "evil.com,evil.org",
	// Mentions.
	"@here", "@all", "@all look", "hi @john.doe", "(@here)", "@@all", "x>@here", "<@here>", "@here:", "@ here",
	"#general", "(#general)", "#gen-eral.x", "#42", "a#b", "C# and F#", "＠all", "@\u200bhere",
	// Emphasis and code.
	"*bold*", "**bold**", "_it_", "__it__", "~st~", "~~st~~", "`code`", "``x``", "a*b*c", "a_b_c", "é1_x_ y",
	"x-_b_", "kube-state_metrics_1 x_2", "(node_exporter)", "_a b_", "*a `b*` c*", "node_exporter job_name",
	"_Posted here because_", "x_ y_1", "a__b__", "||spoiler||", "|| a ||", "a|b|c", "| a | b |",
	// Blocks at a line start.
	"# Heading", "## h2", "#### h4", "> quote", ">quote", "- item", "* item", "+ item", "1. one", "1) one", "- [ ] task",
	"- [x] done", "---", "***", "___", "===", "```\ncode\n```", "```js\nx\n```", "  # indented", "\t- tab",
	"| a | b |\n| - | - |\n| 1 | 2 |", "||\nblock\n||", "line\n> quote", "line\n# h\n- l\n1. n",
	// Emoji, emoticons, timestamps, colours, formulas.
	":fire:", "a :fire: b", ":+1:", ":100:", "10:30:00", ":)", "x :) y", ":-)", ";)", "8)", "(y)", "<3", "</3", "D:",
	":D", "=)", "-_-", "O_O", ">.<", ":'(", "\\0/", ">:(", "B-)", "X-P", ":P", ":@", "%)", "#)", "*)",
	"<t:1700000000:R>", "<t:1700000000>", "\\<t:1700000000:R>", "color:#ff0000", "color:#fff",
	"$x^2$", "$$x$$", "cost $5 and $6", "\\(a\\)", "\\[a\\]", "x \\( y \\) z",
	// Bidi, zero-width, controls, odd Unicode.
	"rtl \u202eevil\u202c", "zw\u200bsp", "bom\ufeff", "\x00\x1f\x7f", "\xff\xfe bad", "🔥🔥🔥", "🏔️", "ディスク満杯 🚨",
	"tab\there", "cr\r\nlf", "\n\nlead", "trail\n\n", "\u0085nel", "\u00a0nbsp", "}}{{", "{{.Title}}",
	// Plain text that must stay readable.
	"Disk /var is 99.5% full on db-1", "latency p99 > 2s (SLO 1s)", "a < b", "x | y", "50%", "v1.2.3", "3 of 4",
}

// hostileCorpus is hostile, the fuzz seeds of this package, and soup texts
// made at random from the pieces of Rocket.Chat's syntax.
func hostileCorpus(soup int) []string {
	out := slices.Clone(hostile)
	out = append(out, oddStrings...)
	out = append(out, oddURLs...)
	out = append(out, escapeSeeds...)
	out = append(out, escapeSameSeeds...)
	out = append(out, fuzzCorpus()...)
	r := rand.New(rand.NewPCG(14, 7))
	for range soup {
		out = append(out, syntaxSoup(r))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// soupPieces are the pieces syntaxSoup makes texts of.
var soupPieces = []string{
	"[", "]", "(", ")", "](", "![", "<", ">", "|", "||", "*", "**", "_", "__", "~", "~~", "`", "```", "$", "$$", "\\",
	"\\(", "\\[", "#", "@", "@here", "@all", "#general", ":", ":fire:", ":)", "8)", "(y)", "<3", "<t:", "1700000000", ":R>",
	"http://", "https://", "evil.com", "evil.example", ".", "com", "10.0.0.1", "+1555123456", "ops@", "mailto:",
	"localhost", "color:#fff", "- ", "1. ", "> ", "# ", "---", "\n", " ", " ", "x", "word", "db-1", "é", "🔥", "a_b", "_x_",
}

// syntaxSoup returns a short text of random pieces of markup.
func syntaxSoup(r *rand.Rand) string {
	var b strings.Builder
	for range 1 + r.IntN(8) {
		b.WriteString(soupPieces[r.IntN(len(soupPieces))])
	}
	return b.String()
}

// fuzzCorpus returns the string arguments of the failing inputs that go
// test -fuzz keeps under testdata/fuzz.
func fuzzCorpus() []string {
	files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "*", "*"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if arg, ok := strings.CutPrefix(line, "string("); ok && strings.HasSuffix(arg, ")") {
				if s, err := strconv.Unquote(strings.TrimSuffix(arg, ")")); err == nil {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// TestIssue14LinkOverCodeSpan is the report of issue 14: a "[" in the
// summary and a label value of "](http://evil.example/login)" made a link
// over most of the message, though the label sits in a code span.
func TestIssue14LinkOverCodeSpan(t *testing.T) {
	p := newMDParser(t)
	n := firing()
	n.Text = "Disk almost full [see the runbook"
	n.Alerts[1].Labels["instance"] = "](http://evil.example/login)"
	r := &renderer{max: DefaultMaxMessageSize, mentions: map[string]string{"critical": "@here"}}
	m, err := r.render(defaultTemplates, n, renderOpts{mention: true})
	if err != nil {
		t.Fatal(err)
	}
	ast := p.parse(t, m.Text)[0]
	if srcs := linkSources(ast); len(srcs) > 0 {
		t.Errorf("the message has links %q:\n%s\nparsed as %s", srcs, m.Text, markup(ast))
	}
}

// TestEscapeInertUnderParser checks the escapers alone: escaped prose,
// wherever a template may put it (alone, between words, in bold or italic
// of the template, next to code spans and links), parses as the same
// markup as plain words of its shape; an escaped label stays one code span.
func TestEscapeInertUnderParser(t *testing.T) {
	p := newMDParser(t)
	prose := []struct {
		name string
		wrap func(e string) string
	}{
		{"alone", func(e string) string { return e }},
		{"between words", func(e string) string { return "x " + e + " y" }},
		{"in bold", func(e string) string { return "🔴 *FIRING* · *" + e + "*" }},
		{"in italic", func(e string) string { return "_Posted here because " + e + " failed: " + e + "_" }},
		{"between code spans", func(e string) string { return "🔴 `a=b` " + e + " `c=d` — " + e }},
		{"before a link", func(e string) string { return e + "\n_+3 more alerts_ · [show all](http://am.example/x)" }},
		{"twice", func(e string) string { return e + " " + e + "\n" + e }},
	}
	code := []struct {
		name string
		wrap func(e, c string) string
	}{
		{"alone", func(e, c string) string { return "`" + c + "`" }},
		{"after prose", func(e, c string) string { return e + " `k=" + c + "` — " + e }},
		{"pair", func(e, c string) string { return "🔴 `" + c + "=" + c + "` `" + c + "=v` — " + e }},
	}
	corpus := hostileCorpus(2000)
	var texts []string
	type check struct{ name, in, got, want string }
	var checks []check
	for _, s := range corpus {
		for _, ml := range []bool{true, false} {
			e, w := escapeText(s, ml), escapeText(twin(s), ml)
			for _, c := range prose {
				checks = append(checks, check{"prose " + c.name, s, c.wrap(e), c.wrap(w)})
			}
		}
		e, w := escapeText(s, false), escapeText(twin(s), false)
		ec, wc := escapeCode(s), escapeCode(twin(s))
		for _, c := range code {
			checks = append(checks, check{"code " + c.name, s, c.wrap(e, ec), c.wrap(w, wc)})
		}
	}
	for _, c := range checks {
		texts = append(texts, c.got, c.want)
	}
	asts := p.parse(t, texts...)
	failed := 0
	for i, c := range checks {
		got, want := markup(asts[2*i]), markup(asts[2*i+1])
		if !sameMarkup(got, want) && failed < 30 {
			failed++
			t.Errorf("%s: %q escaped to\n%q\nparses as  %s\nplain text %s", c.name, c.in, c.got, got, want)
		}
	}
	t.Logf("%d texts, %d checks", len(corpus), len(checks))
}

// renderField puts one text in one field of a notification or of its
// rendering options.
type renderField struct {
	name string
	set  func(n *heraldv1.Notification, o *renderOpts, s string)
	// url marks fields that hold a URL.
	url bool
}

var renderFields = []renderField{
	{name: "title", set: func(n *heraldv1.Notification, _ *renderOpts, s string) { n.Title = s }},
	{name: "text", set: func(n *heraldv1.Notification, _ *renderOpts, s string) { n.Text = s }},
	{name: "description", set: func(n *heraldv1.Notification, _ *renderOpts, s string) { n.Annotations["description"] = s }},
	{name: "summary annotation", set: func(n *heraldv1.Notification, _ *renderOpts, s string) {
		n.Text = ""
		n.Annotations["summary"] = s
		for _, a := range n.Alerts {
			a.Annotations["summary"] = s
		}
	}},
	{name: "alert summary", set: func(n *heraldv1.Notification, _ *renderOpts, s string) { n.Alerts[0].Annotations["summary"] = s }},
	{name: "common label value", set: func(n *heraldv1.Notification, _ *renderOpts, s string) {
		for _, a := range n.Alerts {
			a.Labels["job"] = s
		}
		n.Labels["job"] = s
	}},
	{name: "common label name", set: func(n *heraldv1.Notification, _ *renderOpts, s string) {
		for _, a := range n.Alerts {
			a.Labels["x"+s] = "v"
		}
		n.Labels["x"+s] = "v"
	}},
	{name: "alert label value", set: func(n *heraldv1.Notification, _ *renderOpts, s string) { n.Alerts[0].Labels["instance"] = s }},
	{name: "alert label name", set: func(n *heraldv1.Notification, _ *renderOpts, s string) { n.Alerts[0].Labels["x"+s] = "v" }},
	{name: "alertname", set: func(n *heraldv1.Notification, _ *renderOpts, s string) {
		n.Title = ""
		n.Labels["alertname"] = s
		for _, a := range n.Alerts {
			a.Labels["alertname"] = s
		}
	}},
	{name: "source and receiver", set: func(n *heraldv1.Notification, _ *renderOpts, s string) { n.Source, n.Receiver = s, s }},
	{name: "fallback", set: func(_ *heraldv1.Notification, o *renderOpts, s string) { o.fallbackFrom, o.fallbackReason = s, s }},
	{name: "external URL", url: true, set: func(n *heraldv1.Notification, _ *renderOpts, s string) { n.ExternalUrl = s }},
	{name: "generator URL", url: true, set: func(n *heraldv1.Notification, _ *renderOpts, s string) {
		n.Links.Generator = ""
		for _, a := range n.Alerts {
			a.GeneratorUrl = s
		}
	}},
	{name: "link URLs", url: true, set: func(n *heraldv1.Notification, _ *renderOpts, s string) {
		n.Links.Runbook, n.Links.Silence, n.Links.Dashboard = s, s, s
	}},
}

// issue14Base is a notification whose default rendering uses every part
// of the templates: several alerts, some left out ("+N more alerts" and
// its link), common and differing labels, a description, a fallback.
func issue14Base() (*heraldv1.Notification, renderOpts) {
	n := firing()
	n.TruncatedAlerts = 2
	n.ExternalUrl = "http://alertmanager.example:9093/#/alerts"
	n.Alerts[2].Status = heraldv1.Status_STATUS_RESOLVED
	n.Labels["job"] = "node"
	return n, renderOpts{mention: true, fallbackFrom: "slack", fallbackReason: "HTTP 503"}
}

// TestRenderInertUnderParser renders notifications with hostile text in
// every field the default templates show, as a new message (or thread
// reply: the same text), an update, with a single alert and in a digest, and checks with Rocket.Chat's parser that
// each message has exactly the markup of the same message with plain words
// instead: no link, mention, emoji or formatting but the template's, and
// every link pointing where herald put it.
func TestRenderInertUnderParser(t *testing.T) {
	p := newMDParser(t)
	// Fewer soup texts than TestEscapeInertUnderParser: each one makes
	// 60 messages here.
	corpus := hostileCorpus(150)
	if testing.Short() {
		corpus = hostile
	}
	r := &renderer{max: 100000, mentions: map[string]string{"critical": "@here"}}
	type msg struct {
		name, in   string
		got, want  string
		allowLinks []string
	}
	var msgs []msg
	add := func(name, in string, got, want rendered, links ...string) {
		msgs = append(msgs, msg{name + " text", in, got.Text, want.Text, links})
		for i := range got.Attachments {
			msgs = append(msgs, msg{name + " attachment", in, got.Attachments[i].Text, want.Attachments[i].Text, links})
		}
	}
	for _, s := range corpus {
		for _, f := range renderFields {
			tw := twin(s)
			if f.url {
				tw = twinURL(s)
			}
			n, o := issue14Base()
			f.set(n, &o, s)
			tn, to := issue14Base()
			f.set(tn, &to, tw)
			roles := []struct {
				name string
				o    func(renderOpts) renderOpts
			}{
				{"new", func(o renderOpts) renderOpts { return o }},
				{"update", func(o renderOpts) renderOpts { o.update, o.mention = true, false; return o }},
			}
			for _, role := range roles {
				got, err := r.render(defaultTemplates, n, role.o(o))
				if err != nil {
					t.Fatal(err)
				}
				want, err := r.render(defaultTemplates, tn, role.o(to))
				if err != nil {
					t.Fatal(err)
				}
				add(f.name+" "+role.name, s, got, want, r.data(n, o).MoreURL)
			}
			one, _ := issue14Base()
			one.Alerts = one.Alerts[:1]
			one.TruncatedAlerts = 0
			single, tsingle := proto.Clone(one).(*heraldv1.Notification), proto.Clone(one).(*heraldv1.Notification)
			o1, to1 := o, to
			f.set(single, &o1, s)
			f.set(tsingle, &to1, tw)
			got, _ := r.render(defaultTemplates, single, o1)
			want, _ := r.render(defaultTemplates, tsingle, to1)
			add(f.name+" single alert", s, got, want, r.data(single, o1).MoreURL)

			got, err := r.renderDigest(defaultTemplates, []*heraldv1.Notification{n, single})
			if err != nil {
				t.Fatal(err)
			}
			want, _ = r.renderDigest(defaultTemplates, []*heraldv1.Notification{tn, tsingle})
			add(f.name+" digest", s, got, want)
		}
	}
	texts := make([]string, 0, 2*len(msgs))
	for _, m := range msgs {
		texts = append(texts, m.got, m.want)
	}
	asts := p.parse(t, texts...)
	failed := 0
	for i, m := range msgs {
		got, want := asts[2*i], asts[2*i+1]
		if failed >= 30 {
			break
		}
		if g, w := markup(got), markup(want); !sameMarkup(g, w) {
			failed++
			t.Errorf("%s: %q renders\n%s\nwhich parses as %s\nplain text as  %s", m.name, m.in, m.got, g, w)
			continue
		}
		for _, src := range linkSources(got) {
			if !slices.Contains(m.allowLinks, src) {
				failed++
				t.Errorf("%s: %q renders a link to %q:\n%s", m.name, m.in, src, m.got)
			}
		}
	}
	t.Logf("%d texts in %d fields: %d messages parsed", len(corpus), len(renderFields), len(msgs))
}

// TestShortenedInertUnderParser renders hostile text in messages too long
// for their size limit, for every limit that cuts the text somewhere in the
// hostile part: in a label's code span, and in prose. The cut must leave no
// markup but the template's: bold, italic, code spans, the "show all" link
// to its URL and the configured mention. (A message of plain words of the
// same shape is cut elsewhere, so the two are not compared.)
func TestShortenedInertUnderParser(t *testing.T) {
	p := newMDParser(t)
	corpus := hostileCorpus(0)
	tail := strings.Repeat("w", 40)
	cases := []struct {
		name string
		set  func(n *heraldv1.Notification, s string)
		// part is the hostile part as the message shows it.
		part func(s string) string
	}{
		// One alert: no alert is left out to fit, and its labels, all
		// common, end the text; "zzz" keeps the hostile one from the end,
		// which a cut cannot reach.
		{"label value", func(n *heraldv1.Notification, s string) { n.Alerts[0].Labels["zz"] = s },
			func(s string) string { return "`zz=" + escapeCode(shorten(s, message.CapLabel)) + "`" }},
		{"label name", func(n *heraldv1.Notification, s string) { n.Alerts[0].Labels["zz"+s] = "v" },
			func(s string) string { return "`" + escapeCode(shorten("zz"+s, message.CapLabel)) + "=v`" }},
		{"summary", func(n *heraldv1.Notification, s string) { n.Text = s },
			func(s string) string { return escapeProse(s, message.CapSummary, true) }},
	}
	type msg struct{ name, in, text, link string }
	var msgs []msg
	for _, s := range corpus {
		for _, c := range cases {
			n := firing()
			n.Alerts = n.Alerts[:1]
			n.Alerts[0].Labels = map[string]string{"alertname": "DiskFull", "job": "node", "zzz": tail}
			c.set(n, s)
			full := &renderer{max: 100000, mentions: map[string]string{"critical": "@here"}}
			m, err := full.render(defaultTemplates, n, renderOpts{mention: true})
			if err != nil {
				t.Fatal(err)
			}
			part := c.part(s)
			at := strings.Index(m.Text, part)
			if part == "" || at < 0 {
				continue
			}
			from, to := utf16Len(m.Text[:at]), utf16Len(m.Text[:at+len(part)])
			step := max(1, (to-from)/40)
			for units := from; units <= to; units += step {
				r := &renderer{max: units + utf16Len(truncMark), mentions: full.mentions}
				cut, _ := r.render(defaultTemplates, n, renderOpts{mention: true})
				msgs = append(msgs, msg{fmt.Sprintf("%s cut at %d", c.name, units), s, cut.Text, r.data(n, renderOpts{}).MoreURL})
			}
		}
	}
	texts := make([]string, len(msgs))
	for i, m := range msgs {
		texts[i] = m.text
	}
	asts := p.parse(t, texts...)
	failed := 0
	for i, m := range msgs {
		if bad := foreignMarkup(asts[i], m.link); bad != "" && failed < 30 {
			failed++
			t.Errorf("%s: %q renders\n%s\nwith %s", m.name, m.in, m.text, bad)
		}
	}
	t.Logf("%d shortened messages", len(msgs))
}

// foreignMarkup returns the first node of ast that the default templates
// do not write, or "": bold, italic, code spans, a "show all" link to
// link, and the mention of "here".
func foreignMarkup(ast any, link string) string {
	switch v := ast.(type) {
	case []any:
		for _, c := range v {
			if bad := foreignMarkup(c, link); bad != "" {
				return bad
			}
		}
	case map[string]any:
		switch v["type"] {
		case "PARAGRAPH", "BOLD", "ITALIC":
			return foreignMarkup(v["value"], link)
		case "PLAIN_TEXT", "LINE_BREAK", "INLINE_CODE":
			return ""
		case "EMOJI":
			if _, ok := v["shortCode"]; !ok {
				return ""
			}
		case "MENTION_USER":
			if plainOf(v["value"]) == "here" {
				return ""
			}
		case "LINK":
			if m, ok := v["value"].(map[string]any); ok && plainOf(m["label"]) == "show all" && plainOf(m["src"]) == link {
				return ""
			}
		}
		return markup(v)
	}
	return ""
}
