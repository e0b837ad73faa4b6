package teams

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/message"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var t0 = time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)

func ts(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }

// alert builds an alert of DiskFull on instance.
func alert(instance string, status heraldv1.Status, summary string) *heraldv1.Alert {
	a := &heraldv1.Alert{
		Fingerprint:  "fp-" + instance,
		Status:       status,
		Labels:       map[string]string{"alertname": "DiskFull", "severity": "critical", "job": "node", "instance": instance},
		Annotations:  map[string]string{"summary": summary},
		StartsAt:     ts(0),
		GeneratorUrl: "http://prometheus.example:9090/graph?g0.expr=disk_free%3C0.01",
	}
	if status == heraldv1.Status_STATUS_RESOLVED {
		a.EndsAt = ts(30 * time.Minute)
	}
	return a
}

// firing is a group of three firing alerts.
func firing() *heraldv1.Notification {
	return &heraldv1.Notification{
		Id:          "01JDX0FIRING",
		Source:      "alertmanager",
		Receiver:    "oncall",
		Severity:    heraldv1.Severity_SEVERITY_CRITICAL,
		Status:      heraldv1.Status_STATUS_FIRING,
		Title:       "DiskFull: 3 hosts",
		Text:        "Disks are almost full on the database hosts.",
		GroupKey:    `{}:{alertname="DiskFull"}`,
		Labels:      map[string]string{"alertname": "DiskFull", "severity": "critical"},
		Annotations: map[string]string{"description": "Free space below 1% for 5 minutes.\nDelete old WAL segments or grow the volume."},
		Alerts: []*heraldv1.Alert{
			alert("db-1:9100", heraldv1.Status_STATUS_FIRING, "/var is 99.2% full"),
			alert("db-2:9100", heraldv1.Status_STATUS_FIRING, "/var is 99.7% full"),
			alert("db-3:9100", heraldv1.Status_STATUS_FIRING, "/var is 99.9% full"),
		},
		Links: &heraldv1.Links{
			Generator: "http://prometheus.example:9090/graph?g0.expr=disk_free%3C0.01",
			Silence:   "http://alertmanager.example:9093/#/silences/new?filter=%7Balertname%3D%22DiskFull%22%7D",
			Runbook:   "https://runbooks.example/disk-full",
			Dashboard: "https://grafana.example/d/disk",
		},
		ExternalUrl: "http://alertmanager.example:9093",
		ReceivedAt:  ts(time.Minute),
	}
}

func resolved() *heraldv1.Notification {
	n := firing()
	n.Id = "01JDX0RESOLVED"
	n.Status = heraldv1.Status_STATUS_RESOLVED
	for _, a := range n.Alerts {
		a.Status = heraldv1.Status_STATUS_RESOLVED
		a.EndsAt = ts(30 * time.Minute)
	}
	return n
}

func many(count int) *heraldv1.Notification {
	n := firing()
	n.Id = "01JDX0MANY"
	n.Title = fmt.Sprintf("DiskFull: %d hosts", count)
	n.Alerts = nil
	for i := range count {
		n.Alerts = append(n.Alerts, alert(fmt.Sprintf("db-%03d.prod.example.com:9100", i), heraldv1.Status_STATUS_FIRING,
			fmt.Sprintf("/var/lib/postgresql is %d.9%% full on a rather long host name", 90+i%10)))
	}
	n.TruncatedAlerts = 7
	return n
}

// hostileTexts are what an attacker or a careless rule author may put in
// an alert: every construct of Markdown Teams or a CommonMark host reads,
// mentions of other chat systems, HTML, functions of TextBlock, and the
// characters message.Clean drops.
var hostileTexts = []string{
	"[click here](http://evil.example/login)", "![i](http://evil.example/x.png)", "<http://evil.example>",
	"http://evil.example/login", "www.evil.com", "mailto:ops@example.com", "ops@example.com",
	"@all @channel @here <!here> <!channel> <at>Jane</at>", "**bold** *it* _it_ __b__ ~~st~~ `code`",
	"# Heading", "- item", "1. one", "> quote", "| a | b |", `\*escaped\*`,
	"{{DATE(2026-11-27T03:04:05Z, SHORT)}} {{TIME(2026-11-27T03:04:05Z)}}",
	"<b>html</b><script>alert(1)</script>", "rtl \u202eevil\u202c zw\u200bsp bom\ufeff", "\x00\x1f\x7f",
	`"},{"type":"Action.OpenUrl","url":"http://evil.example"}`,
}

