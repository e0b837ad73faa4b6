package slack

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/slack/slackfake"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var t0 = time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)

func ts(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }

// firing is a typical Alertmanager group: two firing alerts of one rule.
func firing() *heraldv1.Notification {
	return &heraldv1.Notification{
		Id:       "01JFIRING",
		Source:   "alertmanager",
		Receiver: "oncall",
		Severity: heraldv1.Severity_SEVERITY_CRITICAL,
		Status:   heraldv1.Status_STATUS_FIRING,
		Title:    "HighErrorRate",
		Text:     "5xx ratio above 5% on checkout",
		Annotations: map[string]string{
			"description": "The share of 5xx answers on checkout has been above 5% for 10 minutes.\nCheck the payment backend first.",
		},
		GroupKey: `{}:{alertname="HighErrorRate"}`,
		Labels:   map[string]string{"alertname": "HighErrorRate", "severity": "critical", "service": "checkout"},
		Alerts: []*heraldv1.Alert{
			{Fingerprint: "a1", Status: heraldv1.Status_STATUS_FIRING, StartsAt: ts(0),
				Labels:      map[string]string{"alertname": "HighErrorRate", "severity": "critical", "service": "checkout", "instance": "web-1:9090"},
				Annotations: map[string]string{"summary": "5xx ratio 7.2% on web-1"}},
			{Fingerprint: "a2", Status: heraldv1.Status_STATUS_FIRING, StartsAt: ts(time.Minute),
				Labels:      map[string]string{"alertname": "HighErrorRate", "severity": "critical", "service": "checkout", "instance": "web-2:9090"},
				Annotations: map[string]string{"summary": "5xx ratio 6.1% on web-2"}},
		},
		Links: &heraldv1.Links{
			Generator: "http://prometheus:9090/graph?g0.expr=rate%28http_errors%5B5m%5D%29",
			Silence:   "http://alertmanager:9093/#/silences/new?filter=%7Balertname%3D%22HighErrorRate%22%7D",
			Runbook:   "https://runbooks.example.com/HighErrorRate",
			Dashboard: "https://grafana.example.com/d/checkout",
		},
	}
}

func resolved() *heraldv1.Notification {
	n := firing()
	n.Status = heraldv1.Status_STATUS_RESOLVED
	for i, a := range n.Alerts {
		a.Status = heraldv1.Status_STATUS_RESOLVED
		a.EndsAt = ts(time.Duration(10+i) * time.Minute)
	}
	return n
}

func manyAlerts() *heraldv1.Notification {
	n := firing()
	n.Alerts = nil
	for i := range 60 {
		st := heraldv1.Status_STATUS_FIRING
		if i%4 == 3 {
			st = heraldv1.Status_STATUS_RESOLVED
		}
		n.Alerts = append(n.Alerts, &heraldv1.Alert{
			Fingerprint: fmt.Sprintf("f%02d", i), Status: st, StartsAt: ts(time.Duration(i) * time.Second),
			Labels: map[string]string{"alertname": "HighErrorRate", "severity": "critical", "service": "checkout",
				"instance": fmt.Sprintf("web-%d:9090", i), "pod": fmt.Sprintf("checkout-7d9f8-%05d", i)},
		})
	}
	n.TruncatedAlerts = 40
	return n
}

func hugeAnnotations() *heraldv1.Notification {
	n := firing()
	n.Text = strings.Repeat("The disk is full & the <logs> are huge. ", 5000)
	n.Title = strings.Repeat("VeryLongAlertName", 30)
	n.Labels = map[string]string{"alertname": "X"}
	for i := range 15 {
		n.Labels[fmt.Sprintf("label_%02d", i)] = strings.Repeat("v", 5000)
	}
	for _, a := range n.Alerts {
		a.Annotations["summary"] = strings.Repeat("summary ", 2000)
		a.Labels["huge"] = strings.Repeat("x", 10000)
	}
	n.Links.Runbook = "https://example.com/" + strings.Repeat("a", 4000)
	return n
}

