package rocketchat

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The escapers as they were before they learned to return their input
// when nothing needs escaping: FuzzEscapeSame holds the two to the same
// output, byte for byte.

func escapeTextRef(s string, multiline bool) string {
	s = cleanRef(s, multiline)
	var b strings.Builder
	var prev rune
	lineStart := true
	rs := []rune(s)
	for i, r := range rs {
		next := rune(0)
		if i+1 < len(rs) {
			next = rs[i+1]
		}
		switch {
		case r == '@' && !isWordRune(prev):
			b.WriteRune(atSign)
		case r == '#' && !isWordRune(prev) && isNameRune(next):
			b.WriteRune(hashSign)
		case lineStart && (r == '#' || r == '>'):
			b.WriteString(zwsp)
			b.WriteRune(r)
		case r == '*':
			b.WriteRune(asterisk)
		case r == '~':
			b.WriteRune(tilde)
		case r == '`':
			b.WriteRune(backtick)
		case r == '_' && !isWordRune(prev):
			b.WriteRune(underscore)
		case r == '|' && (next == '|' || prev == '|'):
			b.WriteRune(pipe)
		case r == '(' && prev == ']':
			b.WriteString(zwsp + "(")
		case r == '<' && next != ' ' && next != 0:
			b.WriteString("<" + zwsp)
		default:
			b.WriteRune(r)
		}
		lineStart = r == '\n'
		if lineStart {
			prev = 0
		} else {
			prev = r
		}
	}
	return b.String()
}

func escapeCodeRef(s string) string {
	s = cleanRef(s, false)
	var b strings.Builder
	prev := rune(0)
	for _, r := range s {
		switch {
		case r == '`':
			b.WriteRune(backtick)
		case r == '@' && !isWordRune(prev):
			b.WriteRune(atSign)
		default:
			b.WriteRune(r)
		}
		prev = r
	}
	return b.String()
}

func cleanRef(s string, multiline bool) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r':
			if multiline {
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
		case r == '\t':
			b.WriteByte(' ')
		case isBidiControl(r), unicode.IsControl(r), r == '\u200b', r == '\ufeff':
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func FuzzEscapeSame(f *testing.F) {
	for _, s := range []string{
		"", "plain text", "@here", "a@b", "x [a](b) <c|d>", "# h\n> q", "#room", "a#b", "||s|| *b* `c`", "_i_ a_b",
		"\u202e@all", "\xff@x", "\xf0\x9f", "line\r\nbreak\rx\ty", "\x00\x1f\x7f\u0085\u200b\ufeff", "\ufffd",
		"< x", "a<", "<b", "](x)", "\n#\n>", "🔥 @🔥 #é", "é@x ß#y", "|", "||", "x|", "end#",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, ml := range []bool{false, true} {
			if got, want := clean(in, ml), cleanRef(in, ml); got != want {
				t.Fatalf("clean(%q, %v) = %q, want %q", in, ml, got, want)
			}
			if got, want := escapeText(in, ml), escapeTextRef(in, ml); got != want {
				t.Fatalf("escapeText(%q, %v) = %q, want %q", in, ml, got, want)
			}
		}
		if got, want := escapeCode(in), escapeCodeRef(in); got != want {
			t.Fatalf("escapeCode(%q) = %q, want %q", in, got, want)
		}
	})
}
