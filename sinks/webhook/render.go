package webhook

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"text/template"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/message"
)

//go:embed templates/default.tmpl
var templateFS embed.FS

// defaultTemplates holds the helpers "pairs", "alert", "alerts" and an
// example "body".
var defaultTemplates = template.Must(template.New("default.tmpl").ParseFS(templateFS, "templates/default.tmpl"))

// TemplateData is what a body template sees: the notification as package
// message's Data, and the delivery's channel, attempt and the id of the
// group's earlier message at this receiver (ParentID, "" for the first).
// Every string is escaped for the inside of a JSON string literal, so
// "{{.Title}}" is always a valid JSON string whatever the alert says.
type TemplateData struct {
	message.Data
	Channel  string
	Attempt  int
	ParentID string
}

// ErrBodyNotJSON is in the error of a Send or a Validate whose body
// template produced something that is not JSON. Send's error is permanent:
// the same template and notification fail the same way every time.
var ErrBodyNotJSON = errors.New("the body template's output is not valid JSON")

// jsonEscaper escapes text for the inside of a JSON string literal: the
// output syntax of a body template.
type jsonEscaper struct{}

func (jsonEscaper) Text(s string, _ bool) string { return jsonString(s) }
func (jsonEscaper) Code(s string) string         { return jsonString(s) }
func (jsonEscaper) URL(u string) string          { return jsonString(u) }

// jsonString is s as a JSON string literal without its quotes.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// newTemplateData builds what a body template sees of n delivered to to.
func newTemplateData(n *heraldv1.Notification, to sinks.Target, maxAlerts int) TemplateData {
	d := message.New(n, to, message.Options{Escape: jsonEscaper{}, MaxAlerts: maxAlerts})
	// message.New passes the id and the group key as they are (a group
	// key from Alertmanager holds double quotes).
	d.ID, d.GroupKey = jsonString(d.ID), jsonString(d.GroupKey)
	return TemplateData{
		Data:     d,
		Channel:  jsonString(to.Channel),
		Attempt:  max(to.Attempt, 1),
		ParentID: jsonString(to.Parent.GetMessageId()),
	}
}

// executeBody runs t's "body" on d and checks that the output is JSON. It
// returns the output without surrounding white space.
func executeBody(t *template.Template, d TemplateData) ([]byte, error) {
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "body", d); err != nil {
		return nil, err
	}
	out := bytes.TrimSpace(b.Bytes())
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%w: at byte %d of %d: %v", ErrBodyNotJSON, se.Offset, len(out), se)
		}
		return nil, fmt.Errorf("%w: %v", ErrBodyNotJSON, err)
	}
	return out, nil
}

// ParseTemplateFile parses a body template file over the defaults: the file
// must define "body" (see sinks.ParseTemplateFile) and produce valid JSON
// for message.Sample(). Its errors name the file and the line. Validate
// calls it.
func ParseTemplateFile(path string) (*template.Template, error) {
	t, err := sinks.ParseTemplateFile(defaultTemplates, path, "body")
	if err != nil {
		return nil, err
	}
	for _, to := range []sinks.Target{
		{Channel: "#sample", Route: "sample", Attempt: 1},
		{Channel: "#sample", Route: "sample", Attempt: 2, FallbackFrom: "chat", FallbackReason: "HTTP 503",
			Parent: &heraldv1.MessageRef{ChannelId: "#sample", MessageId: "sample-parent"}},
	} {
		if _, err := executeBody(t, newTemplateData(message.Sample(), to, 0)); err != nil {
			return nil, fmt.Errorf("%s: on a sample notification: %w", path, err)
		}
	}
	return t, nil
}
