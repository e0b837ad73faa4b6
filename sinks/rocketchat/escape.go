package rocketchat

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/herald-notify/herald/sinks/message"
)

// Text from alert labels and annotations is written by whoever can change a
// Prometheus rule or a service's call, and is read by Rocket.Chat's message
// parser (the npm package @rocket.chat/message-parser) and by its server's
// mention detection. The functions here make such text inert: it can never
// mention @all, @here, a user or a room, never form a link (markdown,
// <url|title>, or an autolinked URL, domain, e-mail address or phone
// number), an image, an emoji, a heading, a list, a quote, a table, a code
// block, a timestamp, a formula, a colour or emphasis, and never pair with a
// character of the template or of another field to form one. They keep the
// text readable by replacing the few active characters with look-alikes, or
// by breaking a construct with an invisible zero-width space, which clean
// removes from the input so that every one in the output is herald's.
// mdparser_test.go holds them to the real parser's output.

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
	dollar     = '＄' // U+FF04: no $formula$
	openSquare = '［' // U+FF3B: no [title](url) nor ![image](url)
	shutSquare = '］' // U+FF3D
	lessThan   = '＜' // U+FF1C: no <url|title>, <t:timestamp> nor <3
)

// lineHead are the characters that start a block (heading, quote, list,
// table, rule, formula) when they open a line; escapeText puts a zero-width
// space before them there.
const lineHead = "#>-+=|\\"

// escapeText makes prose (a title, a summary, a description) inert. With
// multiline false every line break becomes a space.
func escapeText(s string, multiline bool) string {
	s = message.Clean(s, multiline)
	var b strings.Builder
	b.Grow(len(s) + 16)
	var prev rune // the previous rune of the input; 0 at a line start
	head := true  // only spaces since the line started
	ipEnd := -1   // the end of the digits and dots that look like an IPv4 address
	split := -1   // where a zero-width space splits "localhost"
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		rest := s[i+size:]
		next, _ := utf8.DecodeRuneInString(rest)
		if rest == "" {
			next = 0
		}
		if isDigit(r) && !isDigit(prev) && prev != '.' {
			ipEnd = ipv4End(s, i)
		}
		if (r == 'l' || r == 'L') && localhostAt(s, i) {
			// Rocket.Chat links "localhost" as a host of its own.
			split = i + len("local")
		}
		var rep, pre, post string // r becomes pre+rep+post; rep "" keeps r
		switch {
		case r == '@':
			// Even after a letter: "a.b@here" is a link to the top-level
			// domain "here", and a construct that ends before the letter
			// leaves "@name" to start a mention.
			rep = string(atSign)
		case r == '#' && !isWordRune(prev) && next != ' ' && next != '\n':
			// Before any name character, and before the look-alikes of
			// "|" and "`", which are letters, and at the end, where the
			// template's next character may be one.
			rep = string(hashSign)
		case r == '*':
			rep = string(asterisk)
		case r == '~':
			rep = string(tilde)
		case r == '`':
			rep = string(backtick)
		case r == '$':
			rep = string(dollar)
		case r == '[':
			rep = string(openSquare)
		case r == ']':
			rep = string(shutSquare)
		case r == '_':
			// Even inside a word: "a_b" closes an _italic_ that the
			// template opened.
			rep = string(underscore)
		case r == '|' && (next == '|' || prev == '|'):
			rep = string(pipe)
		case r == '<' && next != ' ' && next != '\n':
			rep = string(lessThan)
		case r == '\\' && (next == 0 || strings.ContainsRune("()[]#.", next)):
			// \( and \[ open formulas; \# and \. escape a character, and
			// so would a \ at the end escape the template's next one.
			post = zwsp
		case r == ':' && (strings.HasPrefix(rest, "//") || shortcodeNext(rest)):
			// "scheme://" starts a URL, ":name:" is an emoji.
			post = zwsp
		case r == '.' && unicode.IsLetter(next):
			// "host.example" is autolinked when its last label is a
			// top-level domain, and so is an e-mail address. (A
			// zero-width space is a letter of a domain name too: one put
			// before ".com" makes it one.)
			post = zwsp
		case r == '.' && i < ipEnd && isDigit(next):
			post = zwsp
		case r == '+' && isDigit(next):
			// "+15551234567" is a phone number.
			post = zwsp
		}
		if rep == "" {
			if head && (strings.ContainsRune(lineHead, r) || isDigit(r) && listNumber(s[i:])) || i == split {
				pre = zwsp
			}
			// The template's characters next to the text must not pair
			// with its first or last one: "*" and ")" make "*)", ":"
			// and "*" make ":*", emoticons both.
			if i == 0 && isASCIIPunct(r) {
				pre = zwsp
			}
			if rest == "" && isASCIIPunct(r) && !strings.ContainsRune(".,!?)'\"", r) {
				post = zwsp
			}
			if post == "" && wordStart(prev) && next != '@' && emoticonLike(s[i:]) {
				// ":)", "8)", "(y)", "<3" and their kind are emoji when
				// they stand alone or follow an emoji.
				post = zwsp
			}
		}
		b.WriteString(pre)
		if rep != "" {
			b.WriteString(rep)
		} else {
			b.WriteString(s[i : i+size])
		}
		b.WriteString(post)
		head = head && r == ' ' || r == '\n'
		if r == '\n' {
			prev = 0
		} else {
			prev = r
		}
		i += size
	}
	return b.String()
}

