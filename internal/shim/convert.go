package shim

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/severity"
)

// Source is the Notification source of everything the shim publishes.
const Source = "alertmanager"

// Convert turns one webhook into the Notifications to publish: exactly one,
// since a webhook is Alertmanager's notification about one alert group. It is
// pure and deterministic: the same message always gives the same
// notifications, idempotency key included. It returns either notifications or
// an error, never both; an error means m is not a valid webhook (Decode never
// returns such a message).
//
// Whatever Alertmanager sends fits the service's limits: parts over them are
// shortened, alerts beyond service.MaxAlerts or DefaultMaxNotificationBytes
// are left out and counted in TruncatedAlerts, and the text says what was
// cut (see fitted.fit).
//
// Text and labels are carried verbatim: a label such as "@all" is data here,
// and escaping mentions is the job of each sink's renderer.
func Convert(m *Message) ([]*heraldv1.Notification, error) {
	f, err := convert(m, false, DefaultMaxNotificationBytes)
	if err != nil {
		return nil, err
	}
	return []*heraldv1.Notification{f.n}, nil
}

// convert is Convert of at most maxBytes, returning the notification with
// what it takes to shrink it further. With own set the notification takes
// m's label and annotation maps instead of copies (and may change them),
// for a caller that discards m (the handler, whose message came from
// Decode). It saves a third of the conversion's allocations.
func convert(m *Message, own bool, maxBytes int) (*fitted, error) {
	if err := validate(m); err != nil {
		return nil, err
	}
	copyMap := cloneMap
	if own {
		copyMap = shareMap
	}
	n := &heraldv1.Notification{
		IdempotencyKey: IdempotencyKey(m),
		Source:         Source,
		Severity:       groupSeverity(m),
		Status:         status(m.Status),
		Title:          title(m),
		Labels:         groupLabels(m),
		Annotations:    copyMap(m.CommonAnnotations),
		GroupKey:       m.GroupKey,
		Alerts:         make([]*heraldv1.Alert, len(m.Alerts)),
		Links:          links(m),
		ExternalUrl:    m.ExternalURL,
		Receiver:       m.Receiver,
	}
	for i, a := range m.Alerts {
		n.Alerts[i] = &heraldv1.Alert{
			Fingerprint:  a.Fingerprint,
			Status:       status(a.Status),
			Labels:       copyMap(a.Labels),
			Annotations:  copyMap(a.Annotations),
			StartsAt:     timestamp(a.StartsAt),
			EndsAt:       timestamp(endsAt(a)),
			GeneratorUrl: a.GeneratorURL,
		}
	}
	f := &fitted{n: n, amTruncated: m.TruncatedAlerts}
	f.fit(maxBytes)
	return f, nil
}

// validate repeats Decode's checks for messages built by hand.
func validate(m *Message) error {
	if m == nil {
		return fieldError("", "no message")
	}
	if m.Version != WebhookVersion {
		return fieldError("version", "unsupported version %q: herald accepts version %q", m.Version, WebhookVersion)
	}
	if err := checkStatus("status", m.Status); err != nil {
		return err
	}
	if len(m.Alerts) == 0 {
		return fieldError("alerts", "no alerts: a webhook must carry at least one alert")
	}
	for i, a := range m.Alerts {
		if err := checkStatus(fmt.Sprintf("alerts[%d].status", i), a.Status); err != nil {
			return err
		}
		for _, f := range []struct {
			name string
			t    time.Time
		}{{"startsAt", a.StartsAt}, {"endsAt", a.EndsAt}} {
			if unset(f.t) {
				continue
			}
			if err := timestamppb.New(f.t).CheckValid(); err != nil {
				return &DecodeError{Field: fmt.Sprintf("alerts[%d].%s", i, f.name), Offset: -1, Reason: "time out of range", Err: err}
			}
		}
	}
	return nil
}

func status(s string) heraldv1.Status {
	if s == StatusResolved {
		return heraldv1.Status_STATUS_RESOLVED
	}
	return heraldv1.Status_STATUS_FIRING
}

// endsAt is the alert's end as herald records it: unset while the alert
// fires (Alertmanager may carry a provisional end there), else as sent.
func endsAt(a Alert) time.Time {
	if a.Status == StatusFiring || unset(a.EndsAt) {
		return time.Time{}
	}
	return a.EndsAt
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if unset(t) {
		return nil
	}
	return timestamppb.New(t)
}

// groupSeverity is the group's severity label when all its alerts share
// one, else the most urgent among the alerts, else info; the words are
// internal/severity's, the ones routing matches on.
func groupSeverity(m *Message) heraldv1.Severity {
	if v, ok := m.CommonLabels["severity"]; ok {
		return severity.Parse(v)
	}
	best := heraldv1.Severity_SEVERITY_INFO
	for _, a := range m.Alerts {
		v, ok := a.Labels["severity"]
		if !ok {
			continue
		}
		// Lower enum values are more urgent (CRITICAL=1 < WARNING=2 < INFO=3).
		if s := severity.Parse(v); s < best {
			best = s
		}
	}
	return best
}

// title names the group, e.g. "HighLatency service=api": the alert name
// and the other group labels. Status and alert count are fields of their
// own, which every sink shows in its own way; repeating them here would
// show them twice.
func title(m *Message) string {
	var b strings.Builder
	b.WriteString(alertName(m))
	for _, k := range slices.Sorted(maps.Keys(m.GroupLabels)) {
		if k == "alertname" {
			continue
		}
		fmt.Fprintf(&b, " %s=%s", k, m.GroupLabels[k])
	}
	t := oneLine(b.String())
	if strings.TrimSpace(t) == "" {
		return "alerts"
	}
	return t
}

