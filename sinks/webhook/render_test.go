package webhook

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/herald-notify/herald/sinks"
)

// TestTemplateExampleGolden renders the example "body" of the default
// templates, which a user's file can start from.
func TestTemplateExampleGolden(t *testing.T) {
	for _, tt := range []struct {
		name string
		d    TemplateData
	}{
		{"template_firing", newTemplateData(firing(), target, 0)},
		{"template_hostile", newTemplateData(hostile(), target, 0)},
		{"template_many_alerts", newTemplateData(manyAlerts(300), target, 0)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, err := executeBody(defaultTemplates, tt.d)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tt.name, body)
		})
	}
}

// TestTemplateHostileStaysInStrings puts every string a template sees
// between quotes and decodes the result: whatever the alert holds, the
// JSON has exactly the template's keys.
func TestTemplateHostileStaysInStrings(t *testing.T) {
	path := writeFile(t, "body.tmpl", `{{define "body"}}{
"id": "{{.ID}}", "group": "{{.GroupKey}}", "title": "{{.Title}}", "summary": "{{.Summary}}",
"description": "{{.Description}}", "channel": "{{.Channel}}", "parent": "{{.ParentID}}",
"labels": {{template "pairs" .CommonLabels}}, "alerts": {{template "alerts" .Alerts}},
"runbook": "{{.Links.Runbook}}", "count": {{.AlertCount}}, "firing": {{.Firing}}
}{{end}}`)
	s := testSink(t, Config{Template: path})
	to := target
	to.Channel = `#a"b`
	body, err := s.body(t.Context(), hostile(), to)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	keys := strings.Join(slices.Sorted(maps.Keys(got)), ",")
	if keys != "alerts,channel,count,description,firing,group,id,labels,parent,runbook,summary,title" {
		t.Errorf("keys = %s\n%s", keys, body)
	}
	if got["title"] != hostile().Title || got["channel"] != `#a"b` || got["group"] != hostile().GroupKey {
		t.Errorf("title %q channel %q group %q", got["title"], got["channel"], got["group"])
	}
}

func TestTemplateValidate(t *testing.T) {
	for _, tt := range []struct {
		name, src, want string
	}{
		{"ok", `{{define "body"}}{"text": "{{.Title}}: {{.Summary}}", "n": {{.AlertCount}}}{{end}}`, ""},
		{"ok using helpers", `{{define "body"}}{"labels": {{template "pairs" .CommonLabels}}, "alerts": {{template "alerts" .Alerts}}}{{end}}`, ""},
		{"string without quotes", `{{define "body"}}{"text": {{.Title}}}{{end}}`, "not valid JSON"},
		{"trailing comma", `{{define "body"}}{"a": 1,}{{end}}`, "not valid JSON"},
		{"empty output", `{{define "body"}}{{if false}}{}{{end}}{{end}}`, "not valid JSON"},
		{"two documents", `{{define "body"}}{} {}{{end}}`, "not valid JSON"},
		{"unknown field", `{{define "body"}}{"a": "{{.NoSuchField}}"}{{end}}`, "can't evaluate field NoSuchField"},
		{"no body", `{{define "other"}}{}{{end}}`, `defines none of the templates "body"`},
		{"text outside define", `{"a": 1}`, "text outside {{define}}"},
		{"parse error", `{{define "body"}}{{.Title{{end}}`, "bad.tmpl:1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "bad.tmpl", tt.src)
			c := Config{URL: "https://receiver.example/hook", Template: path}
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(tt.want, "JSON") && !errors.Is(err, ErrBodyNotJSON) {
				t.Errorf("err = %v, want errors.Is ErrBodyNotJSON", err)
			}
		})
	}
}

// TestTemplateInvalidAtSendIsPermanent: a template that passed Validate on
// the sample but yields something else than JSON for a real notification
// fails permanently, before any request.
func TestTemplateInvalidAtSendIsPermanent(t *testing.T) {
	// Valid JSON for the sample (no description), not when the
	// notification has one: a bare string then lands outside quotes.
	path := writeFile(t, "body.tmpl", `{{define "body"}}{"a": 1{{if .Description}}, {{.Description}}{{end}}}{{end}}`)
	s := testSink(t, Config{Template: path})
	_, err := s.Send(t.Context(), firing(), target)
	if sinks.Classify(err) != sinks.ClassPermanent || !errors.Is(err, ErrBodyNotJSON) {
		t.Errorf("err = %v (%s), want permanent ErrBodyNotJSON", err, sinks.Classify(err))
	}

	// An execution error is permanent too.
	path = writeFile(t, "idx.tmpl", `{{define "body"}}{"a": "{{(index .Alerts 5).Status}}"}{{end}}`)
	c := Config{URL: "https://receiver.example/hook", Template: path}
	if err := c.Validate(); err == nil {
		t.Fatal("Validate accepted a template that fails on the sample")
	}
}

// TestRouteTemplate: a route's file replaces the sink's body; a broken one
// falls back to the sink's body rather than losing the notification.
func TestRouteTemplate(t *testing.T) {
	good := writeFile(t, "route.tmpl", `{{define "body"}}{"route": "{{.Route}}"}{{end}}`)
	bad := writeFile(t, "broken.tmpl", `{{define "body"}}{"route": {{end}}`)
	s := testSink(t, Config{})
	to := target
	to.Template = good
	body, err := s.body(t.Context(), firing(), to)
	if err != nil || string(body) != `{"route": "db"}` {
		t.Errorf("route template: %s, %v", body, err)
	}
	to.Template = bad
	for range 2 { // the second time from the cache
		body, err = s.body(t.Context(), firing(), to)
		if err != nil || !strings.Contains(string(body), `"version":"1"`) {
			t.Errorf("broken route template: %s, %v", body, err)
		}
	}
}