func hostile() *heraldv1.Notification {
	n := firing()
	n.Id = "01JDX0HOSTILE"
	n.Title = strings.Join(hostileTexts[:6], " ")
	n.Text = strings.Join(hostileTexts, "\n")
	n.Annotations["description"] = strings.Repeat("very long value ", 200)
	n.Labels["job"] = "[x](http://evil.example) @all"
	for i, a := range n.Alerts {
		a.Labels["job"] = n.Labels["job"]
		a.Labels["instance"] = hostileTexts[i*3]
		a.Labels["x"+hostileTexts[i*3+1]] = hostileTexts[i*3+2]
		a.Annotations["summary"] = hostileTexts[12+i]
		a.GeneratorUrl = "javascript:alert(1)"
	}
	for _, a := range n.Alerts {
		a.Labels["pod"] = strings.Repeat("p", 5000)
	}
	n.Links = &heraldv1.Links{
		Generator: "javascript:alert(document.cookie)",
		Silence:   "http://user:pass@alertmanager.example/",
		Runbook:   "https://runbooks.example/a b)<>",
		Dashboard: "data:text/html,<script>alert(1)</script>",
	}
	n.ExternalUrl = "ftp://evil.example"
	return n
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// indent shows a request body as indented JSON.
func indent(t *testing.T, body []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Indent(&b, body, "", "  "); err != nil {
		t.Fatalf("the body is not JSON: %v\n%s", err, body)
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// goldenCases are the notifications whose default cards are kept in
// testdata/<name>.golden (and checked by Microsoft's parser, see
// cardcheck_test.go).
var goldenCases = []struct {
	name string
	n    func() *heraldv1.Notification
	to   sinks.Target
}{
	{"firing", firing, sinks.Target{}},
	{"resolved", resolved, sinks.Target{}},
	{"many_alerts", func() *heraldv1.Notification { return many(300) }, sinks.Target{}},
	{"hostile", hostile, sinks.Target{FallbackFrom: "rocketchat <!here>", FallbackReason: "HTTP 503 [x](http://evil.example)"}},
}

func testRenderer() *renderer {
	return &renderer{version: DefaultCardVersion, max: DefaultMaxCardBytes}
}

func TestGolden(t *testing.T) {
	r := testRenderer()
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			body, err := r.render(defaultTemplates, c.n(), c.to)
			if err != nil {
				t.Fatal(err)
			}
			if size := CardSize(body); size > r.max {
				t.Errorf("card is %d bytes, over %d", size, r.max)
			}
			golden(t, c.name, indent(t, body))
		})
	}
}

func digestOf() []*heraldv1.Notification {
	a, b, c := firing(), resolved(), many(40)
	b.ReceivedAt, c.ReceivedAt = ts(2*time.Minute), ts(3*time.Minute)
	c.Severity = heraldv1.Severity_SEVERITY_WARNING
	return []*heraldv1.Notification{a, b, c}
}

func TestGoldenDigest(t *testing.T) {
	r := testRenderer()
	body, err := r.renderDigest(defaultTemplates, digestOf(), sinks.Target{})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "digest", indent(t, body))
	c := decodeCard(t, body)
	if got := c.Body[0].Items[0].Text; got != "🔴 3 notifications" || c.Body[0].Style != "attention" {
		t.Errorf("header %q style %q", got, c.Body[0].Style)
	}
}

// TestDigestFits renders a digest of many large notifications at the
// smallest limit: it fits and says how many it left out.
func TestDigestFits(t *testing.T) {
	var ns []*heraldv1.Notification
	for i := range 20 {
		n := firing()
		n.Title = fmt.Sprintf("%d %s", i, strings.Repeat("Very long title ", 20))
		n.Text = strings.Repeat("ünïcödé summary ", 100)
		ns = append(ns, n)
	}
	r := &renderer{version: DefaultCardVersion, max: 4000}
	body, err := r.renderDigest(defaultTemplates, ns, sinks.Target{})
	if err != nil {
		t.Fatal(err)
	}
	if size := CardSize(body); size > r.max {
		t.Errorf("digest is %d bytes, over %d", size, r.max)
	}
	if txt := allText(decodeCard(t, body)); !strings.Contains(txt, "more") || !strings.Contains(txt, "20 notifications") {
		t.Errorf("digest text:\n%s", txt)
	}
}

