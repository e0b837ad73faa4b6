package sinks

import (
	"fmt"
	"os"
	"strings"
	"text/template"
	"text/template/parse"
)

// ParseTemplateFile parses the template file at path over a copy of a
// sink's default templates, for the sinks whose templates users may
// override. The file must redefine one or more of names, the templates the
// sink executes, each inside {{define "name"}}…{{end}}: a file that
// redefines none (empty, a typo in a name, a message written without
// {{define}}), or that has text outside its definitions, is an error
// rather than a file that changes nothing. Errors, when parsing and later
// when executing, name the file and the line.
func ParseTemplateFile(defaults *template.Template, path string, names ...string) (*template.Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := defaults.Clone()
	if err != nil {
		return nil, err
	}
	// Parsed under its own name, the file's errors say "template:
	// <path>:<line>: …", not the name of the defaults' file.
	name := path
	if t.Lookup(name) != nil {
		name = "./" + name
	}
	file, err := t.New(name).Parse(string(b))
	if err != nil {
		return nil, err
	}
	if file.Tree != nil && !parse.IsEmptyTree(file.Root) {
		return nil, fmt.Errorf("%s: text outside {{define}} is never shown: put it inside {{define %q}}…{{end}}", path, names[0])
	}
	for _, n := range names {
		if d, f := defaults.Lookup(n), t.Lookup(n); f != nil && (d == nil || f.Tree != d.Tree) {
			return t, nil
		}
	}
	return nil, fmt.Errorf("%s defines none of the templates %s: each goes inside {{define \"name\"}}…{{end}} (an empty definition keeps the default)",
		path, quoteAll(names))
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