// oneLine replaces line breaks and other control characters with spaces, so
// that a label value cannot break a title across lines.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// alertName is the group's alertname, or the distinct names of its alerts.
func alertName(m *Message) string {
	if v := m.CommonLabels["alertname"]; v != "" {
		return v
	}
	if v := m.GroupLabels["alertname"]; v != "" {
		return v
	}
	var names []string
	for _, a := range m.Alerts {
		if v := a.Labels["alertname"]; v != "" && !slices.Contains(names, v) {
			names = append(names, v)
		}
	}
	if len(names) == 0 {
		return "alerts"
	}
	slices.Sort(names)
	const maxNames = 3
	if len(names) > maxNames {
		return strings.Join(names[:maxNames], ", ") + fmt.Sprintf(" and %d more", len(names)-maxNames)
	}
	return strings.Join(names, ", ")
}

// groupLabels are the labels every alert of the group shares: the common
// labels plus the group labels (normally a subset of them).
func groupLabels(m *Message) map[string]string {
	if len(m.CommonLabels)+len(m.GroupLabels) == 0 {
		return nil
	}
	l := make(map[string]string, len(m.CommonLabels)+len(m.GroupLabels))
	maps.Copy(l, m.CommonLabels)
	maps.Copy(l, m.GroupLabels)
	return l
}

// cloneMap copies m; an empty map becomes nil.
func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// shareMap is cloneMap for a map nobody else will use or change.
func shareMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// links gathers the group's links. Only absolute http(s) URLs are kept, so a
// renderer can link them without further checks.
func links(m *Message) *heraldv1.Links {
	l := &heraldv1.Links{
		Generator: firstURL(m, func(a Alert) string { return a.GeneratorURL }),
		Silence:   SilenceURL(m),
		Runbook:   annotationURL(m, "runbook_url"),
		Dashboard: annotationURL(m, "dashboard_url"),
	}
	if l.Generator == "" && l.Silence == "" && l.Runbook == "" && l.Dashboard == "" {
		return nil
	}
	return l
}

func firstURL(m *Message, get func(Alert) string) string {
	for _, a := range m.Alerts {
		if u := get(a); httpURL(u) {
			return u
		}
	}
	return ""
}

// annotationURL is a common annotation's URL, else the first alert's that has one.
func annotationURL(m *Message, key string) string {
	if u := m.CommonAnnotations[key]; httpURL(u) {
		return u
	}
	return firstURL(m, func(a Alert) string { return a.Annotations[key] })
}

func httpURL(s string) bool {
	if s == "" {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// SilenceURL is a link to Alertmanager's new-silence form pre-filled with
// matchers for the group's labels (its common labels when it has no group
// labels), or "" when the webhook has no usable external URL or labels.
func SilenceURL(m *Message) string {
	labels := m.GroupLabels
	if len(labels) == 0 {
		labels = m.CommonLabels
	}
	if len(labels) == 0 || !httpURL(m.ExternalURL) {
		return ""
	}
	matchers := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		matchers = append(matchers, k+"="+quoteMatcherValue(labels[k]))
	}
	filter := "{" + strings.Join(matchers, ",") + "}"
	return strings.TrimRight(m.ExternalURL, "/") + "/#/silences/new?filter=" + url.QueryEscape(filter)
}

// quoteMatcherValue quotes a label value as Alertmanager's matcher syntax
// expects: double quotes, with backslash, quote and newline escaped.
func quoteMatcherValue(v string) string {
	return `"` + matcherEscaper.Replace(v) + `"`
}

// matcherEscaper is built once: a strings.Replacer costs kilobytes to
// build and is safe for concurrent use.
var matcherEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// IdempotencyKey identifies one notification of one group: the hex SHA-256 of
// the receiver, the group key, the group status and, for each alert in
// fingerprint order, its fingerprint, status, startsAt and endsAt (unset
// while firing). Every peer of an Alertmanager cluster, and every retry after
// a 5xx, sends the same key for the same notification, so herald stores it
// once. The order of alerts in the payload does not matter.
func IdempotencyKey(m *Message) string {
	// sortKey is the entry's fields joined by NULs, built once per alert
	// rather than twice per comparison.
	type entry struct{ fingerprint, status, startsAt, endsAt, sortKey string }
	entries := make([]entry, len(m.Alerts))
	for i, a := range m.Alerts {
		fp := a.Fingerprint
		if fp == "" {
			// Not sent by Alertmanager; stand in with the label set so that
			// different alerts still give different keys.
			fp = "labels:" + canonicalLabels(a.Labels)
		}
		e := entry{fingerprint: fp, status: a.Status, startsAt: keyTime(a.StartsAt), endsAt: keyTime(endsAt(a))}
		e.sortKey = e.fingerprint + "\x00" + e.status + "\x00" + e.startsAt + "\x00" + e.endsAt
		entries[i] = e
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.sortKey, b.sortKey) })

	h := sha256.New()
	// Every field is length-prefixed, so no two messages encode alike.
	write := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	write("herald/alertmanager/v1")
	write(m.Receiver)
	write(m.GroupKey)
	write(m.Status)
	write(strconv.Itoa(len(entries)))
	for _, e := range entries {
		write(e.fingerprint)
		write(e.status)
		write(e.startsAt)
		write(e.endsAt)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func keyTime(t time.Time) string {
	if unset(t) {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func canonicalLabels(l map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(l)) {
		fmt.Fprintf(&b, "%q=%q,", k, l[k])
	}
	return b.String()
}
