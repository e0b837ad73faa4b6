package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/herald-notify/herald/internal/secret"
)

// Load reads, strictly parses and expands the file at path, then validates it.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// Parse is Load for bytes already read; name is used in error messages.
// No error it returns shows the credentials of a URL.
func Parse(name string, b []byte) (*Config, error) {
	c, err := parse(name, b)
	if err != nil {
		return nil, &redactedError{err}
	}
	return c, nil
}

func parse(name string, b []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: the file is empty", name)
		}
		return nil, fmt.Errorf("%s: %s%s", name, describeYAMLError(err), flowHint(b, err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("%s:%d: only one YAML document is allowed", name, extra.Line)
	}
	problems := unknownKeys(b)
	problems = append(problems, expandEnv(&doc)...)
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s: %s", name, strings.Join(problems, "; "))
	}
	c := &Config{name: name, lines: keyLines(&doc)}
	if err := doc.Decode(c); err != nil {
		return nil, fmt.Errorf("%s: %s", name, describeYAMLError(err))
	}
	if err := c.Validate(); err != nil {
		return nil, c.locate(err)
	}
	return c, nil
}

// unknownKeys decodes the text as written, strictly, and returns its
// unknown-key errors: yaml.Node.Decode, which decodes the expanded
// document, has no strict mode. Keys are never expanded, so the text shows
// all of them; every other error is left to the expanded document, which
// has the values herald will use.
func unknownKeys(b []byte) []string {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err := dec.Decode(&Config{})
	if err == nil {
		return nil
	}
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var out []string
	for _, m := range msgs {
		if s, ok := unknownKey(m); ok {
			out = append(out, s)
		}
	}
	return out
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${NAME} in the document's scalar values with the
// environment variable's value, byte for byte: the value is not read as
// YAML, so quotes, " #", backslashes and outer spaces in it stay. Keys and
// comments are not expanded, and a bare $ is left alone, so regular
// expressions keep their anchors. An unset variable is an error: a missing
// token must not silently become "".
func expandEnv(doc *yaml.Node) []string {
	var problems []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c)
			}
		case yaml.MappingNode:
			for i := 1; i < len(n.Content); i += 2 {
				walk(n.Content[i])
			}
		case yaml.ScalarNode:
			problems = append(problems, expandScalar(n)...)
		}
		// An alias is expanded where its anchor is.
	}
	walk(doc)
	return problems
}

func expandScalar(n *yaml.Node) []string {
	refs := envRef.FindAllStringSubmatchIndex(n.Value, -1)
	if refs == nil {
		return nil
	}
	var problems []string
	var b strings.Builder
	last := 0
	for _, r := range refs {
		name := n.Value[r[2]:r[3]]
		b.WriteString(n.Value[last:r[0]])
		last = r[1]
		v, ok := os.LookupEnv(name)
		if !ok {
			line := n.Line
			if n.Style&yaml.LiteralStyle != 0 {
				line += 1 + strings.Count(n.Value[:r[0]], "\n")
			}
			problems = append(problems, fmt.Sprintf("line %d: ${%s} is not set", line, name))
			continue
		}
		b.WriteString(v)
	}
	b.WriteString(n.Value[last:])
	n.Value = b.String()
	// A plain scalar gets the type its expanded text has, as if written so
	// ("replicas: ${N}" is a number), except null: a token "null" or "~"
	// is a string. Quoted scalars stay strings.
	if n.Style == 0 && n.Tag == "!!str" {
		n.Tag = ""
		n.Tag = n.ShortTag()
		if n.Tag == "!!null" && n.Value != "" {
			n.Tag = "!!str"
		}
	}
	return problems
}

var syntaxLine = regexp.MustCompile(`^yaml: line (\d+):`)

// flowHint explains the syntax error an unquoted ${NAME} makes inside a
// flow collection ([...] or {...}), where YAML does not allow { in a plain
// value: near the line the error names, or anywhere if it names none.
func flowHint(b []byte, err error) string {
	lines := bytes.Split(b, []byte("\n"))
	suspect := func(i int) bool {
		return i >= 0 && i < len(lines) && bytes.Contains(lines[i], []byte("${")) && bytes.ContainsAny(lines[i], "[{")
	}
	const hint = ` (inside [...] or {...}, quote a reference: "${NAME}")`
	if m := syntaxLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		if suspect(n-2) || suspect(n-1) || suspect(n) {
			return hint
		}
		return ""
	}
	for i := range lines {
		if suspect(i) {
			return hint
		}
	}
	return ""
}

