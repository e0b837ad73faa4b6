package mattermost

import (
	"embed"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"unicode/utf8"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/message"
)

//go:embed templates/default.tmpl
var templateFS embed.FS

// defaultTemplates holds "text" and "attachment".
var defaultTemplates = template.Must(template.New("default.tmpl").ParseFS(templateFS, "templates/default.tmpl"))

// ParseTemplateFile parses a template file over the defaults: the file must
// redefine one or more of "text", "attachment" and "reminder" (see
// sinks.ParseTemplateFile) and
// render message.Sample without error. Its errors name the file and line.
func ParseTemplateFile(path string) (*template.Template, error) {
	t, err := sinks.ParseTemplateFile(defaultTemplates, path, "text", "attachment", "reminder")
	if err != nil {
		return nil, err
	}
	d := message.New(message.Sample(), sinks.Target{Reminder: 2}, message.Options{Escape: escaper{}})
	for _, name := range []string{"text", "attachment", "reminder"} {
		if _, err := execute(t, name, d); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// rendered is a post ready to send: its message and its one attachment.
type rendered struct {
	Text       string
	Attachment Attachment
}

// renderer turns notifications into posts whose message has at most max
// runes (Mattermost counts a message's length in runes: model.Post.IsValid
// against the server's MaxPostSize).
type renderer struct {
	max      int
	mentions map[string]string
}

// Caps on the attachment, which Mattermost stores in props (limited to
// 800000 runes of JSON as a whole, model.PostPropsMaxRunes) but shows in
// full: kept to what a reader takes in.
const (
	maxFields         = 20
	maxAttachmentText = 4000
)

// renderOpts says in which role a notification is rendered.
type renderOpts struct {
	reply, update, mention bool
}

func execute(t *template.Template, name string, data any) (string, error) {
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, name, data); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

// render renders n as one post that fits the size limit: alerts are left
// out from the end ("+N more alerts") until the message fits, and as a
// last resort the message is cut. It falls back to the default templates
// when t fails, and always returns a post.
func (r *renderer) render(t *template.Template, n *heraldv1.Notification, to sinks.Target, o renderOpts) (rendered, error) {
	d := message.New(n, to, message.Options{
		Escape: escaper{}, Mentions: r.mentions, Mention: o.mention,
		Reply: o.reply, Update: o.update,
	})
	text, err := r.fitText(t, d)
	if err != nil && t != defaultTemplates {
		msg, _ := r.render(defaultTemplates, n, to, o)
		return msg, err
	}
	att := Attachment{
		Color:    d.Color,
		Fallback: cutRunes(d.StatusText+" · "+d.Title, 300),
		Fields:   fields(d.CommonLabels),
	}
	if at, aerr := execute(t, "attachment", d); aerr == nil {
		att.Text = cutMarked(at, maxAttachmentText)
	} else if err == nil {
		err = aerr
	}
	return rendered{Text: text, Attachment: att}, err
}

// fields shows labels as short attachment fields: the name as the title
// (plain text in Mattermost), the value in a code span.
func fields(labels []message.Pair) []Field {
	var out []Field
	for i, p := range labels {
		if i == maxFields-1 && len(labels) > maxFields {
			out = append(out, Field{Title: "…", Value: "+" + strconv.Itoa(len(labels)-i) + " more labels", Short: true})
			break
		}
		out = append(out, Field{Title: p.Name, Value: "`" + p.Value + "`", Short: true})
	}
	return out
}

// fitText executes "text" with as many alerts as fit.
func (r *renderer) fitText(t *template.Template, d message.Data) (string, error) {
	text, err := execute(t, "text", d)
	if err != nil {
		return cutMarked(d.Emoji+" "+d.StatusText+" · "+d.Title, r.max), err
	}
	if utf8.RuneCountInString(text) <= r.max || len(d.Alerts) == 0 {
		return cutMarked(text, r.max), nil
	}
	all, extra := d.Alerts, d.MoreAlerts
	// The largest k whose text fits; k = 0 always "fits" by this search.
	k := sort.Search(len(all), func(k int) bool {
		d.Alerts, d.MoreAlerts = all[:k+1], extra+len(all)-(k+1)
		s, err := execute(t, "text", d)
		return err != nil || utf8.RuneCountInString(s) > r.max
	})
	d.Alerts, d.MoreAlerts = all[:k], extra+len(all)-k
	text, err = execute(t, "text", d)
	return cutMarked(text, r.max), err
}

// truncMark ends a text that had to be cut.
const truncMark = "\n_… message shortened_"

// cutMarked shortens s to max runes, marking the cut. It never cuts inside
// a code span, which would show the rest of a label as markdown: escaped
// text has no backtick, so an odd number of them before the cut means the
// last one opened a span, and the cut moves before it.
func cutMarked(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	kept := cutRunes(s, max-utf8.RuneCountInString(truncMark))
	if strings.Count(kept, "`")%2 == 1 {
		kept = kept[:strings.LastIndexByte(kept, '`')]
	}
	return strings.TrimRight(kept, " \n") + truncMark
}

// cutRunes is the longest prefix of s of at most max runes.
func cutRunes(s string, max int) string {
	n := 0
	for i := range s {
		if n == max {
			return s[:i]
		}
		n++
	}
	return s
}

// renderReminder renders the one-line thread reply to a group Alertmanager
// sent again unchanged (to.Reminder), without an attachment.
func (r *renderer) renderReminder(t *template.Template, n *heraldv1.Notification, to sinks.Target, mention bool) (rendered, error) {
	d := message.New(n, to, message.Options{Escape: escaper{}, Mentions: r.mentions, Mention: mention, Reply: true})
	text, err := execute(t, "reminder", d)
	if err != nil && t != defaultTemplates {
		msg, _ := r.renderReminder(defaultTemplates, n, to, mention)
		return msg, err
	}
	return rendered{Text: cutRunes(text, r.max)}, err
}