func unicodeText() *heraldv1.Notification {
	n := firing()
	n.Title = "Диск заполнен 💾 ディスク満杯"
	n.Text = "שגיאה \u200fفي الخادم — 99.9 % 🔥🔥 e\u0301 \u202eevil\u202c"
	n.Labels["région"] = "Île-de-France"
	n.Alerts[0].Labels["emoji"] = "🐘🐘🐘"
	n.Alerts[0].Annotations["summary"] = "ñandú 💥 \x00\x07bell"
	return n
}

// mentionAttempts carries every way label and annotation text could try to
// notify people or inject links.
func mentionAttempts() *heraldv1.Notification {
	n := firing()
	n.Title = "<!channel> wake up"
	n.Text = "@here <!here> <!everyone> <@U024BE7LH> <!subteam^S0123|@oncall> <https://evil.example|click me> a&amp;b *bold* mail ops@example.com"
	n.Labels["team"] = "<!channel>"
	n.Labels["owner"] = "@channel"
	n.Alerts[0].Labels["instance"] = "<@U024BE7LH>"
	n.Alerts[0].Annotations["summary"] = "<https://evil.example|Runbook> @all"
	n.Links.Runbook = "javascript:alert(1)"
	n.Links.Dashboard = "https://grafana.example.com/d/x?a=<b>"
	return n
}

func TestRenderGolden(t *testing.T) {
	mentions := map[string]string{"critical": "<!here>", "warning": "<!subteam^S0WARN>"}
	cases := []struct {
		name  string
		n     *heraldv1.Notification
		to    sinks.Target
		style Style
	}{
		{"firing", firing(), sinks.Target{Route: "critical"}, StyleParent},
		{"resolved", resolved(), sinks.Target{Route: "critical"}, StyleParent},
		{"many_alerts", manyAlerts(), sinks.Target{}, StyleParent},
		{"huge_annotations", hugeAnnotations(), sinks.Target{}, StyleParent},
		{"unicode", unicodeText(), sinks.Target{}, StyleParent},
		{"mention_attempts", mentionAttempts(), sinks.Target{}, StyleParent},
		{"fallback", firing(), sinks.Target{Route: "critical", FallbackFrom: "Rocket.Chat", FallbackReason: "HTTP 503 Service Unavailable"}, StyleParent},
		{"reply_resolved", resolved(), sinks.Target{}, StyleReply},
		{"reply_many_alerts", manyAlerts(), sinks.Target{FallbackFrom: "Rocket.Chat", FallbackReason: "unavailable"}, StyleReply},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			golden(t, c.name, Render(NewData(c.n, c.to, mentions), c.style))
		})
	}
}

func TestRenderDigestGolden(t *testing.T) {
	mentions := map[string]string{"critical": "<!here>", "warning": "<!subteam^S0WARN>"}
	warn := firing()
	warn.Severity, warn.Title = heraldv1.Severity_SEVERITY_WARNING, "DiskAlmostFull <!channel>"
	few := []*heraldv1.Notification{warn, firing(), resolved(), mentionAttempts()}
	var many []*heraldv1.Notification
	for i := range 60 {
		n := firing()
		n.Title = fmt.Sprintf("Alert%02d", i)
		n.Severity = heraldv1.Severity_SEVERITY_INFO
		many = append(many, n)
	}
	for _, c := range []struct {
		name string
		ns   []*heraldv1.Notification
		to   sinks.Target
	}{
		{"digest", few, sinks.Target{FallbackFrom: "Rocket.Chat", FallbackReason: "HTTP 503"}},
		{"digest_many", many, sinks.Target{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			items := make([]Data, len(c.ns))
			for i, n := range c.ns {
				items[i] = NewData(n, c.to, mentions)
			}
			golden(t, c.name, RenderDigest(items))
		})
	}
}

