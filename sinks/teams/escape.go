package teams

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/herald-notify/herald/sinks/message"
)

// Text from alert labels and annotations is written by whoever can change
// a Prometheus rule or a service's call. Teams renders TextBlock texts and
// FactSet titles and values as a subset of Markdown (bold, italic, lists,
// [links](url); "Format cards in Teams", Teams platform docs; HTML is not
// rendered), and the clients do not agree on the rest: Android and iOS
// show the backslash of an escape such as \* that desktop hides
// (github.com/MicrosoftDocs/msteams-docs/issues/5793), so backslash escapes
// cannot be relied on. escaper therefore makes text inert the way no
// renderer can undo: the few active characters become look-alikes, and
// constructs that need no special character (a URL, a domain, a list at a
// line start, an e-mail address, the {{DATE(…)}} and {{TIME(…)}} functions
// of TextBlock) are broken with a zero-width space, which message.Clean
// removes from the input so that every one in the output is herald's.
// Mentions need the card's msteams.entities, which the sink never sends,
// so "@all" or "<at>x</at>" in an alert mention no one.
type escaper struct{}

var _ message.Escaper = escaper{}

const zwsp = "\u200b"

// lookAlike maps the characters of Adaptive Cards Markdown (and of the
// CommonMark a host may use for it) to characters that look the same and
// mean nothing.
var lookAlike = map[rune]rune{
	'*':  '∗', // U+2217: no *emphasis*, no list
	'_':  '＿', // U+FF3F: no _emphasis_
	'`':  'ˋ', // U+02CB: no `code`
	'[':  '［', // U+FF3B: no [title](url), no ![image](url)
	']':  '］', // U+FF3D
	'<':  '＜', // U+FF1C: no <autolink>, no HTML, no <at>
	'>':  '＞', // U+FF1E: no > quote
	'~':  '∼', // U+223C: no ~~strike~~
	'|':  'ǀ', // U+01C0: no table
	'\\': '∖', // U+2216: no escape of the template's next character
}

// Text makes prose inert; with multiline false every line break is a space.
func (escaper) Text(s string, multiline bool) string {
	return escapeText(message.Clean(s, multiline))
}

// Code makes a label name or value inert. Teams has no code span that
// every client renders, so labels are escaped like prose, on one line.
func (escaper) Code(s string) string { return escapeText(message.Clean(s, false)) }

// URL makes an absolute http(s) URL safe as the destination of a template's
// [title](url): the characters that would end it are percent-encoded. The
// card's buttons take URLs as JSON strings, which need nothing.
func (escaper) URL(u string) string {
	return strings.NewReplacer("(", "%28", ")", "%29", " ", "%20", "<", "%3C", ">", "%3E", "`", "%60", "\n", "").Replace(u)
}

func escapeText(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 16)
	head := true // only spaces since the line started
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		rest := s[i+size:]
		next, _ := utf8.DecodeRuneInString(rest)
		if rest == "" {
			next = 0
		}
		if la, ok := lookAlike[r]; ok {
			b.WriteRune(la)
		} else if r == '\n' {
			// A blank line: Teams clients do not agree on a single one.
			b.WriteString("\n\n")
		} else {
			switch {
			case head && r == ' ' && (i == 0 || s[i-1] == '\n'):
				// Four spaces make a code block.
				b.WriteString(zwsp)
			case head && (r == '#' || r == '-' || r == '+' || r == '=' || isDigit(r) && listNumber(s[i:])):
				// A heading, a list item, a setext underline, an ordered
				// list.
				b.WriteString(zwsp)
			case r == '@' && i > 0:
				// "ops@example.com" is an e-mail link.
				b.WriteString(zwsp)
			case i == 0 && isASCIIPunct(r):
				// The template's characters must not pair with the text's
				// first one.
				b.WriteString(zwsp)
			}
			b.WriteRune(r)
			switch {
			case r == '{' && next == '{':
				// {{DATE(2026-01-01T00:00:00Z, SHORT)}} is a function.
				b.WriteString(zwsp)
			case r == ':' && next != 0 && next != ' ' && next != '\n' && !isDigit(next):
				// "https://", "mailto:", "tel:"; not a port or a time.
				b.WriteString(zwsp)
			case r == '.' && unicode.IsLetter(next):
				// "www.example.com", "ops@example.com".
				b.WriteString(zwsp)
			case rest == "" && isASCIIPunct(r) && !strings.ContainsRune(".,!?)'\"", r):
				// Nor with its last one.
				b.WriteString(zwsp)
			}
		}
		head = head && r == ' ' || r == '\n'
		i += size
	}
	return b.String()
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

func isASCIIPunct(r rune) bool {
	return r < utf8.RuneSelf && (unicode.IsPunct(r) || unicode.IsSymbol(r))
}

// listNumber reports whether s starts with digits and "." or ")", as an
// ordered list item does.
func listNumber(s string) bool {
	i := 0
	for i < len(s) && isDigit(rune(s[i])) {
		i++
	}
	return i > 0 && i < len(s) && (s[i] == '.' || s[i] == ')') && (i+1 == len(s) || s[i+1] == ' ' || s[i+1] == '\n')
}
