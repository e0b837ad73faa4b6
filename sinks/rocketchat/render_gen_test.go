package rocketchat

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// oddStrings are values that exercise escaping, cleaning, trimming and the
// UTF-16 count: markdown and mentions, controls, bidi overrides, invalid
// UTF-8, astral characters, and Unicode spaces that TrimSpace removes.
var oddStrings = []string{
	"", " ", "plain", "DiskFull", "db-1:9100", "payments-api-0a1b2", "10.1.2.3:8080", "kubernetes-pods",
	"@here", "@all look", "ops@example.com", "#general", "a#b", "# heading", "> quote", "*bold* ~s~ `c` _i_ a_b",
	"||spoiler||", "[x](http://evil.example)", "<http://e|t>", "< x", "a<", "![](u)",
	"ディスク満杯 🚨", "سرور", "Zürich", "🏔️", "🔥🔥🔥", "東京-1", "\u202eevil\u202c", "zw\u200bsp", "bom\ufeff",
	"tab\there", "cr\r\nlf", "line\nbreak", "\n\nlead", "trail\n\n", "\u0085nel\u0085", "\u00a0nbsp\u00a0", "\u3000ideo",
	"\xff\xfe bad", "\xf0\x9f", "ctl\x00\x1f\x7f", "- item", "(value 1.5)", "50%", "a]b(c", "x|y", "}}{{",
}

var oddURLs = []string{
	"", "http://prometheus.example:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1", "https://runbooks.example/x",
	"http://alertmanager.example:9093/#/silences/new?filter=%7Balertname%3D%22X%22%7D", "javascript:alert(1)",
	"https://grafana.example/d/x) [evil](http://evil.example", "http://u:p@host/", "ftp://x/", "http://", "/relative",
	" http://space.example/a b ", "http://h.example/(a)|<b>`*[]", "HTTP://UPPER.example/", "http://ex\u00e4mple/ü",
}

// pick returns a random odd string, or a plain one most of the time when
// plain is set.
func pick(r *rand.Rand, plain bool) string {
	if plain && r.IntN(4) != 0 {
		return fmt.Sprintf("v%d", r.IntN(50))
	}
	return oddStrings[r.IntN(len(oddStrings))]
}

// long returns a string of about n UTF-16 units, sometimes with lines and
// astral characters, to push a message over its size limit.
func long(r *rand.Rand, n int) string {
	unit := []string{"word ", "🔥", "é", "line\n", "@x ", "*"}[r.IntN(6)]
	return strings.Repeat(unit, n/len([]rune(unit))+1)
}

func randTime(r *rand.Rand) *timestamppb.Timestamp {
	switch r.IntN(6) {
	case 0:
		return nil
	case 1:
		return &timestamppb.Timestamp{}
	case 2:
		return &timestamppb.Timestamp{Seconds: -5}
	case 3:
		return &timestamppb.Timestamp{Seconds: 1 << 40} // invalid
	}
	return timestamppb.New(t0.Add(time.Duration(r.IntN(7200)) * time.Second))
}

// genNotification returns a random notification: any status and severity,
// no to many alerts with shared, differing, empty and missing labels,
// truncated alerts, odd strings, long texts and bad URLs.
func genNotification(r *rand.Rand) *heraldv1.Notification {
	str := func() string {
		if r.IntN(12) == 0 {
			return long(r, []int{200, 1200, 6000}[r.IntN(3)])
		}
		return pick(r, true)
	}
	n := &heraldv1.Notification{
		Id: "gen", Source: pick(r, true), Receiver: pick(r, true),
		Severity: heraldv1.Severity(r.IntN(5)),
		Status:   heraldv1.Status(r.IntN(3)),
		Title:    str(), Text: str(),
		ExternalUrl:     oddURLs[r.IntN(len(oddURLs))],
		TruncatedAlerts: uint32([]int{0, 0, 0, 1, 7, 1000}[r.IntN(6)]),
	}
	if r.IntN(3) > 0 {
		n.Labels = map[string]string{"alertname": pick(r, true)}
		for range r.IntN(6) {
			n.Labels[pick(r, true)] = pick(r, true)
		}
		if r.IntN(2) == 0 {
			n.Labels["severity"] = "critical"
		}
	}
	if r.IntN(2) == 0 {
		n.Annotations = map[string]string{"summary": str(), "description": str()}
		if r.IntN(4) == 0 {
			n.Annotations["description"] = n.Annotations["summary"]
		}
	}
	if r.IntN(4) > 0 {
		n.Links = &heraldv1.Links{
			Generator: oddURLs[r.IntN(len(oddURLs))], Silence: oddURLs[r.IntN(len(oddURLs))],
			Runbook: oddURLs[r.IntN(len(oddURLs))], Dashboard: oddURLs[r.IntN(len(oddURLs))],
		}
	}
	var count int
	switch r.IntN(5) {
	case 0:
		count = 0
	case 1:
		count = 1
	case 2:
		count = 2 + r.IntN(10)
	case 3:
		count = 20 + r.IntN(20)
	default:
		count = 100 + r.IntN(200)
	}
	shared := []Pair{{Name: "alertname", Value: pick(r, true)}, {Name: "job", Value: pick(r, true)}, {Name: "empty", Value: ""}}
	for i := range count {
		a := &heraldv1.Alert{
			Status:       heraldv1.Status(r.IntN(3)),
			Labels:       map[string]string{},
			StartsAt:     randTime(r),
			EndsAt:       randTime(r),
			GeneratorUrl: oddURLs[r.IntN(len(oddURLs))],
		}
		for _, p := range shared {
			if r.IntN(10) > 0 {
				a.Labels[p.Name] = p.Value
			}
		}
		a.Labels["instance"] = fmt.Sprintf("host-%d", i)
		for range r.IntN(4) {
			a.Labels[pick(r, true)] = pick(r, true)
		}
		if r.IntN(20) == 0 {
			a.Labels = nil
		}
		if r.IntN(4) > 0 {
			a.Annotations = map[string]string{"summary": str()}
			if r.IntN(3) == 0 {
				a.Annotations["description"] = str()
			}
		}
		n.Alerts = append(n.Alerts, a)
	}
	return n
}