// golden compares m with testdata/render/name.json, or rewrites the file
// with -update, after holding m to Slack's and herald's rules.
func golden(t *testing.T, name string, m Message) {
	t.Helper()
	got, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	checkMessage(t, m)
	path := filepath.Join("testdata", "render", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("rendered message differs from %s (run with -update if intended):\n%s", path, got)
	}
}

// safeAngle is every "<" that Render may emit: dates and configured mentions.
var safeAngle = regexp.MustCompile(`<!date\^\d+\^\{date_short_pretty\} \{time\}\|[^<>]*>|<!here>|<!subteam\^S0WARN>`)

// checkMessage holds a rendered message to Slack's rules (through the fake's
// checker) and to herald's: no mention or link except the configured ones.
func checkMessage(t *testing.T, m Message) {
	t.Helper()
	blocks, err := json.Marshal(m.Blocks)
	if err != nil {
		t.Fatal(err)
	}
	if code := slackfake.Check(m.Text, blocks); code != "" {
		t.Errorf("Slack would refuse the message: %s", code)
	}
	for _, s := range []string{m.Text, string(blocks)} {
		rest := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(s)
		rest = safeAngle.ReplaceAllString(rest, "")
		if i := strings.IndexAny(rest, "<>"); i >= 0 {
			t.Errorf("unescaped < or > in rendered text: …%s…", rest[max(0, i-40):min(len(rest), i+40)])
		}
		if strings.ContainsFunc(s, isBidiControl) {
			t.Errorf("a bidi override survived: %q", s)
		}
		if regexp.MustCompile(`(^|[^\pL\pN])@(here|channel|everyone|all)`).MatchString(s) {
			t.Errorf("a bare @here/@channel/@everyone/@all survived: %s", s)
		}
	}
}

func TestRenderEscapes(t *testing.T) {
	m := Render(NewData(mentionAttempts(), sinks.Target{}, nil), StyleParent)
	b, _ := json.Marshal(m)
	s := string(b)
	for _, want := range []string{
		`\u0026lt;!channel\u0026gt; wake up`, // the title
		`a\u0026amp;amp;b`,                   // an entity in the text is shown, not decoded
		`ops@example.com`,                    // e-mail addresses are left alone
	} {
		if !strings.Contains(s, want) {
			t.Errorf("rendered message lacks %s", want)
		}
	}
	if strings.Contains(s, "javascript:") {
		t.Error("a javascript: link became a button")
	}
	if strings.Contains(s, "<!here>") {
		t.Error("a mention appeared with no mention configured")
	}
}

