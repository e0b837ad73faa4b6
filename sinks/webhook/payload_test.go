package webhook

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/sinktest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var t0 = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)

func firing() *heraldv1.Notification {
	n := sinktest.Notification()
	n.Receiver = "ops-webhook"
	n.ExternalUrl = "http://alertmanager.example"
	n.Links = &heraldv1.Links{
		Generator: "http://prometheus.example/graph?g0.expr=disk",
		Silence:   "http://alertmanager.example/#/silences/new?filter=%7Balertname%3D%22DiskFull%22%7D",
		Runbook:   "https://runbooks.example/DiskFull",
	}
	n.Annotations = map[string]string{"description": "The volume fills at 1 GB/h."}
	n.Alerts[0].GeneratorUrl = "http://prometheus.example/graph?g0.expr=disk&g0.tab=1"
	return n
}

func resolved() *heraldv1.Notification {
	n := firing()
	n.Id = "01JCONFORMANCE0000000000001"
	n.Status = heraldv1.Status_STATUS_RESOLVED
	n.Alerts[0].Status = heraldv1.Status_STATUS_RESOLVED
	n.Alerts[0].EndsAt = timestamppb.New(t0.Add(42 * time.Minute))
	return n
}

func manyAlerts(count int) *heraldv1.Notification {
	n := firing()
	n.Id = "01JMANY000000000000000000000"
	n.Title = "DiskFull"
	n.Text = ""
	n.TruncatedAlerts = 12
	n.Alerts = nil
	for i := range count {
		n.Alerts = append(n.Alerts, &heraldv1.Alert{
			Fingerprint: fmt.Sprintf("fp%04d", i),
			Status:      heraldv1.Status_STATUS_FIRING,
			Labels: map[string]string{
				"alertname": "DiskFull", "severity": "critical", "cluster": "eu-1",
				"instance": fmt.Sprintf("db-%03d.eu-1.example.com:9100", i),
			},
			Annotations: map[string]string{"summary": fmt.Sprintf("Disk of db-%03d is 99%% full", i)},
			StartsAt:    timestamppb.New(t0.Add(time.Duration(i) * time.Second)),
		})
	}
	return n
}

// hostileLabels are label names and values that try to break out of a
// JSON string, mention people, form links or markup, or hide text.
var hostileLabels = map[string]string{
	"alertname":               "DiskFull",
	"severity":                "critical",
	"mention":                 "@all @channel <!here> <!channel> @here",
	"link":                    "[click](http://evil.example) <http://evil.example|x>",
	"html":                    "<script>alert(1)</script><img src=x onerror=alert(1)>&amp;",
	"quote":                   `"},"status":"resolved","x":{"`,
	"backslash":               `\"\\\u0000`,
	"rtl":                     "\u202egnp.exe\u200b\u2066x\u2069",
	"zero\u200bwidth":         "zero\u200bwidth\ufeff",
	"control":                 "a\x00b\x07c\x1bd\x7fe\r\nf",
	"linesep":                 "a\u2028b\u2029c",
	`key","status":"resolved`: "v",
	"long":                    strings.Repeat("very long value ", 300),
}

func hostile() *heraldv1.Notification {
	n := firing()
	n.Id = "01JHOSTILE00000000000000000"
	n.GroupKey = `{}/{severity="critical"}:{alertname="DiskFull", instance="x\"y"}`
	n.Title = `@all look [here](http://evil.example) <!here> "},"id":"forged`
	n.Text = "@channel **act** <b>html</b>\n# Heading\n```\ncode\n``` \u202eevil\u202c zero\u200bwidth"
	n.Labels = maps.Clone(hostileLabels)
	n.Annotations = map[string]string{"description": "</script><!-- " + strings.Repeat("x", 5000)}
	n.Alerts[0].Labels = maps.Clone(hostileLabels)
	n.Alerts[0].Annotations = map[string]string{"summary": "@here \u202e<b>x</b>"}
	n.Alerts[0].GeneratorUrl = "javascript:alert(1)"
	n.Links = &heraldv1.Links{
		Generator: "javascript:alert(1)",
		Silence:   "http://user:pass@alertmanager.example/",
		Runbook:   "https://runbooks.example/x?a=\"b\"<c>",
	}
	return n
}

var target = sinks.Target{Channel: "#alerts-critical", Route: "db", Attempt: 1}

func resolvedTarget() sinks.Target {
	return sinks.Target{
		Channel: "#alerts-critical", Route: "db", Attempt: 2,
		Parent:       &heraldv1.MessageRef{ChannelId: "#alerts-critical", MessageId: "01JCONFORMANCE0000000000000"},
		FallbackFrom: "rocketchat", FallbackReason: "HTTP 503 Service Unavailable",
	}
}

