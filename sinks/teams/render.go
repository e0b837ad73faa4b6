package teams

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/template"
	"unicode/utf8"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/message"
)

//go:embed templates/default.tmpl
var templateFS embed.FS

// templateNames are the templates the sink executes, each once per card
// ("alert" once per alert listed; "digest" for a digest card).
var templateNames = []string{"title", "subtitle", "text", "alert", "digest"}

// defaultTemplates holds the templates of templateNames.
var defaultTemplates = template.Must(template.New("default.tmpl").ParseFS(templateFS, "templates/default.tmpl"))

// ParseTemplateFile parses a template file over the defaults: the file
// must redefine one or more of "title", "subtitle", "text" and "alert"
// (see sinks.ParseTemplateFile), and render a sample notification without
// error. check-config calls it through Config.Validate.
func ParseTemplateFile(path string) (*template.Template, error) {
	t, err := sinks.ParseTemplateFile(defaultTemplates, path, templateNames...)
	if err != nil {
		return nil, err
	}
	d := message.New(message.Sample(), sinks.Target{}, message.Options{Escape: escaper{}})
	if _, err := texts(t, d); err != nil {
		return nil, err
	}
	dd := message.NewDigest([]*heraldv1.Notification{message.Sample(), message.Sample()}, sinks.Target{}, message.Options{Escape: escaper{}}, -1)
	if _, err := execute(t, "digest", dd); err != nil {
		return nil, err
	}
	return t, nil
}

// pieces are the rendered texts of one card.
type pieces struct {
	title, subtitle, text string
	alerts                []string
}

// texts executes the templates on d.
func texts(t *template.Template, d message.Data) (pieces, error) {
	var p pieces
	var err error
	if p.title, err = execute(t, "title", d); err != nil {
		return p, err
	}
	if p.subtitle, err = execute(t, "subtitle", d); err != nil {
		return p, err
	}
	if p.text, err = execute(t, "text", d); err != nil {
		return p, err
	}
	for _, a := range d.Alerts {
		line, err := execute(t, "alert", a)
		if err != nil {
			return p, err
		}
		p.alerts = append(p.alerts, line)
	}
	return p, nil
}

func execute(t *template.Template, name string, data any) (string, error) {
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, name, data); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

// renderer turns notifications into cards whose request fits max bytes
// (see CardSize).
type renderer struct {
	version string
	max     int
}

// style is the header's container style and title colour for a severity.
func style(d message.Data) (container, color string) {
	if d.Resolved {
		return "good", "good"
	}
	switch d.Severity {
	case "critical":
		return "attention", "attention"
	case "warning":
		return "warning", "warning"
	case "info":
		return "accent", "accent"
	}
	return "emphasis", "default"
}

// render renders n as the request body of one card that fits the size
// limit. It falls back to the default templates when t fails (returning
// the template's error with the card) and never fails itself.
func (r *renderer) render(t *template.Template, n *heraldv1.Notification, to sinks.Target) ([]byte, error) {
	d := message.New(n, to, message.Options{Escape: escaper{}})
	p, err := texts(t, d)
	if err != nil {
		if t == defaultTemplates {
			// The defaults never fail on data message.New builds; if they
			// did, a bare card still tells the reader something fired.
			return r.encode(r.minimal(d)), err
		}
		body, _ := r.render(defaultTemplates, n, to)
		return body, err
	}
	return r.fit(d, p), nil
}

// fit builds the card of d with as many of its alerts and common labels
// as fit, cutting its text as a last resort.
func (r *renderer) fit(d message.Data, p pieces) []byte {
	c := cardParts{d: d, p: p, shown: len(p.alerts), facts: len(d.CommonLabels)}
	if body := r.encode(c.card(r.version)); r.fits(body) {
		return body
	}
	// The text (summary and description) may take half of the card
	// before any alert is left out.
	if half := r.max / 2; escapedSize(c.p.text) > half {
		c.p.text = cutEscaped(c.p.text, half) + shortened
		if body := r.encode(c.card(r.version)); r.fits(body) {
			return body
		}
	}
	// The most alerts that fit; k = 0 always "fits" by this search.
	k := sort.Search(len(p.alerts), func(k int) bool {
		c.shown = k + 1
		return !r.fits(r.encode(c.card(r.version)))
	})
	c.shown = k
	if body := r.encode(c.card(r.version)); r.fits(body) {
		return body
	}
	f := sort.Search(len(d.CommonLabels), func(f int) bool {
		c.facts = f + 1
		return !r.fits(r.encode(c.card(r.version)))
	})
	c.facts = f
	if body := r.encode(c.card(r.version)); r.fits(body) {
		return body
	}
	// Cut the text to what is left of the budget.
	c.p.text = ""
	rest := r.max - CardSize(r.encode(c.card(r.version))) - 200
	if rest > 0 && p.text != "" {
		c.p.text = cutEscaped(p.text, rest) + shortened
		if body := r.encode(c.card(r.version)); r.fits(body) {
			return body
		}
	}
	return r.encode(r.minimal(d))
}