func TestRenderMentions(t *testing.T) {
	mentions := map[string]string{"critical": "<!here>"}
	for _, c := range []struct {
		name string
		n    *heraldv1.Notification
		want bool
	}{
		{"critical firing", firing(), true},
		{"critical resolved", resolved(), false},
		{"warning firing", func() *heraldv1.Notification {
			n := firing()
			n.Severity = heraldv1.Severity_SEVERITY_WARNING
			return n
		}(), false},
	} {
		m := Render(NewData(c.n, sinks.Target{}, mentions), StyleParent)
		b, _ := json.Marshal(m.Blocks)
		if got := strings.HasPrefix(m.Text, "<!here> ") && strings.Contains(string(b), `\u003c!here\u003e`); got != c.want {
			t.Errorf("%s: mention present = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestClip(t *testing.T) {
	for _, c := range []struct {
		in    string
		limit int
		want  string
	}{
		{"short", 10, "short"},
		{"a<b", 10, "a&lt;b"},
		{"abcdefghijklmnopqrstuvwxyz", 20, "abcdefgh… (+18 more)"},
		{"<<<<<<<<<<<<<<<<<<<<", 20, "&lt;&lt;… (+18 more)"},
		{"💾💾💾💾💾💾💾💾💾💾💾💾", 20, "💾💾💾💾… (+8 more)"},
		{"x", 0, ""},
	} {
		got := clip(c.in, c.limit)
		if got != c.want {
			t.Errorf("clip(%q, %d) = %q, want %q", c.in, c.limit, got, c.want)
		}
		if units(got) > c.limit {
			t.Errorf("clip(%q, %d) = %q is %d units long", c.in, c.limit, got, units(got))
		}
	}
}

// FuzzRender renders notifications built from arbitrary text and checks
// that Slack would take every one and that nothing from outside can
// mention anyone.
func FuzzRender(f *testing.F) {
	f.Add("<!channel>", "@here & <@U1>", "k", "<v>", "https://x.example/a", 3)
	f.Add(strings.Repeat("💾", 200), strings.Repeat("a&", 3000), "\x00", "\xff\xfe", "javascript:x", 70)
	f.Fuzz(func(t *testing.T, title, text, key, value, link string, alerts int) {
		n := &heraldv1.Notification{
			Severity: heraldv1.Severity_SEVERITY_CRITICAL,
			Status:   heraldv1.Status_STATUS_FIRING,
			Title:    title, Text: text,
			Labels:      map[string]string{key: value, "alertname": title},
			Annotations: map[string]string{"summary": text},
			Links:       &heraldv1.Links{Runbook: link, Generator: link + "/g", Silence: link, Dashboard: value},
		}
		for i := range min(max(alerts, 0), 80) {
			n.Alerts = append(n.Alerts, &heraldv1.Alert{
				Status:      heraldv1.Status(i % 3),
				Labels:      map[string]string{key: value + fmt.Sprint(i), "x": text},
				Annotations: map[string]string{"summary": title},
			})
		}
		to := sinks.Target{FallbackFrom: key, FallbackReason: text, Route: value}
		for _, style := range []Style{StyleParent, StyleReply} {
			checkMessage(t, Render(NewData(n, to, map[string]string{"critical": "<!here>"}), style))
		}
	})
}

// BenchmarkRender renders a typical group and a hostile one (200 KB texts
// in every field, 80 alerts): the work is bounded by Slack's limits, not by
// the input's size.
func BenchmarkRender(b *testing.B) {
	huge := strings.Repeat("a&<@", 50000)
	hostile := &heraldv1.Notification{Title: huge, Text: huge, Labels: map[string]string{huge: huge}}
	for range 80 {
		hostile.Alerts = append(hostile.Alerts, &heraldv1.Alert{Labels: map[string]string{"k": huge}, Annotations: map[string]string{"summary": huge}})
	}
	for _, c := range []struct {
		name string
		n    *heraldv1.Notification
	}{{"typical", firing()}, {"hostile", hostile}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Render(NewData(c.n, sinks.Target{}, nil), StyleParent)
			}
		})
	}
}

// TestHeadline: the state a message leads with; an info event a service
// published (no alerts) reads INFO, not FIRING.
func TestHeadline(t *testing.T) {
	tests := []struct {
		d    Data
		want string
	}{
		{Data{Title: "Deploy done", Severity: heraldv1.Severity_SEVERITY_INFO, Status: heraldv1.Status_STATUS_FIRING}, " [INFO] Deploy done"},
		{Data{Title: "A", Severity: heraldv1.Severity_SEVERITY_INFO, Status: heraldv1.Status_STATUS_FIRING, FiringCount: 1, Alerts: []AlertData{{}}}, " [FIRING:1] A"},
		{Data{Title: "Disk", Severity: heraldv1.Severity_SEVERITY_CRITICAL, Status: heraldv1.Status_STATUS_FIRING}, " [FIRING] Disk"},
		{Data{Title: "Disk", Severity: heraldv1.Severity_SEVERITY_CRITICAL, Status: heraldv1.Status_STATUS_RESOLVED}, "✅ [RESOLVED] Disk"},
	}
	for _, tt := range tests {
		if got := headline(tt.d); !strings.HasSuffix(got, tt.want) {
			t.Errorf("headline(%+v) = %q, want it to end %q", tt.d, got, tt.want)
		}
	}
}
