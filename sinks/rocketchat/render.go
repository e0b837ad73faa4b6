package rocketchat

import (
	"embed"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/template"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
)

//go:embed templates/default.tmpl
var templateFS embed.FS

// defaultTemplates holds "text", "attachment" and "digest".
var defaultTemplates = template.Must(template.New("default.tmpl").ParseFS(templateFS, "templates/default.tmpl"))

// ParseTemplateFile parses a template file over the defaults: the file
// must redefine one or more of "text", "attachment" and "digest" (see
// sinks.ParseTemplateFile), and render the sample notifications without
// error. Its errors name the file and the line. check-config calls it
// through Config.Validate.
func ParseTemplateFile(path string) (*template.Template, error) {
	t, err := sinks.ParseTemplateFile(defaultTemplates, path, "text", "attachment", "digest")
	if err != nil {
		return nil, err
	}
	// Execute once on a sample, so a template that refers to a field that
	// does not exist fails here rather than at 3 a.m.
	r := &renderer{max: DefaultMaxMessageSize}
	sample := sampleNotification()
	if _, err := r.execute(t, "text", r.data(sample, renderOpts{})); err != nil {
		return nil, err
	}
	if _, err := r.execute(t, "attachment", r.data(sample, renderOpts{})); err != nil {
		return nil, err
	}
	if _, err := r.execute(t, "digest", r.digestData([]*heraldv1.Notification{sample, sample}, 2)); err != nil {
		return nil, err
	}
	return t, nil
}

// Data is what the "text" and "attachment" templates see: one notification.
// Every string is already escaped for Rocket.Chat: prose (Title, Summary,
// Description, Alert.Summary, FallbackReason, Source, Receiver) is inert
// markdown that cannot mention anyone, form a link, an emoji or any other
// markup, alone or with the template's characters around it; Pair names and
// values are safe inside a single-backtick `code span`, and only there;
// URLs are absolute http(s) URLs safe inside [title](url). Mention is the
// operator's own config.
type Data struct {
	// Status is "firing" or "resolved"; StatusText is "FIRING" or
	// "RESOLVED"; Firing and Resolved say the same as booleans.
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
	// Mention is the configured mention for the severity, set only on a
	// firing notification's new message or thread reply.
	Mention string
	// Title is the notification's title, or its alertname.
	Title string
	// Summary is the notification's text or summary annotation (several
	// lines allowed); Description its description annotation.
	Summary     string
	Description string
	// Source is who sent it ("alertmanager", a service); Receiver the
	// Alertmanager receiver.
	Source   string
	Receiver string
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
	// MoreAlerts counts those left out to stay under the size limit (or by
	// Alertmanager); MoreURL, when set, shows them all.
	Alerts     []AlertData
	MoreAlerts int
	MoreURL    string
	// Links are the notification's links, also shown as buttons.
	Links Links
	// Reply is set when the message is a thread reply; Update when the text
	// replaces the text of the group's existing message.
	Reply  bool
	Update bool
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
	Status string
	Firing bool
	// Emoji is the alert's own status emoji.
	Emoji string
	// Labels are the alert's labels that not every alert of the
	// notification shares, sorted by name.
	Labels []Pair
	// Summary is the alert's summary annotation on one line, shortened.
	Summary  string
	StartsAt string
	EndsAt   string
	// URL is the alert's generator URL (the source graph).
	URL string
}

// Links are safe http(s) URLs, or "".
type Links struct {
	Generator string
	Silence   string
	Runbook   string
	Dashboard string
}

// DigestData is what the "digest" template sees: several notifications
// merged into one message because the channel's rate limit was reached.
// Items have the fields of Data; their Summary is one shortened line.
type DigestData struct {
	// Count is the number of notifications in the digest.
	Count int
	// Items are those shown; More counts those left out for size.
	Items []Data
	More  int
	// Mention is the configured mention of the most severe firing item.
	Mention string
}

// renderOpts says in which role a notification is rendered.
type renderOpts struct {
	reply, update bool
	// mention puts the configured mention on a firing notification.
	mention                      bool
	fallbackFrom, fallbackReason string
}

