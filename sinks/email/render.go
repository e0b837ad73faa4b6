package email

import (
	"embed"
	"fmt"
	htmltemplate "html/template"
	"os"
	"strings"
	"text/template"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/message"
)

//go:embed templates/default.tmpl
var templateFS embed.FS

// templateNames are the templates a user's file may redefine.
var templateNames = []string{"subject", "text", "html"}

var (
	// textBase holds "subject" and "text" (and "html", unused, so that a
	// file redefining only "html" passes sinks.ParseTemplateFile).
	textBase = template.Must(template.New("default.tmpl").ParseFS(templateFS, "templates/default.tmpl"))
	// htmlBase is never executed: html/template cannot clone a set once
	// it has run, and users' files are parsed over clones of it.
	htmlBase = htmltemplate.Must(htmltemplate.New("default.tmpl").ParseFS(templateFS, "templates/default.tmpl"))

	defaultTemplates = &Templates{text: textBase, html: htmltemplate.Must(htmlBase.Clone())}
)

// Templates are a parsed set of the sink's templates: "subject" and "text"
// as text/template, "html" as html/template.
type Templates struct {
	text *template.Template
	html *htmltemplate.Template
}

// ParseTemplateFile parses a template file over the defaults: the file
// must redefine "subject", "text", "html" or several of them (see
// sinks.ParseTemplateFile) and render message.Sample without error. Its
// errors name the file and the line.
func ParseTemplateFile(path string) (*Templates, error) {
	t, err := sinks.ParseTemplateFile(textBase, path, templateNames...)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	h, err := htmlBase.Clone()
	if err != nil {
		return nil, err
	}
	name := path
	if h.Lookup(name) != nil {
		name = "./" + name
	}
	if _, err := h.New(name).Parse(string(b)); err != nil {
		return nil, err
	}
	ts := &Templates{text: t, html: h}
	if _, err := ts.render(message.New(message.Sample(), sinks.Target{}, message.Options{})); err != nil {
		return nil, err
	}
	return ts, nil
}

// rendered is the text of one email.
type rendered struct {
	Subject string
	Text    string
	HTML    string
}

// maxSubject is the longest subject, in UTF-16 units as message counts
// them: a subject line shows far less, and a longer one only makes the
// header long.
const maxSubject = 250

// render executes the three templates on d.
func (ts *Templates) render(d message.Data) (rendered, error) {
	var r rendered
	var b strings.Builder
	if err := ts.text.ExecuteTemplate(&b, "subject", d); err != nil {
		return r, err
	}
	r.Subject = oneLine(b.String())
	b.Reset()
	if err := ts.text.ExecuteTemplate(&b, "text", d); err != nil {
		return r, err
	}
	r.Text = strings.TrimSpace(b.String()) + "\n"
	b.Reset()
	if err := ts.html.ExecuteTemplate(&b, "html", d); err != nil {
		return r, err
	}
	r.HTML = strings.TrimSpace(b.String()) + "\n"
	if r.Subject == "" {
		return r, fmt.Errorf("template %q rendered an empty subject", "subject")
	}
	return r, nil
}

// oneLine makes s a subject: one line, spaces collapsed, control
// characters dropped, shortened.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(message.Clean(s, false)), " ")
	return message.Shorten(s, maxSubject)
}

// renderData builds the data of n for the sink's templates: plain text,
// since html/template escapes the HTML part and the text part is plain.
func renderData(n *heraldv1.Notification, to sinks.Target, reply bool) message.Data {
	return message.New(n, to, message.Options{Reply: reply})
}

// renderWith renders n with ts, falling back to the defaults when ts fails,
// and always returns an email.
func renderWith(ts *Templates, d message.Data) (rendered, error) {
	r, err := ts.render(d)
	if err != nil && ts != defaultTemplates {
		r, _ = defaultTemplates.render(d)
		return r, err
	}
	if err != nil {
		// The defaults do not fail on any data; keep a readable email if
		// they ever do.
		r = rendered{Subject: oneLine(d.StatusText + " " + d.Title), Text: d.StatusText + " " + d.Title + "\n"}
	}
	return r, err
}