func testSink(t testing.TB, c Config) *Sink {
	t.Helper()
	if !c.URL.IsSet() {
		c.URL = "https://receiver.example/hook"
	}
	s, err := New("hook", c, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkGolden compares the body, indented, with testdata/<name>.golden.
func checkGolden(t *testing.T, name string, body []byte) {
	t.Helper()
	var b bytes.Buffer
	if err := json.Indent(&b, body, "", "  "); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, body)
	}
	b.WriteByte('\n')
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("%s differs from the golden file (go test -update to accept):\n%s", path, b.Bytes())
	}
}

func TestDefaultBodyGolden(t *testing.T) {
	for _, tt := range []struct {
		name string
		n    *heraldv1.Notification
		to   sinks.Target
		cfg  Config
	}{
		{"firing", firing(), target, Config{}},
		{"resolved", resolved(), resolvedTarget(), Config{}},
		{"many_alerts", manyAlerts(300), target, Config{}},
		{"many_alerts_max", manyAlerts(300), target, Config{MaxAlerts: 3}},
		{"hostile", hostile(), target, Config{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := testSink(t, tt.cfg)
			body, err := s.body(t.Context(), tt.n, tt.to)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tt.name, body)
		})
	}
}

// TestDefaultBodyKeepsData decodes the body and finds the notification's
// own values, whatever they hold: hostile text stays data.
func TestDefaultBodyKeepsData(t *testing.T) {
	n := hostile()
	s := testSink(t, Config{})
	body, err := s.body(t.Context(), n, target)
	if err != nil {
		t.Fatal(err)
	}
	var p Payload
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	if p.Version != "1" || p.ID != n.Id || p.Status != "firing" || p.Title != n.Title || p.Text != n.Text || p.GroupKey != n.GroupKey {
		t.Errorf("payload = %+v", p)
	}
	if !maps.Equal(p.Labels, hostileLabels) || !maps.Equal(p.Alerts[0].Labels, hostileLabels) {
		t.Errorf("labels changed in transit:\n got %q\nwant %q", p.Labels, hostileLabels)
	}
	if p.Annotations["description"] != n.Annotations["description"] {
		t.Error("description shortened or changed")
	}
	// Unsafe links are dropped, safe ones kept.
	if p.Links.Generator != "" || p.Links.Silence != "" || p.Alerts[0].GeneratorURL != "" {
		t.Errorf("unsafe links kept: %+v, %q", p.Links, p.Alerts[0].GeneratorURL)
	}
	if p.Links.Runbook == "" {
		t.Error("safe runbook link dropped")
	}
	// No raw <, > or & reaches the wire, nor a raw line separator or
	// control character.
	// Invisible characters are written as escapes.
	for _, bad := range []string{"<", ">", "&", "\u2028", "\u2029", "\x00", "\n", "\x7f", "\u202e", "\u200b", "\ufeff", "\u2066"} {
		if bytes.Contains(body, []byte(bad)) {
			t.Errorf("body holds a raw %q", bad)
		}
	}
}

func TestDefaultBodyFields(t *testing.T) {
	n := resolved()
	n.Route = "fanout-copy"
	body, err := testSink(t, Config{}).body(t.Context(), n, resolvedTarget())
	if err != nil {
		t.Fatal(err)
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != "resolved" || p.Severity != "critical" || p.Route != "db" || p.Channel != "#alerts-critical" ||
		p.FallbackFrom != "rocketchat" || p.Parent == nil || p.Parent.MessageID != "01JCONFORMANCE0000000000000" {
		t.Errorf("payload = %+v", p)
	}
	if p.Alerts[0].EndsAt == nil || !p.Alerts[0].EndsAt.Equal(t0.Add(42*time.Minute)) || p.ReceivedAt == nil {
		t.Errorf("times = %v %v", p.Alerts[0].EndsAt, p.ReceivedAt)
	}

	// An empty notification still has every field, with {} and [] for its
	// maps and lists.
	body, err = testSink(t, Config{}).body(t.Context(), &heraldv1.Notification{Id: "x"}, sinks.Target{})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(body, []byte(`"attempt"`)) {
		t.Errorf("body has an attempt: a retry's body must be the same bytes: %s", body)
	}
	for _, want := range []string{`"labels":{}`, `"annotations":{}`, `"alerts":[]`, `"parent":null`, `"received_at":null`, `"title":"(no title)"`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("body lacks %s: %s", want, body)
		}
	}
}

func TestManyAlerts(t *testing.T) {
	body, err := testSink(t, Config{MaxAlerts: 25}).body(t.Context(), manyAlerts(300), target)
	if err != nil {
		t.Fatal(err)
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Alerts) != 25 || p.TruncatedAlerts != 300-25+12 {
		t.Errorf("alerts %d, truncated %d", len(p.Alerts), p.TruncatedAlerts)
	}
	body, _ = testSink(t, Config{}).body(t.Context(), manyAlerts(300), target)
	p = Payload{}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Alerts) != 300 || p.TruncatedAlerts != 12 {
		t.Errorf("without max_alerts: alerts %d, truncated %d", len(p.Alerts), p.TruncatedAlerts)
	}
}