var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (\S+)$`)

// unknownKey rewrites the YAML library's unknown-field message as
// `line N: unknown key "x" (in T)`.
func unknownKey(msg string) (string, bool) {
	m := unknownField.FindStringSubmatch(msg)
	if m == nil {
		return "", false
	}
	return fmt.Sprintf("line %s: unknown key %q (in %s)", m[1], m[2], m[3]), true
}

// describeYAMLError rewrites the YAML library's messages into "line N: ..."
// lines.
func describeYAMLError(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if s, ok := unknownKey(msg); ok {
			return s
		}
		return msg
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		if s, ok := unknownKey(e); ok {
			e = s
		}
		msgs = append(msgs, e)
	}
	return strings.Join(msgs, "; ")
}

// keyLines maps the key path of every key and list item in the document,
// as Validate names them ("routes[2].chain[0]"), to its line.
func keyLines(doc *yaml.Node) map[string]int {
	lines := map[string]int{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				lines[p] = n.Content[i].Line
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				lines[p] = c.Line
				walk(c, p)
			}
		}
	}
	walk(doc, "")
	return lines
}

var (
	leadingPath = regexp.MustCompile(`^[a-z0-9_]+(?:\[\d+\])*(?:\.[a-z0-9_]+(?:\[\d+\])*)*`)
	// A section's own problems follow its path after ": ", the section's
	// name in parentheses first: `sinks[0] ("rc"): token: required`.
	subKey = regexp.MustCompile(`^(?: \([^)]*\))?: ([a-z0-9_]+(?:\[\d+\])*):`)
)

// where returns "file: line N: " for a problem that starts with a key path
// (as Validate writes them) found in the file, else "file: ", or "" for a
// config that did not come from Parse.
func (c *Config) where(problem string) string {
	if c.name == "" {
		return ""
	}
	path := leadingPath.FindString(problem)
	rest := problem[len(path):]
	// The longest prefix of path that the file has.
	for path != "" && c.lines[path] == 0 {
		if i := strings.LastIndexAny(path, ".["); i > 0 {
			path = path[:i]
		} else {
			path = ""
		}
	}
	// Then down through the section's own keys while the file has them,
	// under the path or under its one child ("sinks[0].rocketchat.token").
	for path != "" {
		m := subKey.FindStringSubmatch(rest)
		if m == nil {
			break
		}
		next := c.child(path, m[1])
		if next == "" {
			break
		}
		path, rest = next, rest[len(m[0])-1:]
	}
	if line := c.lines[path]; path != "" && line > 0 {
		return fmt.Sprintf("%s: line %d: ", c.name, line)
	}
	return c.name + ": "
}

// child returns path.key if the file has it, or path.x.key for the one x
// that has it, else "".
func (c *Config) child(path, key string) string {
	if p := path + "." + key; c.lines[p] > 0 {
		return p
	}
	found := ""
	for p := range c.lines {
		mid, ok := strings.CutPrefix(p, path+".")
		if !ok {
			continue
		}
		if x, ok := strings.CutSuffix(mid, "."+key); ok && !strings.ContainsAny(x, ".[") {
			if found != "" {
				return ""
			}
			found = p
		}
	}
	return found
}

// locate prefixes each line of a validation error with its file and line.
func (c *Config) locate(err error) error {
	problems := strings.Split(err.Error(), "\n")
	for i, p := range problems {
		problems[i] = c.where(p) + p
	}
	return &fileError{msg: strings.Join(problems, "\n"), err: err}
}

// fileError is a validation error whose message names the file and lines.
type fileError struct {
	msg string
	err error
}

func (e *fileError) Error() string { return e.msg }
func (e *fileError) Unwrap() error { return e.err }

// redactedError hides the credentials of any URL its message quotes, from
// whichever check wrote it.
type redactedError struct{ err error }

func (e *redactedError) Error() string { return secret.RedactURLs(e.err.Error()) }
func (e *redactedError) Unwrap() error { return e.err }

// MarshalYAML prints the config as check-config shows it: secrets as
// <secret>, and the credentials of every URL (queue.url, a sink's url) too.
func (c Config) MarshalYAML() (any, error) {
	type plain Config
	var n yaml.Node
	if err := n.Encode(plain(c)); err != nil {
		return nil, err
	}
	redactURLs(&n)
	return &n, nil
}

func redactURLs(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode {
		n.Value = secret.RedactURLs(n.Value)
	}
	for _, c := range n.Content {
		redactURLs(c)
	}
}
