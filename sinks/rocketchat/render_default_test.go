package rocketchat

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"text/template"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// viaTemplates is the default template set under another pointer: render
// runs it through text/template, as it does a user's template file.
var viaTemplates = template.Must(defaultTemplates.Clone())

// sameRender renders n both in Go and through text/template and fails t
// unless the messages are identical. It reports whether the text had to be
// fitted (alerts left out) and whether it was cut.
func sameRender(t *testing.T, r *renderer, n *heraldv1.Notification, o renderOpts) (fitted, cut bool) {
	t.Helper()
	got, gerr := r.render(defaultTemplates, n, o)
	want, werr := r.render(viaTemplates, n, o)
	if gerr != nil || werr != nil {
		t.Fatalf("render: Go %v, template %v", gerr, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the Go renderer differs from the templates (max %d, opts %+v):\n--- Go\n%s\n--- templates\n%s",
			r.max, o, dump(t, got), dump(t, want))
	}
	// Both also agree on every step of fitText's search: the text with
	// each number of alerts shown.
	d := r.data(n, o)
	all, extra := d.Alerts, d.MoreAlerts
	for k := len(all); k >= 0; k-- {
		d.Alerts, d.MoreAlerts = all[:k], extra+len(all)-k
		g, _ := r.text(defaultTemplates, &d)
		w, _ := r.execute(viaTemplates, "text", d)
		if g != w {
			t.Fatalf("text with %d of %d alerts differs:\n--- Go\n%s\n--- templates\n%s", k, len(all), g, w)
		}
		if k == len(all) {
			fitted = utf16Len(g) > r.max && k > 0
		}
		if k < len(all)-3 && k > 3 {
			k = 4 // the middle of a long list adds nothing
		}
	}
	return fitted, strings.HasSuffix(got.Text, truncMark)
}

func TestDefaultRendererSame(t *testing.T) {
	// The golden notifications, every role.
	for _, n := range []*heraldv1.Notification{firing(), resolved(), many(300), huge(), unicodeN(), mentions(), kube1, kube10, {}} {
		for _, max := range []int{DefaultMaxMessageSize, 500, 120} {
			r := &renderer{max: max, mentions: map[string]string{"critical": "@here"}}
			for _, o := range []renderOpts{{mention: true}, {update: true}, {reply: true, mention: true}, {fallbackFrom: "slack", fallbackReason: "HTTP 503 @here"}} {
				sameRender(t, r, n, o)
			}
		}
	}
	// Generated ones, counting the cases that matter most so that a change
	// of the generator cannot quietly stop covering them.
	var fitted, cut, statuses, zero, one, several, over int
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		rr, n, o := genRenderer(r), genNotification(r), genOpts(r)
		f, c := sameRender(t, rr, n, o)
		if f {
			fitted++
		}
		if c {
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
			statuses++
		}
	}
	t.Logf("fitted %d, cut %d, resolved %d, 0/1/many alerts %d/%d/%d, more than %d alerts %d", fitted, cut, statuses, zero, one, several, maxShownAlerts, over)
	for name, c := range map[string]int{"fitted": fitted, "cut": cut, "resolved": statuses, "no alert": zero, "one alert": one, "several alerts": several, "too many alerts": over} {
		if c < 50 {
			t.Errorf("only %d generated cases %s", c, name)
		}
	}
}

func FuzzDefaultRenderer(f *testing.F) {
	f.Add("DiskFull", "Disks are full.\nSoon.", "instance", "db-1:9100", "/var is 99% full", uint8(3), uint16(0), uint16(5000))
	f.Add("@all *x*", "# h\n> q", "`l`", "@here", "[x](http://e)", uint8(30), uint16(0xffff), uint16(300))
	f.Add("🔥 \u202e", "\xff\u0085", "é", "🏔️\n", "\u00a0", uint8(1), uint16(0x5a5a), uint16(40))
	f.Add("", "", "", "", "", uint8(0), uint16(0x1234), uint16(0))
	f.Fuzz(func(t *testing.T, title, text, label, value, summary string, count uint8, flags uint16, max uint16) {
		bit := func(i int) bool { return flags>>i&1 == 1 }
		n := &heraldv1.Notification{
			Source: label, Receiver: value, Title: title, Text: text,
			Severity:        heraldv1.Severity(flags & 3),
			Status:          heraldv1.Status(flags >> 2 & 3),
			Labels:          map[string]string{"alertname": title, label: value},
			Annotations:     map[string]string{"description": summary},
			ExternalUrl:     "http://am.example/" + value,
			TruncatedAlerts: uint32(flags >> 12),
		}
		if bit(4) {
			n.Links = &heraldv1.Links{Generator: "http://g.example/" + label, Runbook: value}
		}
		for i := range int(count % 40) {
			a := &heraldv1.Alert{
				Status:      heraldv1.Status((flags >> (i % 16)) & 3),
				Labels:      map[string]string{"alertname": title, label: value, "instance": fmt.Sprint(i)},
				Annotations: map[string]string{"summary": summary},
				StartsAt:    ts(0),
			}
			if i%3 == 1 {
				a.Labels[value] = label
				a.EndsAt = ts(17)
			}
			n.Alerts = append(n.Alerts, a)
		}
		o := renderOpts{mention: bit(5), reply: bit(6), update: bit(7)}
		if bit(8) {
			o.fallbackFrom, o.fallbackReason = label, summary
		}
		r := &renderer{max: 30 + int(max)%6000, mentions: map[string]string{"critical": "@here", "": value}}
		sameRender(t, r, n, o)
	})
}
