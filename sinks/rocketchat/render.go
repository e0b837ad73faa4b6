package rocketchat

import (
	"embed"
	"fmt"
	"sort"
	"strings"
	"text/template"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/message"
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
	t, err := sinks.ParseTemplateFile(defaultTemplates, path, "text", "attachment", "reminder", "digest")
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
	if _, err := r.execute(t, "reminder", r.data(sample, renderOpts{reminder: 2})); err != nil {
		return nil, err
	}
	if _, err := r.execute(t, "digest", r.digestData([]*heraldv1.Notification{sample, sample}, 2)); err != nil {
		return nil, err
	}
	return t, nil
}

// The templates see the data of package message: Data for "text" and
// "attachment", DigestData for "digest". Strings are escaped for
// Rocket.Chat's markdown (see rcEscaper): prose is inert, label names and
// values are safe inside a single-backtick `code span`, and only there;
// URLs are absolute http(s) URLs safe inside [title](url).
type (
	Data       = message.Data
	Pair       = message.Pair
	AlertData  = message.AlertData
	Links      = message.Links
	DigestData = message.DigestData
)

// renderOpts says in which role a notification is rendered.
type renderOpts struct {
	reply, update bool
	// reminder is sinks.Target.Reminder.
	reminder int
	// parent renders the group's message, whose text alone is updated
	// later.
	parent bool
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

// maxShownAlerts is the most alerts one message lists.
const maxShownAlerts = message.DefaultMaxAlerts

// data builds the template data of n.
func (r *renderer) data(n *heraldv1.Notification, o renderOpts) Data {
	return message.New(n, sinks.Target{FallbackFrom: o.fallbackFrom, FallbackReason: o.fallbackReason, Reminder: o.reminder}, r.options(o))
}

func (r *renderer) options(o renderOpts) message.Options {
	return message.Options{Escape: rcEscaper{}, Mentions: r.mentions, Mention: o.mention, Reply: o.reply, Update: o.update}
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
	if o.parent {
		// chat.update edits the text only: a colour on the group's
		// message would stay red after the group resolved. The text's
		// emoji and status carry the state; replies keep their colour.
		att.Color = ""
	}
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
	return message.NewDigest(ns, sinks.Target{}, r.options(renderOpts{}), shown)
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
	color := r.digestData(ns, 0).Color
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
	return "received " + first.UTC().Format(message.TimeLayout) + " – " + last.UTC().Format(message.TimeLayout)
}

// sampleNotification is what ParseTemplateFile renders to check a template.
func sampleNotification() *heraldv1.Notification { return message.Sample() }

// renderReminder renders the reminder reply to n's group: one line, no
// attachment, fitted to the size limit.
func (r *renderer) renderReminder(t *template.Template, n *heraldv1.Notification, o renderOpts) (rendered, error) {
	d := r.data(n, o)
	text, err := r.execute(t, "reminder", d)
	if err != nil && t != defaultTemplates {
		msg, _ := r.renderReminder(defaultTemplates, n, o)
		return msg, err
	}
	return rendered{Text: r.cut(text)}, err
}