// shortened ends a text cut to fit.
const shortened = "\n\n… (shortened)"

// escapedSize is the size of s in a card as CardSize counts it.
func escapedSize(s string) int {
	n := 0
	for _, r := range s {
		n += escapedWidth(r)
	}
	return n
}

// escapedWidth is the size of r in a card as CardSize counts it, once
// JSON-encoded.
func escapedWidth(r rune) int {
	switch {
	case r > 0xFFFF:
		return 12
	case r >= utf8.RuneSelf, r == '"', r == '\\', r < 0x20:
		return 6
	}
	return 1
}

// fits reports whether body is within the size limit.
func (r *renderer) fits(body []byte) bool { return CardSize(body) <= r.max }

// cardParts is what a card is built from, and how much of it is shown.
type cardParts struct {
	d     message.Data
	p     pieces
	shown int // alerts listed, of p.alerts
	facts int // common labels listed, of d.CommonLabels
}

// card builds the Adaptive Card.
func (c cardParts) card(version string) Card {
	d, p := c.d, c.p
	if p.title == "" {
		// A TextBlock needs a text: a template that wrote none gets the
		// default's.
		p.title = d.Emoji + " " + d.StatusText + ": " + d.Title
	}
	cstyle, color := style(d)
	header := Element{Type: "Container", Style: cstyle, Bleed: true, Items: []Element{
		{Type: "TextBlock", Text: p.title, Weight: "Bolder", Size: "Medium", Color: color, Wrap: true},
	}}
	if p.subtitle != "" {
		header.Items = append(header.Items, Element{Type: "TextBlock", Text: p.subtitle, IsSubtle: true, Spacing: "None", Wrap: true})
	}
	body := []Element{header}
	if p.text != "" {
		body = append(body, Element{Type: "TextBlock", Text: p.text, Wrap: true})
	}
	if c.facts > 0 {
		fs := Element{Type: "FactSet"}
		for _, l := range d.CommonLabels[:c.facts] {
			fs.Facts = append(fs.Facts, Fact{Title: l.Name, Value: l.Value})
		}
		body = append(body, fs)
	}
	if more := len(d.CommonLabels) - c.facts; more > 0 {
		body = append(body, Element{Type: "TextBlock", Text: plural(more, "more label", "more labels") + " left out to fit Teams' size limit", IsSubtle: true, Spacing: "None", Wrap: true})
	}
	more := d.MoreAlerts + len(p.alerts) - c.shown
	if d.AlertCount > 1 {
		first := true
		for _, line := range p.alerts[:c.shown] {
			if line == "" {
				continue
			}
			el := Element{Type: "TextBlock", Text: line, Wrap: true, Spacing: "Small"}
			if first {
				first = false
				el.Separator, el.Spacing = true, "Medium"
			}
			body = append(body, el)
		}
		if more > 0 {
			body = append(body, Element{Type: "TextBlock", Text: "+" + plural(more, "more alert", "more alerts"), IsSubtle: true, Wrap: true, Spacing: "Small"})
		}
	}
	return Card{
		Schema: SchemaURL, Type: "AdaptiveCard", Version: version,
		Body: body, Actions: actions(d, more > 0), MSTeams: &MSTeams{Width: "Full"},
	}
}

// minimal is the card of last resort: the header alone.
func (r *renderer) minimal(d message.Data) Card {
	title := d.Emoji + " " + d.StatusText + ": " + d.Title
	cstyle, color := style(d)
	return Card{
		Schema: SchemaURL, Type: "AdaptiveCard", Version: r.version,
		Body: []Element{{Type: "Container", Style: cstyle, Bleed: true, Items: []Element{
			{Type: "TextBlock", Text: title, Weight: "Bolder", Size: "Medium", Color: color, Wrap: true},
			{Type: "TextBlock", Text: "The details did not fit Teams' size limit.", IsSubtle: true, Spacing: "None", Wrap: true},
		}}},
		Actions: actions(d, d.AlertCount > 1),
		MSTeams: &MSTeams{Width: "Full"},
	}
}

