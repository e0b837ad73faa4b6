package rocketchat

import (
	"maps"
	"slices"
	"testing"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// dataRef, commonLabelsRef and pairsRef are data, commonLabels and pairs as
// they were before data put all pairs of a notification in one array:
// TestDataSame holds data to the same result.

// dataRef is the old data.
func (r *renderer) dataRef(n *heraldv1.Notification, o renderOpts) Data {
	sev := severityName[n.GetSeverity()]
	resolved := n.GetStatus() == heraldv1.Status_STATUS_RESOLVED
	d := Data{
		Status: "firing", StatusText: "FIRING", Firing: true,
		Severity: sev, Emoji: severityEmoji[sev], Color: severityColor[sev],
		Source:         escapeText(shorten(n.GetSource(), capLabel), false),
		Receiver:       escapeText(shorten(n.GetReceiver(), capLabel), false),
		Reply:          o.reply,
		Update:         o.update,
		FallbackFrom:   escapeText(shorten(o.fallbackFrom, capLabel), false),
		FallbackReason: escapeText(shorten(o.fallbackReason, capAlertSummary), false),
	}
	if resolved {
		d.Status, d.StatusText, d.Firing, d.Resolved = "resolved", "RESOLVED", false, true
		d.Emoji, d.Color = resolvedEmoji, resolvedColor
	}
	if o.mention && d.Firing && r.mentions != nil {
		d.Mention = r.mentions[sev]
	}
	alerts := n.GetAlerts()
	title := n.GetTitle()
	if title == "" {
		title = n.GetLabels()["alertname"]
	}
	if title == "" && len(alerts) > 0 {
		title = alerts[0].GetLabels()["alertname"]
	}
	if title == "" {
		title = "(no title)"
	}
	d.Title = escapeText(shorten(clean(title, false), capTitle), false)

	summary := firstNonEmpty(n.GetText(), n.GetAnnotations()["summary"])
	desc := n.GetAnnotations()["description"]
	if len(alerts) == 1 {
		summary = firstNonEmpty(summary, alerts[0].GetAnnotations()["summary"])
		desc = firstNonEmpty(desc, alerts[0].GetAnnotations()["description"])
	}
	d.Summary = escapeText(shorten(clean(summary, true), capSummary), true)
	if desc != summary {
		d.Description = escapeText(shorten(clean(desc, true), capDescription), true)
	}

	// Alerts of a group mostly share their generator URL and their times:
	// each distinct one is checked or formatted once.
	var memo renderMemo
	l := n.GetLinks()
	d.Links = Links{
		Generator: memo.safeURL(l.GetGenerator()),
		Silence:   memo.safeURL(l.GetSilence()),
		Runbook:   memo.safeURL(l.GetRunbook()),
		Dashboard: memo.safeURL(l.GetDashboard()),
	}
	if d.Links.Generator == "" && len(alerts) == 1 {
		d.Links.Generator = memo.safeURL(alerts[0].GetGeneratorUrl())
	}
	d.MoreURL = firstNonEmpty(memo.safeURL(n.GetExternalUrl()), d.Links.Generator)

	common := commonLabelsRef(alerts)
	if len(alerts) == 0 {
		common = n.GetLabels()
	}
	d.CommonLabels = pairsRef(common, func(k string) bool { return k != "alertname" && k != "severity" })

	var start, end time.Time
	for i, a := range alerts {
		ad := AlertData{Status: "firing", Firing: true, Emoji: severityEmoji[sev]}
		if a.GetStatus() == heraldv1.Status_STATUS_RESOLVED {
			ad = AlertData{Status: "resolved", Emoji: resolvedEmoji}
			d.ResolvedCount++
		} else {
			d.FiringCount++
		}
		if t := a.GetStartsAt(); t.IsValid() && t.AsTime().Unix() > 0 {
			ad.StartsAt = memo.format(t.AsTime())
			if start.IsZero() || t.AsTime().Before(start) {
				start = t.AsTime()
			}
		}
		if t := a.GetEndsAt(); t.IsValid() && t.AsTime().Unix() > 0 {
			ad.EndsAt = memo.format(t.AsTime())
			if t.AsTime().After(end) {
				end = t.AsTime()
			}
		}
		if i >= maxShownAlerts {
			// A reader takes in a few dozen lines at most; the rest is
			// counted, and reached through MoreURL.
			d.MoreAlerts++
			continue
		}
		ad.Labels = pairsRef(a.GetLabels(), func(k string) bool { _, ok := common[k]; return !ok })
		ad.Summary = escapeText(shorten(clean(a.GetAnnotations()["summary"], false), capAlertSummary), false)
		ad.URL = memo.safeURL(a.GetGeneratorUrl())
		d.Alerts = append(d.Alerts, ad)
	}
	if !start.IsZero() {
		d.StartsAt = memo.format(start)
	}
	if !end.IsZero() {
		d.EndsAt = memo.format(end)
	}
	truncated := int(n.GetTruncatedAlerts())
	d.MoreAlerts += truncated
	d.AlertCount = len(alerts) + truncated
	if d.Resolved {
		d.ResolvedCount += truncated
	} else {
		d.FiringCount += truncated
	}
	return d
}

// commonLabelsRef returns the labels that every alert has with the same value.
func commonLabelsRef(alerts []*heraldv1.Alert) map[string]string {
	if len(alerts) == 0 {
		return nil
	}
	common := maps.Clone(alerts[0].GetLabels())
	for _, a := range alerts[1:] {
		for k, v := range common {
			if a.GetLabels()[k] != v {
				delete(common, k)
			}
		}
	}
	if common == nil {
		common = map[string]string{}
	}
	return common
}

// pairsRef returns the escaped labels of m that keep selects, sorted by name,
// or nil when it selects none.
func pairsRef(m map[string]string, keep func(string) bool) []Pair {
	var buf [16]string // most label sets fit, without a heap allocation
	keys := buf[:0]
	for k := range m {
		if keep(k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	out := make([]Pair, len(keys))
	for i, k := range keys {
		out[i] = Pair{Name: escapeCode(shorten(k, capLabel)), Value: escapeCode(shorten(m[k], capLabel))}
	}
	return out
}

func FuzzEscapeProseSame(f *testing.F) {
	for _, s := range oddStrings {
		f.Add(s, 10, false)
	}
	f.Add("plain text that is long", 5, true)
	f.Fuzz(func(t *testing.T, s string, max int, multiline bool) {
		max = max%300 + 1
		if max < 1 {
			max += 300
		}
		if got, want := escapeProse(s, max, multiline), escapeTextRef(shortenRef(cleanRef(s, multiline), max), multiline); got != want {
			t.Fatalf("escapeProse(%q, %d, %v) = %q, want %q", s, max, multiline, got, want)
		}
	})
}
