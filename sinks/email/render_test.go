package email

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
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
	n.Receiver = "ops-email"
	n.Links = &heraldv1.Links{
		Generator: "http://prometheus.example/graph?g0.expr=disk",
		Silence:   "http://alertmanager.example/#/silences/new?filter=%7Balertname%3D%22DiskFull%22%7D",
		Runbook:   "https://runbooks.example/DiskFull",
	}
	n.Annotations = map[string]string{"description": "The volume fills at 1 GB/h."}
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
	n.Alerts = nil
	for i := range count {
		n.Alerts = append(n.Alerts, &heraldv1.Alert{
			Fingerprint: fmt.Sprintf("fp%04d", i),
			Status:      heraldv1.Status_STATUS_FIRING,
			Labels: map[string]string{
				"alertname": "DiskFull", "severity": "critical", "cluster": "eu-1",
				"instance": fmt.Sprintf("db-%03d.eu-1.example.com:9100", i), "mountpoint": "/var/lib/postgresql/data",
			},
			Annotations: map[string]string{"summary": fmt.Sprintf("Disk of db-%03d is 99%% full, growing 1 GB per hour", i)},
			StartsAt:    timestamppb.New(t0.Add(time.Duration(i) * time.Second)),
		})
	}
	return n
}

// hostileLong is a label value longer than any cap.
var hostileLong = strings.Repeat("very long value ", 400)

func hostile() *heraldv1.Notification {
	n := firing()
	n.Id = "01JHOSTILE00000000000000000"
	n.Title = "@all look [here](http://evil.example) <!here> <script>alert(1)</script> =?utf-8?q?=41?="
	n.Text = "@channel @here please **act** now: <b>html</b> <img src=x onerror=alert(1)>\n# Heading\n> quote\n" +
		"</p></td></tr></table><a href=\"javascript:alert(1)\">click</a> &amp; &lt; \u202eevil\u202c zero\u200bwidth"
	n.Annotations = map[string]string{"description": "![img](http://evil.example/i.png) <style>body{display:none}</style> " + hostileLong}
	n.Links = &heraldv1.Links{
		Generator: "javascript:alert(1)",
		Runbook:   "https://runbooks.example/x\"><script>alert(1)</script>",
	}
	n.Alerts[0].Labels = map[string]string{
		"alertname": "DiskFull", "severity": "critical",
		"instance": "db-1<b>@all</b>",
		"team":     "[ops](http://evil.example) @here <!channel>",
		"rtl":      "\u202egnp.exe\u200b",
		"quote":    `"'><img src=x onerror=alert(1)>`,
		"long":     hostileLong,
	}
	n.Alerts[0].Annotations = map[string]string{"summary": "<i>italic</i> @all"}
	n.Alerts[0].GeneratorUrl = "data:text/html,<script>alert(1)</script>"
	return n
}

type renderCase struct {
	name  string
	n     *heraldv1.Notification
	reply bool
}

func renderCases() []renderCase {
	return []renderCase{
		{"firing", firing(), false},
		{"resolved", resolved(), true},
		{"many_alerts", manyAlerts(300), false},
		{"hostile", hostile(), false},
	}
}

func TestRenderGolden(t *testing.T) {
	for _, c := range renderCases() {
		t.Run(c.name, func(t *testing.T) {
			d := renderData(c.n, sinks.Target{Route: "ops"}, c.reply)
			r, err := renderWith(defaultTemplates, d)
			if err != nil {
				t.Fatal(err)
			}
			got := "Subject: " + r.Subject + "\n\n===== text/plain =====\n" + r.Text + "\n===== text/html =====\n" + r.HTML
			golden(t, filepath.Join("testdata", c.name+".golden"), []byte(got))
		})
	}
}

func TestRenderHostileInert(t *testing.T) {
	r, err := renderWith(defaultTemplates, renderData(hostile(), sinks.Target{}, false))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script", "<img", "<b>", "<i>", "<style", `href="javascript`, `href="data`, "\u202e", "\u200b", `"'><img`} {
		if strings.Contains(r.HTML, bad) {
			t.Errorf("HTML part holds %q", bad)
		}
	}
	for _, bad := range []string{"\u202e", "\u200b", "Graph:     javascript", "data:text"} {
		if strings.Contains(r.Text, bad) || strings.Contains(r.Subject, bad) {
			t.Errorf("text part or subject holds %q", bad)
		}
	}
	if strings.Contains(r.Text, hostileLong[:2500]) {
		t.Error("the very long value was not shortened")
	}
	if !strings.Contains(r.HTML, "&lt;script&gt;") {
		t.Error("the title's tags were not escaped in the HTML part")
	}
}

