package rocketchat

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text from alert labels and annotations is written by whoever can change a
// Prometheus rule or a service's call, and is read by Rocket.Chat's markdown
// parser and its mention detection. The functions here make such text
// inert: it can never mention @all, @here or a user, never form a link, an
// image, a heading, a quote or emphasis. They keep the text readable by
// replacing the few active characters with look-alikes, or by breaking a
// construct with an invisible zero-width space.

const zwsp = "\u200b"

// Look-alikes of Rocket.Chat's markdown characters.
const (
	atSign     = '＠' // U+FF20: "@here" can no longer mention
	hashSign   = '＃' // U+FF03: "#room" can no longer link a room
	asterisk   = '∗' // U+2217: no *bold*
	tilde      = '∼' // U+223C: no ~strike~
	backtick   = 'ˋ' // U+02CB: no `code` and no way out of a code span
	underscore = '＿' // U+FF3F: no _italic_
	pipe       = 'ǀ' // U+01C0: no ||spoiler||
)

// escapeText makes prose (a title, a summary, a description) inert. With
// multiline false every line break becomes a space. Text with nothing to
// escape is returned as it is, without a copy.
func escapeText(s string, multiline bool) string {
	if plainText(s, multiline) {
		return s
	}
	s = clean(s, multiline)
	var b strings.Builder // written from the first change on
	changed := false
	var prev rune // the previous rune of the input; 0 at a line start
	lineStart := true
	r, size := utf8.DecodeRuneInString(s)
	for i := 0; i < len(s); {
		next, nextSize := rune(0), 0
		if i+size < len(s) {
			next, nextSize = utf8.DecodeRuneInString(s[i+size:])
		}
		var rep string // what r becomes; "" keeps it
		switch {
		case r == '@' && !isWordRune(prev):
			rep = string(atSign)
		case r == '#' && !isWordRune(prev) && isNameRune(next):
			rep = string(hashSign)
		case lineStart && (r == '#' || r == '>'):
			// A heading or a quote starts at a line start.
			rep = zwsp + string(r)
		case r == '*':
			rep = string(asterisk)
		case r == '~':
			rep = string(tilde)
		case r == '`':
			rep = string(backtick)
		case r == '_' && !isWordRune(prev):
			rep = string(underscore)
		case r == '|' && (next == '|' || prev == '|'):
			rep = string(pipe)
		case r == '(' && prev == ']':
			// "[title](url)" and "![](url)" need "](".
			rep = zwsp + "("
		case r == '<' && next != ' ' && next != 0:
			// "<url|title>" and "<t:...>" need "<" right before the URL.
			rep = "<" + zwsp
		}
		switch {
		case rep != "":
			if !changed {
				changed = true
				b.Grow(len(s) + 2*len(zwsp))
				b.WriteString(s[:i])
			}
			b.WriteString(rep)
		case changed:
			b.WriteString(s[i : i+size])
		}
		lineStart = r == '\n'
		if lineStart {
			prev = 0
		} else {
			prev = r
		}
		i += size
		r, size = next, nextSize
	}
	if !changed {
		return s
	}
	return b.String()
}

// escapeCode makes a value safe inside a single-backtick code span: it
// cannot close the span, break the line, or mention anyone (Rocket.Chat's
// server finds mentions in code spans too). A value with nothing to escape
// is returned as it is.
func escapeCode(s string) string {
	if plainCode(s) {
		return s
	}
	s = clean(s, false)
	var b strings.Builder
	changed := false
	prev := rune(0)
	for i, r := range s {
		var rep string
		switch {
		case r == '`':
			rep = string(backtick)
		case r == '@' && !isWordRune(prev):
			rep = string(atSign)
		}
		switch {
		case rep != "":
			if !changed {
				changed = true
				b.Grow(len(s) + 4)
				b.WriteString(s[:i])
			}
			b.WriteString(rep)
		case changed:
			b.WriteString(s[i : i+utf8.RuneLen(r)])
		}
		prev = r
	}
	if !changed {
		return s
	}
	return b.String()
}

// plainText reports, cheaply, that escapeText(s, multiline) is s: s is
// printable ASCII (and line feeds, when multiline) with no character that
// escapeText may change, but for "@" and "_" after a letter or a digit,
// which it keeps. It may report false for some such strings.
func plainText(s string, multiline bool) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '@' || c == '_':
			if i == 0 || !isASCIIAlnum(s[i-1]) {
				return false
			}
		case c == '\n':
			if !multiline {
				return false
			}
		case c < 0x20 || c >= 0x7f || textSpecial[c]:
			return false
		}
	}
	return true
}

// textSpecial are the ASCII characters that make escapeText look closer:
// those it may replace, and "]", which changes a "(" after it.
var textSpecial = [128]bool{'#': true, '>': true, '*': true, '~': true, '`': true, '|': true, '<': true, ']': true}

