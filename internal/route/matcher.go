package route

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MatchType is the operator of a Matcher.
type MatchType int

const (
	MatchEqual MatchType = iota
	MatchNotEqual
	MatchRegexp
	MatchNotRegexp
)

func (t MatchType) String() string {
	return [...]string{"=", "!=", "=~", "!~"}[t]
}

// Matcher tests one label, with Alertmanager's semantics: a missing label
// has the value "", and regular expressions are anchored at both ends.
type Matcher struct {
	Name  string
	Type  MatchType
	Value string
	re    *regexp.Regexp
}

// Matches reports whether v, the label's value ("" when absent), matches.
func (m *Matcher) Matches(v string) bool {
	switch m.Type {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp:
		return m.re.MatchString(v)
	case MatchNotRegexp:
		return !m.re.MatchString(v)
	}
	return false
}

// String prints the matcher in the syntax ParseMatchers reads.
func (m *Matcher) String() string {
	name := m.Name
	if !plainName.MatchString(name) {
		name = strconv.Quote(name)
	}
	return name + m.Type.String() + strconv.Quote(m.Value)
}

var plainName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// ParseMatchers reads matchers in Alertmanager syntax: one or more
// comma-separated `name op value` terms, optionally inside braces, where op is
// =, !=, =~ or !~ and value is a double-quoted string (Go escapes) or a bare
// word. Names may be quoted too, for UTF-8 label names.
func ParseMatchers(s string) ([]*Matcher, error) {
	p := &parser{in: strings.TrimSpace(s)}
	if strings.HasPrefix(p.in, "{") {
		if !strings.HasSuffix(p.in, "}") {
			return nil, fmt.Errorf("%q: missing closing }", s)
		}
		p.in = strings.TrimSpace(p.in[1 : len(p.in)-1])
	}
	var ms []*Matcher
	for {
		p.space()
		if p.done() {
			break
		}
		m, err := p.matcher()
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		ms = append(ms, m)
		p.space()
		if p.done() {
			break
		}
		if !p.eat(",") {
			return nil, fmt.Errorf("%q: expected , after %s at offset %d", s, m, p.pos)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("%q: no matchers", s)
	}
	return ms, nil
}

type parser struct {
	in  string
	pos int
}

func (p *parser) done() bool { return p.pos >= len(p.in) }

func (p *parser) space() {
	for !p.done() {
		r, n := utf8.DecodeRuneInString(p.in[p.pos:])
		if !unicode.IsSpace(r) {
			return
		}
		p.pos += n
	}
}

func (p *parser) eat(tok string) bool {
	if strings.HasPrefix(p.in[p.pos:], tok) {
		p.pos += len(tok)
		return true
	}
	return false
}

func (p *parser) matcher() (*Matcher, error) {
	name, err := p.word(func(r rune) bool { return r == '=' || r == '!' || r == '~' || r == ',' || unicode.IsSpace(r) })
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, fmt.Errorf("expected a label name at offset %d", p.pos)
	}
	p.space()
	var t MatchType
	switch {
	case p.eat("=~"):
		t = MatchRegexp
	case p.eat("!~"):
		t = MatchNotRegexp
	case p.eat("!="):
		t = MatchNotEqual
	case p.eat("="):
		t = MatchEqual
	default:
		return nil, fmt.Errorf("expected =, !=, =~ or !~ after %q at offset %d", name, p.pos)
	}
	p.space()
	value, err := p.word(func(r rune) bool { return r == ',' || r == '}' || r == '{' || unicode.IsSpace(r) })
	if err != nil {
		return nil, err
	}
	m := &Matcher{Name: name, Type: t, Value: value}
	if t == MatchRegexp || t == MatchNotRegexp {
		re, err := regexp.Compile("^(?:" + value + ")$")
		if err != nil {
			return nil, fmt.Errorf("bad regular expression for %q: %w", name, err)
		}
		m.re = re
	}
	return m, nil
}

// word reads a quoted string, or a bare word up to a rune that stop accepts.
func (p *parser) word(stop func(rune) bool) (string, error) {
	if strings.HasPrefix(p.in[p.pos:], `"`) {
		end := p.pos + 1
		for end < len(p.in) {
			if p.in[end] == '\\' {
				end += 2
				continue
			}
			if p.in[end] == '"' {
				break
			}
			end++
		}
		if end >= len(p.in) {
			return "", fmt.Errorf("unterminated quoted string at offset %d", p.pos)
		}
		v, err := strconv.Unquote(p.in[p.pos : end+1])
		if err != nil {
			return "", fmt.Errorf("bad quoted string at offset %d: %w", p.pos, err)
		}
		p.pos = end + 1
		return v, nil
	}
	start := p.pos
	for !p.done() {
		r, n := utf8.DecodeRuneInString(p.in[p.pos:])
		if r == '"' || stop(r) {
			break
		}
		p.pos += n
	}
	return p.in[start:p.pos], nil
}
