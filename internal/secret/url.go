package secret

import (
	"regexp"
	"strings"
)

// scheme finds the start of a URL: "nats://", "https://".
var scheme = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://`)

// RedactURLs returns s with the credentials of every URL in it replaced:
// "nats://user:pw@host" becomes "nats://user:<secret>@host", and a user
// part alone ("nats://tok@host", which NATS takes as a token) becomes
// "<secret>". s may be one URL, a comma-separated list (queue.url) or any
// text, such as an error message that quotes a URL. It errs on the side
// of hiding: everything up to the last @ of an authority is hidden, even
// in a URL that does not parse.
func RedactURLs(s string) string {
	locs := scheme.FindAllStringIndex(s, -1)
	if locs == nil {
		return s
	}
	var b strings.Builder
	last := 0
	for i, loc := range locs {
		start := loc[1] // just after "://"
		if start < last {
			continue
		}
		// The authority ends at the path, query, fragment, a blank or the
		// next URL of a list.
		end := len(s)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		if j := strings.IndexAny(s[start:end], "/?#\t\n\r "); j >= 0 {
			end = start + j
		}
		at := strings.LastIndexByte(s[start:end], '@')
		if at < 0 {
			continue
		}
		b.WriteString(s[last:start])
		if user, _, ok := strings.Cut(s[start:start+at], ":"); ok {
			b.WriteString(user + ":")
		}
		b.WriteString(Redacted)
		last = start + at
	}
	b.WriteString(s[last:])
	return b.String()
}
