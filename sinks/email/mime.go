package email

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"time"
)

// header is one header field, in the order it is written.
type header struct{ name, value string }

// email is what buildMessage writes: its header fields and its two parts.
type email struct {
	date      time.Time
	from      *mail.Address
	to        []*mail.Address
	messageID string // without angle brackets
	inReplyTo string // the group's first Message-ID, without angle brackets
	extra     []header
	content   rendered
}

// buildMessage writes e as an RFC 5322 message, 7-bit clean with CRLF line
// ends: a multipart/alternative of a text/plain and a text/html part, both
// UTF-8 in quoted-printable, and a subject in RFC 2047 encoded words when
// it is not ASCII.
func buildMessage(e email) []byte {
	var b bytes.Buffer
	to := make([]string, len(e.to))
	for i, a := range e.to {
		to[i] = a.String()
	}
	// A boundary starting "=_" never occurs in quoted-printable text, which
	// writes "=" as "=3D".
	sum := sha256.Sum256([]byte(e.messageID))
	boundary := "=_herald_" + hex.EncodeToString(sum[:12])
	hs := []header{
		{"Date", e.date.Format(time.RFC1123Z)},
		{"From", e.from.String()},
		{"To", strings.Join(to, ", ")},
		{"Subject", encodeText(e.content.Subject)},
		{"Message-ID", "<" + e.messageID + ">"},
	}
	if e.inReplyTo != "" {
		hs = append(hs,
			header{"In-Reply-To", "<" + e.inReplyTo + ">"},
			header{"References", "<" + e.inReplyTo + ">"})
	}
	hs = append(hs,
		// RFC 3834: no auto-reply (vacation, out-of-office) to an alert.
		header{"Auto-Submitted", "auto-generated"},
		header{"MIME-Version", "1.0"},
		header{"Content-Type", `multipart/alternative; boundary="` + boundary + `"`})
	hs = append(hs, e.extra...)
	for _, h := range hs {
		writeHeader(&b, h.name, h.value)
	}
	b.WriteString("\r\n")

	mw := multipart.NewWriter(&b)
	if err := mw.SetBoundary(boundary); err != nil {
		panic(err) // the boundary is built above from allowed characters
	}
	writePart(mw, "text/plain; charset=utf-8", e.content.Text)
	writePart(mw, "text/html; charset=utf-8", e.content.HTML)
	_ = mw.Close()
	return b.Bytes()
}

// writePart writes one part in quoted-printable. Writes to a bytes.Buffer
// do not fail.
func writePart(mw *multipart.Writer, contentType, body string) {
	w, _ := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {contentType},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	qp := quotedprintable.NewWriter(w)
	_, _ = qp.Write([]byte(body))
	_ = qp.Close()
}

// encodeText makes s an unstructured header value (RFC 5322 section
// 3.2.5): ASCII stays as it is, anything else becomes RFC 2047 encoded
// words. Text that merely looks like an encoded word ("=?") is broken up
// so that no reader decodes it into something else.
func encodeText(s string) string {
	if isASCII(s) {
		return strings.ReplaceAll(s, "=?", "= ?")
	}
	return mime.QEncoding.Encode("utf-8", s)
}

// maxLine is the length RFC 5322 section 2.1.1 asks header lines to keep
// to (998 is the hard limit).
const maxLine = 78

// writeHeader writes "name: value" folded at spaces into lines of at most
// maxLine characters where the value allows it. Encoded words are
// separated by spaces, so they fold too.
func writeHeader(b *bytes.Buffer, name, value string) {
	line := name + ":"
	for i, word := range strings.Split(value, " ") {
		if i > 0 && len(line)+1+len(word) > maxLine {
			b.WriteString(line + "\r\n")
			line = " " + word
			continue
		}
		line += " " + word
	}
	b.WriteString(line + "\r\n")
}

// extraHeaders are the configured headers, sorted by name, then the sink's
// own X-Herald fields.
func extraHeaders(conf map[string]string, status, severity string) []header {
	var hs []header
	for k, v := range conf {
		hs = append(hs, header{textproto.CanonicalMIMEHeaderKey(k), encodeText(v)})
	}
	slices.SortFunc(hs, func(a, b header) int { return strings.Compare(a.name, b.name) })
	hs = append(hs, header{"X-Herald-Status", status})
	if severity != "" {
		hs = append(hs, header{"X-Herald-Severity", severity})
	}
	return hs
}

// messageID is the Message-ID (without angle brackets) of notification id
// of group in sink: "herald-<group hash>-<id>@<domain>", the same on every
// attempt so that receivers that drop duplicate Message-IDs can.
func messageID(sink, group, id, domain string) string {
	sum := sha256.Sum256([]byte(sink + "\x00" + group))
	return fmt.Sprintf("herald-%s-%s@%s", hex.EncodeToString(sum[:8]), idPart(id), domain)
}

// idPart makes a notification id fit in a Message-ID's dot-atom (RFC 5322
// section 3.6.4); ids herald assigns (ULIDs) pass unchanged.
func idPart(id string) string {
	ok := id != "" && len(id) <= 64
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
	}
	if ok {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "h" + hex.EncodeToString(sum[:12])
}
