package slack

import (
	_ "embed"
	"fmt"
	"strings"
	"text/template"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/message"
)

//go:embed templates/default.tmpl
var defaultTemplateText string

// defaultTemplates are the templates a message is rendered with unless the
// sink's config or the route names a file.
var defaultTemplates = template.Must(template.New("slack").Parse(defaultTemplateText))

// The templates see the data of package message, the model every sink
// renders from: "title", "summary" and "text" a View (message.Data),
// "alert" an AlertView (message.AlertData). Every string from outside is
// escaped for Slack (slackEscaper) and shortened; Mention and the times are
// Slack markup (times in the reader's own time zone). A template file
// written for another sink's message.Data works here for the fields that
// make sense in Slack. An alert's .Summary is its summary annotation only;
// .Name is its summary, else its alertname, as the default "alert" shows.
type (
	View      = message.Data
	AlertView = message.AlertData
	Pair      = message.Pair
)

// newView builds the template data of d's notification.
func newView(d Data) View {
	v := message.New(d.n, d.to, message.Options{
		Escape:    slackEscaper{},
		MaxAlerts: maxListedAlerts,
		Time:      func(t time.Time) string { return slackDate(t.Unix()) },
	})
	v.Mention = d.Mention
	return v
}

// slackEscaper makes text from outside safe in mrkdwn and plain_text.
type slackEscaper struct{}

func (slackEscaper) Text(s string, _ bool) string { return Escape(s) }
func (slackEscaper) Code(s string) string         { return Escape(s) }

// URL percent-encodes what would end a <url|text> link.
func (slackEscaper) URL(u string) string { return slackURL.Replace(u) }

var slackURL = strings.NewReplacer("|", "%7C", "<", "%3C", ">", "%3E", " ", "%20")

// ParseTemplateFile reads a file of template definitions that override the
// defaults: it must redefine one or more of "title", "summary", "alert"
// and "text" (see sinks.ParseTemplateFile). It tries them on a sample
// notification so that a template naming a field that does not exist fails
// now rather than at 3 a.m. Its errors name the file and the line.
func ParseTemplateFile(path string) (*template.Template, error) {
	t, err := sinks.ParseTemplateFile(defaultTemplates, path, "title", "summary", "alert", "text", "reminder")
	if err != nil {
		return nil, err
	}
	sample := newView(NewData(message.Sample(), sinks.Target{}, nil))
	for _, name := range []string{"title", "summary", "text", "reminder"} {
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
