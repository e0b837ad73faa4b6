package config

import (
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/herald-notify/herald/internal/queue"
)

// A problem is one thing wrong in the file, at a line.
type problem struct {
	line int
	msg  string
}

func (p problem) String() string { return fmt.Sprintf("line %d: %s", p.line, p.msg) }

// check walks a document against the type it decodes into, as the YAML
// decoder would, and returns each key no field has ("unknown key", with the
// keys that section knows) and each value its field cannot take, named by
// key path ("sinks[0].rocketchat.timeout") in the words of the config,
// never of Go. keysOnly returns the unknown keys alone: values are not
// worth checking while ${VAR}s in them are unset.
func check(doc *yaml.Node, t reflect.Type, keysOnly bool) []problem {
	c := checker{keysOnly: keysOnly}
	c.walk(doc, t, "", 0)
	return c.problems
}

type checker struct {
	keysOnly bool
	problems []problem
	// anchored holds the anchored nodes already checked, with the type
	// they were checked as: an alias is checked once, where it is first
	// used, so that aliases of aliases cannot make the walk exponential.
	anchored map[anchorUse]bool
	// visits counts the nodes walked.
	visits int
}

type anchorUse struct {
	n *yaml.Node
	t reflect.Type
}

// maxDepth bounds the walk through aliases that refer to their own
// ancestors; the decoder refuses such documents anyway.
const maxDepth = 100

var (
	durationType        = reflect.TypeFor[time.Duration]()
	sizeType            = reflect.TypeFor[queue.Size]()
	timeType            = reflect.TypeFor[time.Time]()
	nodeUnmarshaler     = reflect.TypeFor[yaml.Unmarshaler]()
	obsoleteUnmarshaler = reflect.TypeFor[interface{ UnmarshalYAML(func(any) error) error }]()
	textUnmarshaler     = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func (c *checker) add(line int, path, format string, a ...any) {
	c.problems = append(c.problems, problem{line, path + ": " + fmt.Sprintf(format, a...)})
}

func (c *checker) walk(n *yaml.Node, t reflect.Type, path string, depth int) {
	if n == nil || depth > maxDepth {
		return
	}
	c.visits++
	if n.Kind == yaml.AliasNode {
		use := anchorUse{n.Alias, t}
		if c.anchored[use] {
			return
		}
		if c.anchored == nil {
			c.anchored = map[anchorUse]bool{}
		}
		c.anchored[use] = true
		c.walk(n.Alias, t, path, depth+1)
		return
	}
	if n.Kind == yaml.DocumentNode {
		for _, d := range n.Content {
			c.walk(d, t, path, depth+1)
		}
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // null leaves the field at its zero value, whatever its type
	}
	switch {
	case t.Kind() == reflect.Struct && t != timeType:
		c.mapping(n, t, path, depth)
	case t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8:
		if n.Kind != yaml.SequenceNode {
			c.mismatch(n, t, path)
			return
		}
		for i, item := range n.Content {
			c.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), depth+1)
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.mismatch(n, t, path)
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.walk(n.Content[i+1], t.Elem(), path+"."+n.Content[i].Value, depth+1)
		}
	default:
		c.leaf(n, t, path)
	}
}

// mapping checks a section whose keys are the yaml tags of struct t.
func (c *checker) mapping(n *yaml.Node, t reflect.Type, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		c.mismatch(n, t, path)
		return
	}
	fields, known := yamlFields(t)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			// "<<: *anchor" or "<<: [*a, *b]" merges those mappings in.
			if v.Kind == yaml.SequenceNode {
				for _, m := range v.Content {
					c.mapping(resolve(m), t, path, depth+1)
				}
			} else {
				c.mapping(resolve(v), t, path, depth+1)
			}
			continue
		}
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		if first, dup := seen[k.Value]; dup {
			c.add(k.Line, p, "set twice: first on line %d", first)
			continue
		}
		seen[k.Value] = k.Line
		ft, ok := fields[k.Value]
		if !ok {
			if guess := closest(k.Value, known); guess != "" {
				c.add(k.Line, p, "unknown key, did you mean %s? (known: %s)", guess, strings.Join(known, ", "))
			} else {
				c.add(k.Line, p, "unknown key (known: %s)", strings.Join(known, ", "))
			}
			continue
		}
		c.walk(v, ft, p, depth+1)
	}
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxDepth; i++ {
		n = n.Alias
	}
	return n
}