// escapeProse is prose s cleaned, shortened to max UTF-16 units and escaped.
func escapeProse(s string, max int, multiline bool) string {
	return escapeText(message.Shorten(message.Clean(s, multiline), max), multiline)
}

// rcEscaper escapes outside text for Rocket.Chat's markdown.
type rcEscaper struct{}

func (rcEscaper) Text(s string, multiline bool) string { return escapeText(s, multiline) }
func (rcEscaper) Code(s string) string                 { return escapeCode(s) }
func (rcEscaper) URL(u string) string                  { return urlEscaper.Replace(u) }

// wordStart reports whether a word starts after prev, as the parser sees
// it for emoticons: at a line start, after a space, or after a character
// that is neither ASCII nor a letter or a digit, such as an emoji.
func wordStart(prev rune) bool {
	return prev == 0 || prev == ' ' || prev >= utf8.RuneSelf && !unicode.IsLetter(prev) && !unicode.IsDigit(prev)
}

// localhostAt reports whether s has "localhost", in any case, at i.
func localhostAt(s string, i int) bool {
	return len(s)-i >= len("localhost") && strings.EqualFold(s[i:i+len("localhost")], "localhost")
}

// shortcodeNext reports whether s starts with the name and the closing
// colon of an emoji shortcode (":name:" after its opening colon).
func shortcodeNext(s string) bool {
	n := 0
	for n < len(s) && (isASCIIAlnum(s[n]) || strings.IndexByte("_+.-", s[n]) >= 0) {
		n++
	}
	return n > 0 && n < len(s) && s[n] == ':'
}

// listNumber reports whether s starts with digits followed by "." or ")",
// as an ordered list item does.
func listNumber(s string) bool {
	n := 0
	for n < len(s) && isDigit(rune(s[n])) {
		n++
	}
	return n > 0 && n < len(s) && (s[n] == '.' || s[n] == ')')
}

// ipv4End returns the end of the run of digits and dots that starts at i
// when it has at least three dots (it may be an IPv4 address, which is
// autolinked), and -1 otherwise.
func ipv4End(s string, i int) int {
	dots, j := 0, i
	for ; j < len(s) && (isDigit(rune(s[j])) || s[j] == '.'); j++ {
		if s[j] == '.' {
			dots++
		}
	}
	if dots < 3 {
		return -1
	}
	return j
}

// emoticonLike reports whether the word that s starts with (up to a space
// or a line break) may be an ASCII emoticon such as ":)", ";-)", "8)",
// "(y)", "D:" or "-_-": two to six characters, ASCII punctuation and
// the letters and digits emoticons are drawn with, one or more of them
// punctuation and at most two not.
func emoticonLike(s string) bool {
	n, punct, other := 0, 0, 0
	var last rune
	for _, r := range s {
		if r == ' ' || r == '\n' {
			break
		}
		n++
		switch {
		case n > 6:
			return false
		case r < utf8.RuneSelf && (unicode.IsPunct(r) || unicode.IsSymbol(r)):
			punct++
		case strings.ContainsRune(emoticonLetters, r):
			other++
		default:
			return false
		}
		last = r
	}
	if punct == 1 && other > 0 && strings.ContainsRune(",.!?", last) {
		// A letter before a comma or a full stop ("B.") is a word.
		return false
	}
	return n >= 2 && punct > 0 && other <= 2
}

// emoticonLetters are the letters and digits of ASCII emoticons.
const emoticonLetters = "0389BDLOPXbyÞ"

// escapeCode makes a value safe inside a single-backtick code span: it
// cannot close the span, break the line, mention anyone (Rocket.Chat's
// server finds mentions in code spans too), or end a link title that
// something before the span opened.
func escapeCode(s string) string {
	s = message.Clean(s, false)
	var b strings.Builder
	b.Grow(len(s))
	prev := rune(0)
	for _, r := range s {
		switch {
		case r == '`':
			b.WriteRune(backtick)
		case r == '@' && !isWordRune(prev):
			b.WriteRune(atSign)
		case r == '(' && prev == ']':
			b.WriteString(zwsp + "(")
		default:
			b.WriteRune(r)
		}
		prev = r
	}
	return b.String()
}

func isDigit(r rune) bool { return '0' <= r && r <= '9' }

func isASCIIPunct(r rune) bool {
	return r < utf8.RuneSelf && unicode.IsPunct(r) || r < utf8.RuneSelf && unicode.IsSymbol(r)
}

func isASCIIAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isWordRune reports whether r can precede "@" in an e-mail address rather
// than start a mention.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// safeURL returns u when it is an absolute http(s) URL, with the characters
// that would end a markdown link or a <url|title> escaped, and "" otherwise.
func safeURL(u string) string { return message.SafeURL(u, rcEscaper{}) }

// urlEscaper percent-encodes what would end a markdown link or change its
// meaning.
var urlEscaper = strings.NewReplacer(
	"(", "%28", ")", "%29", " ", "%20", "<", "%3C", ">", "%3E",
	"|", "%7C", "`", "%60", "\"", "%22", "*", "%2A", "[", "%5B", "]", "%5D",
)

// utf16Len is the length of s as JavaScript counts it, which is how
// Rocket.Chat applies Message_MaxAllowedSize.
func utf16Len(s string) int { return message.UTF16Len(s) }

func cutUTF16(s string, max int) string { return message.CutUTF16(s, max) }

func shorten(s string, max int) string { return message.Shorten(s, max) }
