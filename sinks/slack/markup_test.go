package slack

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
)

// Slack publishes no parser of its markup, only its rules ("Formatting
// text for app surfaces"): "&", "<" and ">" are control characters that
// text must escape as "&amp;", "&lt;" and "&gt;", and only those three; a
// "<…>" encloses a special mention (<!here>, <!channel>, <!everyone>,
// <!subteam^ID>), a user or channel mention (<@U…>, <#C…>), a date
// (<!date^…>) or a link (<http…|label>, <mailto:…>); with link_names a bare
// "@name" at the start of a word mentions too. slackMarkup reads a text by
// those rules, and the tests below hold every text of a rendered message to
// them: text from an alert may change the words, never form a control.

// slackMarkup returns the "<…>" controls of text in order, and what in it
// breaks the rules: a "&" that starts no entity, a "<" or ">" outside a
// control, an unclosed control, and bare mentions.
func slackMarkup(text string) (controls, problems []string) {
	for i := 0; i < len(text); i++ {
		switch text[i] {
		case '&':
			rest := text[i+1:]
			if !strings.HasPrefix(rest, "amp;") && !strings.HasPrefix(rest, "lt;") && !strings.HasPrefix(rest, "gt;") {
				problems = append(problems, fmt.Sprintf("raw & at %d", i))
			}
		case '<':
			j := strings.IndexAny(text[i+1:], "<>")
			if j < 0 || text[i+1+j] == '<' {
				problems = append(problems, fmt.Sprintf("unclosed < at %d", i))
				continue
			}
			controls = append(controls, text[i:i+j+2])
			i += j + 1
		case '>':
			problems = append(problems, fmt.Sprintf("raw > at %d", i))
		}
	}
	outside := text
	for _, c := range controls {
		outside = strings.Replace(outside, c, " ", 1)
	}
	for _, m := range bareMention.FindAllStringIndex(outside, -1) {
		problems = append(problems, fmt.Sprintf("bare mention %q", outside[m[0]:m[1]]))
	}
	return controls, problems
}

// bareMention is an "@" that starts a word and is followed by a name, which
// Slack (with link_names) and Slack-compatible servers turn into a mention.
var bareMention = regexp.MustCompile(`(^|[^\pL\pN])@[\pL\pN_.-]+`)

// messageTexts returns every text of m that Slack shows: the notification
// text and the text of every block object, field and element.
func messageTexts(t *testing.T, m Message) []string {
	t.Helper()
	b, err := json.Marshal(m.Blocks)
	if err != nil {
		t.Fatal(err)
	}
	var blocks any
	if err := json.Unmarshal(b, &blocks); err != nil {
		t.Fatal(err)
	}
	out := []string{m.Text}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case []any:
			for _, c := range v {
				walk(c)
			}
		case map[string]any:
			for k, c := range v {
				if s, ok := c.(string); ok && k == "text" {
					out = append(out, s)
					continue
				}
				walk(c)
			}
		}
	}
	walk(blocks)
	return out
}

// slackHostile are texts that try every control of Slack's markup.
var slackHostile = []string{
	"<!channel>", "<!here>", "<!everyone>", "<!here|here>", "<!channel> wake up", "<@U024BE7LH>", "<@U024BE7LH|bob>",
	"<#C024BE7LR>", "<#C024BE7LR|general>", "<!subteam^S0123|@oncall>", "<!date^1392734382^{date}|Feb 18>",
	"<https://evil.example|click me>", "<https://evil.example>", "<mailto:ops@example.com|mail>", "<tel:+15551234567|call>",
	"&lt;!channel&gt;", "&#60;!channel&#62;", "&amp;", "a & b", "a&b", "&", "&&", "&lt", "&gt;", "< >", "<", ">", "<<!here>>",
	"<http://x", "x>", "<\n!here>", "<!here\n>", "＜!channel＞", "\u2039!channel\u203a", "<\u200b!here>", "\x00<!here>",
	"@here", "@channel", "@everyone", "@all", "hi @john", "(@here)", "@@here", "mail ops@example.com", "@\u2060here",
	"*bold* _it_ ~st~ `code` > quote", "https://evil.example/login", "x|y", "a <!here> b <@U1> c <#C1> d",
	"🔥 <!channel> 🔥", "\u202e<!here>\u202c", strings.Repeat("<!here>", 40), strings.Repeat("&", 300),
}

// slackSoupPieces are the pieces slackSoup makes texts of.
var slackSoupPieces = []string{
	"<", ">", "&", "!", "@", "#", "|", "^", "here", "channel", "everyone", "U024BE7LH", "C1", "subteam", "date",
	"http://evil.example", "mailto:", "amp;", "lt;", "gt;", " ", "\n", "x", "🔥", "\u2060", "*", "_",
}

func slackSoup(r *rand.Rand) string {
	var b strings.Builder
	for range 1 + r.IntN(8) {
		b.WriteString(slackSoupPieces[r.IntN(len(slackSoupPieces))])
	}
	return b.String()
}

// slackTwin is s with every character but white space and control
// characters replaced by a letter: text of its shape with no markup.
func slackTwin(s string) string {
	var b strings.Builder
	i := 0
	for _, r := range s {
		if !unicode.IsSpace(r) && !unicode.IsControl(r) {
			r = rune('a' + i%26)
			i++
		}
		b.WriteRune(r)
	}
	return b.String()
}