// decodeCard returns the card in a request body.
func decodeCard(t *testing.T, body []byte) Card {
	t.Helper()
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if m.Type != "message" || len(m.Attachments) != 1 || m.Attachments[0].ContentType != ContentType {
		t.Fatalf("envelope = %+v", m)
	}
	return m.Attachments[0].Content
}

// allText is every text of a card, for searching.
func allText(c Card) string {
	var b strings.Builder
	var walk func([]Element)
	walk = func(els []Element) {
		for _, e := range els {
			b.WriteString(e.Text + "\n")
			for _, f := range e.Facts {
				b.WriteString(f.Title + "\n" + f.Value + "\n")
			}
			walk(e.Items)
		}
	}
	walk(c.Body)
	for _, a := range c.Actions {
		b.WriteString(a.Title + "\n")
	}
	return b.String()
}

func TestManyAlertsSaysHowManyAreLeftOut(t *testing.T) {
	body, err := testRenderer().render(defaultTemplates, many(300), sinks.Target{})
	if err != nil {
		t.Fatal(err)
	}
	c := decodeCard(t, body)
	// 25 listed (message.DefaultMaxAlerts), 275 past them and 7 left out
	// by Alertmanager.
	if txt := allText(c); !strings.Contains(txt, "+282 more alerts") {
		t.Errorf("no \"+282 more alerts\" in\n%s", txt)
	}
	var urls []string
	for _, a := range c.Actions {
		urls = append(urls, a.Title+"="+a.URL)
	}
	if !strings.Contains(strings.Join(urls, " "), "All alerts=http://alertmanager.example:9093") {
		t.Errorf("actions = %v, want an \"All alerts\" button", urls)
	}
}

// TestFitsEveryLimit renders a notification too large for any card at
// every size limit the config allows: the request always fits, stays
// valid JSON with a header, and says what it left out.
func TestFitsEveryLimit(t *testing.T) {
	n := many(300)
	n.Title = strings.Repeat("Very long title ", 40)
	n.Text = strings.Repeat("The summary goes on and on. ", 400)
	n.Annotations["description"] = strings.Repeat("A description of many lines ünïcödé 🔥.\n", 2000)
	for i := range 60 {
		v := strings.Repeat(string(rune('a'+i%26)), 200)
		n.Labels[fmt.Sprintf("label_%02d", i)] = v
		for _, a := range n.Alerts {
			a.Labels[fmt.Sprintf("label_%02d", i)] = v
		}
	}
	for _, a := range n.Alerts {
		a.Annotations["summary"] = strings.Repeat("s🔥", 500)
	}
	for _, max := range []int{4000, 5000, 8000, 12000, DefaultMaxCardBytes, 24000, TeamsMessageLimit} {
		r := &renderer{version: DefaultCardVersion, max: max}
		body, err := r.render(defaultTemplates, n, sinks.Target{})
		if err != nil {
			t.Fatal(err)
		}
		if size := CardSize(body); size > max {
			t.Errorf("max %d: card is %d bytes", max, size)
		}
		c := decodeCard(t, body)
		if len(c.Body) == 0 || c.Body[0].Type != "Container" || !strings.Contains(c.Body[0].Items[0].Text, "FIRING") {
			t.Errorf("max %d: no header in %s", max, body)
		}
		txt := allText(c)
		if !strings.Contains(txt, "more alert") && !strings.Contains(txt, "did not fit") && !strings.Contains(txt, "shortened") {
			t.Errorf("max %d: the card does not say what it left out:\n%s", max, txt)
		}
		// A long text does not push every alert out of a card of the
		// default size.
		if max >= DefaultMaxCardBytes && !strings.Contains(txt, "**instance**=db-000") {
			t.Errorf("max %d: no alert listed:\n%s", max, txt)
		}
	}
}

