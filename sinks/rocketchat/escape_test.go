package rocketchat

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

func TestEscapeText(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain text 100% ok", "plain text 100% ok"},
		{"@here now", "＠here now"},
		{"hi @all, and @john.doe", "hi ＠all, and ＠john.\u200bdoe"},
		{"mail ops@example.com", "mail ops＠example.\u200bcom"},
		{"(@here)", "\u200b(＠here)"},
		{"@@all", "＠＠all"},
		{"*bold* _it_ ~st~ `code`", "∗bold∗ ＿it＿ ∼st∼ ˋcodeˋ"},
		{"node_exporter job_name", "node＿exporter job＿name"},
		{"[x](http://evil)", "［x］(http:\u200b//evil)"},
		{"![i](http://evil/x.png)", "\u200b!［i］(http:\u200b//evil/x.\u200bpng)"},
		{"<http://evil|docs>", "＜http:\u200b//evil|docs>\u200b"},
		{"x [a `](http://evil.example/login)`", "x ［a ˋ］(http:\u200b//evil.\u200bexample/login)ˋ"},
		{"a < b", "a < b"},
		{"<t:1700000000:R> <3", "＜t:\u200b1700000000:R> ＜3"},
		{"||spoiler||", "ǀǀspoilerǀǀ"},
		{"a | b", "a | b"},
		{"#general and issue #42", "＃general and issue ＃42"},
		{"C# and a#b", "C# and a#b"},
		{"# Heading", "\u200b# Heading"},
		{"line\n> quote", "line\n\u200b> quote"},
		{"- item\n1. one\n  + two\n---\n| a | b |", "\u200b- item\n\u200b1. one\n  \u200b+ two\n\u200b-\u200b--\n\u200b| a | b |\u200b"},
		{"see evil.com or 10.0.0.1, v1.2.3 is 99.5% ok", "see evil.\u200bcom or 10.\u200b0.\u200b0.\u200b1, v1.2.3 is 99.5% ok"},
		{"call +15551234567", "call +\u200b15551234567"},
		{"a :fire: b, 10:30:00", "a :\u200bfire: b, 10:\u200b30:00"},
		{"ok :) 8) (y) D:", "ok :\u200b) 8\u200b) (\u200by) D\u200b:\u200b"},
		{"*)", "∗)"}, {")", "\u200b)"}, {"Status:", "Status:\u200b"}, {"Disk full.", "Disk full."},
		{"cost $5 and \\(x\\)", "cost ＄5 and \\\u200b(x\\\u200b)"},
		{"rtl \u202eevil\u202c", "rtl evil"},
		{"zero\u200bwidth @\u200bhere", "zerowidth ＠here"},
		{"tab\tand\r\nCRLF", "tab and\nCRLF"},
		{"bad \xff utf8", "bad \ufffd utf8"},
	}
	for _, c := range cases {
		if got := escapeText(c.in, true); got != c.want {
			t.Errorf("escapeText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := escapeText("one\ntwo", false); got != "one two" {
		t.Errorf("single line: %q", got)
	}
}

func TestEscapeCode(t *testing.T) {
	cases := []struct{ in, want string }{
		{"db-1:9100", "db-1:9100"},
		{"`@all` x", "ˋ＠allˋ x"},
		{"team @oncall", "team ＠oncall"},
		{"a@b.c", "a@b.c"},
		{"multi\nline", "multi line"},
		{"*_~", "*_~"},
		{"](http://evil.example/login)", "]\u200b(http://evil.example/login)"},
		{"node_exporter", "node_exporter"},
	}
	for _, c := range cases {
		if got := escapeCode(c.in); got != c.want {
			t.Errorf("escapeCode(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSafeURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"https://grafana.example/d/x?orgId=1", "https://grafana.example/d/x?orgId=1"},
		{"javascript:alert(1)", ""},
		{"/relative/path", ""},
		{"ftp://example.com/x", ""},
		{"https://x.example/a) [evil](http://e", "https://x.example/a%29%20%5Bevil%5D%28http://e"},
		{"http://user@evil.example/", ""},
		{" https://padded.example/ ", "https://padded.example/"},
	}
	for _, c := range cases {
		if got := safeURL(c.in); got != c.want {
			t.Errorf("safeURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestUTF16(t *testing.T) {
	s := "a€🔥ü"
	if n := utf16Len(s); n != len(utf16.Encode([]rune(s))) || n != 5 {
		t.Errorf("utf16Len(%q) = %d, want 5", s, n)
	}
	for max := range 7 {
		c := cutUTF16(s, max)
		if !utf8.ValidString(c) || utf16Len(c) > max || !strings.HasPrefix(s, c) {
			t.Errorf("cutUTF16(%q, %d) = %q", s, max, c)
		}
	}
	if got := cutUTF16(s, 2); got != "a€" {
		t.Errorf("cut before the emoji: %q", got)
	}
	if got := shorten("🔥🔥🔥", 4); got != "🔥…" {
		t.Errorf("shorten = %q", got)
	}
}

var (
	linkSyntax = regexp.MustCompile(`\]\(|<[^ \n]|\[|://`)
	// domainDot is a dot between a word and a letter, as in a domain
	// name; the look-alikes ǀ and ˋ are letters too, but end no domain.
	domainDot  = regexp.MustCompile(`[^ \n]\.[^ǀˋ\PL]`)
	blockStart = regexp.MustCompile(`(?m)^ *([#>+=|\\-]|[0-9]+[.)])`)
)

// checkInert fails when s could still mention, link, emphasise, open a code
// span or a block, or reorder text.
func checkInert(t *testing.T, in, s string) {
	t.Helper()
	switch {
	case activeMention.MatchString(s):
		t.Fatalf("escapeText(%q) = %q: active mention", in, s)
	case linkSyntax.MatchString(s) || domainDot.MatchString(s):
		t.Fatalf("escapeText(%q) = %q: link syntax", in, s)
	case strings.ContainsAny(s, "*~`_@$\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069") || strings.Contains(s, "||"):
		t.Fatalf("escapeText(%q) = %q: markdown or bidi control", in, s)
	case blockStart.MatchString(s):
		t.Fatalf("escapeText(%q) = %q: block syntax at a line start", in, s)
	case !utf8.ValidString(s):
		t.Fatalf("escapeText(%q) = %q: invalid UTF-8", in, s)
	}
}

// escapeSeeds and escapeSameSeeds are FuzzEscape's seeds, the latter at
// the edges of clean; mdparser_test.go parses them too.
var (
	escapeSeeds     = []string{"@here", "x [a](b) <c|d>", "# h\n> q", "||s|| *b* `c`", "\u202e@all", "a@b", "_i_", "\xff@x"}
	escapeSameSeeds = []string{
		"", "plain text", "@here", "a@b", "x [a](b) <c|d>", "# h\n> q", "#room", "a#b", "||s|| *b* `c`", "_i_ a_b",
		"\u202e@all", "\xff@x", "\xf0\x9f", "line\r\nbreak\rx\ty", "\x00\x1f\x7f\u0085\u200b\ufeff", "\ufffd",
		"< x", "a<", "<b", "](x)", "\n#\n>", "🔥 @🔥 #é", "é@x ß#y", "|", "||", "x|", "end#",
	}
)

func FuzzEscape(f *testing.F) {
	for _, s := range append(escapeSeeds, escapeSameSeeds...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkInert(t, in, escapeText(in, true))
		checkInert(t, in, escapeText(in, false))
		if s := escapeText(in, false); strings.Contains(s, "\n") {
			t.Fatalf("single-line escape kept a newline: %q", s)
		}
		c := escapeCode(in)
		if strings.ContainsAny(c, "`\n\r") || activeMention.MatchString(c) {
			t.Fatalf("escapeCode(%q) = %q", in, c)
		}
	})
}

// FuzzSafeURL holds safeURL to its promise: "" or an http(s) URL with a
// host and no user info, and no character that would end a markdown link
// or a <url|title>.
func FuzzSafeURL(f *testing.F) {
	for _, u := range append(oddURLs,
		"http://prometheus.example.com:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1",
		"https://h", "http://h:", "http://h:123456", "http://h?q", "http://h#a#b", "http://h/%zz", "http://h/a%",
		"http://h//x", "http://h/;a=b,c!$'@:", "http://h/?a=b&c=d+e@f:g/h", "http://h%41/", "http://h:8080:90/",
		"http://h?x@y/z", "http://h/%00", "http://1.2.3.4:8080/", "http://[::1]:80/", "http://h/?a b#c d", "http://h/#(x)",
	) {
		f.Add(u)
	}
	f.Fuzz(func(t *testing.T, u string) {
		s := safeURL(u)
		if s == "" {
			return
		}
		if strings.ContainsAny(s, "()<>|`\"*[] \n\r\t") {
			t.Fatalf("safeURL(%q) = %q: a character that ends a link", u, s)
		}
		rest, ok := strings.CutPrefix(s, "http://")
		if !ok {
			rest, ok = strings.CutPrefix(s, "https://")
		}
		host, _, _ := strings.Cut(rest, "/")
		host, _, _ = strings.Cut(host, "?")
		host, _, _ = strings.Cut(host, "#")
		if !ok || host == "" || strings.Contains(host, "@") {
			t.Fatalf("safeURL(%q) = %q: not an http(s) URL with a host and no user info", u, s)
		}
	})
}

// FuzzUTF16 holds utf16Len to JavaScript's count and shorten to its limit.
func FuzzUTF16(f *testing.F) {
	for _, s := range []string{"", "abc", "é", "🔥x", "a\xffb", "\xf0\x9f", "ab🔥 cd ", strings.Repeat("x", 200) + "🔥"} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		if got, want := utf16Len(s), len(utf16.Encode([]rune(s))); got != want {
			t.Fatalf("utf16Len(%q) = %d, want %d", s, got, want)
		}
		max = max%300 + 1
		if max < 1 {
			max += 300
		}
		out := shorten(s, max)
		if utf16Len(out) > max {
			t.Fatalf("shorten(%q, %d) = %q: %d units", s, max, out, utf16Len(out))
		}
		if kept, cut := strings.CutSuffix(out, "…"); out != s && (!cut || !strings.HasPrefix(s, kept)) {
			t.Fatalf("shorten(%q, %d) = %q: not a marked prefix", s, max, out)
		}
	})
}

// FuzzRender puts arbitrary text into every field a sender controls and
// checks the rendered message: under the limit, and no mention but the
// configured one.
func FuzzRender(f *testing.F) {
	f.Add("@all", "[x](http://e) @here", "owner", "`@here`", 3)
	f.Add(strings.Repeat("🔥", 3000), "s", "k", "v", 50)
	f.Fuzz(func(t *testing.T, title, summary, key, value string, count int) {
		n := firing()
		n.Title, n.Text = title, summary
		n.Annotations["description"] = summary + title
		n.Alerts = nil
		for i := range count % 60 {
			a := alert(value+strings.Repeat("x", i), heraldv1.Status_STATUS_FIRING, summary)
			a.Labels[key] = value
			n.Alerts = append(n.Alerts, a)
		}
		n.Links.Runbook = value
		r := &renderer{max: 600, mentions: map[string]string{"critical": "@here"}}
		m, err := r.render(defaultTemplates, n, renderOpts{mention: true, fallbackReason: value})
		if err != nil {
			t.Fatal(err)
		}
		checkMessage(t, m, r.max)
	})
}
