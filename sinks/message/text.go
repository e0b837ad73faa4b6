package message

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Clean drops control, zero-width and bidirectional-override characters,
// normalises line breaks, and, unless multiline, turns them into spaces.
// Invalid UTF-8 becomes U+FFFD.
func Clean(s string, multiline bool) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var b strings.Builder
	b.Grow(len(s))
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
		case dropped(r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// dropped reports whether Clean leaves r out.
func dropped(r rune) bool {
	return isBidiControl(r) || unicode.IsControl(r) || r == '\u200b' || r == '\ufeff'
}

func isBidiControl(r rune) bool {
	return (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') || r == '\u200e' || r == '\u200f'
}

// UTF16Len is the length of s as JavaScript counts it, which is how chat
// servers written in it (Rocket.Chat, Mattermost's web app) apply their
// size limits.
func UTF16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// CutUTF16 returns the longest prefix of s of at most max UTF-16 units that
// does not split a character.
func CutUTF16(s string, max int) string {
	if max <= 0 {
		return ""
	}
	n := 0
	for i, r := range s {
		w := 1
		if r >= 0x10000 {
			w = 2
		}
		if n+w > max {
			return s[:i]
		}
		n += w
	}
	return s
}

// Shorten cuts s to at most max UTF-16 units, ending it with "…" when cut.
func Shorten(s string, max int) string {
	if UTF16Len(s) <= max {
		return s
	}
	return strings.TrimRightFunc(CutUTF16(s, max-1), unicode.IsSpace) + "…"
}

// Fit returns escape(s) if it has at most max UTF-16 units, else escape of
// the longest prefix of s that, ended with "…", escapes to at most max
// units: a cap on what the reader sees, however much the escaping adds.
func Fit(s string, max int, escape func(string) string) string {
	out := escape(s)
	if UTF16Len(out) <= max {
		return out
	}
	runes := []rune(s)
	cut := func(k int) string {
		return escape(strings.TrimRightFunc(string(runes[:k]), unicode.IsSpace) + "…")
	}
	// The largest k whose escaped prefix fits; 0 if none does.
	lo, hi := 0, len(runes)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if UTF16Len(cut(mid)) <= max {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo == 0 {
		return ""
	}
	return cut(lo)
}
