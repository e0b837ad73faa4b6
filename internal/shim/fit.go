package shim

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/planetscale/vtprotobuf/protohelpers"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/service"
)

// DefaultMaxNotificationBytes bounds the protobuf size of a notification
// the shim publishes unless Options.MaxNotificationBytes says otherwise:
// the embedded queue's largest message (8 MiB) less room for its headers
// and the fields the service sets.
const DefaultMaxNotificationBytes = 8<<20 - 64<<10

// cutMark ends every value the shim shortened.
const cutMark = "…"

// Names kept first when a labels or annotations map has more entries than
// the service takes: the ones herald and its readers use.
var (
	labelKeep      = []string{"alertname", "severity"}
	annotationKeep = []string{"summary", "description", "message", "runbook_url", "dashboard_url"}
)

// fitted is a notification being fitted into the service's limits, with
// what it takes to write its text again when alerts must go.
type fitted struct {
	n *heraldv1.Notification
	// amTruncated is the count of alerts Alertmanager left out (max_alerts).
	amTruncated uint64
	// dropped counts the alerts herald left out of n.Alerts: over
	// service.MaxAlerts, or over the size limit.
	dropped int
	// maxBytes is the size limit the alerts were last fitted to.
	maxBytes int
	cuts     notes
}

// fit shortens n's parts that are over the service's limits, recording
// each cut, then leaves out alerts from the end while n's protobuf size is
// over maxBytes, and writes the text. Everything it changes depends only on
// n, so the same webhook always gives the same notification; group key,
// receiver, fingerprints and label names over their limits keep a hash of
// the whole value, so different values stay different.
func (f *fitted) fit(maxBytes int) {
	n := f.n
	if t := cutString(n.Title, service.MaxTitleBytes); t != n.Title {
		n.Title = t
		f.cuts.add(-1, "title cut at "+sizeText(service.MaxTitleBytes))
	}
	n.GroupKey = f.hashed(-1, "group_key", n.GroupKey, service.MaxGroupKeyBytes)
	n.Receiver = f.hashed(-1, "receiver", n.Receiver, service.MaxSourceBytes)
	n.ExternalUrl = f.url(-1, "external_url", n.ExternalUrl)
	if l := n.Links; l != nil {
		l.Generator = f.url(-1, "links.generator", l.Generator)
		l.Silence = f.url(-1, "links.silence", l.Silence)
		l.Runbook = f.url(-1, "links.runbook", l.Runbook)
		l.Dashboard = f.url(-1, "links.dashboard", l.Dashboard)
		if l.Generator == "" && l.Silence == "" && l.Runbook == "" && l.Dashboard == "" {
			n.Links = nil
		}
	}
	n.Labels = f.fitMap(-1, "labels", n.Labels, labelKeep)
	n.Annotations = f.fitMap(-1, "annotations", n.Annotations, annotationKeep)
	if len(n.Alerts) > service.MaxAlerts {
		f.dropped += len(n.Alerts) - service.MaxAlerts
		clear(n.Alerts[service.MaxAlerts:])
		n.Alerts = n.Alerts[:service.MaxAlerts]
	}
	for i, a := range n.Alerts {
		a.Fingerprint = f.hashed(i, "fingerprint", a.Fingerprint, service.MaxFingerprintBytes)
		a.GeneratorUrl = f.url(i, "generator_url", a.GeneratorUrl)
		a.Labels = f.fitMap(i, "labels", a.Labels, labelKeep)
		a.Annotations = f.fitMap(i, "annotations", a.Annotations, annotationKeep)
	}
	f.fitSize(maxBytes)
}

// textSlack is more than writing the text again after leaving out alerts
// can add to it: the line that counts them.
const textSlack = 256

// fitSize writes the text and leaves out alerts from the end until n's
// protobuf size is at most maxBytes or no alert is left. It returns n's
// size.
func (f *fitted) fitSize(maxBytes int) int {
	n := f.n
	f.maxBytes = maxBytes
	for {
		f.setText()
		size := n.SizeVT()
		if size <= maxBytes || len(n.Alerts) == 0 {
			return size
		}
		excess := size - maxBytes + textSlack
		for excess > 0 && len(n.Alerts) > 0 {
			last := len(n.Alerts) - 1
			s := n.Alerts[last].SizeVT()
			excess -= 1 + protohelpers.SizeOfVarint(uint64(s)) + s
			n.Alerts[last] = nil
			n.Alerts = n.Alerts[:last]
			f.dropped++
		}
	}
}