// slackFields puts one text in one field of a notification or target.
var slackFields = []struct {
	name string
	set  func(n *heraldv1.Notification, to *sinks.Target, s string)
}{
	{"title", func(n *heraldv1.Notification, _ *sinks.Target, s string) { n.Title = s }},
	{"text", func(n *heraldv1.Notification, _ *sinks.Target, s string) { n.Text = s }},
	{"description", func(n *heraldv1.Notification, _ *sinks.Target, s string) { n.Annotations["description"] = s }},
	{"summary annotation", func(n *heraldv1.Notification, _ *sinks.Target, s string) {
		n.Text = ""
		n.Annotations["summary"] = s
	}},
	{"alert summary", func(n *heraldv1.Notification, _ *sinks.Target, s string) { n.Alerts[0].Annotations["summary"] = s }},
	{"alertname", func(n *heraldv1.Notification, _ *sinks.Target, s string) {
		n.Title = ""
		n.Labels["alertname"] = s
		for _, a := range n.Alerts {
			a.Labels["alertname"] = s
			delete(a.Annotations, "summary")
		}
	}},
	{"common label", func(n *heraldv1.Notification, _ *sinks.Target, s string) {
		n.Labels["service"] = s
		n.Labels["x"+s] = s
		for _, a := range n.Alerts {
			a.Labels["service"] = s
			a.Labels["x"+s] = s
		}
	}},
	{"alert label", func(n *heraldv1.Notification, _ *sinks.Target, s string) {
		n.Alerts[0].Labels["instance"] = s
		n.Alerts[0].Labels["x"+s] = s
	}},
	{"source, receiver, route", func(n *heraldv1.Notification, to *sinks.Target, s string) {
		n.Source, n.Receiver, to.Route = s, s, s
	}},
	{"fallback", func(_ *heraldv1.Notification, to *sinks.Target, s string) { to.FallbackFrom, to.FallbackReason = s, s }},
}

// TestRenderFollowsSlackMarkupRules renders notifications with hostile text
// in every field, as a parent, a reply and in a digest, and holds every
// text of the message to Slack's rules: each "&" starts an entity, each "<"
// and ">" belongs to a control, no bare mention, and the controls are
// exactly those of the same message with plain words: the configured
// mention and the dates herald writes.
func TestRenderFollowsSlackMarkupRules(t *testing.T) {
	corpus := slices.Clone(slackHostile)
	r := rand.New(rand.NewPCG(14, 10))
	for range 300 {
		corpus = append(corpus, slackSoup(r))
	}
	mentions := map[string]string{"critical": "<!here>"}
	failed := 0
	check := func(name, in string, got, want Message) {
		t.Helper()
		gotTexts, wantTexts := messageTexts(t, got), messageTexts(t, want)
		var gotControls, wantControls []string
		for _, s := range gotTexts {
			c, problems := slackMarkup(s)
			gotControls = append(gotControls, c...)
			if len(problems) > 0 && failed < 30 {
				failed++
				t.Errorf("%s: %q renders %q: %s", name, in, s, strings.Join(problems, ", "))
			}
		}
		for _, s := range wantTexts {
			c, _ := slackMarkup(s)
			wantControls = append(wantControls, c...)
		}
		if !slices.Equal(gotControls, wantControls) && failed < 30 {
			failed++
			t.Errorf("%s: %q renders the controls %q, plain words %q", name, in, gotControls, wantControls)
		}
	}
	for _, s := range corpus {
		for _, f := range slackFields {
			n, tn := firing(), firing()
			var to, tto sinks.Target
			f.set(n, &to, s)
			f.set(tn, &tto, slackTwin(s))
			for _, style := range []Style{StyleParent, StyleReply} {
				check(f.name, s, Render(NewData(n, to, mentions), style), Render(NewData(tn, tto, mentions), style))
			}
			other := proto.Clone(n).(*heraldv1.Notification)
			other.Severity = heraldv1.Severity_SEVERITY_WARNING
			tother := proto.Clone(tn).(*heraldv1.Notification)
			tother.Severity = heraldv1.Severity_SEVERITY_WARNING
			check(f.name+" digest", s,
				RenderDigest([]Data{NewData(n, to, mentions), NewData(other, to, mentions)}),
				RenderDigest([]Data{NewData(tn, tto, mentions), NewData(tother, tto, mentions)}))
		}
	}
}

// TestSlackMarkupRules checks the reader the test above relies on.
func TestSlackMarkupRules(t *testing.T) {
	for _, c := range []struct {
		in       string
		controls []string
		problems int
	}{
		{"plain", nil, 0},
		{"a &amp; b &lt;c&gt;", nil, 0},
		{"a & b", nil, 1},
		{"<!here> hi <@U1|bob>", []string{"<!here>", "<@U1|bob>"}, 0},
		{"a > b", nil, 1},
		{"a < b", nil, 1},
		{"<x <!here>", []string{"<!here>"}, 1},
		{"hi @here", nil, 1},
		{"ops@example.com @\u2060here", nil, 0},
	} {
		controls, problems := slackMarkup(c.in)
		if !slices.Equal(controls, c.controls) || len(problems) != c.problems {
			t.Errorf("slackMarkup(%q) = %q, %q; want %q and %d problems", c.in, controls, problems, c.controls, c.problems)
		}
	}
}
