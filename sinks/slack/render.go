package slack

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/slack-go/slack"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
)

// MaxBlocks and MaxText are the most blocks and the longest text
// (characters) Slack takes in one message.
const (
	MaxBlocks = 50
	MaxText   = 40000
)

// Slack's Block Kit limits that Render keeps to. Lengths are counted in
// UTF-16 units, which is never less than Slack's own count.
const (
	maxBlocks      = MaxBlocks
	maxHeaderLen   = 150
	maxSectionLen  = 3000
	maxFields      = 10
	maxButtonText  = 75
	maxButtonURL   = 3000
	maxActionElems = 25

	// What Render itself allows, to stay readable.
	maxListedAlerts = 20
	maxAlertLine    = 400
	maxLabelKey     = 100
	maxLabelValue   = 300
	maxTextLen      = 300
	maxFallbackLen  = 200
)

// Data is what a Slack message is rendered from: the notification, reduced
// to what a reader needs, plus what the sink and the route add. Every string
// that came from outside is raw here; Render escapes it.
type Data struct {
	// n and to are what the template data (View) is built from.
	n  *heraldv1.Notification
	to sinks.Target

	Status   heraldv1.Status
	Severity heraldv1.Severity
	// Title is the notification's title, else its alertname label.
	Title string
	// Summary is the notification's text, else its summary or description
	// annotation.
	Summary string
	// Description is the description annotation, when it is not the
	// Summary already.
	Description string
	// Mention is the configured mention for this severity, in Slack syntax;
	// set only on firing notifications, and left out of the edits of a
	// parent message (an edit notifies no one). It is trusted (from the
	// config).
	Mention string
	// FiringCount and ResolvedCount count the alerts in each state.
	FiringCount, ResolvedCount int
	// CommonLabels are the notification's labels (the group's common labels
	// for Alertmanager), sorted by name, without alertname and severity.
	CommonLabels []Label
	// Alerts are the alerts listed, firing first.
	Alerts []AlertData
	// MoreAlerts counts the alerts that are not listed: past the listing limit,
	// or left out by Alertmanager (truncated_alerts).
	MoreAlerts int
	// Links are the buttons: graph, silence, runbook, dashboard.
	Links []Link
	// Source, Receiver and Route say where the notification came from.
	Source, Receiver, Route string
	// FallbackFrom and FallbackReason are set when Slack took the
	// notification because an earlier sink of the chain did not.
	FallbackFrom, FallbackReason string
}

// Label is one label name and value.
type Label struct{ Name, Value string }

// AlertData is one alert as listed in a message.
type AlertData struct {
	Status heraldv1.Status
	// Name is the alert's summary annotation, else its alertname.
	Name string
	// Labels are the alert's labels that are not common to the group.
	Labels []Label
	// StartsAt and EndsAt are Unix seconds, 0 when unknown.
	StartsAt, EndsAt int64
}

// Link is one link button.
type Link struct{ Text, URL string }

