package rocketchat

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

func huge() *heraldv1.Notification {
	n := firing()
	n.Id = "01JDX0HUGE"
	n.Title = strings.Repeat("Very long title ", 40)
	n.Text = strings.Repeat("The summary goes on and on. ", 400)
	n.Annotations["description"] = strings.Repeat("A description of many lines.\n", 2000)
	n.Alerts[0].Labels["pod"] = strings.Repeat("p", 5000)
	n.Alerts[1].Annotations["summary"] = strings.Repeat("s", 10000)
	return n
}

func unicodeN() *heraldv1.Notification {
	n := firing()
	n.Id = "01JDX0UNICODE"
	n.Title = "ディスク満杯 🚨 on سرور"
	n.Text = "Émoji heavy: " + strings.Repeat("🔥", 20) + "\nRTL override: \u202eevil\u202c done"
	n.Alerts[0].Labels["region"] = "東京-1"
	n.Alerts[1].Labels["region"] = "Zürich"
	n.Alerts[2].Labels["region"] = "🏔️"
	return n
}

func mentions() *heraldv1.Notification {
	n := firing()
	n.Id = "01JDX0MENTION"
	n.Title = "@all look *now* @here"
	n.Text = "Ping @john.doe and @all; see [click here](http://evil.example) or <http://evil.example|the docs>\n# HEADING\n> quote\n~~strike~~ ||spoiler|| `code` _italic_ ![img](http://evil.example/x.png) #general mail ops@example.com"
	n.Annotations["description"] = "```\nfenced @here\n```"
	n.Alerts[0].Labels["owner"] = "@here"
	n.Alerts[1].Labels["owner"] = "`@all` x"
	n.Alerts[2].Labels["owner"] = "team @oncall-db"
	n.Alerts[0].Annotations["summary"] = "@channel [x](http://evil.example)"
	n.Links.Runbook = "javascript:alert(1)"
	n.Links.Dashboard = "https://grafana.example/d/x) [evil](http://evil.example"
	return n
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
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

// dump shows a rendered message: the text as Rocket.Chat gets it, then the
// attachments as JSON.
func dump(t *testing.T, m rendered) []byte {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "== text (%d UTF-16 units) ==\n%s\n== attachments ==\n", utf16Len(m.Text), m.Text)
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m.Attachments); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// activeMention finds a mention Rocket.Chat would act on.
var activeMention = regexp.MustCompile(`(^|[^\p{L}\p{N}])@[A-Za-z0-9._-]`)

var leadingMention = regexp.MustCompile(`^(@[A-Za-z0-9._-]+ )+`)

func TestRenderGolden(t *testing.T) {
	r := &renderer{max: DefaultMaxMessageSize, mentions: map[string]string{"critical": "@here"}}
	cases := []struct {
		name string
		n    *heraldv1.Notification
		o    renderOpts
	}{
		{"firing", firing(), renderOpts{mention: true}},
		{"firing_update", firing(), renderOpts{update: true}},
		{"resolved", resolved(), renderOpts{mention: true}},
		{"resolved_reply", resolved(), renderOpts{reply: true, mention: true}},
		{"many_alerts", many(200), renderOpts{mention: true}},
		{"huge_annotations", huge(), renderOpts{}},
		{"unicode", unicodeN(), renderOpts{}},
		{"mention_attempts", mentions(), renderOpts{mention: true}},
		{"fallback", firing(), renderOpts{fallbackFrom: "slack", fallbackReason: "HTTP 503 @here"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := r.render(defaultTemplates, c.n, c.o)
			if err != nil {
				t.Fatal(err)
			}
			checkMessage(t, m, r.max)
			golden(t, c.name, dump(t, m))
		})
	}
}

// checkMessage asserts what every message must be: under the size limit,
// with no mention but the configured one.
func checkMessage(t *testing.T, m rendered, max int) {
	t.Helper()
	if n := utf16Len(m.Text); n > max {
		t.Errorf("text is %d UTF-16 units, over %d", n, max)
	}
	// The configured mention opens the text; nothing else may mention.
	text := leadingMention.ReplaceAllString(m.Text, "")
	if loc := activeMention.FindStringIndex(text); loc != nil {
		t.Errorf("text has an active mention at %q", text[loc[0]:min(loc[1]+10, len(text))])
	}
	for _, a := range m.Attachments {
		if n := utf16Len(a.Text); n > max {
			t.Errorf("attachment text is %d UTF-16 units, over %d", n, max)
		}
		if loc := activeMention.FindStringIndex(a.Text); loc != nil {
			t.Errorf("attachment has an active mention at %q", a.Text[loc[0]:])
		}
		for _, act := range a.Actions {
			if !strings.HasPrefix(act.URL, "http://") && !strings.HasPrefix(act.URL, "https://") {
				t.Errorf("button %q has URL %q", act.Text, act.URL)
			}
		}
	}
}

func TestRenderMentionsOnlyWhenFiring(t *testing.T) {
	r := &renderer{max: DefaultMaxMessageSize, mentions: map[string]string{"critical": "@here", "warning": "@oncall"}}
	for _, c := range []struct {
		name string
		n    *heraldv1.Notification
		o    renderOpts
		want bool
	}{
		{"firing new", firing(), renderOpts{mention: true}, true},
		{"firing update", firing(), renderOpts{update: true}, false},
		{"resolved", resolved(), renderOpts{mention: true}, false},
	} {
		m, _ := r.render(defaultTemplates, c.n, c.o)
		if got := strings.HasPrefix(m.Text, "@here "); got != c.want {
			t.Errorf("%s: mention = %v, want %v:\n%s", c.name, got, c.want, m.Text)
		}
	}
}

