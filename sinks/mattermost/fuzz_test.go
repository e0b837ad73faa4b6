package mattermost

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/sinks"
)

// FuzzClassify feeds arbitrary answers to the decoder of error answers: it
// must not panic, must classify every non-2xx answer, and must never
// repeat a secret the server echoed.
func FuzzClassify(f *testing.F) {
	f.Add(400, `{"id":"model.post.is_valid.msg.app_error","message":"too long","status_code":400}`, "")
	f.Add(429, "limit exceeded\n", "12")
	f.Add(404, "<html>", "")
	f.Add(500, `{"id":"x","message":"tok-secret-1"}`, "1700000000")
	f.Fuzz(func(t *testing.T, status int, body, reset string) {
		if status < 100 || status > 999 || status/100 == 2 {
			return
		}
		redact := func(s string) string { return strings.ReplaceAll(s, "tok-secret-1", "<secret>") }
		err := classify("create post", status, http.Header{"X-Ratelimit-Reset": {reset}}, []byte(body), time.Unix(1700000000, 0), redact)
		if err == nil {
			t.Fatal("nil error for a non-2xx answer")
		}
		if strings.Contains(err.Error(), "tok-secret-1") {
			t.Fatalf("secret in %v", err)
		}
		if w, ok := sinks.ThrottleWait(err); ok && (w <= 0 || w > maxThrottle) {
			t.Fatalf("wait %v out of range", w)
		}
	})
}

// FuzzEscaper checks that no text escaped by Text has a character that
// starts a mention, a channel link, a markdown link or a code span.
func FuzzEscaper(f *testing.F) {
	for _, s := range []string{"@all", "[a](http://b)", "~town", "`x`", "<!here>", "a\u200b@b", "# h\n- l"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, multiline := range []bool{false, true} {
			out := escaper{}.Text(s, multiline)
			if strings.ContainsAny(out, "@~[]`<>*_$|\\\u202e") {
				t.Fatalf("Text(%q) = %q keeps an active character", s, out)
			}
			if strings.Contains(out, "://") {
				t.Fatalf("Text(%q) = %q keeps a URL", s, out)
			}
			code := escaper{}.Code(s)
			if strings.ContainsAny(code, "`@~\n") {
				t.Fatalf("Code(%q) = %q", s, code)
			}
		}
	})
}