// rendered is a message ready to send.
type rendered struct {
	Text        string       `json:"text"`
	Attachments []Attachment `json:"attachments,omitempty"`
}

// renderer turns notifications into messages of at most max UTF-16 units.
type renderer struct {
	max      int
	mentions map[string]string
}

// Size caps of single fields, in UTF-16 units, before the whole message is
// fitted under the limit.
const (
	capTitle        = 250
	capSummary      = 1000
	capDescription  = 2000
	capAlertSummary = 160
	capLabel        = 120
	capDigestLine   = 160
	// maxShownAlerts is the most alerts one message lists.
	maxShownAlerts = 25
)

var (
	severityName = map[heraldv1.Severity]string{
		heraldv1.Severity_SEVERITY_CRITICAL: "critical",
		heraldv1.Severity_SEVERITY_WARNING:  "warning",
		heraldv1.Severity_SEVERITY_INFO:     "info",
	}
	severityEmoji = map[string]string{"critical": "🔴", "warning": "🟠", "info": "🔵", "": "⚪"}
	severityColor = map[string]string{"critical": "#d0021b", "warning": "#f5a623", "info": "#4a90e2", "": "#9b9b9b"}
	severityRank  = map[string]int{"critical": 3, "warning": 2, "info": 1, "": 0}
)

const (
	resolvedEmoji = "✅"
	resolvedColor = "#2ea44f"
	timeLayout    = "2006-01-02 15:04 UTC"
)