// genOpts returns random render options: reply, update, mention, fallback.
func genOpts(r *rand.Rand) renderOpts {
	o := renderOpts{reply: r.IntN(4) == 0, update: r.IntN(4) == 0, mention: r.IntN(2) == 0}
	if r.IntN(4) == 0 {
		o.fallbackFrom, o.fallbackReason = pick(r, true), pick(r, false)
		if r.IntN(3) == 0 {
			o.fallbackReason = long(r, 300)
		}
	}
	return o
}

// genRenderer returns a renderer with a random size limit and mentions.
func genRenderer(r *rand.Rand) *renderer {
	rr := &renderer{max: []int{DefaultMaxMessageSize, DefaultMaxMessageSize, 100, 300, 1000, 2000, 40}[r.IntN(7)]}
	switch r.IntN(3) {
	case 0:
		rr.mentions = map[string]string{"critical": "@here", "warning": "@oncall", "": "@all", "info": " @padded "}
	case 1:
		rr.mentions = map[string]string{"critical": "@here"}
	}
	return rr
}

// TestRenderGenerated renders random notifications in random roles and
// size limits: every message fits its limit, mentions no one but the
// configured mention, and leaves no code span open. It counts the shapes
// that matter most, so that a change of the generator cannot quietly stop
// covering them.
func TestRenderGenerated(t *testing.T) {
	var fitted, cut, resolved, zero, one, several, over int
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		rr, n, o := genRenderer(r), genNotification(r), genOpts(r)
		m, err := rr.render(defaultTemplates, n, o)
		if err != nil {
			t.Fatal(err)
		}
		checkMessage(t, m, rr.max)
		if strings.Count(m.Text, "`")%2 != 0 {
			t.Fatalf("a code span is left open:\n%s", m.Text)
		}
		if t.Failed() {
			t.Fatalf("max %d, opts %+v:\n%s", rr.max, o, dump(t, m))
		}
		// Alerts were left out to fit: the text with all of them is over.
		if d := rr.data(n, o); len(d.Alerts) > 0 {
			if all, _ := rr.execute(defaultTemplates, "text", d); utf16Len(all) > rr.max {
				fitted++
			}
		}
		if strings.HasSuffix(m.Text, truncMark) {
			cut++
		}
		switch len(n.Alerts) {
		case 0:
			zero++
		case 1:
			one++
		default:
			several++
		}
		if len(n.Alerts) > maxShownAlerts {
			over++
		}
		if n.Status == heraldv1.Status_STATUS_RESOLVED {
			resolved++
		}
	}
	t.Logf("fitted %d, cut %d, resolved %d, 0/1/many alerts %d/%d/%d, more than %d alerts %d", fitted, cut, resolved, zero, one, several, maxShownAlerts, over)
	for name, c := range map[string]int{"fitted": fitted, "cut": cut, "resolved": resolved, "no alert": zero, "one alert": one, "several alerts": several, "too many alerts": over} {
		if c < 50 {
			t.Errorf("only %d generated cases %s", c, name)
		}
	}
}
