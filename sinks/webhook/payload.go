package webhook

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"

	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/severity"
	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/message"
)

// SchemaVersion is the version of Payload, in its "version" field. It
// changes only when a field is removed or changes meaning; new fields may
// appear within a version, so receivers must ignore fields they do not
// know.
const SchemaVersion = "1"

// Payload is the default JSON body of a webhook request: one notification
// and the context of its delivery. Every field is always present: strings
// may be empty, maps are {} and lists [] rather than null; only the times
// and Parent may be null. Values are the notification's own, unshortened
// and unescaped beyond JSON's string escaping (which turns <, > and & into
// \u003c, \u003e and \u0026): a receiver that shows them in HTML or
// markdown must escape them itself. docs/sinks/webhook.md documents each
// field.
type Payload struct {
	Version         string            `json:"version"`
	ID              string            `json:"id"`
	GroupKey        string            `json:"group_key"`
	Status          string            `json:"status"`
	Severity        string            `json:"severity"`
	Title           string            `json:"title"`
	Text            string            `json:"text"`
	Labels          map[string]string `json:"labels"`
	Annotations     map[string]string `json:"annotations"`
	Alerts          []Alert           `json:"alerts"`
	TruncatedAlerts int               `json:"truncated_alerts"`
	Links           Links             `json:"links"`
	ExternalURL     string            `json:"external_url"`
	Source          string            `json:"source"`
	Receiver        string            `json:"receiver"`
	ReceivedAt      *time.Time        `json:"received_at"`
	Route           string            `json:"route"`
	Channel         string            `json:"channel"`
	FallbackFrom    string            `json:"fallback_from"`
	FallbackReason  string            `json:"fallback_reason"`
	Parent          *MessageRef       `json:"parent"`
}

// Alert is one alert of a notification.
type Alert struct {
	Fingerprint  string            `json:"fingerprint"`
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     *time.Time        `json:"starts_at"`
	EndsAt       *time.Time        `json:"ends_at"`
	GeneratorURL string            `json:"generator_url"`
}

// Links are the notification's links: absolute http(s) URLs without
// credentials, or "".
type Links struct {
	Generator string `json:"generator"`
	Silence   string `json:"silence"`
	Runbook   string `json:"runbook"`
	Dashboard string `json:"dashboard"`
}

// MessageRef is the message that stands for the notification's group at
// this receiver: the one an earlier notification of the group created.
type MessageRef struct {
	ChannelID string `json:"channel_id"`
	MessageID string `json:"message_id"`
	ThreadID  string `json:"thread_id"`
}

// Marshal encodes p as the request body: encoding/json's output, with
// every invisible character (controls, and format characters such as
// bidirectional overrides, zero-width spaces and the BOM) written as a
// \uXXXX escape. The decoded values are the same; a log line or a
// terminal that shows the raw body cannot be tricked by them.
func (p Payload) Marshal() ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if !strings.ContainsFunc(string(b), invisible) {
		return b, nil
	}
	// Outside strings encoding/json writes only ASCII, so every such rune
	// is inside a string, where \uXXXX means the same.
	var out strings.Builder
	out.Grow(len(b) + 64)
	for _, r := range string(b) {
		switch {
		case !invisible(r):
			out.WriteRune(r)
		case r > 0xFFFF:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&out, "\\u%04x\\u%04x", r1, r2)
		default:
			fmt.Fprintf(&out, "\\u%04x", r)
		}
	}
	return []byte(out.String()), nil
}

func invisible(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }

// NewPayload builds the default body of n for a delivery to to, listing at
// most maxAlerts alerts (all when maxAlerts is zero or less).
func NewPayload(n *heraldv1.Notification, to sinks.Target, maxAlerts int) Payload {
	p := Payload{
		Version:         SchemaVersion,
		ID:              n.GetId(),
		GroupKey:        n.GetGroupKey(),
		Status:          status(n.GetStatus()),
		Severity:        severity.Name(n.GetSeverity()),
		Title:           message.Title(n),
		Text:            n.GetText(),
		Labels:          nonNil(n.GetLabels()),
		Annotations:     nonNil(n.GetAnnotations()),
		Alerts:          []Alert{},
		TruncatedAlerts: int(n.GetTruncatedAlerts()),
		Links: Links{
			Generator: safeURL(n.GetLinks().GetGenerator()),
			Silence:   safeURL(n.GetLinks().GetSilence()),
			Runbook:   safeURL(n.GetLinks().GetRunbook()),
			Dashboard: safeURL(n.GetLinks().GetDashboard()),
		},
		ExternalURL:    safeURL(n.GetExternalUrl()),
		Source:         n.GetSource(),
		Receiver:       n.GetReceiver(),
		ReceivedAt:     timeOf(n.GetReceivedAt()),
		Route:          firstNonEmpty(to.Route, n.GetRoute()),
		Channel:        to.Channel,
		FallbackFrom:   to.FallbackFrom,
		FallbackReason: to.FallbackReason,
	}
	if pr := to.Parent; pr.GetMessageId() != "" {
		p.Parent = &MessageRef{ChannelID: pr.GetChannelId(), MessageID: pr.GetMessageId(), ThreadID: pr.GetThreadId()}
	}
	for i, a := range n.GetAlerts() {
		if maxAlerts > 0 && i >= maxAlerts {
			p.TruncatedAlerts += len(n.GetAlerts()) - i
			break
		}
		p.Alerts = append(p.Alerts, Alert{
			Fingerprint:  a.GetFingerprint(),
			Status:       status(a.GetStatus()),
			Labels:       nonNil(a.GetLabels()),
			Annotations:  nonNil(a.GetAnnotations()),
			StartsAt:     timeOf(a.GetStartsAt()),
			EndsAt:       timeOf(a.GetEndsAt()),
			GeneratorURL: safeURL(a.GetGeneratorUrl()),
		})
	}
	return p
}

// status is "resolved" for a resolved status and "firing" otherwise, as
// every sink shows it.
func status(s heraldv1.Status) string {
	if s == heraldv1.Status_STATUS_RESOLVED {
		return "resolved"
	}
	return "firing"
}

func safeURL(u string) string { return message.SafeURL(u, message.Plain) }

// timeOf is t in UTC, or nil when t is unset, invalid or not after 1970
// (Alertmanager's zero endsAt).
func timeOf(t *timestamppb.Timestamp) *time.Time {
	if !t.IsValid() {
		return nil
	}
	at := t.AsTime().UTC()
	if at.Unix() <= 0 {
		return nil
	}
	return &at
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
