// Package message is the one model every sink renders a notification from:
// the data its templates see (Data, DigestData), one table of severity
// emoji and colours, and the text rules every output shares (control and
// bidirectional characters dropped, lengths counted in UTF-16 units, only
// absolute http(s) links). What differs between sinks is the escaping of
// outside text for the output's syntax, an Escaper, and how the rendered
// parts are put on the wire.
package message

import (
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/severity"
	"github.com/herald-notify/herald/sinks"
)

// Data is what a sink's templates see of one notification. Prose (Title,
// Summary, Description, Source, Receiver, Route, FallbackFrom,
// FallbackReason, AlertData.Summary) has gone through the Escaper's Text,
// label names and values through its Code, and URLs are absolute http(s)
// URLs passed through its URL. Mention is the operator's own config.
type Data struct {
	// ID is herald's id of the notification; GroupKey its group.
	ID       string
	GroupKey string
	// Status is "firing" or "resolved"; Firing and Resolved say the same
	// as booleans. StatusText is what people read: "FIRING" or
	// "RESOLVED", and "INFO" for an info event without alerts (published
	// by a service, not Alertmanager).
	Status     string
	StatusText string
	Firing     bool
	Resolved   bool
	// Severity is "critical", "warning", "info" or "".
	Severity string
	// Emoji stands for the status and severity: 🔴 🟠 🔵 ⚪ while firing,
	// ✅ once resolved. Color is the matching hex colour.
	Emoji string
	Color string
	// Mention is the configured mention for the severity, set only when
	// Options.Mention asks for it and the notification fires.
	Mention string
	// Title is the notification's title, or its alertname.
	Title string
	// Summary is the notification's text or summary annotation (several
	// lines allowed); Description its description annotation, when it
	// says something else.
	Summary     string
	Description string
	// Source is who sent it ("alertmanager", a service); Receiver the
	// Alertmanager receiver; Route the herald route that matched.
	Source   string
	Receiver string
	Route    string
	// StartsAt is when the earliest alert started; EndsAt when the last one
	// ended (resolved only). Both "2006-01-02 15:04 UTC", or "".
	StartsAt string
	EndsAt   string
	// AlertCount counts all alerts of the notification, including those
	// Alertmanager left out; FiringCount and ResolvedCount split it.
	AlertCount    int
	FiringCount   int
	ResolvedCount int
	// CommonLabels are the labels every alert shares, without alertname
	// and severity, sorted by name.
	CommonLabels []Pair
	// Alerts are the alerts shown, each with the labels that differ.
	// MoreAlerts counts those not shown (past Options.MaxAlerts, or left
	// out by Alertmanager, or by the sink to fit its size limit); MoreURL,
	// when set, shows them all.
	Alerts     []AlertData
	MoreAlerts int
	MoreURL    string
	// Links are the notification's links.
	Links Links
	// Reply is set when the message is a thread reply; Update when it
	// replaces the group's existing message.
	Reply  bool
	Update bool
	// Reminder counts, from 1, Alertmanager's repeats of what the group's
	// message already says (sinks.Target.Reminder); 0 when the
	// notification changes something.
	Reminder int
	// FallbackFrom and FallbackReason say why this sink got the
	// notification instead of the first sink of its chain.
	FallbackFrom   string
	FallbackReason string
}

// Pair is one label.
type Pair struct {
	Name  string
	Value string
}

// AlertData is one alert of a notification.
type AlertData struct {
	// Status is "firing" or "resolved"; Firing and Resolved say the same.
	Status   string
	Firing   bool
	Resolved bool
	// Name is what the alert is called on one line: its own summary
	// annotation, else its alertname, else the notification's title.
	Name string
	// Emoji is the alert's own status emoji.
	Emoji string
	// Labels are the alert's labels that not every alert of the
	// notification shares, sorted by name.
	Labels []Pair
	// Summary is the alert's summary annotation on one line, shortened;
	// when that is the notification's Summary (shown once there) or
	// missing, the alert's own description instead (its values), unless
	// that too is the notification's.
	Summary  string
	StartsAt string
	EndsAt   string
	// URL is the alert's generator URL (the source graph).
	URL string
	// Dashboard and Runbook are the alert's own dashboard_url and
	// runbook_url annotations, set only when the notification's alerts
	// link to different ones: then the notification's Links leave them
	// out, since one of them would stand for every alert.
	Dashboard string
	Runbook   string
}

