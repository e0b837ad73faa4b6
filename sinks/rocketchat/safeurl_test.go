package rocketchat

import (
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
)

// safeURLRef is safeURL before its fast path for plain URLs.
func safeURLRef(u string) string {
	p, err := url.Parse(strings.TrimSpace(u))
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return ""
	}
	if p.User != nil || strings.ContainsAny(p.Host, "@ <>|`\"") {
		return ""
	}
	return urlEscaper.Replace(p.String())
}

func FuzzSafeURLSame(f *testing.F) {
	for _, u := range append(oddURLs,
		"http://prometheus.example.com:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1",
		"http://alertmanager.example.com:9093/#/silences/new?filter=%7Balertname%3D%22X%22%2Cloadid%3D%22hlq0281788785qlh%22%7D",
		"https://h", "http://h:", "http://h:0", "http://h:123456", "http://h:80/", "http://h?q", "http://h#f", "http://h#a#b",
		"http://h/%zz", "http://h/%2F%2f", "http://h/a%", "http://h/?%", "http://h/#%4", "http://-/", "http://./",
		"http://h//x", "http://h/;a=b,c!$'@:", "http://h/?a=b&c=d+e@f:g/h", "http://H.EXAMPLE/A", "http://h/~user",
		"http://h%41/", "http://h:8080:90/", "http://h?x@y/z", "http://h/#?/=&", "http://h/%00", "http://1.2.3.4:8080/", "http://h#", "http://h/?#",
	) {
		f.Add(u)
	}
	f.Fuzz(func(t *testing.T, u string) {
		if got, want := safeURL(u), safeURLRef(u); got != want {
			t.Fatalf("safeURL(%q) = %q, want %q", u, got, want)
		}
	})
}

// TestSafeURLPlain compares safeURL with safeURLRef on random URLs made
// mostly of the characters plainURL accepts, where the fast path decides.
func TestSafeURLPlain(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const chars = "aZ09-._~/?=&+,;:!$'@aZ09-._~/?=&+,;:!$'@#( *"
	hosts := []string{"h", "a.b-c", "x-1.example:8080", "h:9", "", "a@b", "h:", "h%41", "h:1234567", "[::1]"}
	plain := 0
	for range 100000 {
		var b strings.Builder
		b.WriteString([]string{"http://", "https://", "HTTP://", "http:/"}[r.IntN(4)])
		if r.IntN(2) == 0 {
			b.WriteString(hosts[0])
		} else {
			b.WriteString(hosts[r.IntN(len(hosts))])
		}
		for range r.IntN(12) {
			if r.IntN(6) == 0 {
				b.WriteString([]string{"%7B", "%2f", "%0", "%", "%zz", "%00"}[r.IntN(6)])
				continue
			}
			b.WriteByte(chars[r.IntN(len(chars))])
		}
		u := b.String()
		if plainURL(u) {
			plain++
		}
		if got, want := safeURL(u), safeURLRef(u); got != want {
			t.Fatalf("safeURL(%q) = %q, want %q", u, got, want)
		}
	}
	if plain < 5000 {
		t.Errorf("only %d of the URLs took the fast path", plain)
	}
}