// plainCode reports, cheaply, that escapeCode(s) is s: s is printable
// ASCII with no backtick, and every "@" follows a letter or a digit.
func plainCode(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '@':
			if i == 0 || !isASCIIAlnum(s[i-1]) {
				return false
			}
		case c < 0x20 || c >= 0x7f || c == '`':
			return false
		}
	}
	return true
}

func isASCIIAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// clean drops control and bidirectional-override characters, normalises
// line breaks, and, unless multiline, turns them into spaces. Invalid UTF-8
// becomes U+FFFD. A string that needs none of this is returned as it is.
func clean(s string, multiline bool) string {
	if isClean(s, multiline) {
		return s
	}
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

// dropped reports whether clean leaves r out.
func dropped(r rune) bool {
	return isBidiControl(r) || unicode.IsControl(r) || r == '\u200b' || r == '\ufeff'
}

// isClean reports whether clean(s, multiline) is s: valid UTF-8 with no
// character that clean drops or replaces.
func isClean(s string, multiline bool) bool {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			// The ASCII controls are \x00-\x1f and \x7f; of them only a
			// line feed of multiline text stays as it is.
			if (c < 0x20 || c == 0x7f) && !(c == '\n' && multiline) {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || dropped(r) {
			return false
		}
		i += size
	}
	return true
}

func isBidiControl(r rune) bool {
	return (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') || r == '\u200e' || r == '\u200f'
}

// isWordRune reports whether r can precede "@" in an e-mail address rather
// than start a mention.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

func isNameRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-' || r == '.'
}

// safeURL returns u when it is an absolute http(s) URL, with the characters
// that would end a markdown link or a <url|title> escaped, and "" otherwise.
func safeURL(u string) string {
	if plainURL(u) {
		return u
	}
	p, err := url.Parse(strings.TrimSpace(u))
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return ""
	}
	if p.User != nil || strings.ContainsAny(p.Host, "@ <>|`\"") {
		return ""
	}
	return urlEscaper.Replace(p.String())
}

// plainURL reports, cheaply, that safeURL(u) is u: u is an http(s) URL of a
// host name, perhaps with a port, followed by a path, query and fragment of
// only characters that url.URL.String writes back as they are and that
// urlEscaper leaves alone. It may report false for some such URLs.
func plainURL(u string) bool {
	rest, ok := strings.CutPrefix(u, "http://")
	if !ok {
		if rest, ok = strings.CutPrefix(u, "https://"); !ok {
			return false
		}
	}
	i := 0
	for i < len(rest) && (isASCIIAlnum(rest[i]) || rest[i] == '.' || rest[i] == '-') {
		i++
	}
	if i == 0 {
		return false
	}
	if i < len(rest) && rest[i] == ':' {
		j := i + 1
		for j < len(rest) && '0' <= rest[j] && rest[j] <= '9' {
			j++
		}
		if j == i+1 || j > i+6 {
			return false
		}
		i = j
	}
	if i < len(rest) && rest[i] != '/' && rest[i] != '?' && rest[i] != '#' {
		return false
	}
	fragment := false
	for ; i < len(rest); i++ {
		switch c := rest[i]; {
		case c == '%':
			if i+2 >= len(rest) || !isHex(rest[i+1]) || !isHex(rest[i+2]) {
				return false
			}
			i += 2
		case c == '#':
			// String drops an empty fragment, and escapes a second "#".
			if fragment || i == len(rest)-1 {
				return false
			}
			fragment = true
		case c >= utf8.RuneSelf || !urlPlain[c]:
			return false
		}
	}
	return true
}

// urlPlain are the characters plainURL accepts after the host: unreserved
// ones and the delimiters that need no escaping in a path, a query or a
// fragment.
var urlPlain = func() (t [128]bool) {
	for c := range t {
		t[c] = isASCIIAlnum(byte(c))
	}
	for _, c := range "-._~/?=&+,;:!$'@" {
		t[c] = true
	}
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// urlEscaper percent-encodes what would end a markdown link or change its
// meaning. Built once: a Replacer is safe for concurrent use, and building
// one per URL was over a quarter of the bytes herald allocated under load.
var urlEscaper = strings.NewReplacer(
	"(", "%28", ")", "%29", " ", "%20", "<", "%3C", ">", "%3E",
	"|", "%7C", "`", "%60", "\"", "%22", "*", "%2A", "[", "%5B", "]", "%5D",
)

// utf16Len is the length of s as JavaScript counts it, which is how
// Rocket.Chat applies Message_MaxAllowedSize.
func utf16Len(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return i + utf16LenRunes(s[i:])
		}
	}
	return len(s)
}

func utf16LenRunes(s string) int {
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

// cutUTF16 returns the longest prefix of s of at most max UTF-16 units that
// does not split a character.
func cutUTF16(s string, max int) string {
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

// shorten cuts s to at most max UTF-16 units, ending it with "…" when cut.
func shorten(s string, max int) string {
	// A string has no more UTF-16 units than bytes.
	if len(s) <= max || utf16Len(s) <= max {
		return s
	}
	return strings.TrimRightFunc(cutUTF16(s, max-1), unicode.IsSpace) + "…"
}