// Links are safe http(s) URLs, or "".
type Links struct {
	Generator string
	Silence   string
	Runbook   string
	Dashboard string
}

// DigestData is what a digest template sees: several notifications merged
// into one message because the sink's rate limit was reached. Items have
// the fields of Data; their Summary is one shortened line.
type DigestData struct {
	// Count is the number of notifications in the digest.
	Count int
	// Items are those shown; More counts those left out.
	Items []Data
	More  int
	// Mention is the configured mention of the most severe firing item.
	Mention string
	// Color is the colour of the most severe firing item, or resolved's.
	Color string
	// From and To are when the first and the last item were received,
	// "2006-01-02 15:04 UTC", or "" when unknown.
	From, To string
}

// Escaper makes outside text safe in one output syntax.
type Escaper interface {
	// Text makes prose inert: it can mention no one and form no link or
	// markup, alone or with the template's characters around it. The text
	// has no control characters; multiline says it may keep line breaks.
	Text(s string, multiline bool) string
	// Code makes s safe inside the syntax's inline code span.
	Code(s string) string
	// URL makes an absolute http(s) URL safe where the syntax puts links.
	URL(u string) string
}

// Plain leaves text as it is, for outputs that escape on their own: an
// html/template, a JSON encoder.
var Plain Escaper = plain{}

type plain struct{}

func (plain) Text(s string, _ bool) string { return s }
func (plain) Code(s string) string         { return s }
func (plain) URL(u string) string          { return u }

// Options say how a notification is rendered.
type Options struct {
	// Escape is the output's escaping; nil means Plain.
	Escape Escaper
	// Mentions maps severity names ("critical", "warning", "info") to the
	// sink's configured mention.
	Mentions map[string]string
	// Mention puts the mention on a firing notification.
	Mention bool
	// Reply and Update say the message is a thread reply, or the edit of
	// the group's message.
	Reply, Update bool
	// MaxAlerts is the most alerts Data lists; zero means DefaultMaxAlerts.
	MaxAlerts int
	// Time shows a time in the output's syntax; nil means TimeLayout in
	// UTC.
	Time func(time.Time) string
}

// DefaultMaxAlerts is the most alerts a message lists unless
// Options.MaxAlerts says otherwise: a reader takes in a few dozen lines at
// most; the rest is counted and reached through MoreURL.
const DefaultMaxAlerts = 25

// Caps of single fields, in UTF-16 units, before a sink fits the whole
// message under its own limit.
const (
	CapTitle        = 250
	CapSummary      = 1000
	CapDescription  = 2000
	CapAlertSummary = 160
	CapLabel        = 120
	CapDigestLine   = 160
)

// TimeLayout is how Data shows times.
const TimeLayout = "2006-01-02 15:04 UTC"

var (
	emoji = map[string]string{"critical": "🔴", "warning": "🟠", "info": "🔵", "": "⚪"}
	color = map[string]string{"critical": "#d0021b", "warning": "#f5a623", "info": "#4a90e2", "": "#9b9b9b"}
	rank  = map[string]int{"critical": 3, "warning": 2, "info": 1, "": 0}
)

const (
	resolvedEmoji = "✅"
	resolvedColor = "#2ea44f"
)

// Emoji is the emoji of a severity name while firing, ✅ once resolved.
func Emoji(sev string, resolved bool) string {
	if resolved {
		return resolvedEmoji
	}
	return emoji[sev]
}

// Color is the hex colour of a severity name while firing, green once
// resolved.
func Color(sev string, resolved bool) string {
	if resolved {
		return resolvedColor
	}
	return color[sev]
}