func TestRenderManyAlertsTruncates(t *testing.T) {
	for _, max := range []int{500, 1000, 5000} {
		r := &renderer{max: max}
		n := many(300)
		m, err := r.render(defaultTemplates, n, renderOpts{})
		if err != nil {
			t.Fatal(err)
		}
		checkMessage(t, m, max)
		re := regexp.MustCompile(`\+(\d+) more alerts`)
		sub := re.FindStringSubmatch(m.Text)
		if sub == nil {
			t.Fatalf("max %d: no '+N more alerts' in:\n%s", max, m.Text)
		}
		shown := strings.Count(m.Text, "`instance=")
		var more int
		fmt.Sscan(sub[1], &more)
		if shown+more != 300+7 {
			t.Errorf("max %d: %d shown + %d more != 307 alerts", max, shown, more)
		}
		if !strings.Contains(m.Text, "[show all](http://alertmanager.example:9093)") {
			t.Errorf("max %d: no link to all alerts", max)
		}
		// As many alerts as fit are shown, up to maxShownAlerts.
		if shown > maxShownAlerts {
			t.Errorf("max %d: %d alerts shown, more than %d", max, shown, maxShownAlerts)
		}
		if shown == maxShownAlerts {
			continue
		}
		d := r.data(n, renderOpts{})
		d.Alerts, d.MoreAlerts = d.Alerts[:shown+1], 300+7-shown-1
		if s, _ := r.execute(defaultTemplates, "text", d); utf16Len(s) <= max {
			t.Errorf("max %d: %d alerts would still fit", max, shown+1)
		}
	}
}

func TestRenderCustomTemplate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tmpl")
	os.WriteFile(good, []byte(`{{define "text"}}{{.Emoji}} {{.Title}} ({{.AlertCount}}){{end}}`), 0o644)
	tm, err := ParseTemplateFile(good)
	if err != nil {
		t.Fatal(err)
	}
	r := &renderer{max: DefaultMaxMessageSize}
	m, err := r.render(tm, mentions(), renderOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "🔴 ＠all look ∗now∗ ＠here (3)"; m.Text != want {
		t.Errorf("text = %q, want %q", m.Text, want)
	}
	// The attachment keeps the default template.
	if !strings.Contains(m.Attachments[0].Text, "source: alertmanager") {
		t.Errorf("attachment = %q", m.Attachments[0].Text)
	}

	bad := filepath.Join(dir, "bad.tmpl")
	os.WriteFile(bad, []byte(`{{define "text"}}{{.NoSuchField}}{{end}}`), 0o644)
	if _, err := ParseTemplateFile(bad); err == nil {
		t.Error("a template with an unknown field parsed")
	}
	syntax := filepath.Join(dir, "syntax.tmpl")
	os.WriteFile(syntax, []byte(`{{define "text"}}{{if}}{{end}}`), 0o644)
	if _, err := ParseTemplateFile(syntax); err == nil {
		t.Error("a template with a syntax error parsed")
	}
}

func TestRenderDigest(t *testing.T) {
	r := &renderer{max: 1000, mentions: map[string]string{"critical": "@here", "warning": "@db-team"}}
	var ns []*heraldv1.Notification
	for i := range 60 {
		n := firing()
		n.Id = fmt.Sprintf("n%02d", i)
		n.Title = fmt.Sprintf("Alert number %d @all", i)
		if i%3 == 0 {
			n.Status = heraldv1.Status_STATUS_RESOLVED
		}
		if i > 0 {
			n.Severity = heraldv1.Severity_SEVERITY_WARNING
		}
		ns = append(ns, n)
	}
	m, err := r.renderDigest(defaultTemplates, ns)
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, m, r.max)
	// n00 is critical but resolved: the mention is the warning one.
	if !strings.HasPrefix(m.Text, "@db-team ") {
		t.Errorf("digest mention: %q", m.Text[:40])
	}
	if !strings.Contains(m.Text, "*60 notifications*") || !regexp.MustCompile(`\+\d+ more notifications`).MatchString(m.Text) {
		t.Errorf("digest text:\n%s", m.Text)
	}
	golden(t, "digest", dump(t, m))
}

// TestPerAlertDashboards: alerts that link to different dashboards show
// each its own link on its line, and no Dashboard button stands for all.
func TestPerAlertDashboards(t *testing.T) {
	n := firing()
	n.Links.Dashboard = "https://grafana.example/d/db-1"
	for i, a := range n.Alerts {
		a.Annotations["dashboard_url"] = fmt.Sprintf("https://grafana.example/d/db-%d", i+1)
	}
	r := &renderer{max: DefaultMaxMessageSize}
	m, err := r.render(defaultTemplates, n, renderOpts{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n.Alerts {
		if want := fmt.Sprintf("[dashboard](https://grafana.example/d/db-%d)", i+1); !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %s:\n%s", want, m.Text)
		}
	}
	for _, a := range m.Attachments[0].Actions {
		if strings.Contains(a.Text, "Dashboard") {
			t.Errorf("a Dashboard button for all alerts: %+v", a)
		}
	}
}
