package sinks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
)

func TestParseTemplateFile(t *testing.T) {
	defaults := template.Must(template.New("default.tmpl").Parse(`{{define "text"}}default {{.}}{{end}}{{define "digest"}}digest{{end}}`))
	cases := []struct {
		name, file string
		want       string // the output of "text", or the error's text
		wantErr    bool
	}{
		{"redefines text", `{{define "text"}}mine {{.}}{{end}}`, "mine x", false},
		{"redefines digest only", `{{define "digest"}}d{{end}}`, "default x", false},
		{"helper and text", "{{/* a comment */}}\n{{define \"item\"}}<{{.}}>{{end}}\n{{define \"text\"}}{{template \"item\" .}}{{end}}\n", "<x>", false},
		{"empty file", ``, "defines none of the templates \"text\", \"digest\"", true},
		{"only a comment", "{{/* nothing yet */}}\n", "defines none", true},
		{"a typo", `{{define "txt"}}x{{end}}`, "defines none", true},
		{"an empty definition", `{{define "text"}}{{end}}`, "defines none", true},
		{"no define", `Alert {{.}}`, "text outside {{define}} is never shown", true},
		{"text beside a define", "{{define \"text\"}}x{{end}}\nstray", "text outside {{define}}", true},
		{"syntax error", "{{define \"text\"}}\n{{if}}{{end}}", "user.tmpl:2:", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "user.tmpl")
			if err := os.WriteFile(path, []byte(c.file), 0o644); err != nil {
				t.Fatal(err)
			}
			tmpl, err := ParseTemplateFile(defaults, path, "text", "digest")
			if c.wantErr {
				if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "user.tmpl") {
					t.Fatalf("err = %v, want it to name user.tmpl and say %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			if err := tmpl.ExecuteTemplate(&b, "text", "x"); err != nil || b.String() != c.want {
				t.Errorf("text = %q, %v; want %q", b.String(), err, c.want)
			}
		})
	}
	// An execution error names the user's file and line too.
	path := filepath.Join(t.TempDir(), "user.tmpl")
	os.WriteFile(path, []byte("{{define \"text\"}}\n{{.Missing}}{{end}}"), 0o644)
	tmpl, err := ParseTemplateFile(defaults, path, "text")
	if err != nil {
		t.Fatal(err)
	}
	err = tmpl.ExecuteTemplate(new(strings.Builder), "text", struct{}{})
	if err == nil || !strings.Contains(err.Error(), path+":2:") {
		t.Errorf("execution error %v does not name %s:2", err, path)
	}
	if _, err := ParseTemplateFile(defaults, filepath.Join(t.TempDir(), "missing.tmpl"), "text"); err == nil {
		t.Error("a missing file was accepted")
	}
}
