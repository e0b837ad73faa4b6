package teams

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzEscape checks what the escaper promises of any text: no character
// of Markdown is left, no function, scheme or e-mail address survives
// whole, and the result is valid UTF-8 without control characters but
// line breaks.
func FuzzEscape(f *testing.F) {
	for _, s := range inertCorpus {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, multiline bool) {
		out := (escaper{}).Text(s, multiline)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8: %q", out)
		}
		if i := strings.IndexAny(out, "*_`[]<>~|\\"); i >= 0 {
			t.Fatalf("%q keeps %q", out, out[i])
		}
		for _, bad := range []string{"{{", "://", "@"} {
			if i := strings.Index(out, bad); i >= 0 && (bad != "@" || i > 0 && !strings.HasSuffix(out[:i], zwsp)) {
				t.Fatalf("%q keeps %q", out, bad)
			}
		}
		for _, r := range out {
			if r < 0x20 && r != '\n' || r == 0x7f {
				t.Fatalf("%q keeps control %U", out, r)
			}
		}
		if !multiline && strings.Contains(out, "\n") {
			t.Fatalf("%q has a line break", out)
		}
	})
}

// FuzzReason feeds the error answer's decoder any body: it never fails,
// and never returns the webhook's signature.
func FuzzReason(f *testing.F) {
	f.Add([]byte(`{"error":{"code":"WorkflowNotFound","message":"The workflow could not be found."}}`))
	f.Add([]byte(`{"error":{"code":"X","message":"sig=Zq8pXcK2vN7mR4tLwJ9sB5yH"}}`))
	f.Add([]byte(`{"error":"x"}`))
	s := &Sink{secrets: secretsOf("https://h.example/workflows/w/triggers/manual/paths/invoke?api-version=1&sig=Zq8pXcK2vN7mR4tLwJ9sB5yH")}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := s.reason(body)
		if strings.Contains(r, "Zq8pXcK2vN7mR4tLwJ9sB5yH") {
			t.Fatalf("reason %q reveals the signature", r)
		}
		if utf8.RuneCountInString(r) > 300 {
			t.Fatalf("reason of %d characters", utf8.RuneCountInString(r))
		}
	})
}