func TestRenderManyAlertsSays(t *testing.T) {
	r, _ := renderWith(defaultTemplates, renderData(manyAlerts(300), sinks.Target{}, false))
	for _, part := range []string{r.Text, r.HTML} {
		if !strings.Contains(part, "275 more alerts not shown") {
			t.Errorf("a part does not say how many alerts are left out:\n%.300s", part)
		}
	}
	if !strings.HasPrefix(r.Subject, "🔴 [FIRING:300] DiskFull") {
		t.Errorf("subject = %q", r.Subject)
	}
	msg := buildMessage(email{date: t0, from: &mail.Address{Address: "a@b.example"}, to: []*mail.Address{{Address: "c@d.example"}}, messageID: "x@b.example", content: r})
	if len(msg) > 200<<10 {
		t.Errorf("message of 300 alerts is %d bytes", len(msg))
	}
}

// TestMessageGolden shows the whole wire message of a firing reply:
// headers (encoded subject, threading), boundary, quoted-printable parts.
func TestMessageGolden(t *testing.T) {
	n := firing()
	d := renderData(n, sinks.Target{}, true)
	r, err := renderWith(defaultTemplates, d)
	if err != nil {
		t.Fatal(err)
	}
	from := &mail.Address{Name: "Herald Ålerts", Address: "herald@example.com"}
	msg := buildMessage(email{
		date: t0, from: from,
		to:        []*mail.Address{{Address: "oncall@example.com"}, {Name: "DBA", Address: "dba@example.com"}},
		messageID: messageID("mail", n.GetGroupKey(), n.GetId(), "example.com"),
		inReplyTo: messageID("mail", n.GetGroupKey(), "01JFIRST", "example.com"),
		extra:     extraHeaders(map[string]string{"reply-to": "ops@example.com", "X-Priority": "1"}, d.Status, d.Severity),
		content:   r,
	})
	golden(t, filepath.Join("testdata", "firing_reply.eml"), msg)
	checkWire(t, msg, r)
}

// checkWire parses msg as a mail reader would and checks it holds r.
func checkWire(t *testing.T, msg []byte, r rendered) {
	t.Helper()
	for i, line := range bytes.Split(msg, []byte("\r\n")) {
		if len(line) > 998 {
			t.Errorf("line %d is %d bytes", i, len(line))
		}
		for _, c := range line {
			if c >= 0x80 || c == '\n' || c == '\r' {
				t.Fatalf("line %d is not 7-bit clean: %q", i, line)
			}
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	subj, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subj != r.Subject {
		t.Errorf("subject decodes to %q (%v), want %q", subj, err, r.Subject)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("content type %q: %v", mt, err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for _, want := range []struct{ ct, body string }{{"text/plain; charset=utf-8", r.Text}, {"text/html; charset=utf-8", r.HTML}} {
		p, err := mr.NextPart() // decodes quoted-printable
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		if p.Header.Get("Content-Type") != want.ct || strings.ReplaceAll(string(b), "\r\n", "\n") != want.body {
			t.Errorf("part %s:\n%s\nwant:\n%s", p.Header.Get("Content-Type"), b, want.body)
		}
	}
}

func TestEncodeSubject(t *testing.T) {
	long := strings.Repeat("Ünïcödé ", 40)
	for _, s := range []string{"plain ascii", "🔴 [FIRING:1] Disk", long, "=?utf-8?q?=41?= trick", strings.Repeat("x", 300)} {
		msg := buildMessage(email{date: t0, from: &mail.Address{Address: "a@b.example"}, to: []*mail.Address{{Address: "c@d.example"}},
			messageID: "id@b.example", content: rendered{Subject: s, Text: "t\n", HTML: "h\n"}})
		m, err := mail.ReadMessage(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		got, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		want := strings.ReplaceAll(s, "=?", "= ?")
		if err != nil || got != want {
			t.Errorf("subject %q decodes to %q (%v)", s, got, err)
		}
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendering (go test -update rewrites it):\n%s", path, got)
	}
}