// data builds the template data of n.
func (r *renderer) data(n *heraldv1.Notification, o renderOpts) Data {
	sev := severityName[n.GetSeverity()]
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
	if n.GetStatus() == heraldv1.Status_STATUS_RESOLVED {
		d.Status, d.StatusText, d.Firing, d.Resolved = "resolved", "RESOLVED", false, true
		d.Emoji, d.Color = resolvedEmoji, resolvedColor
	}
	if o.mention && d.Firing && r.mentions != nil {
		d.Mention = r.mentions[sev]
	}
	alerts := n.GetAlerts()
	d.Title = escapeProse(title(n), capTitle, false)

	summary := firstNonEmpty(n.GetText(), n.GetAnnotations()["summary"])
	desc := n.GetAnnotations()["description"]
	if len(alerts) == 1 {
		summary = firstNonEmpty(summary, alerts[0].GetAnnotations()["summary"])
		desc = firstNonEmpty(desc, alerts[0].GetAnnotations()["description"])
	}
	d.Summary = escapeProse(summary, capSummary, true)
	if desc != summary {
		d.Description = escapeProse(desc, capDescription, true)
	}

	d.Links = links(n)
	d.MoreURL = firstNonEmpty(safeURL(n.GetExternalUrl()), d.Links.Generator)

	common := commonLabels(alerts)
	if len(alerts) == 0 {
		common = n.GetLabels()
	}
	d.CommonLabels = pairs(common, func(k string) bool { return k != "alertname" && k != "severity" })

	var start, end time.Time
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
		if i >= maxShownAlerts {
			// A reader takes in a few dozen lines at most; the rest is
			// counted, and reached through MoreURL.
			d.MoreAlerts++
			continue
		}
		d.Alerts = append(d.Alerts, alertData(a, severityEmoji[sev], common))
	}
	if !start.IsZero() {
		d.StartsAt = start.UTC().Format(timeLayout)
	}
	if !end.IsZero() {
		d.EndsAt = end.UTC().Format(timeLayout)
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

// title is the notification's title, else the alertname of the group or of
// its first alert.
func title(n *heraldv1.Notification) string {
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

// links are n's links that safeURL keeps; a group of one alert without a
// generator link gets its alert's.
func links(n *heraldv1.Notification) Links {
	l := n.GetLinks()
	out := Links{
		Generator: safeURL(l.GetGenerator()),
		Silence:   safeURL(l.GetSilence()),
		Runbook:   safeURL(l.GetRunbook()),
		Dashboard: safeURL(l.GetDashboard()),
	}
	if alerts := n.GetAlerts(); out.Generator == "" && len(alerts) == 1 {
		out.Generator = safeURL(alerts[0].GetGeneratorUrl())
	}
	return out
}

// alertData is one shown alert, with the labels that not every alert has
// (those not in common); firingEmoji stands for it while it fires.
func alertData(a *heraldv1.Alert, firingEmoji string, common map[string]string) AlertData {
	ad := AlertData{Status: "firing", Firing: true, Emoji: firingEmoji}
	if a.GetStatus() == heraldv1.Status_STATUS_RESOLVED {
		ad = AlertData{Status: "resolved", Emoji: resolvedEmoji}
	}
	if t, ok := alertTime(a.GetStartsAt()); ok {
		ad.StartsAt = t.UTC().Format(timeLayout)
	}
	if t, ok := alertTime(a.GetEndsAt()); ok {
		ad.EndsAt = t.UTC().Format(timeLayout)
	}
	ad.Labels = pairs(a.GetLabels(), func(k string) bool { _, ok := common[k]; return !ok })
	ad.Summary = escapeProse(a.GetAnnotations()["summary"], capAlertSummary, false)
	ad.URL = safeURL(a.GetGeneratorUrl())
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

// pairs returns the labels of m that keep selects, sorted by name and
// escaped for a code span.
func pairs(m map[string]string, keep func(string) bool) []Pair {
	var out []Pair
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if keep(k) {
			out = append(out, Pair{Name: escapeCode(shorten(k, capLabel)), Value: escapeCode(shorten(m[k], capLabel))})
		}
	}
	return out
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}

// execute runs one named template.
func (r *renderer) execute(t *template.Template, name string, data any) (string, error) {
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, name, data); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

// render renders n as one message that fits the size limit: alerts are left
// out from the end ("+N more alerts") until the text fits, and as a last
// resort the text is cut. It falls back to the default templates when t
// fails, and never fails itself.
func (r *renderer) render(t *template.Template, n *heraldv1.Notification, o renderOpts) (rendered, error) {
	d := r.data(n, o)
	text, err := r.fitText(t, d)
	if err != nil && t != defaultTemplates {
		msg, _ := r.render(defaultTemplates, n, o)
		return msg, err
	}
	att := Attachment{Color: d.Color, Actions: buttons(d.Links), ButtonAlignment: "horizontal"}
	if len(att.Actions) == 0 {
		att.ButtonAlignment = ""
	}
	if at, aerr := r.execute(t, "attachment", d); aerr == nil {
		att.Text = r.cut(at)
	} else if err == nil {
		err = aerr
	}
	return rendered{Text: text, Attachments: []Attachment{att}}, err
}

// fitText executes "text" with as many alerts as fit.
func (r *renderer) fitText(t *template.Template, d Data) (string, error) {
	text, err := r.execute(t, "text", d)
	if err != nil {
		return r.cut(d.Emoji + " " + d.StatusText + " · " + d.Title), err
	}
	if utf16Len(text) <= r.max || len(d.Alerts) == 0 {
		return r.cut(text), nil
	}
	all := d.Alerts
	extra := d.MoreAlerts
	// The largest k whose text fits; k = 0 always "fits" by this search.
	k := sort.Search(len(all), func(k int) bool {
		d.Alerts, d.MoreAlerts = all[:k+1], extra+len(all)-(k+1)
		s, err := r.execute(t, "text", d)
		return err != nil || utf16Len(s) > r.max
	})
	d.Alerts, d.MoreAlerts = all[:k], extra+len(all)-k
	text, err = r.execute(t, "text", d)
	return r.cut(text), err
}

// truncMark ends a text that had to be cut.
const truncMark = "\n_… message shortened_"

// cut shortens s to the size limit, marking the cut. It never cuts inside
// a code span, which would show the rest of a label as markdown: escaped
// text has no backtick, so an odd number of them before the cut means that
// the last one opened a span, and the cut moves before it.
func (r *renderer) cut(s string) string {
	if utf16Len(s) <= r.max {
		return s
	}
	kept := cutUTF16(s, r.max-utf16Len(truncMark))
	if strings.Count(kept, "`")%2 == 1 {
		kept = kept[:strings.LastIndexByte(kept, '`')]
	}
	return strings.TrimRight(kept, " \n") + truncMark
}

// buttons are the attachment actions for the notification's links.
func buttons(l Links) []Action {
	var out []Action
	add := func(text, u string) {
		if u != "" {
			out = append(out, Action{Type: "button", Text: text, URL: u})
		}
	}
	add("📈 Graph", l.Generator)
	add("🔕 Silence", l.Silence)
	add("📖 Runbook", l.Runbook)
	add("📊 Dashboard", l.Dashboard)
	return out
}

// digestData builds the digest of ns with the first shown items.
func (r *renderer) digestData(ns []*heraldv1.Notification, shown int) DigestData {
	dd := DigestData{Count: len(ns)}
	best := -1
	for i, n := range ns {
		d := r.data(n, renderOpts{mention: true})
		if d.Mention != "" && severityRank[d.Severity] > best {
			dd.Mention, best = d.Mention, severityRank[d.Severity]
		}
		if i < shown {
			d.Mention = ""
			d.Summary = shorten(strings.ReplaceAll(d.Summary, "\n", " "), capDigestLine)
			dd.Items = append(dd.Items, d)
		}
	}
	dd.More = len(ns) - len(dd.Items)
	return dd
}

// renderDigest renders ns as one digest message under the size limit.
func (r *renderer) renderDigest(t *template.Template, ns []*heraldv1.Notification) (rendered, error) {
	exec := func(k int) (string, error) { return r.execute(t, "digest", r.digestData(ns, k)) }
	text, err := exec(len(ns))
	if err != nil {
		if t != defaultTemplates {
			msg, _ := r.renderDigest(defaultTemplates, ns)
			return msg, err
		}
		return rendered{Text: r.cut(fmt.Sprintf("%d notifications", len(ns)))}, err
	}
	if utf16Len(text) > r.max {
		k := sort.Search(len(ns), func(k int) bool {
			s, err := exec(k + 1)
			return err != nil || utf16Len(s) > r.max
		})
		text, _ = exec(k)
	}
	color := resolvedColor
	best := -1
	for _, n := range ns {
		sev := severityName[n.GetSeverity()]
		if n.GetStatus() != heraldv1.Status_STATUS_RESOLVED && severityRank[sev] > best {
			color, best = severityColor[sev], severityRank[sev]
		}
	}
	return rendered{Text: r.cut(text), Attachments: []Attachment{{Color: color, Text: r.cut(digestFooter(ns))}}}, nil
}

// digestFooter says which span of time a digest covers.
func digestFooter(ns []*heraldv1.Notification) string {
	var first, last time.Time
	for _, n := range ns {
		t := n.GetReceivedAt().AsTime()
		if !n.GetReceivedAt().IsValid() || t.Unix() <= 0 {
			continue
		}
		if first.IsZero() || t.Before(first) {
			first = t
		}
		if t.After(last) {
			last = t
		}
	}
	if first.IsZero() {
		return ""
	}
	return "received " + first.UTC().Format(timeLayout) + " – " + last.UTC().Format(timeLayout)
}

// sampleNotification is what ParseTemplateFile renders to check a template.
func sampleNotification() *heraldv1.Notification {
	return &heraldv1.Notification{
		Id: "sample", Source: "alertmanager", Severity: heraldv1.Severity_SEVERITY_WARNING,
		Status: heraldv1.Status_STATUS_FIRING, Title: "Sample", Text: "sample summary",
		Alerts: []*heraldv1.Alert{
			{Status: heraldv1.Status_STATUS_FIRING, Labels: map[string]string{"alertname": "Sample", "instance": "a"}},
			{Status: heraldv1.Status_STATUS_RESOLVED, Labels: map[string]string{"alertname": "Sample", "instance": "b"}},
		},
		Links: &heraldv1.Links{Generator: "http://prometheus.example/graph"},
	}
}