// TestHostileInert checks the escaped card texts: no Markdown link,
// emphasis, HTML, function or autolink survives from the alert.
func TestHostileInert(t *testing.T) {
	body, err := testRenderer().render(defaultTemplates, hostile(), goldenCases[3].to)
	if err != nil {
		t.Fatal(err)
	}
	c := decodeCard(t, body)
	txt := allText(c)
	for _, bad := range []string{"](", "[click", "<b>", "<script", "<at>", "<!here>", "{{DATE", "{{TIME", "http://evil", "https://", "www.evil", "mailto:ops", "`code`", "~~st~~", "\u202e", "\x00", "\\*"} {
		if strings.Contains(txt, bad) {
			t.Errorf("the card's text contains %q:\n%s", bad, txt)
		}
	}
	// The template's own bold survives: "**job**=" in an alert line.
	for _, a := range c.Actions {
		if !strings.HasPrefix(a.URL, "http://") && !strings.HasPrefix(a.URL, "https://") {
			t.Errorf("action %q goes to %q", a.Title, a.URL)
		}
	}
	for _, a := range c.Actions {
		if strings.Contains(a.URL, "user:pass") || strings.Contains(a.URL, "javascript") {
			t.Errorf("unsafe action URL %q", a.URL)
		}
	}
}

func TestEscapeText(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain words", "plain words"},
		{"a_b*c", "a＿b∗c"},
		{"[x](http://e.example)", "［x］(http:\u200b//e.\u200bexample)"},
		{"db-1:9100 at 10:30", "db-1:9100 at 10:30"},
		{"- item", "\u200b- item"},
		{"1. one", "\u200b1. one"},
		{"{{DATE(x)}}", "\u200b{\u200b{DATE(x)}}\u200b"},
		{"line\nnext", "line\n\nnext"},
		{"<at>x</at>", "＜at＞x＜/at＞"},
		{"ends with (", "ends with (\u200b"},
		{"99.5% full.", "99.5% full."},
	}
	for _, c := range cases {
		if got := (escaper{}).Text(c.in, true); got != c.want {
			t.Errorf("Text(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestUserTemplate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tmpl")
	os.WriteFile(good, []byte(`{{define "title"}}{{.StatusText}} — {{.Title}} ({{.AlertCount}}){{end}}`), 0o644)
	tm, err := ParseTemplateFile(good)
	if err != nil {
		t.Fatal(err)
	}
	body, err := testRenderer().render(tm, firing(), sinks.Target{})
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeCard(t, body).Body[0].Items[0].Text; got != "FIRING — DiskFull: 3 hosts (3)" {
		t.Errorf("title = %q", got)
	}

	empty := filepath.Join(dir, "empty.tmpl")
	os.WriteFile(empty, []byte(`{{define "title"}}{{if false}}x{{end}}{{end}}{{define "alert"}} {{end}}`), 0o644)
	if tm, err = ParseTemplateFile(empty); err != nil {
		t.Fatal(err)
	}
	body, _ = testRenderer().render(tm, firing(), sinks.Target{})
	c := decodeCard(t, body)
	if got := c.Body[0].Items[0].Text; got != "🔴 FIRING: DiskFull: 3 hosts" {
		t.Errorf("empty title template: title %q", got)
	}
	for _, e := range c.Body {
		if e.Type == "TextBlock" && e.Text == "" {
			t.Errorf("an empty TextBlock in %s", body)
		}
	}

	for name, src := range map[string]string{
		"unknown field": `{{define "text"}}{{.NoSuchField}}{{end}}`,
		"no define":     `{{.Title}}`,
		"syntax":        `{{define "title"}}{{.Title{{end}}`,
		"wrong name":    `{{define "titel"}}x{{end}}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".tmpl")
		os.WriteFile(p, []byte(src), 0o644)
		if _, err := ParseTemplateFile(p); err == nil {
			t.Errorf("%s: ParseTemplateFile accepted %q", name, src)
		}
	}
}

// TestFailingTemplateFallsBack renders with a template that fails only on
// some data: the card comes from the defaults, and the error is returned.
func TestFailingTemplateFallsBack(t *testing.T) {
	tm := template.Must(defaultTemplates.Clone())
	template.Must(tm.New("x").Parse(`{{define "alert"}}{{index .Labels 5}}{{end}}`))
	body, err := testRenderer().render(tm, firing(), sinks.Target{})
	if err == nil {
		t.Fatal("no error from a failing template")
	}
	if c := decodeCard(t, body); !strings.Contains(allText(c), "instance") {
		t.Errorf("the fallback card has no alert lines:\n%s", allText(c))
	}
}

func messageData(n *heraldv1.Notification) message.Data {
	return message.New(n, sinks.Target{}, message.Options{Escape: escaper{}})
}
