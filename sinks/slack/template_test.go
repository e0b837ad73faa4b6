package slack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-notify/herald/sinks"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTemplates(t *testing.T) {
	sinkTmpl := writeFile(t, "sink.tmpl", `{{define "title"}}{{.StatusText}} {{.Title}} ({{.AlertCount}} alerts){{end}}`)
	routeTmpl := writeFile(t, "route.tmpl", `{{define "title"}}route: {{.Title}}{{end}}{{define "alert"}}{{.Summary}} @ {{range .Labels}}{{.Value}}{{end}}{{end}}`)
	broken := writeFile(t, "broken.tmpl", `{{define "title"}}{{.NoSuchField}}{{end}}`)

	s, fake, id := newBot(t, func(c *Config) { c.Template = sinkTmpl })
	n := mentionAttempts()

	r, err := s.Send(t.Context(), n, sinks.Target{Channel: "#alerts"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := fake.Message(id, r.Parent.GetMessageId())
	// The template sees escaped text: the title's <!channel> stays inert.
	if got := header(t, m); got != "FIRING &lt;!channel&gt; wake up (2 alerts)" {
		t.Errorf("sink template header = %q", got)
	}

	r, err = s.Send(t.Context(), n, sinks.Target{Channel: "#alerts", Template: routeTmpl})
	if err != nil {
		t.Fatal(err)
	}
	m, _ = fake.Message(id, r.Parent.GetMessageId())
	if got := header(t, m); got != "route: &lt;!channel&gt; wake up" {
		t.Errorf("route template header = %q", got)
	}
	if !strings.Contains(string(m.Blocks), "5xx ratio 6.1% on web-2 @ web-2:9090") {
		t.Errorf("route alert template not used: %s", m.Blocks)
	}

	// A broken route template falls back to the sink's: the alert still
	// goes out.
	r, err = s.Send(t.Context(), n, sinks.Target{Channel: "#alerts", Template: broken})
	if err != nil {
		t.Fatal(err)
	}
	m, _ = fake.Message(id, r.Parent.GetMessageId())
	if got := header(t, m); !strings.HasPrefix(got, "FIRING ") {
		t.Errorf("broken route template: header %q, want the sink's template", got)
	}
	checkMessage(t, Message{Text: m.Text})

	// A broken sink template is a config error.
	cfg := Config{Token: testToken, Template: broken}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "template:") {
		t.Errorf("Validate with a broken template = %v", err)
	}
}

func TestClipEscaped(t *testing.T) {
	for _, c := range []struct {
		in    string
		limit int
		want  string
	}{
		{"fits &amp;", 10, "fits &amp;"},
		{"abc &amp;&amp;&amp;&amp;&amp;", 20, "abc … (+25 more)"},
		{"a <!date^1^{time}|x> b c d e f g", 20, "a … (+30 more)"},
	} {
		got := clipEscaped(c.in, c.limit)
		if got != c.want || units(got) > c.limit {
			t.Errorf("clipEscaped(%q, %d) = %q, want %q", c.in, c.limit, got, c.want)
		}
	}
}

// TestTemplateFileErrors: a template file's problems are reported against
// the user's file and line, and a file that overrides nothing is refused.
func TestTemplateFileErrors(t *testing.T) {
	cases := []struct{ name, file, want string }{
		{"unknown field", "{{define \"title\"}}\n{{.Nope}}{{end}}", "bad.tmpl:2:"},
		{"unknown field in alert", "{{define \"alert\"}}{{.Nope}}{{end}}", "bad.tmpl:1:"},
		{"syntax error", "{{define \"summary\"}}\n{{end}", "bad.tmpl:2:"},
		{"empty", "", `defines none of the templates "title", "summary", "alert", "text"`},
		{"misnamed", "{{define \"header\"}}x{{end}}", "defines none"},
		{"no define", "{{.Title}}", "text outside {{define}}"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Token: testToken, Template: writeFile(t, "bad.tmpl", c.file)}
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to say %q", err, c.want)
			}
			if strings.Contains(err.Error(), "slack:") {
				t.Errorf("err = %v names the defaults, not the file", err)
			}
		})
	}
}