// Rank orders severity names: critical 3, warning 2, info 1, other 0.
func Rank(sev string) int { return rank[sev] }

// New builds the data of n for a delivery to to.
func New(n *heraldv1.Notification, to sinks.Target, o Options) Data {
	esc := o.Escape
	if esc == nil {
		esc = Plain
	}
	maxAlerts := o.MaxAlerts
	if maxAlerts <= 0 {
		maxAlerts = DefaultMaxAlerts
	}
	text := func(s string, max int, multiline bool) string {
		return Fit(Clean(s, multiline), max, func(s string) string { return esc.Text(s, multiline) })
	}
	show := o.Time
	if show == nil {
		show = func(t time.Time) string { return t.UTC().Format(TimeLayout) }
	}
	sev := severity.Name(n.GetSeverity())
	resolved := n.GetStatus() == heraldv1.Status_STATUS_RESOLVED
	d := Data{
		ID: n.GetId(), GroupKey: n.GetGroupKey(),
		Status: "firing", StatusText: "FIRING", Firing: true,
		Severity: sev, Emoji: Emoji(sev, resolved), Color: Color(sev, resolved),
		Source:         text(n.GetSource(), CapLabel, false),
		Receiver:       text(n.GetReceiver(), CapLabel, false),
		Route:          text(to.Route, CapLabel, false),
		Reply:          o.Reply,
		Update:         o.Update,
		Reminder:       to.Reminder,
		FallbackFrom:   text(to.FallbackFrom, CapLabel, false),
		FallbackReason: text(to.FallbackReason, CapAlertSummary, false),
	}
	switch {
	case resolved:
		d.Status, d.StatusText, d.Firing, d.Resolved = "resolved", "RESOLVED", false, true
	case sev == "info" && len(n.GetAlerts()) == 0:
		// An event a service published (a deploy, a job that finished)
		// fires nothing: it reads as what it is.
		d.StatusText = "INFO"
	}
	if o.Mention && d.Firing {
		d.Mention = o.Mentions[sev]
	}
	alerts := n.GetAlerts()
	d.Title = text(Title(n), CapTitle, false)

	summary := firstNonEmpty(n.GetText(), n.GetAnnotations()["summary"])
	desc := n.GetAnnotations()["description"]
	if len(alerts) == 1 {
		summary = firstNonEmpty(summary, alerts[0].GetAnnotations()["summary"])
		desc = firstNonEmpty(desc, alerts[0].GetAnnotations()["description"])
	}
	d.Summary = text(summary, CapSummary, true)
	if desc != summary {
		d.Description = text(desc, CapDescription, true)
	}

	d.Links = links(n, esc)
	d.MoreURL = firstNonEmpty(SafeURL(n.GetExternalUrl(), esc), d.Links.Generator)

	common := commonLabels(alerts)
	if len(alerts) == 0 {
		common = n.GetLabels()
	}
	d.CommonLabels = pairs(common, esc, func(k string) bool { return k != "alertname" && k != "severity" })

	var start, end time.Time
	// Firing first, each part in the order the sender gave.
	alerts = slices.Clone(alerts)
	slices.SortStableFunc(alerts, func(a, b *heraldv1.Alert) int {
		return cmpBool(a.GetStatus() == heraldv1.Status_STATUS_RESOLVED, b.GetStatus() == heraldv1.Status_STATUS_RESOLVED)
	})
	for i, a := range alerts {
		if a.GetStatus() == heraldv1.Status_STATUS_RESOLVED {
			d.ResolvedCount++
		} else {
			d.FiringCount++
		}
		if t, ok := alertTime(a.GetStartsAt()); ok && (start.IsZero() || t.Before(start)) {
			start = t
		}
		if t, ok := alertTime(a.GetEndsAt()); ok && t.After(end) {
			end = t
		}
		if i >= maxAlerts {
			d.MoreAlerts++
			continue
		}
		ad := alertData(a, Emoji(sev, false), common, esc, show)
		own := a.GetAnnotations()["summary"]
		if strings.TrimSpace(own) == strings.TrimSpace(summary) {
			// Each fact once: a summary every alert shares is the
			// notification's, shown there.
			own, ad.Summary = "", ""
		}
		if ad.Summary == "" {
			// The values people act on are often in the description
			// ("/var on db-1 is 98.2% full"): an alert without a summary
			// of its own shows its own description, unless it is the
			// notification's, shown there.
			if od := strings.TrimSpace(a.GetAnnotations()["description"]); od != "" && od != strings.TrimSpace(desc) {
				ad.Summary = Fit(Clean(od, false), CapAlertSummary, func(s string) string { return esc.Text(s, false) })
			}
		}
		ad.Name = text(firstNonEmpty(own, a.GetLabels()["alertname"], Title(n)), CapAlertSummary, false)
		d.Alerts = append(d.Alerts, ad)
	}
	perAlertLinks(&d, alerts, esc)
	if !start.IsZero() {
		d.StartsAt = show(start)
	}
	if !end.IsZero() {
		d.EndsAt = show(end)
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

// NewDigest builds the digest of ns, listing the first shown of them
// (every one when shown is negative). Items carry no mention: the digest's
// Mention is that of its most severe firing item.
func NewDigest(ns []*heraldv1.Notification, to sinks.Target, o Options, shown int) DigestData {
	if shown < 0 {
		shown = len(ns)
	}
	dd := DigestData{Count: len(ns), Color: resolvedColor}
	o.Mention, o.Reply, o.Update = true, false, false
	bestMention, bestColor := -1, -1
	var first, last time.Time
	for i, n := range ns {
		d := New(n, to, o)
		if d.Mention != "" && rank[d.Severity] > bestMention {
			dd.Mention, bestMention = d.Mention, rank[d.Severity]
		}
		if d.Firing && rank[d.Severity] > bestColor {
			dd.Color, bestColor = d.Color, rank[d.Severity]
		}
		if t, ok := alertTime(n.GetReceivedAt()); ok {
			if first.IsZero() || t.Before(first) {
				first = t
			}
			if t.After(last) {
				last = t
			}
		}
		if i < shown {
			d.Mention = ""
			d.Summary = Shorten(strings.ReplaceAll(d.Summary, "\n", " "), CapDigestLine)
			dd.Items = append(dd.Items, d)
		}
	}
	if !first.IsZero() {
		dd.From, dd.To = first.UTC().Format(TimeLayout), last.UTC().Format(TimeLayout)
	}
	dd.More = len(ns) - len(dd.Items)
	return dd
}

// Title is the notification's title, else the alertname of the group or of
// its first alert.
func Title(n *heraldv1.Notification) string {
	if t := n.GetTitle(); t != "" {
		return t
	}
	if t := n.GetLabels()["alertname"]; t != "" {
		return t
	}
	if alerts := n.GetAlerts(); len(alerts) > 0 {
		if t := alerts[0].GetLabels()["alertname"]; t != "" {
			return t
		}
	}
	return "(no title)"
}

// links are n's links that are safe; a group of one alert without a
// generator link gets its alert's.
func links(n *heraldv1.Notification, esc Escaper) Links {
	l := n.GetLinks()
	out := Links{
		Generator: SafeURL(l.GetGenerator(), esc),
		Silence:   SafeURL(l.GetSilence(), esc),
		Runbook:   SafeURL(l.GetRunbook(), esc),
		Dashboard: SafeURL(l.GetDashboard(), esc),
	}
	if alerts := n.GetAlerts(); out.Generator == "" && len(alerts) == 1 {
		out.Generator = SafeURL(alerts[0].GetGeneratorUrl(), esc)
	}
	return out
}

// perAlertLinks gives each shown alert its own dashboard and runbook link
// when the alerts link to different ones, and takes that link off the
// notification's Links, which showed the first alert's for all.
func perAlertLinks(d *Data, alerts []*heraldv1.Alert, esc Escaper) {
	for _, l := range []struct {
		annotation string
		group      *string
		set        func(*AlertData, string)
	}{
		{"dashboard_url", &d.Links.Dashboard, func(a *AlertData, u string) { a.Dashboard = u }},
		{"runbook_url", &d.Links.Runbook, func(a *AlertData, u string) { a.Runbook = u }},
	} {
		urls := map[string]bool{}
		for _, a := range alerts {
			if u := SafeURL(a.GetAnnotations()[l.annotation], esc); u != "" {
				urls[u] = true
			}
		}
		if len(urls) < 2 {
			continue
		}
		*l.group = ""
		for i := range d.Alerts {
			l.set(&d.Alerts[i], SafeURL(alerts[i].GetAnnotations()[l.annotation], esc))
		}
	}
}

// alertData is one shown alert, with the labels that not every alert has
// (those not in common); firingEmoji stands for it while it fires.
func alertData(a *heraldv1.Alert, firingEmoji string, common map[string]string, esc Escaper, show func(time.Time) string) AlertData {
	ad := AlertData{Status: "firing", Firing: true, Emoji: firingEmoji}
	if a.GetStatus() == heraldv1.Status_STATUS_RESOLVED {
		ad = AlertData{Status: "resolved", Resolved: true, Emoji: resolvedEmoji}
	}
	if t, ok := alertTime(a.GetStartsAt()); ok {
		ad.StartsAt = show(t)
	}
	if t, ok := alertTime(a.GetEndsAt()); ok {
		ad.EndsAt = show(t)
	}
	ad.Labels = pairs(a.GetLabels(), esc, func(k string) bool { _, ok := common[k]; return !ok })
	ad.Summary = Fit(Clean(a.GetAnnotations()["summary"], false), CapAlertSummary, func(s string) string { return esc.Text(s, false) })
	ad.URL = SafeURL(a.GetGeneratorUrl(), esc)
	return ad
}

// alertTime is t and whether it is set: valid and after 1970.
func alertTime(t *timestamppb.Timestamp) (time.Time, bool) {
	if !t.IsValid() {
		return time.Time{}, false
	}
	at := t.AsTime()
	return at, at.Unix() > 0
}

// commonLabels returns the labels that every alert has with the same value
// (a missing label counts as "").
func commonLabels(alerts []*heraldv1.Alert) map[string]string {
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
	return common
}

// pairs returns the labels of m that keep selects, sorted by name, cleaned,
// shortened and escaped for a code span.
func pairs(m map[string]string, esc Escaper, keep func(string) bool) []Pair {
	var out []Pair
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if keep(k) {
			out = append(out, Pair{
				Name:  Fit(Clean(k, false), CapLabel, esc.Code),
				Value: Fit(Clean(m[k], false), CapLabel, esc.Code),
			})
		}
	}
	return out
}

// SafeURL returns u through esc when it is an absolute http(s) URL without
// credentials, and "" otherwise.
func SafeURL(u string, esc Escaper) string {
	p, err := url.Parse(strings.TrimSpace(u))
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return ""
	}
	if p.User != nil || strings.ContainsAny(p.Host, "@ <>|`\"") {
		return ""
	}
	return esc.URL(p.String())
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}

// Sample is a notification to try a user's template on when the config is
// checked, so that a template that refers to a field that does not exist
// fails then rather than at 3 a.m.
func Sample() *heraldv1.Notification {
	return &heraldv1.Notification{
		Id: "sample", GroupKey: "sample", Source: "alertmanager", Severity: heraldv1.Severity_SEVERITY_WARNING,
		Status: heraldv1.Status_STATUS_FIRING, Title: "Sample", Text: "sample summary",
		Alerts: []*heraldv1.Alert{
			{Status: heraldv1.Status_STATUS_FIRING, Labels: map[string]string{"alertname": "Sample", "instance": "a"}},
			{Status: heraldv1.Status_STATUS_RESOLVED, Labels: map[string]string{"alertname": "Sample", "instance": "b"}},
		},
		Links: &heraldv1.Links{Generator: "http://prometheus.example/graph"},
	}
}