// yamlFields maps the keys struct t decodes (its fields' yaml tags, or
// their lowercased names, as the decoder does) to their types, and lists
// the keys in field order for messages. The list leaves out keys tagged
// omitempty, which check-config does not print either: such a key (such as
// queue.concurrency) is only still accepted from older files.
func yamlFields(t reflect.Type) (map[string]reflect.Type, []string) {
	fields := map[string]reflect.Type{}
	var known []string
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			inner, innerKnown := yamlFields(f.Type)
			for k, v := range inner {
				fields[k] = v
			}
			known = append(known, innerKnown...)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
		if !slices.Contains(strings.Split(opts, ","), "omitempty") {
			known = append(known, name)
		}
	}
	return fields, known
}

// closest returns the one known key a mistyped key most likely meant: the
// same but for case, or within two edits; "" if none or several.
func closest(key string, known []string) string {
	best, bestDist, ties := "", 3, 0
	for _, k := range known {
		d := editDistance(strings.ToLower(key), k)
		switch {
		case d < bestDist:
			best, bestDist, ties = k, d, 1
		case d == bestDist:
			ties++
		}
	}
	if ties != 1 || len(key) < 3 {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// leaf checks that a value decodes into t, the type of its key.
func (c *checker) leaf(n *yaml.Node, t reflect.Type, path string) {
	if c.keysOnly {
		return
	}
	v := reflect.New(t)
	err := n.Decode(v.Interface())
	if err == nil {
		return
	}
	if _, isTypeErr := err.(*yaml.TypeError); !isTypeErr && custom(t) {
		// The type's own decoder said what is wrong, in the config's words.
		c.add(n.Line, path, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		return
	}
	c.mismatch(n, t, path)
}

// custom reports whether t decodes itself.
func custom(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return p.Implements(nodeUnmarshaler) || p.Implements(obsoleteUnmarshaler) || p.Implements(textUnmarshaler)
}

// mismatch reports a value that t cannot take.
func (c *checker) mismatch(n *yaml.Node, t reflect.Type, path string) {
	if c.keysOnly {
		return
	}
	got := describe(n)
	switch {
	case t == durationType && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int":
		c.add(n.Line, path, "expected %s, got %s (a duration needs a unit: %ss)", expected(t), got, n.Value)
	case t.Kind() == reflect.Slice && n.Kind == yaml.ScalarNode:
		c.add(n.Line, path, "expected %s, got %s (a list of one is written [%s])", expected(t), got, n.Value)
	default:
		c.add(n.Line, path, "expected %s, got %s", expected(t), got)
	}
}

// expected says in the config's words what a value of type t is.
func expected(t reflect.Type) string {
	switch t {
	case durationType:
		return "a duration such as 30s, 5m or 1h30m"
	case sizeType:
		return "a size such as 20GiB, 500MB or a number of bytes"
	case timeType:
		return "a time such as 2026-01-02T15:04:05Z"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a single value"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct:
		_, known := yamlFields(t)
		return "a mapping with the keys " + strings.Join(known, ", ")
	case reflect.Map:
		return "a mapping of name: value"
	}
	return "another kind of value"
}

// describe names a YAML value for a message: a scalar as written (quoted
// when it is a string), a list or mapping by its kind.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" {
			return strconv.Quote(n.Value)
		}
		return n.Value
	}
	return "a value"
}