// NewData builds the render data of n for a delivery to target.
// mentions maps severity names to configured mentions.
func NewData(n *heraldv1.Notification, to sinks.Target, mentions map[string]string) Data {
	d := Data{
		n:              n,
		to:             to,
		Status:         n.GetStatus(),
		Severity:       n.GetSeverity(),
		Title:          n.GetTitle(),
		Summary:        n.GetText(),
		Source:         n.GetSource(),
		Receiver:       n.GetReceiver(),
		Route:          to.Route,
		FallbackFrom:   to.FallbackFrom,
		FallbackReason: to.FallbackReason,
	}
	if d.Title == "" {
		d.Title = cmp.Or(n.GetLabels()["alertname"], "Notification")
	}
	if d.Summary == "" {
		d.Summary = cmp.Or(n.GetAnnotations()["summary"], n.GetAnnotations()["description"])
	}
	if d.Status != heraldv1.Status_STATUS_RESOLVED {
		d.Mention = mentions[severityName(d.Severity)]
	}
	if desc := n.GetAnnotations()["description"]; desc != d.Summary {
		d.Description = desc
	}
	common := n.GetLabels()
	for _, k := range slices.Sorted(maps.Keys(common)) {
		// alertname is the title and severity has its own field.
		if k != "alertname" && k != "severity" {
			d.CommonLabels = append(d.CommonLabels, Label{k, common[k]})
		}
	}

	alerts := slices.Clone(n.GetAlerts())
	// Firing first, in the order Alertmanager gave; sort is stable.
	slices.SortStableFunc(alerts, func(a, b *heraldv1.Alert) int {
		return cmp.Compare(statusRank(a.GetStatus()), statusRank(b.GetStatus()))
	})
	for i, a := range alerts {
		if a.GetStatus() == heraldv1.Status_STATUS_RESOLVED {
			d.ResolvedCount++
		} else {
			d.FiringCount++
		}
		if i >= maxListedAlerts {
			d.MoreAlerts++
			continue
		}
		ad := AlertData{
			Status:   a.GetStatus(),
			Name:     cmp.Or(a.GetAnnotations()["summary"], a.GetLabels()["alertname"], d.Title),
			StartsAt: a.GetStartsAt().GetSeconds(),
			EndsAt:   a.GetEndsAt().GetSeconds(),
		}
		for _, k := range slices.Sorted(maps.Keys(a.GetLabels())) {
			v := a.GetLabels()[k]
			if cv, ok := common[k]; ok && cv == v {
				continue
			}
			ad.Labels = append(ad.Labels, Label{k, v})
		}
		d.Alerts = append(d.Alerts, ad)
	}
	d.MoreAlerts += int(n.GetTruncatedAlerts())

	l := n.GetLinks()
	generator := l.GetGenerator()
	if generator == "" && len(n.GetAlerts()) > 0 {
		generator = n.GetAlerts()[0].GetGeneratorUrl()
	}
	for _, link := range []Link{
		{"Graph", generator},
		{"Silence", l.GetSilence()},
		{"Runbook", cmp.Or(l.GetRunbook(), n.GetAnnotations()["runbook_url"])},
		{"Dashboard", cmp.Or(l.GetDashboard(), n.GetAnnotations()["dashboard_url"])},
	} {
		if link.URL != "" {
			d.Links = append(d.Links, link)
		}
	}
	return d
}

func statusRank(s heraldv1.Status) int {
	if s == heraldv1.Status_STATUS_RESOLVED {
		return 1
	}
	return 0
}

func severityName(s heraldv1.Severity) string {
	switch s {
	case heraldv1.Severity_SEVERITY_CRITICAL:
		return "critical"
	case heraldv1.Severity_SEVERITY_WARNING:
		return "warning"
	case heraldv1.Severity_SEVERITY_INFO:
		return "info"
	}
	return ""
}

// Message is a rendered Slack message.
type Message struct {
	// Text is the plain fallback shown in notifications and previews.
	Text   string        `json:"text"`
	Blocks []slack.Block `json:"blocks"`
}

// Style selects what a rendered message contains.
type Style int

const (
	// StyleParent is the group's message: header, summary, fields, alerts,
	// link buttons.
	StyleParent Style = iota
	// StyleReply is a thread reply: a status line and the alerts.
	StyleReply
)

// Render builds the Block Kit message for d with the default templates.
// It never fails: text from outside is escaped so it cannot mention anyone
// or inject links, and everything is clipped to Slack's limits, with
// "+N more" where something was left out.
func Render(d Data, style Style) Message {
	m, _ := RenderTemplate(defaultTemplates, d, style)
	return m
}

