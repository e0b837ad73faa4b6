package mattermost

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/sinktest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var t0 = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)

func firing() *heraldv1.Notification {
	n := sinktest.Notification()
	n.Receiver = "ops-mattermost"
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

func hostile() *heraldv1.Notification {
	long := strings.Repeat("very long value ", 400)
	n := firing()
	n.Id = "01JHOSTILE00000000000000000"
	n.Title = "@all look [here](http://evil.example) <!here> ~town-square"
	n.Text = "@channel @here please **act** now: <b>html</b> <img src=x onerror=alert(1)>\n# Heading\n> quote\n1. list\n- item\n| a | b |\n```\ncode\n``` :smile: :) www.evil.example http://evil.example/x user@evil.example $x^2$ \u202eevil\u202c zero\u200bwidth \\*not*"
	n.Annotations = map[string]string{"description": "![img](http://evil.example/i.png) [[link]] ~~strike~~ _it_ #hashtag @someone " + long}
	n.Alerts[0].Labels = map[string]string{
		"alertname": "DiskFull", "severity": "critical",
		"instance": "db-1`@all`",
		"team":     "[ops](http://evil.example) @here",
		"rtl":      "\u202egnp.exe\u200b",
		"long":     long,
	}
	n.Alerts[0].Annotations = map[string]string{"summary": "@all ~alerts <!channel>"}
	n.Links = &heraldv1.Links{Runbook: "https://runbooks.example/a (b)", Dashboard: "javascript:alert(1)"}
	return n
}

// goldenText is how a rendered post is written to a golden file.
func goldenText(msg rendered) string {
	att, _ := json.MarshalIndent(msg.Attachment, "", "  ")
	return "== message ==\n" + msg.Text + "\n== attachment ==\n" + string(att) + "\n"
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (go test -update to accept):\n%s", path, got)
	}
}

func TestGoldens(t *testing.T) {
	r := &renderer{max: DefaultMaxPostSize, mentions: map[string]string{"critical": "@channel"}}
	to := sinks.Target{Route: "db"}
	tests := []struct {
		name string
		n    *heraldv1.Notification
		o    renderOpts
	}{
		{"firing", firing(), renderOpts{mention: true}},
		{"resolved", resolved(), renderOpts{mention: true}},
		{"resolved_root_patch", resolved(), renderOpts{update: true}},
		{"resolved_reply", resolved(), renderOpts{reply: true, mention: true}},
		{"many_alerts", manyAlerts(300), renderOpts{mention: true}},
		{"hostile", hostile(), renderOpts{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := r.render(defaultTemplates, tt.n, to, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tt.name, goldenText(msg))
		})
	}
}

func TestManyAlertsFit(t *testing.T) {
	n := manyAlerts(300)
	// A small limit: the message must fit and say how many are left out.
	r := &renderer{max: minPostSize}
	msg, err := r.render(defaultTemplates, n, sinks.Target{}, renderOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if got := utf8.RuneCountInString(msg.Text); got > minPostSize {
		t.Fatalf("message has %d runes, limit %d", got, minPostSize)
	}
	if !strings.Contains(msg.Text, " more alerts_") || strings.Contains(msg.Text, "message shortened") {
		t.Errorf("want alerts left out from the end with a count, not a cut:\n%s", msg.Text)
	}
	// The default limit shows the 25 first and counts the rest.
	r = &renderer{max: DefaultMaxPostSize}
	msg, _ = r.render(defaultTemplates, n, sinks.Target{}, renderOpts{})
	if !strings.Contains(msg.Text, "_+275 more alerts_") {
		t.Errorf("want +275 more alerts:\n%s", msg.Text)
	}
}

func TestHostileIsInert(t *testing.T) {
	r := &renderer{max: DefaultMaxPostSize}
	msg, err := r.render(defaultTemplates, hostile(), sinks.Target{}, renderOpts{mention: true})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(msg.Attachment)
	var att Attachment
	_ = json.Unmarshal(b, &att)
	texts := []string{msg.Text, att.Text, att.Fallback}
	for _, f := range att.Fields {
		texts = append(texts, f.Title, f.Value)
	}
	codeSpan := regexp.MustCompile("`[^`]*`")
	for _, s := range texts {
		for _, bad := range []string{"@", "\u202e", "\u200b`"} {
			if strings.Contains(s, bad) {
				t.Errorf("rendered text contains %q:\n%s", bad, s)
			}
		}
		// Code spans are not parsed as markdown: check what is outside.
		s = codeSpan.ReplaceAllString(s, "")
		for _, bad := range []string{"@", "~", "](http://evil", "<b>", "<!", "\u202e", "http://evil", "javascript:", "![", "**act**", "\n#", "\n>", "\n- ", "\n1.", "```", ":smile:", "www.evil", "$x"} {
			if strings.Contains(s, bad) {
				t.Errorf("rendered text contains %q:\n%s", bad, s)
			}
		}
	}
	if !strings.Contains(att.Text, "[📖 Runbook](https://runbooks.example/a%20%28b%29)") {
		t.Errorf("runbook link not kept safely:\n%s", att.Text)
	}
}

func TestEscaperTable(t *testing.T) {
	e := escaper{}
	tests := []struct{ in, want string }{
		{"@all", "＠all"},
		{"a@b.example", "a＠b.\u200bexample"},
		{"~town-square", "∼town-square"},
		{"[x](http://y)", "［x］(http:\u200b//y)"},
		{"*b* _i_ `c`", "∗b∗ ＿i＿ ˋcˋ"},
		{"#tag x#y", "＃tag x#y"},
		{"- item", "\u200b-\u200b item"},
		{"12. item", "\u200b12. item"},
		{":smile:", ":\u200bsmile:\u200b"},
		{"<3 >q", "＜3 ＞q"},
		{"plain words, 99% full.", "plain words, 99% full."},
	}
	for _, tt := range tests {
		if got := e.Text(tt.in, false); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := e.Code("a`b@c~d"); got != "aˋb＠c∼d" {
		t.Errorf("Code = %q", got)
	}
}
