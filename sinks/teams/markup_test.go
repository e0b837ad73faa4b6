package teams

import (
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/message"
)

// inertCorpus are hostile texts: hostileTexts and every block and inline
// construct of CommonMark, GitHub's extensions and linkify.
var inertCorpus = append(slices.Clone(hostileTexts),
	"*a*", "**a**", "_a_", "__a__", "a*b*c", "a_b_c", "~~a~~", "`a`", "``a``", "```\ncode\n```", "~~~\ncode\n~~~",
	"    indented code", "\tindented", "a\n    b", "# h1", "###### h6", "h\n===", "h\n---", "***", "___", "- - -",
	"> q", ">q", "- a", "+ a", "* a", "1. a", "1) a", "10. a", "- [ ] task",
	"| a | b |\n| - | - |\n| 1 | 2 |", "[a]: http://evil.example", "[a]\n\n[a]: http://evil.example",
	"[a][b]", "[a]", "![a](b)", "<http://evil.example>", "<ops@example.com>", "<b>x</b>", "<!-- c -->", "<div>\nx\n</div>",
	"&amp; &#x41; &lt;b&gt;", "a  \nb", "a\\\nb", "\\*x\\*", "http://evil.example", "https://evil.example/a?b=c#d",
	"HTTP://EVIL.EXAMPLE", "www.evil.example", "evil.example", "ops@example.com", "a.b@c.d.example.org",
	"mailto:ops@example.com", "ftp://files.example", "10.0.0.1", "http://10.0.0.1:9090/graph", "localhost:9090",
	"xn--80ak6aa92e.com", "пример.рф", "@all", "<at>all</at>", "{{DATE(2026-11-27T03:04:05Z, SHORT)}}",
	"{{TIME(2026-11-27T03:04:05Z)}}", "${x}", "99.5% full", "latency p99 > 2s", "a < b", "x | y", "v1.2.3",
)

// twin is s with every character that is not white space, a control
// character or one message.Clean drops replaced by a letter: text of the
// same shape (lines, words, lengths) that nothing can escape.
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

// inertFields are the places of a notification the default card shows.
var inertFields = []struct {
	name string
	set  func(n *heraldv1.Notification, to *sinks.Target, s string)
}{
	{"title", func(n *heraldv1.Notification, _ *sinks.Target, s string) { n.Title = s }},
	{"text", func(n *heraldv1.Notification, _ *sinks.Target, s string) { n.Text = s }},
	{"description", func(n *heraldv1.Notification, _ *sinks.Target, s string) { n.Annotations["description"] = s }},
	{"common label value", func(n *heraldv1.Notification, _ *sinks.Target, s string) {
		for _, a := range n.Alerts {
			a.Labels["job"] = s
		}
	}},
	{"common label name", func(n *heraldv1.Notification, _ *sinks.Target, s string) {
		for _, a := range n.Alerts {
			a.Labels["x"+s] = "v"
		}
	}},
	{"alert label value", func(n *heraldv1.Notification, _ *sinks.Target, s string) { n.Alerts[0].Labels["instance"] = s }},
	{"alert label name", func(n *heraldv1.Notification, _ *sinks.Target, s string) { n.Alerts[0].Labels["x"+s] = "v" }},
	{"alert summary", func(n *heraldv1.Notification, _ *sinks.Target, s string) { n.Alerts[1].Annotations["summary"] = s }},
	{"source", func(n *heraldv1.Notification, _ *sinks.Target, s string) { n.Source = s }},
	{"fallback", func(_ *heraldv1.Notification, to *sinks.Target, s string) { to.FallbackFrom, to.FallbackReason = s, s }},
}

// cardTexts are the Markdown texts of the card in body, in order.
func cardTexts(t *testing.T, body []byte) []string {
	var out []string
	var walk func([]Element)
	walk = func(els []Element) {
		for _, e := range els {
			if e.Type == "TextBlock" {
				out = append(out, e.Text)
			}
			for _, f := range e.Facts {
				out = append(out, f.Title, f.Value)
			}
			walk(e.Items)
		}
	}
	walk(decodeCard(t, body).Body)
	return out
}

// TestRenderInertUnderMarkdown renders notifications with hostile text in
// every field the default card shows, and the same notifications with
// plain words of the same shape instead, and checks with markdown-it that
// every text of the two cards has the same markup: no link, emphasis,
// list, heading, code, HTML or autolink but the template's.
func TestRenderInertUnderMarkdown(t *testing.T) {
	r := &renderer{version: DefaultCardVersion, max: TeamsMessageLimit}
	type pair struct{ name, in, got, want string }
	var pairs []pair
	for _, s := range inertCorpus {
		for _, f := range inertFields {
			n, to := firing(), sinks.Target{}
			tn, tto := firing(), sinks.Target{}
			f.set(n, &to, s)
			f.set(tn, &tto, twin(s))
			got, err := r.render(defaultTemplates, n, to)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := r.render(defaultTemplates, tn, tto)
			gt, wt := cardTexts(t, got), cardTexts(t, want)
			if len(gt) != len(wt) {
				t.Errorf("%s %q: the card has %d texts, the plain one %d", f.name, s, len(gt), len(wt))
				continue
			}
			for i := range gt {
				pairs = append(pairs, pair{f.name, s, gt[i], wt[i]})
			}
			got, err = r.renderDigest(defaultTemplates, []*heraldv1.Notification{n, resolved()}, to)
			if err != nil {
				t.Fatal(err)
			}
			want, _ = r.renderDigest(defaultTemplates, []*heraldv1.Notification{tn, resolved()}, tto)
			gt, wt = cardTexts(t, got), cardTexts(t, want)
			if len(gt) != len(wt) {
				t.Errorf("%s %q: the digest has %d texts, the plain one %d", f.name, s, len(gt), len(wt))
				continue
			}
			for i := range gt {
				pairs = append(pairs, pair{f.name + " digest", s, gt[i], wt[i]})
			}
		}
	}
	texts := make([]string, 0, 2*len(pairs))
	for _, p := range pairs {
		texts = append(texts, p.got, p.want)
	}
	shapes := markupOf(t, texts)
	failed := 0
	for i, p := range pairs {
		if g, w := shapes[2*i], shapes[2*i+1]; g != w && failed < 30 {
			failed++
			t.Errorf("%s: %q renders\n%q\nwhich parses as %s\nplain words as  %s", p.name, p.in, p.got, g, w)
		}
	}
	t.Logf("%d texts in %d fields: %d card texts parsed", len(inertCorpus), len(inertFields), len(pairs))
}