// setText writes n's text and its count of alerts left out.
func (f *fitted) setText() {
	f.n.Text = f.text()
	f.n.TruncatedAlerts = uint32(min(saturatingAdd(f.amTruncated, uint64(f.dropped)), math.MaxUint32))
}

func saturatingAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

// textAnnotations are the annotations that explain an alert, in the order
// they are shown.
var textAnnotations = []string{"summary", "description", "message"}

// textTrailer is the room kept at the end of the text for the lines that
// say what is not shown and what was cut.
const textTrailer = 4 << 10

// text explains the group from its annotations: the common
// summary/description/message when the alerts share them, else one line per
// alert as far as the service's limit allows; then how many alerts are not
// shown, and what herald shortened.
func (f *fitted) text() string {
	n := f.n
	var b strings.Builder
	line := func(s string) {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(s)
	}
	for _, k := range textAnnotations {
		if v := strings.TrimSpace(n.Annotations[k]); v != "" {
			line(v)
		}
	}
	if b.Len() == 0 {
		notShown := 0
		for _, a := range n.Alerts {
			s := alertLine(a)
			if s == "" {
				continue
			}
			if notShown > 0 || b.Len()+len("\n- ")+len(s) > service.MaxTextBytes-textTrailer {
				notShown++
				continue
			}
			line("- " + s)
		}
		if notShown > 0 {
			line(fmt.Sprintf("… %d more alerts not shown", notShown))
		}
	}
	if f.amTruncated > 0 {
		line(fmt.Sprintf("(%d more alerts not shown: Alertmanager's max_alerts)", f.amTruncated))
	}
	if f.dropped > 0 {
		line(fmt.Sprintf("(%d more alerts not stored: herald keeps at most %d alerts and %s per notification)",
			f.dropped, service.MaxAlerts, sizeText(f.maxBytes)))
	}
	if s := f.cuts.String(); s != "" {
		line(s)
	}
	return b.String()
}

// alertLine is one alert's first explaining annotation, prefixed with its
// status when it differs from firing.
func alertLine(a *heraldv1.Alert) string {
	var s string
	for _, k := range textAnnotations {
		if v := strings.TrimSpace(a.GetAnnotations()[k]); v != "" {
			s = v
			break
		}
	}
	if s == "" {
		return ""
	}
	if a.GetStatus() == heraldv1.Status_STATUS_RESOLVED {
		s = "[resolved] " + s
	}
	return s
}

// hashed returns v, or when it is over limit bytes a prefix of it and the
// SHA-256 of all of it, recording the cut under field of alert i (-1 for
// the group).
func (f *fitted) hashed(i int, field, v string, limit int) string {
	if len(v) <= limit {
		return v
	}
	f.cuts.add(i, field+" over "+sizeText(limit)+": shortened, its hash kept")
	return hashShorten(v, limit)
}

// url returns u, or "" when it is over the service's limit for URLs: a URL
// cut short would lead somewhere else.
func (f *fitted) url(i int, field, u string) string {
	if len(u) <= service.MaxURLBytes {
		return u
	}
	f.cuts.add(i, field+" over "+sizeText(service.MaxURLBytes)+": left out")
	return ""
}

