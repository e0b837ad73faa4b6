package mattermost

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/herald-notify/herald/sinks/message"
)

// Text from alert labels and annotations is written by whoever can change a
// Prometheus rule or a service's call. Mattermost reads a message twice:
// the server looks for mentions (@user, @channel, @all, @here, and
// configured keywords) to notify people, and the web and mobile apps render
// it as Markdown (CommonMark with GitHub's tables and strikethrough,
// autolinked URLs, e-mail addresses and "www." hosts, ~channel links,
// #hashtags, :emoji: and emoticons, inline $latex$ when enabled; HTML is
// shown as text). escaper makes such text inert: the few active
// characters become look-alikes, and constructs that need no special
// character (a URL, a domain, an emoji, a list or heading at a line start)
// are broken with a zero-width space, which message.Clean removes from the
// input so every one in the output is herald's. Backslash escapes are not
// used: the server's mention detection does not honour them.
type escaper struct{}

var _ message.Escaper = escaper{}

const zwsp = "\u200b"

// lookAlike maps Mattermost's markdown characters to characters that look
// the same and mean nothing.
var lookAlike = map[rune]rune{
	'@':  '＠', // U+FF20: no @mention
	'~':  '∼', // U+223C: no ~channel link, no ~~strike~~
	'*':  '∗', // U+2217: no *emphasis*, no list
	'_':  '＿', // U+FF3F: no _emphasis_
	'`':  'ˋ', // U+02CB: no `code` and no way out of a code span
	'[':  '［', // U+FF3B: no [title](url), no ![image](url)
	']':  '］', // U+FF3D
	'<':  '＜', // U+FF1C: no <autolink>, no <3
	'>':  '＞', // U+FF1E: no > quote
	'$':  '＄', // U+FF04: no $latex$
	'|':  'ǀ', // U+01C0: no table
	'\\': '∖', // U+2216: no escape of the template's next character
}

// Text makes prose inert; with multiline false every line break is a space.
func (escaper) Text(s string, multiline bool) string {
	s = message.Clean(s, multiline)
	var b strings.Builder
	b.Grow(len(s) + 16)
	head := true // only spaces since the line started
	var prev rune
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		rest := s[i+size:]
		next, _ := utf8.DecodeRuneInString(rest)
		if rest == "" {
			next = 0
		}
		switch la, ok := lookAlike[r]; {
		case ok:
			b.WriteRune(la)
		case r == '#' && !isWordRune(prev):
			// A #hashtag searches; a # at a line start is a heading.
			b.WriteRune('＃')
		default:
			if head && (strings.ContainsRune("-+=", r) || isDigit(r) && listNumber(s[i:])) {
				// A list item, a setext heading underline, an ordered list.
				b.WriteString(zwsp)
			}
			b.WriteRune(r)
			switch {
			case (r == ':' || r == ';') && next != 0 && next != ' ' && next != '\n':
				// "scheme://", ":emoji:", ":)" and ";)".
				b.WriteString(zwsp)
			case r == '.' && (unicode.IsLetter(next) || isDigit(next)):
				// "www.example.com", "user＠example.com", "10.0.0.1".
				b.WriteString(zwsp)
			case i == 0 && isASCIIPunct(r), rest == "" && isASCIIPunct(r) && !strings.ContainsRune(".,!?)'\"", r):
				// The template's characters must not pair with the text's
				// first or last one.
				b.WriteString(zwsp)
			}
		}
		head = head && r == ' ' || r == '\n'
		prev = r
		if r == '\n' {
			prev = 0
		}
		i += size
	}
	return b.String()
}

// Code makes s safe inside a `code span`: no backtick can close it, and
// neither @ nor ~ reaches the server's mention and channel-mention
// detection, which reads the raw message, code spans included.
func (escaper) Code(s string) string {
	s = message.Clean(s, false)
	return codeReplacer.Replace(s)
}

var codeReplacer = strings.NewReplacer("`", "ˋ", "@", "＠", "~", "∼")

// URL makes an absolute http(s) URL safe as the destination of
// [title](url): the characters that would end it are percent-encoded.
func (escaper) URL(u string) string {
	return strings.NewReplacer("(", "%28", ")", "%29", " ", "%20", "<", "%3C", ">", "%3E", "`", "%60", "\n", "").Replace(u)
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }

func isASCIIPunct(r rune) bool {
	return r < utf8.RuneSelf && unicode.IsPunct(r) || r == '^' || r == '+' || r == '='
}

// listNumber reports whether s starts with digits and "." or ")", as an
// ordered list item does.
func listNumber(s string) bool {
	n := 0
	for n < len(s) && isDigit(rune(s[n])) {
		n++
	}
	return n > 0 && n < len(s) && (s[n] == '.' || s[n] == ')')
}
