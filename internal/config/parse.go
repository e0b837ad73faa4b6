package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
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
		if !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: %s", name, syntaxError(b, err))
		}
		// An empty file, or comments only: herald's defaults, as with no
		// file at all.
		c := &Config{name: name}
		if err := c.Validate(); err != nil {
			return nil, c.locate(err)
		}
		return c, nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("%s: line %d: only one YAML document is allowed", name, extra.Line)
	}
	// Unknown keys are found in any case (keys are never expanded); values
	// are checked once every ${VAR} in them is set.
	problems := expandEnv(&doc)
	problems = append(problems, check(&doc, reflect.TypeFor[Config](), len(problems) > 0)...)
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b problem) int { return a.line - b.line })
		msgs := make([]string, len(problems))
		for i, p := range problems {
			msgs[i] = name + ": " + p.String()
		}
		return nil, errors.New(strings.Join(msgs, "\n"))
	}
	c := &Config{name: name, lines: keyLines(&doc)}
	if err := doc.Decode(c); err != nil {
		// check found nothing, so this is a value check does not know.
		return nil, fmt.Errorf("%s: %s", name, describeYAMLError(err))
	}
	if err := c.Validate(); err != nil {
		return nil, c.locate(err)
	}
	return c, nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${NAME} in the document's scalar values with the
// environment variable's value, byte for byte: the value is not read as
// YAML, so quotes, " #", backslashes and outer spaces in it stay. Keys and
// comments are not expanded, and a bare $ is left alone, so regular
// expressions keep their anchors. An unset variable is an error: a missing
// token must not silently become "".
func expandEnv(doc *yaml.Node) []problem {
	var problems []problem
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

func expandScalar(n *yaml.Node) []problem {
	refs := envRef.FindAllStringSubmatchIndex(n.Value, -1)
	if refs == nil {
		return nil
	}
	var problems []problem
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
			problems = append(problems, problem{line, fmt.Sprintf("${%s} is not set", name)})
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

var syntaxLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// parserProblems are the YAML library's messages from its parser, which
// names the line (counted from 0) where the block, list or [...] / {...}
// that holds the mistake starts. Its scanner's messages name the line of
// the mistake itself, counted from 1.
var parserProblems = []string{
	"did not find expected ',' or ']'", "did not find expected ',' or '}'", "did not find expected '-' indicator",
	"did not find expected <document start>", "did not find expected key", "did not find expected node content",
	"found undefined tag handle",
}

// syntaxError says on which line the document stops being YAML, and why.
// The line is the later of two that cannot be after the mistake: the first
// line at which the text so far does not read as YAML (the line with the
// mistake, or one that opens a [...], {...} or quoted value left open),
// and the line the YAML library names, counted from 1. An unexpected end
// of the file is reported where the value left open starts.
func syntaxError(b []byte, err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	libLine := 0
	if m := syntaxLine.FindStringSubmatch(msg); m != nil {
		libLine, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		if slices.Contains(parserProblems, msg) {
			libLine++
		}
	}
	line := firstBadLine(b)
	if line == 0 || !strings.HasPrefix(msg, "found unexpected end of stream") {
		line = max(line, libLine)
	}
	if line == 0 {
		return msg + flowHint(b, 0)
	}
	hint := flowHint(b, line)
	if hint == "" {
		hint = syntaxHint(b, line, msg)
	}
	return fmt.Sprintf("line %d: %s%s", line, msg, hint)
}

// syntaxHint says in a few words what usually causes the YAML library's
// message msg at line (counted from 1), or "".
func syntaxHint(b []byte, line int, msg string) string {
	if lines := bytes.Split(b, []byte("\n")); line <= len(lines) && bytes.ContainsRune(lines[line-1], '\t') &&
		strings.Contains(msg, "cannot start any token") {
		return " (a tab: YAML indents with spaces only)"
	}
	switch {
	case strings.HasPrefix(msg, "did not find expected '-' indicator"),
		strings.HasPrefix(msg, "did not find expected key"):
		return " (check the indentation of this line against the lines above)"
	case strings.HasPrefix(msg, "mapping values are not allowed in this context"):
		return ` (quote a value that has ": " in it, or check the indentation)`
	case strings.HasPrefix(msg, "did not find expected ',' or"):
		return " (check that each [ and { from here on is closed, and items are separated by commas)"
	case strings.HasPrefix(msg, "found unexpected end of stream"):
		return " (a quote, [ or { opened here is not closed)"
	}
	return ""
}

// maxSearchLines bounds firstBadLine, which reads the text once a line.
const maxSearchLines = 1000

// firstBadLine returns the smallest n such that the first n lines of b do
// not read as YAML, or 0 if it cannot tell.
func firstBadLine(b []byte) int {
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines) > maxSearchLines {
		return 0
	}
	end := 0
	for i, l := range lines {
		end += len(l)
		var n yaml.Node
		if err := yaml.NewDecoder(bytes.NewReader(b[:end])).Decode(&n); err != nil && !errors.Is(err, io.EOF) {
			return i + 1
		}
	}
	return 0
}

// flowHint explains the syntax error an unquoted ${NAME} makes inside a
// flow collection ([...] or {...}), where YAML does not allow { in a plain
// value: near line (counted from 1), or anywhere if line is 0.
func flowHint(b []byte, line int) string {
	lines := bytes.Split(b, []byte("\n"))
	suspect := func(i int) bool {
		return i >= 0 && i < len(lines) && bytes.Contains(lines[i], []byte("${")) && bytes.ContainsAny(lines[i], "[{")
	}
	const hint = ` (inside [...] or {...}, quote a reference: "${NAME}")`
	if line > 0 {
		if suspect(line-2) || suspect(line-1) || suspect(line) {
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

// describeYAMLError writes a decoding error that check did not foresee as
// "line N: ..." lines.
func describeYAMLError(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	return strings.Join(te.Errors, "; ")
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