// fitMap fits the labels or annotations m of alert i (-1 for the group) to
// the service's limits, in place: an entry with an empty name goes, a name
// over the limit is shortened with its hash, a value over the limit is cut,
// and over the limit of entries the names in keep and then the first names
// in order stay.
func (f *fitted) fitMap(i int, field string, m map[string]string, keep []string) map[string]string {
	ok := len(m) <= service.MaxLabels
	for k, v := range m {
		if !ok {
			break
		}
		ok = k != "" && len(k) <= service.MaxLabelNameBytes && len(v) <= service.MaxLabelValueBytes
	}
	if ok {
		return m
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		switch {
		case k == "":
			delete(m, k)
			f.cuts.add(i, field+": an entry with an empty name left out")
			continue
		case len(k) > service.MaxLabelNameBytes:
			delete(m, k)
			k = hashShorten(k, service.MaxLabelNameBytes)
			m[k] = v
			f.cuts.add(i, field+": a name over "+sizeText(service.MaxLabelNameBytes)+" shortened, its hash kept")
		}
		if len(v) > service.MaxLabelValueBytes {
			m[k] = cutString(v, service.MaxLabelValueBytes)
			f.cuts.add(i, entryField(field, k)+" cut at "+sizeText(service.MaxLabelValueBytes))
		}
	}
	if len(m) > service.MaxLabels {
		rank := func(k string) int {
			if r := slices.Index(keep, k); r >= 0 {
				return r
			}
			return len(keep)
		}
		names := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
			return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b))
		})
		for _, k := range names[service.MaxLabels:] {
			delete(m, k)
		}
		if i < 0 {
			f.cuts.add(i, fmt.Sprintf("%s: %d entries left out, at most %d kept", field, len(names)-service.MaxLabels, service.MaxLabels))
		} else {
			f.cuts.add(i, fmt.Sprintf("%s: entries over %d left out", field, service.MaxLabels))
		}
	}
	return m
}

// entryField names entry k of field as error messages do: field.k for a
// plain name, else field["k"].
func entryField(field, k string) string {
	if isPlainName(k) {
		return field + "." + k
	}
	return field + "[" + quoteShort(k) + "]"
}

// quoteShort quotes s, shortened to maxPathName bytes.
func quoteShort(s string) string {
	if len(s) <= maxPathName {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:runeStart(s, maxPathName)]) + "..."
}

// cutString cuts s to at most limit bytes, between runes, ending it with
// cutMark.
func cutString(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	return s[:runeStart(s, limit-len(cutMark))] + cutMark
}

// hashShorten shortens s to at most limit bytes: a prefix of s, cutMark and
// the hex SHA-256 of all of s. The same s always gives the same result, and
// two different ones give different results.
func hashShorten(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	tail := cutMark + hex.EncodeToString(sum[:])
	return s[:runeStart(s, limit-len(tail))] + tail
}

// runeStart is the largest i <= n at which a rune of s starts.
func runeStart(s string, n int) int {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}

// sizeText writes a byte count as the limits are written: "8 KiB", "128
// bytes".
func sizeText(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return strconv.Itoa(n>>10) + " KiB"
	}
	return strconv.Itoa(n) + " bytes"
}

// notes are what fitting a notification cut, each said once: a cut in
// several alerts names the first and counts the others.
type notes struct {
	byText map[noteKey]*note
	order  []noteKey
}

type noteKey struct {
	alert bool
	text  string
}

type note struct {
	first, count int
}

// add records a cut of alert i, or of the group when i < 0.
func (ns *notes) add(i int, text string) {
	k := noteKey{alert: i >= 0, text: text}
	if nt, ok := ns.byText[k]; ok {
		nt.count++
		return
	}
	if ns.byText == nil {
		ns.byText = map[noteKey]*note{}
	}
	ns.byText[k] = &note{first: i, count: 1}
	ns.order = append(ns.order, k)
}

// maxNotes bounds the text's line of notes.
const maxNotes = 2 << 10

// String is the notes as one line of the text, or "" when nothing was cut.
func (ns *notes) String() string {
	if len(ns.order) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("(herald shortened this notification: ")
	for j, k := range ns.order {
		nt := ns.byText[k]
		s := k.text
		if k.alert {
			s = "alerts[" + strconv.Itoa(nt.first) + "]." + s
			if nt.count > 1 {
				s += fmt.Sprintf(" (and in %d more alerts)", nt.count-1)
			}
		}
		if j > 0 {
			if b.Len()+len(s) > maxNotes {
				fmt.Fprintf(&b, "; and %d more", len(ns.order)-j)
				break
			}
			b.WriteString("; ")
		}
		b.WriteString(s)
	}
	b.WriteByte(')')
	return b.String()
}
