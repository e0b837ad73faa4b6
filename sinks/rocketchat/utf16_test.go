package rocketchat

import (
	"strings"
	"testing"
	"unicode"
)

// utf16LenRef and shortenRef are utf16Len and shorten before their ASCII
// fast paths.
func utf16LenRef(s string) int {
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

func shortenRef(s string, max int) string {
	if utf16LenRef(s) <= max {
		return s
	}
	return strings.TrimRightFunc(cutUTF16(s, max-1), unicode.IsSpace) + "…"
}

func FuzzUTF16Same(f *testing.F) {
	for _, s := range []string{"", "abc", "é", "🔥x", "a\xffb", "\xf0\x9f", "ab🔥 cd ", strings.Repeat("x", 200) + "🔥"} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		if got, want := utf16Len(s), utf16LenRef(s); got != want {
			t.Fatalf("utf16Len(%q) = %d, want %d", s, got, want)
		}
		max = max%300 + 1
		if max < 1 {
			max += 300
		}
		if got, want := shorten(s, max), shortenRef(s, max); got != want {
			t.Fatalf("shorten(%q, %d) = %q, want %q", s, max, got, want)
		}
	})
}