// actions are the card's buttons: the notification's safe http(s) links,
// and the list of all alerts when some are not shown (left).
func actions(d message.Data, left bool) []Action {
	var out []Action
	add := func(title, u string) {
		if u != "" {
			out = append(out, Action{Type: "Action.OpenUrl", Title: title, URL: u})
		}
	}
	add("Graph", d.Links.Generator)
	add("Runbook", d.Links.Runbook)
	add("Dashboard", d.Links.Dashboard)
	if d.Firing {
		add("Silence", d.Links.Silence)
	}
	if left && d.MoreURL != d.Links.Generator {
		add("All alerts", d.MoreURL)
	}
	return out
}

// encode returns the request body that carries card.
func (r *renderer) encode(card Card) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(Message{Type: "message", Attachments: []Attachment{{ContentType: ContentType, Content: card}}}); err != nil {
		// Only strings, numbers and booleans: encoding cannot fail.
		panic(fmt.Sprintf("teams: encoding a card: %v", err))
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// CardSize is the size of body with every non-ASCII character counted as
// its JSON \uXXXX escape (two for characters outside the BMP): the largest
// the body can be once Teams re-serialises it, whatever its encoder. The
// sink keeps every card within max_card_bytes by this count.
func CardSize(body []byte) int {
	n := 0
	for len(body) > 0 {
		r, size := utf8.DecodeRune(body)
		switch {
		case r < utf8.RuneSelf:
			n++
		case r > 0xFFFF:
			n += 12
		default:
			n += 6
		}
		body = body[size:]
	}
	return n
}

// cutEscaped cuts escaped text to at most max bytes as CardSize counts
// them once JSON-encoded, at a rune boundary.
func cutEscaped(s string, max int) string {
	n := 0
	for i, r := range s {
		w := escapedWidth(r)
		if n+w > max {
			return strings.TrimRight(s[:i], " \n")
		}
		n += w
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// renderDigest renders ns as the request body of one digest card that
// fits the size limit: notifications are left out from the end ("+N
// more") until it fits. It falls back to the default templates when t
// fails, and never fails itself.
func (r *renderer) renderDigest(t *template.Template, ns []*heraldv1.Notification, to sinks.Target) ([]byte, error) {
	build := func(shown int) ([]byte, error) {
		dd := message.NewDigest(ns, to, message.Options{Escape: escaper{}}, shown)
		text, err := execute(t, "digest", dd)
		if err != nil {
			return nil, err
		}
		return r.encode(r.digestCard(dd, text)), nil
	}
	body, err := build(-1)
	if err != nil {
		if t == defaultTemplates {
			return r.encode(r.digestCard(message.NewDigest(ns, to, message.Options{Escape: escaper{}}, 0), "")), err
		}
		body, _ := r.renderDigest(defaultTemplates, ns, to)
		return body, err
	}
	if r.fits(body) {
		return body, nil
	}
	// The most notifications that fit; 0 always "fits" by this search.
	k := sort.Search(len(ns), func(k int) bool {
		b, _ := build(k + 1)
		return !r.fits(b)
	})
	body, _ = build(k)
	if !r.fits(body) {
		body = r.encode(r.digestCard(message.NewDigest(ns, to, message.Options{Escape: escaper{}}, 0), ""))
	}
	return body, nil
}

// digestCard is the card of a digest: a header saying how many
// notifications it holds, in the style of the most severe firing one, and
// the "digest" template's text.
func (r *renderer) digestCard(dd message.DigestData, text string) Card {
	top := message.Data{Resolved: true}
	for _, it := range dd.Items {
		if it.Firing && (top.Resolved || message.Rank(it.Severity) > message.Rank(top.Severity)) {
			top = message.Data{Firing: true, Severity: it.Severity}
		}
	}
	cstyle, color := style(top)
	title := fmt.Sprintf("%s %d notifications", message.Emoji(top.Severity, top.Resolved), dd.Count)
	header := Element{Type: "Container", Style: cstyle, Bleed: true, Items: []Element{
		{Type: "TextBlock", Text: title, Weight: "Bolder", Size: "Medium", Color: color, Wrap: true},
	}}
	if dd.From != "" {
		sub := "received " + dd.From
		if dd.To != dd.From {
			sub += " to " + dd.To
		}
		header.Items = append(header.Items, Element{Type: "TextBlock", Text: sub + ", posted together to keep to Teams' rate limit", IsSubtle: true, Spacing: "None", Wrap: true})
	}
	body := []Element{header}
	if text != "" {
		body = append(body, Element{Type: "TextBlock", Text: text, Wrap: true})
	} else if dd.More > 0 {
		body = append(body, Element{Type: "TextBlock", Text: "The list did not fit Teams' size limit.", IsSubtle: true, Wrap: true})
	}
	return Card{Schema: SchemaURL, Type: "AdaptiveCard", Version: r.version, Body: body, MSTeams: &MSTeams{Width: "Full"}}
}
