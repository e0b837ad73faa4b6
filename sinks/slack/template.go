package slack

import (
	_ "embed"
	"fmt"
	"strings"
	"text/template"
	"unicode/utf16"
	"unicode/utf8"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
)

//go:embed templates/default.tmpl
var defaultTemplateText string

// defaultTemplates are the templates a message is rendered with unless the
// sink's config or the route names a file.
var defaultTemplates = template.Must(template.New("slack").Parse(defaultTemplateText))

// View is what the "title", "summary" and "text" templates see: one
// notification, with the field names of the Rocket.Chat sink's template
// data. Every string from outside is escaped for Slack and shortened;
// Mention and the alerts' times are Slack markup.
type View struct {
	// Status is "firing" or "resolved"; StatusText "FIRING" or "RESOLVED";
	// Firing and Resolved say the same as booleans.
	Status     string
	StatusText string
	Firing     bool
	Resolved   bool
	// Severity is "critical", "warning", "info" or "".
	Severity string
	// Emoji stands for status and severity: 🔴 🟠 🔵 ⚪ firing, ✅ resolved.
	Emoji string
	// Mention is the configured mention (firing only; not in edits).
	Mention     string
	Title       string
	Summary     string
	Description string
	Source      string
	Receiver    string
	Route       string
	// AlertCount counts the notification's alerts, those Alertmanager left
	// out included; FiringCount and ResolvedCount split the listed ones.
	AlertCount    int
	FiringCount   int
	ResolvedCount int
	// CommonLabels are the group's labels without alertname and severity.
	CommonLabels []Pair
	// Alerts are the alerts listed; MoreAlerts counts the others.
	Alerts     []AlertView
	MoreAlerts int
	// FallbackFrom and FallbackReason are set when an earlier sink of the
	// chain did not take the notification.
	FallbackFrom   string
	FallbackReason string
}

// Pair is a label's name and value.
type Pair struct{ Name, Value string }

// AlertView is what the "alert" template sees: one alert.
type AlertView struct {
	Status   string
	Firing   bool
	Resolved bool
	// Summary is the alert's summary annotation, else its alertname.
	Summary string
	// Labels are the alert's labels that are not common to the group.
	Labels []Pair
	// StartsAt and EndsAt are Slack date markup, shown in the reader's
	// time zone, or "".
	StartsAt string
	EndsAt   string
}

// Field limits of a View, before each template output is clipped again to
// its block's limit.
const (
	viewTitleLen   = maxHeaderLen - 20 // room for emoji and status
	alertSummaryLn = 150
	// An alert's line shows its own labels short, so that several fit.
	alertLabelKey   = 40
	alertLabelValue = 80
)

// newView escapes and shortens d for the templates.
func newView(d Data) View {
	resolved := d.Status == heraldv1.Status_STATUS_RESOLVED
	v := View{
		Status:         "firing",
		StatusText:     "FIRING",
		Firing:         !resolved,
		Resolved:       resolved,
		Severity:       severityName(d.Severity),
		Emoji:          severityEmoji(d.Severity),
		Mention:        d.Mention,
		Title:          clip(d.Title, viewTitleLen),
		Summary:        clip(d.Summary, maxSectionLen),
		Description:    clip(d.Description, maxSectionLen),
		Source:         clip(d.Source, 100),
		Receiver:       clip(d.Receiver, 100),
		Route:          clip(d.Route, 100),
		AlertCount:     d.FiringCount + d.ResolvedCount + d.MoreAlerts,
		FiringCount:    d.FiringCount,
		ResolvedCount:  d.ResolvedCount,
		MoreAlerts:     d.MoreAlerts,
		FallbackFrom:   clip(d.FallbackFrom, 50),
		FallbackReason: clip(d.FallbackReason, maxFallbackLen),
	}
	if resolved {
		v.Status, v.StatusText, v.Emoji = "resolved", "RESOLVED", "✅"
	}
	v.CommonLabels = pairs(d.CommonLabels, maxLabelKey, maxLabelValue)
	for _, a := range d.Alerts {
		av := AlertView{
			Status:   "firing",
			Firing:   a.Status != heraldv1.Status_STATUS_RESOLVED,
			Resolved: a.Status == heraldv1.Status_STATUS_RESOLVED,
			Summary:  clip(a.Name, alertSummaryLn),
			Labels:   pairs(a.Labels, alertLabelKey, alertLabelValue),
		}
		if av.Resolved {
			av.Status = "resolved"
		}
		if a.StartsAt > 0 {
			av.StartsAt = slackDate(a.StartsAt)
		}
		if a.EndsAt > 0 {
			av.EndsAt = slackDate(a.EndsAt)
		}
		v.Alerts = append(v.Alerts, av)
	}
	return v
}

