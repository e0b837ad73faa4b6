package rocketchat

import (
	"bytes"
	"strconv"
)

// The default "text" and "attachment" templates (templates/default.tmpl),
// written out in Go. A message whose template set is defaultTemplates
// itself is rendered by these instead of by text/template, whose
// reflection cost most of a message's rendering. Their output is the
// templates' byte for byte: TestDefaultRendererSame and
// FuzzDefaultRenderer compare the two, so an edit of default.tmpl that is
// not made here too fails them.

// defaultText appends what the default "text" template writes for d.
func defaultText(b *bytes.Buffer, d *Data) {
	if d.Mention != "" {
		b.WriteString(d.Mention)
		b.WriteByte(' ')
	}
	b.WriteString(d.Emoji)
	b.WriteString(" *")
	b.WriteString(d.StatusText)
	b.WriteByte('*')
	if d.Severity != "" {
		b.WriteString(" · ")
		b.WriteString(d.Severity)
	}
	if d.AlertCount > 1 {
		b.WriteString(" · ")
		writeInt(b, d.AlertCount)
		b.WriteString(" alerts")
		if d.FiringCount != 0 && d.ResolvedCount != 0 {
			b.WriteString(" (")
			writeInt(b, d.FiringCount)
			b.WriteString(" firing, ")
			writeInt(b, d.ResolvedCount)
			b.WriteString(" resolved)")
		}
	}
	b.WriteString(" · *")
	b.WriteString(d.Title)
	b.WriteByte('*')
	if d.Summary != "" {
		b.WriteByte('\n')
		b.WriteString(d.Summary)
	}
	if d.AlertCount > 1 {
		for i := range d.Alerts {
			a := &d.Alerts[i]
			b.WriteByte('\n')
			b.WriteString(a.Emoji)
			b.WriteByte(' ')
			for _, p := range a.Labels {
				writePair(b, p)
				b.WriteByte(' ')
			}
			if a.Summary != "" {
				b.WriteString("— ")
				b.WriteString(a.Summary)
			}
		}
		if d.MoreAlerts != 0 {
			b.WriteString("\n_+")
			writeInt(b, d.MoreAlerts)
			b.WriteString(" more alerts_")
			if d.MoreURL != "" {
				b.WriteString(" · [show all](")
				b.WriteString(d.MoreURL)
				b.WriteByte(')')
			}
		}
	}
	if len(d.CommonLabels) > 0 {
		b.WriteByte('\n')
		for i, p := range d.CommonLabels {
			if i > 0 {
				b.WriteByte(' ')
			}
			writePair(b, p)
		}
	}
	if d.FallbackReason != "" {
		b.WriteString("\n_Posted here because ")
		b.WriteString(d.FallbackFrom)
		b.WriteString(" failed: ")
		b.WriteString(d.FallbackReason)
		b.WriteByte('_')
	}
}

// defaultAttachment appends what the default "attachment" template writes
// for d.
func defaultAttachment(b *bytes.Buffer, d *Data) {
	if d.Description != "" {
		b.WriteString(d.Description)
		b.WriteByte('\n')
	}
	if d.Source != "" {
		b.WriteString("source: ")
		b.WriteString(d.Source)
	}
	if d.Receiver != "" {
		b.WriteString(" · receiver: ")
		b.WriteString(d.Receiver)
	}
	if d.StartsAt != "" {
		b.WriteString(" · since ")
		b.WriteString(d.StartsAt)
	}
	if d.Resolved && d.EndsAt != "" {
		b.WriteString(" · resolved ")
		b.WriteString(d.EndsAt)
	}
}

// writePair writes a label as the templates do: `name=value`.
func writePair(b *bytes.Buffer, p Pair) {
	b.WriteByte('`')
	b.WriteString(p.Name)
	b.WriteByte('=')
	b.WriteString(p.Value)
	b.WriteByte('`')
}

func writeInt(b *bytes.Buffer, n int) {
	var buf [20]byte
	b.Write(strconv.AppendInt(buf[:0], int64(n), 10))
}

// executeDefault writes "text", or with attachment set "attachment", of the
// default templates for d the way execute runs a template: into a pooled
// buffer, trimmed of surrounding space.
func executeDefault(d *Data, attachment bool) string {
	b := execBuffers.Get().(*bytes.Buffer)
	if attachment {
		defaultAttachment(b, d)
	} else {
		defaultText(b, d)
	}
	s := string(bytes.TrimSpace(b.Bytes()))
	if b.Cap() <= maxPooledBuffer {
		b.Reset()
		execBuffers.Put(b)
	}
	return s
}
