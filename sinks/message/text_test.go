package message

import (
	"strings"
	"testing"
	"unicode/utf16"
)

// TestFit caps what the reader sees by its escaped length, never splits a
// character, and marks a cut.
func TestFit(t *testing.T) {
	amp := func(s string) string { return strings.ReplaceAll(s, "&", "&amp;") }
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"&&&&", 20, "&amp;&amp;&amp;&amp;"},
		{"&&&&", 12, "&amp;&amp;…"},
		{"🔥🔥🔥", 4, "🔥…"},
		{"&", 3, ""},
	}
	for _, tt := range tests {
		got := Fit(tt.in, tt.max, amp)
		if got != tt.want {
			t.Errorf("Fit(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
		if n := len(utf16.Encode([]rune(got))); n > tt.max {
			t.Errorf("Fit(%q, %d) = %q: %d units", tt.in, tt.max, got, n)
		}
	}
}

func FuzzFit(f *testing.F) {
	f.Add("a&b<c>", 5)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1000 {
			return
		}
		esc := func(s string) string { return strings.NewReplacer("&", "&amp;", "<", "&lt;").Replace(s) }
		got := Fit(Clean(s, true), max, esc)
		if UTF16Len(got) > max {
			t.Fatalf("Fit(%q, %d) = %q: %d units", s, max, got, UTF16Len(got))
		}
	})
}