// RenderTemplate is Render with templates t (see ParseTemplateFile). A
// template that fails is replaced by its default; the error says which,
// and the message is still complete.
func RenderTemplate(t *template.Template, d Data, style Style) (Message, error) {
	v := newView(d)
	var errs []error
	run := func(name string, data any) string {
		out, err := execute(t, name, data)
		if err != nil {
			errs = append(errs, err)
			out, _ = execute(defaultTemplates, name, data)
		}
		return out
	}
	title := clipEscaped(run("title", v), maxHeaderLen)
	var blocks []slack.Block
	if style == StyleParent {
		blocks = append(blocks, slack.NewHeaderBlock(plain(title)))
		top := ""
		if d.Mention != "" {
			top = d.Mention + " "
		}
		// The mention is trusted and short; the summary gets the rest.
		top += clipEscaped(run("summary", v), maxSectionLen-units(top))
		if top = strings.TrimSpace(top); top != "" {
			blocks = append(blocks, slack.NewSectionBlock(mrkdwn(top), nil, nil))
		}
		if v.Description != "" {
			blocks = append(blocks, slack.NewSectionBlock(mrkdwn(v.Description), nil, nil))
		}
		blocks = append(blocks, slack.NewSectionBlock(nil, fields(d), nil))
	} else {
		s := "*" + title + "*"
		if d.Mention != "" {
			s = d.Mention + " " + s
		}
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(s), nil, nil))
	}

	lines := make([]string, 0, len(v.Alerts))
	for _, a := range v.Alerts {
		if line := clipEscaped(run("alert", a), maxAlertLine); line != "" {
			lines = append(lines, line)
		}
	}
	alertBlocks := sections(lines)
	// Leave room for the more, actions, footer and fallback blocks.
	if room := maxBlocks - len(blocks) - 4; len(alertBlocks) > room {
		alertBlocks = alertBlocks[:room]
	}
	blocks = append(blocks, alertBlocks...)
	if d.MoreAlerts > 0 {
		blocks = append(blocks, slack.NewContextBlock("", mrkdwn(fmt.Sprintf("+%d more alerts", d.MoreAlerts))))
	}
	if style == StyleParent {
		if b := buttons(d.Links); b != nil {
			blocks = append(blocks, b)
		}
	}
	if f := footer(d); len(f) > 0 {
		blocks = append(blocks, slack.NewContextBlock("", f...))
	}
	if line := fallbackLine(d); line != "" {
		blocks = append(blocks, slack.NewContextBlock("", mrkdwn(line)))
	}

	text := clipEscaped(run("text", v), maxHeaderLen+2+maxTextLen)
	if text == "" {
		text = title
	}
	if d.Mention != "" {
		text = d.Mention + " " + text
	}
	return Message{Text: text, Blocks: blocks}, errors.Join(errs...)
}

// RenderReminder builds the thread reply for a reminder (see
// sinks.Target.Reminder): the "reminder" template's one line, after the
// mention when d has one. A failing template is replaced by its default.
func RenderReminder(t *template.Template, d Data) (Message, error) {
	v := newView(d)
	line, err := execute(t, "reminder", v)
	if err != nil {
		line, _ = execute(defaultTemplates, "reminder", v)
	}
	line = clipEscaped(line, maxSectionLen-units(d.Mention)-1)
	if d.Mention != "" {
		line = d.Mention + " " + line
	}
	return Message{Text: line, Blocks: []slack.Block{slack.NewSectionBlock(mrkdwn(line), nil, nil)}}, err
}

// headline is the raw one-line state of the group, e.g.
// "🔴 [FIRING:3] HighErrorRate".
func headline(d Data) string {
	if d.Status == heraldv1.Status_STATUS_RESOLVED {
		return "✅ [RESOLVED] " + d.Title
	}
	if d.Severity == heraldv1.Severity_SEVERITY_INFO && len(d.Alerts) == 0 && d.MoreAlerts == 0 {
		// An event a service published fires nothing (as message.Data's
		// StatusText says).
		return severityEmoji(d.Severity) + " [INFO] " + d.Title
	}
	n := ""
	if d.FiringCount > 0 {
		n = ":" + strconv.Itoa(d.FiringCount)
	}
	return severityEmoji(d.Severity) + " [FIRING" + n + "] " + d.Title
}

func severityEmoji(s heraldv1.Severity) string {
	switch s {
	case heraldv1.Severity_SEVERITY_CRITICAL:
		return "🔴"
	case heraldv1.Severity_SEVERITY_WARNING:
		return "🟠"
	case heraldv1.Severity_SEVERITY_INFO:
		return "🔵"
	}
	return "⚪"
}

func fields(d Data) []*slack.TextBlockObject {
	status := "Firing"
	if d.Status == heraldv1.Status_STATUS_RESOLVED {
		status = "Resolved"
	}
	sev := cmp.Or(severityName(d.Severity), "unspecified")
	count := fmt.Sprintf("%d firing", d.FiringCount)
	if d.ResolvedCount > 0 {
		count += fmt.Sprintf(", %d resolved", d.ResolvedCount)
	}
	out := []*slack.TextBlockObject{
		mrkdwn("*Status*\n" + status),
		mrkdwn("*Severity*\n" + sev),
		mrkdwn("*Alerts*\n" + count),
	}
	labels := d.CommonLabels
	room := maxFields - len(out)
	if len(labels) > room {
		// The last field says how many labels did not fit.
		labels = labels[:room-1]
	}
	for _, l := range labels {
		out = append(out, mrkdwn("*"+clip(l.Name, maxLabelKey)+"*\n"+clip(l.Value, maxLabelValue)))
	}
	if rest := len(d.CommonLabels) - len(labels); rest > 0 {
		out = append(out, mrkdwn(fmt.Sprintf("+%d more labels", rest)))
	}
	return out
}

