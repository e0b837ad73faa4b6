package rocketchat

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// escapeTextRef and escapeCodeRef are the escapers without the checks
// that return their input as it is when nothing needs escaping, and with
// the old clean: FuzzEscapeSame holds the two to the same output, byte for
// byte, so a shortcut can never skip an escape.

func escapeTextRef(s string, multiline bool) string {
	return escapeClean(cleanRef(s, multiline))
}

func escapeCodeRef(s string) string {
	return escapeCodeClean(cleanRef(s, false))
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

// escapeSameSeeds are FuzzEscapeSame's seeds; mdparser_test.go parses
// them too.
var escapeSameSeeds = []string{
	"", "plain text", "@here", "a@b", "x [a](b) <c|d>", "# h\n> q", "#room", "a#b", "||s|| *b* `c`", "_i_ a_b",
	"\u202e@all", "\xff@x", "\xf0\x9f", "line\r\nbreak\rx\ty", "\x00\x1f\x7f\u0085\u200b\ufeff", "\ufffd",
	"< x", "a<", "<b", "](x)", "\n#\n>", "🔥 @🔥 #é", "é@x ß#y", "|", "||", "x|", "end#",
}

func FuzzEscapeSame(f *testing.F) {
	for _, s := range escapeSameSeeds {
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