func pairs(ls []Label, keyLen, valueLen int) []Pair {
	out := make([]Pair, 0, len(ls))
	for _, l := range ls {
		out = append(out, Pair{clip(l.Name, keyLen), clip(l.Value, valueLen)})
	}
	return out
}

// ParseTemplateFile reads a file of template definitions that override the
// defaults: it must redefine one or more of "title", "summary", "alert"
// and "text" (see sinks.ParseTemplateFile). It tries them on a sample
// notification so that a template naming a field that does not exist fails
// now rather than at 3 a.m. Its errors name the file and the line.
func ParseTemplateFile(path string) (*template.Template, error) {
	t, err := sinks.ParseTemplateFile(defaultTemplates, path, "title", "summary", "alert", "text")
	if err != nil {
		return nil, err
	}
	sample := newView(NewData(sampleNotification(), sinks.Target{}, nil))
	for _, name := range []string{"title", "summary", "text"} {
		if _, err := execute(t, name, sample); err != nil {
			return nil, err
		}
	}
	if _, err := execute(t, "alert", sample.Alerts[0]); err != nil {
		return nil, err
	}
	return t, nil
}

// execute runs the template name on data.
func execute(t *template.Template, name string, data any) (string, error) {
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, name, data); err != nil {
		return "", fmt.Errorf("template %q: %w", name, err)
	}
	return strings.TrimSpace(b.String()), nil
}

// clipEscaped cuts text that is already escaped (a template's output) to
// limit UTF-16 units, never inside an entity or a <…> markup, ending in
// "… (+N more)" when it had to cut.
func clipEscaped(s string, limit int) string {
	if units(s) <= limit {
		return s
	}
	total := utf8.RuneCountInString(s)
	reserve := units(moreSuffix(total))
	if reserve > limit {
		return ""
	}
	used, cut := 0, len(s)
	for i, r := range s {
		u := max(utf16.RuneLen(r), 1)
		if used+u > limit-reserve {
			cut = i
			break
		}
		used += u
	}
	out := s[:cut]
	if i := strings.LastIndexByte(out, '&'); i >= 0 && !strings.Contains(out[i:], ";") {
		out = out[:i]
	}
	if i := strings.LastIndexByte(out, '<'); i >= 0 && !strings.Contains(out[i:], ">") {
		out = out[:i]
	}
	return out + moreSuffix(total-utf8.RuneCountInString(out))
}

// sampleNotification is what ParseTemplateFile tries templates on.
func sampleNotification() *heraldv1.Notification {
	return &heraldv1.Notification{
		Id: "sample", Source: "alertmanager", Receiver: "oncall",
		Severity: heraldv1.Severity_SEVERITY_CRITICAL, Status: heraldv1.Status_STATUS_FIRING,
		Title: "Sample", Text: "sample summary",
		Labels:      map[string]string{"alertname": "Sample", "env": "prod"},
		Annotations: map[string]string{"description": "sample description"},
		Alerts: []*heraldv1.Alert{{
			Status:      heraldv1.Status_STATUS_FIRING,
			Labels:      map[string]string{"alertname": "Sample", "env": "prod", "instance": "a"},
			Annotations: map[string]string{"summary": "sample alert"},
		}},
	}
}