// sections packs lines into as few mrkdwn sections as Slack's limit allows.
func sections(lines []string) []slack.Block {
	var blocks []slack.Block
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			blocks = append(blocks, slack.NewSectionBlock(mrkdwn(cur.String()), nil, nil))
			cur.Reset()
		}
	}
	for _, line := range lines {
		if cur.Len() > 0 && units(cur.String())+1+units(line) > maxSectionLen {
			flush()
		}
		if cur.Len() > 0 {
			cur.WriteByte('\n')
		}
		cur.WriteString(line)
	}
	flush()
	return blocks
}

// slackDate shows a Unix time in the reader's own time zone, with a UTC
// fallback for clients that cannot.
func slackDate(sec int64) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", sec,
		timeUTC(sec))
}

func timeUTC(sec int64) string {
	return time.Unix(sec, 0).UTC().Format("2006-01-02 15:04 UTC")
}

func buttons(links []Link) slack.Block {
	var elems []slack.BlockElement
	for _, l := range links {
		u := urlEscaper.Replace(l.URL)
		if !linkable(u) || len(elems) == maxActionElems {
			continue
		}
		b := slack.NewButtonBlockElement("herald_"+strings.ToLower(l.Text), "", plain(clip(l.Text, maxButtonText)))
		b.URL = u
		elems = append(elems, b)
	}
	if len(elems) == 0 {
		return nil
	}
	return slack.NewActionBlock("", elems...)
}

// urlEscaper percent-encodes the characters that a URL may carry but that
// mean something to Slack's markup, so no URL can close or split a link.
var urlEscaper = strings.NewReplacer("<", "%3C", ">", "%3E", "|", "%7C", "\"", "%22", "`", "%60", " ", "%20")

// linkable reports whether Slack accepts u as a button URL. A URL it
// rejects would fail the whole message (invalid_blocks), so such links are
// left out instead.
func linkable(u string) bool {
	if len(u) > maxButtonURL || strings.ContainsFunc(u, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return false
	}
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != ""
}

func footer(d Data) []slack.MixedElement {
	var parts []string
	for _, p := range []struct{ k, v string }{{"source", d.Source}, {"receiver", d.Receiver}, {"route", d.Route}} {
		if p.v != "" {
			parts = append(parts, p.k+": "+clip(p.v, 100))
		}
	}
	if len(parts) == 0 {
		return nil
	}
	return []slack.MixedElement{mrkdwn(strings.Join(parts, " · "))}
}

// fallbackLine is the one line that tells readers why this is in Slack.
func fallbackLine(d Data) string {
	if d.FallbackReason == "" && d.FallbackFrom == "" {
		return ""
	}
	from := cmp.Or(d.FallbackFrom, "primary sink")
	line := "↪ via fallback: " + clip(from, 50) + " unavailable"
	if r := d.FallbackReason; r != "" && r != "unavailable" {
		line += " (" + clip(r, maxFallbackLen) + ")"
	}
	return line
}

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, true, false)
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

// escapeRune appends r to b as Slack needs it in text from outside: &, <
// and > as entities, so no <!channel>, <@U…> or <url|text> can form; an @
// that starts a word followed by a word joiner, so Slack-compatible servers
// that expand "@here" or "@all" do not; control characters and bidi
// overrides dropped.
func escapeRune(b *strings.Builder, r rune, prev rune) {
	switch r {
	case '&':
		b.WriteString("&amp;")
	case '<':
		b.WriteString("&lt;")
	case '>':
		b.WriteString("&gt;")
	case '@':
		b.WriteRune('@')
		if !unicode.IsLetter(prev) && !unicode.IsDigit(prev) {
			b.WriteRune('\u2060')
		}
	case '\n', '\t':
		b.WriteRune(r)
	default:
		if !unicode.IsControl(r) && !isBidiControl(r) {
			b.WriteRune(r)
		}
	}
}

// isBidiControl reports the embedding, override and isolate controls,
// which can make text display in an order other than it is read.
func isBidiControl(r rune) bool {
	return (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}

// Escape makes raw text from outside safe for mrkdwn and plain_text.
func Escape(raw string) string {
	var b strings.Builder
	var prev rune
	for _, r := range raw {
		escapeRune(&b, r, prev)
		prev = r
	}
	return b.String()
}

// clip escapes raw and cuts it to at most limit UTF-16 units, ending in
// "… (+N more)" when it had to cut, N counting the characters left out. Its
// work is bounded by limit, not by the length of raw, apart from counting
// runes.
func clip(raw string, limit int) string {
	if out, _, all := escapeWithin(raw, limit); all {
		return out
	}
	total := utf8.RuneCountInString(raw)
	// Reserve room for the longest suffix this text can get.
	reserve := units(moreSuffix(total))
	if reserve > limit {
		return ""
	}
	out, kept, _ := escapeWithin(raw, limit-reserve)
	return out + moreSuffix(total-kept)
}

// escapeWithin escapes the longest prefix of raw whose escaped form fits in
// limit units. kept counts the runes of raw it took; all reports whether
// that was all of raw.
func escapeWithin(raw string, limit int) (out string, kept int, all bool) {
	var b, one strings.Builder
	var prev rune
	used := 0
	for _, r := range raw {
		one.Reset()
		escapeRune(&one, r, prev)
		u := units(one.String())
		if used+u > limit {
			return b.String(), kept, false
		}
		b.WriteString(one.String())
		used += u
		kept++
		prev = r
	}
	return b.String(), kept, true
}

func moreSuffix(n int) string { return "… (+" + strconv.Itoa(n) + " more)" }

// units counts s in UTF-16 code units.
func units(s string) int {
	n := 0
	for _, r := range s {
		n += max(utf16.RuneLen(r), 1)
	}
	return n
}

// maxDigestItems is how many notifications a digest lists one per line.
const maxDigestItems = 40

// RenderDigest builds one message standing for several notifications, sent
// when a channel's pace is reached under backlog. Each notification gets
// one line; the configured mention of the most severe firing one is put
// once.
func RenderDigest(items []Data) Message {
	head := fmt.Sprintf("📬 %d notifications", len(items))
	blocks := []slack.Block{slack.NewHeaderBlock(plain(head))}
	mention, rank := "", 99
	lines := make([]string, 0, min(len(items), maxDigestItems))
	for i, d := range items {
		if d.Mention != "" && severityRank(d.Severity) < rank {
			mention, rank = d.Mention, severityRank(d.Severity)
		}
		if i >= maxDigestItems {
			continue
		}
		line := "*" + clip(headline(d), maxHeaderLen) + "*"
		if d.Summary != "" {
			line += " — " + clip(d.Summary, 150)
		}
		lines = append(lines, line)
	}
	if mention != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(mention), nil, nil))
	}
	var cur strings.Builder
	for _, l := range lines {
		if cur.Len() > 0 && units(cur.String())+1+units(l) > maxSectionLen {
			blocks = append(blocks, slack.NewSectionBlock(mrkdwn(cur.String()), nil, nil))
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte('\n')
		}
		cur.WriteString(l)
	}
	if cur.Len() > 0 {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(cur.String()), nil, nil))
	}
	ctx := []slack.MixedElement{mrkdwn("sent as one digest: this channel's pace was reached")}
	if rest := len(items) - len(lines); rest > 0 {
		ctx = append([]slack.MixedElement{mrkdwn(fmt.Sprintf("+%d more notifications", rest))}, ctx...)
	}
	blocks = append(blocks, slack.NewContextBlock("", ctx...))
	if len(items) > 0 {
		if line := fallbackLine(items[0]); line != "" {
			blocks = append(blocks, slack.NewContextBlock("", mrkdwn(line)))
		}
	}
	text := head
	if mention != "" {
		text = mention + " " + text
	}
	return Message{Text: text, Blocks: blocks}
}

func severityRank(s heraldv1.Severity) int {
	switch s {
	case heraldv1.Severity_SEVERITY_CRITICAL:
		return 0
	case heraldv1.Severity_SEVERITY_WARNING:
		return 1
	case heraldv1.Severity_SEVERITY_INFO:
		return 2
	}
	return 3
}
