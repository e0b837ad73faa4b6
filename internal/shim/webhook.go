// Package shim is herald's door for Prometheus Alertmanager: it decodes
// Alertmanager's webhook payload (version "4"), converts each webhook into a
// Notification, and publishes it through the NotificationService API like any
// other client. Decode and Convert are pure; NewHandler is the HTTP side, with
// status codes chosen for Alertmanager's retry rules.
package shim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// WebhookVersion is the only Alertmanager webhook payload version herald accepts.
const WebhookVersion = "4"

// Alertmanager's values for a group's and an alert's status.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Message is one Alertmanager webhook: one notification about one alert group.
// It holds herald's own copy of the fields Alertmanager documents plus the
// newer notification_reason and routeLabels; other fields are ignored.
type Message struct {
	Version  string
	GroupKey string
	// TruncatedAlerts counts the group's alerts Alertmanager left out because
	// of the receiver's max_alerts.
	TruncatedAlerts uint64
	// Status is StatusFiring when any alert of the group fires, else StatusResolved.
	Status            string
	Receiver          string
	GroupLabels       map[string]string
	CommonLabels      map[string]string
	CommonAnnotations map[string]string
	// RouteLabels is sent by newer Alertmanagers; empty otherwise.
	RouteLabels map[string]string
	ExternalURL string
	// NotificationReason says why Alertmanager sent this notification (e.g.
	// "repeat interval elapsed"); empty before Alertmanager 0.32.
	NotificationReason string
	Alerts             []Alert
}

// Alert is one alert of a webhook's group.
type Alert struct {
	Status      string
	Labels      map[string]string
	Annotations map[string]string
	StartsAt    time.Time
	// EndsAt is the zero time (Alertmanager sends year 1) while the alert fires.
	EndsAt       time.Time
	GeneratorURL string
	Fingerprint  string
}

// wireMessage is the JSON shape. Times stay strings here so that a bad one
// can be reported with the field it came from.
type wireMessage struct {
	Version            *string           `json:"version"`
	GroupKey           string            `json:"groupKey"`
	TruncatedAlerts    uint64            `json:"truncatedAlerts"`
	Status             string            `json:"status"`
	Receiver           string            `json:"receiver"`
	GroupLabels        map[string]string `json:"groupLabels"`
	CommonLabels       map[string]string `json:"commonLabels"`
	CommonAnnotations  map[string]string `json:"commonAnnotations"`
	RouteLabels        map[string]string `json:"routeLabels"`
	ExternalURL        string            `json:"externalURL"`
	NotificationReason string            `json:"notification_reason"`
	Alerts             []wireAlert       `json:"alerts"`
}

type wireAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt"`
	EndsAt       string            `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// DecodeError says why a payload can never be accepted, whoever sends it
// again: the handler answers it with 400. Field names the offending JSON
// field when there is one.
type DecodeError struct {
	// Field is a dotted path such as "alerts[2].startsAt", or "" for the
	// payload as a whole.
	Field string
	// Offset is the position (counted from 1) of the byte where a JSON
	// syntax error was found or a value of the wrong type starts, or the
	// body's length when it ends early; -1 for other errors.
	Offset int64
	Reason string
	Err    error
}

func (e *DecodeError) Error() string {
	s := "alertmanager webhook: "
	if e.Field != "" {
		s += "field " + e.Field + ": "
	}
	s += e.Reason
	if e.Offset >= 0 {
		s += fmt.Sprintf(" (at byte %d)", e.Offset)
	}
	return s
}

func (e *DecodeError) Unwrap() error { return e.Err }

func fieldError(field, format string, args ...any) *DecodeError {
	return &DecodeError{Field: field, Offset: -1, Reason: fmt.Sprintf(format, args...)}
}

// Decode reads one webhook payload from r and checks it. A payload that can
// never succeed gives a *DecodeError; a failure to read r (for example an
// *http.MaxBytesError) is returned wrapped, not as a *DecodeError. It returns
// either a message or an error, never both.
func Decode(r io.Reader) (*Message, error) {
	return decodeSized(r, 0)
}

// decodeSized is Decode with the body's expected size (a request's
// Content-Length, already capped by the caller; 0 when unknown), so the
// body is read into one buffer instead of a growing series of them.
func decodeSized(r io.Reader, size int64) (*Message, error) {
	var data []byte
	var err error
	if size > 0 {
		// Room for more than announced, so that reading to EOF needs no
		// second buffer; a body longer than announced still reads whole.
		buf := bytes.NewBuffer(make([]byte, 0, int(size)+bytes.MinRead))
		_, err = buf.ReadFrom(r)
		data = buf.Bytes()
	} else {
		data, err = io.ReadAll(r)
	}
	if err != nil {
		return nil, fmt.Errorf("alertmanager webhook: reading body: %w", err)
	}
	return decodeBytes(data)
}

// decodeOptions make JSON v2 accept what encoding/json accepted, so that no
// sender's webhook that herald used to store is refused now (Alertmanager
// drops a webhook answered 400):
//   - invalid UTF-8 in a string becomes U+FFFD instead of failing the whole
//     webhook for one bad byte in a label;
//   - a name given twice in an object is allowed and the later value wins
//     (objects such as labels merge); Alertmanager never sends one twice;
//   - field names match case-insensitively as strings.EqualFold does ('_'
//     and '-' count). Alertmanager sends the exact names, which match first
//     at no extra cost; hand-written senders may not;
//   - unknown fields are ignored (the v2 default).
var decodeOptions = json.JoinOptions(
	jsontext.AllowInvalidUTF8(true),
	jsontext.AllowDuplicateNames(true),
	json.MatchCaseInsensitiveNames(true),
	jsonv1.MatchCaseSensitiveDelimiter(true),
	jsonv1.MergeWithLegacySemantics(true),
)

func decodeBytes(data []byte) (*Message, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fieldError("", "empty body: want an Alertmanager webhook JSON object")
	}
	var w wireMessage
	if err := json.Unmarshal(data, &w, decodeOptions); err != nil {
		return nil, jsonError(err, int64(len(data)))
	}
	m, err := w.check()
	if err != nil {
		return nil, err
	}
	return m, nil
}

// jsonError turns a JSON v2 error for a body of size bytes into a
// *DecodeError.
func jsonError(err error, size int64) error {
	var syn *jsontext.SyntacticError
	if errors.As(err, &syn) {
		reason := err.Error()
		if syn.Err != nil {
			reason = syn.Err.Error()
		}
		if errors.Is(syn.Err, io.ErrUnexpectedEOF) {
			reason = "unexpected end of JSON input"
		}
		where := ""
		if syn.JSONPointer != "" {
			where = " in " + fieldPath(syn.JSONPointer)
		}
		return &DecodeError{Offset: position(syn.ByteOffset, size), Reason: "invalid JSON" + where + ": " + reason, Err: err}
	}
	var sem *json.SemanticError
	if errors.As(err, &sem) && sem.JSONKind != 0 {
		return &DecodeError{
			Field:  fieldPath(sem.JSONPointer),
			Offset: position(sem.ByteOffset, size),
			Reason: fmt.Sprintf("got JSON %s, want %s", kindName(sem.JSONKind, sem.JSONValue), jsonKind(sem.GoType)),
			Err:    err,
		}
	}
	return &DecodeError{Offset: -1, Reason: "invalid JSON: " + err.Error(), Err: err}
}

// position turns JSON v2's offset (from 0) of the byte where decoding
// failed into DecodeError.Offset: the bytes read up to and including it, as
// encoding/json counted for syntax errors.
func position(offset, size int64) int64 {
	return min(offset+1, size)
}

// kindName names a JSON kind as an error message shows it, with the number
// when it is one.
func kindName(k jsontext.Kind, v jsontext.Value) string {
	switch k {
	case 'n':
		return "null"
	case 'f', 't':
		return "boolean"
	case '"':
		return "string"
	case '0':
		if len(v) > 0 && len(v) <= 32 {
			return "number " + string(v)
		}
		return "number"
	case '{', '}':
		return "object"
	case '[', ']':
		return "array"
	}
	return "value"
}

// fieldPath renders a JSON pointer into wireMessage in the form check uses:
// "/alerts/2/labels/team" is "alerts[2].labels.team", and the root is
// "(payload)". A name that is not a plain one is quoted, so that a path
// reads unambiguously; long names and paths are shortened.
func fieldPath(ptr jsontext.Pointer) string {
	if ptr == "" {
		return "(payload)"
	}
	var b strings.Builder
	t := reflect.TypeFor[wireMessage]()
	for tok := range ptr.Tokens() {
		if b.Len() > maxPath {
			b.WriteString("...")
			break
		}
		switch {
		case t == nil: // within an unknown field: an index or a name
			if _, err := strconv.ParseUint(tok, 10, 0); err == nil {
				b.WriteString("[" + tok + "]")
				continue
			}
		case t.Kind() == reflect.Slice:
			b.WriteString("[" + tok + "]")
			t = t.Elem()
			continue
		case t.Kind() == reflect.Struct:
			t = fieldType(t, tok)
		case t.Kind() == reflect.Map:
			t = t.Elem()
		}
		switch {
		case isPlainName(tok):
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(tok)
		case len(tok) > maxPathName:
			b.WriteString("[" + strconv.Quote(strings.ToValidUTF8(tok[:maxPathName], "")) + "...]")
		default:
			b.WriteString("[" + strconv.Quote(tok) + "]")
		}
	}
	return b.String()
}

// An error message quotes at most maxPathName bytes of a name and shortens
// a path after maxPath bytes (a body may nest 10,000 deep).
const (
	maxPathName = 64
	maxPath     = 256
)

// fieldType is the type of struct t's field that JSON name matches as
// decodeOptions match it, else nil.
func fieldType(t reflect.Type, name string) reflect.Type {
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if strings.EqualFold(tag, name) {
			return f.Type
		}
	}
	return nil
}

// isPlainName reports whether s is a Prometheus-style label name, which
// reads unambiguously after a dot.
func isPlainName(s string) bool {
	if s == "" || len(s) > maxPathName {
		return false
	}
	for i, r := range s {
		if !(r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || i > 0 && '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "non-negative integer"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map:
		return "object of strings"
	case reflect.Struct, reflect.Pointer:
		return "object"
	}
	return t.String()
}

// check validates the wire form and builds the Message.
func (w *wireMessage) check() (*Message, error) {
	if w.Version == nil {
		return nil, fieldError("version", "missing: herald accepts Alertmanager webhook version %q", WebhookVersion)
	}
	if *w.Version != WebhookVersion {
		return nil, fieldError("version", "unsupported version %q: herald accepts version %q", *w.Version, WebhookVersion)
	}
	if err := checkStatus("status", w.Status); err != nil {
		return nil, err
	}
	if len(w.Alerts) == 0 {
		return nil, fieldError("alerts", "no alerts: a webhook must carry at least one alert")
	}
	m := &Message{
		Version:            *w.Version,
		GroupKey:           w.GroupKey,
		TruncatedAlerts:    w.TruncatedAlerts,
		Status:             w.Status,
		Receiver:           w.Receiver,
		GroupLabels:        w.GroupLabels,
		CommonLabels:       w.CommonLabels,
		CommonAnnotations:  w.CommonAnnotations,
		RouteLabels:        w.RouteLabels,
		ExternalURL:        w.ExternalURL,
		NotificationReason: w.NotificationReason,
		Alerts:             make([]Alert, len(w.Alerts)),
	}
	for i, wa := range w.Alerts {
		// Field names are built only for an error: this loop runs for every
		// alert of every webhook.
		if wa.Status != StatusFiring && wa.Status != StatusResolved {
			return nil, checkStatus(alertField(i, "status"), wa.Status)
		}
		starts, err := parseTime(i, "startsAt", wa.StartsAt)
		if err != nil {
			return nil, err
		}
		ends, err := parseTime(i, "endsAt", wa.EndsAt)
		if err != nil {
			return nil, err
		}
		m.Alerts[i] = Alert{
			Status:       wa.Status,
			Labels:       wa.Labels,
			Annotations:  wa.Annotations,
			StartsAt:     starts,
			EndsAt:       ends,
			GeneratorURL: wa.GeneratorURL,
			Fingerprint:  wa.Fingerprint,
		}
	}
	return m, nil
}

func checkStatus(field, s string) error {
	switch s {
	case StatusFiring, StatusResolved:
		return nil
	case "":
		return fieldError(field, "missing: want %q or %q", StatusFiring, StatusResolved)
	}
	return fieldError(field, "%q is not %q or %q", s, StatusFiring, StatusResolved)
}

// parseTime parses an RFC 3339 time of alert i's field name. An empty
// string and Alertmanager's year-1 "no time" both give the zero time; a time
// protobuf cannot carry is an error.
func parseTime(i int, name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, &DecodeError{Field: alertField(i, name), Offset: -1, Reason: fmt.Sprintf("%q is not an RFC 3339 time", s), Err: err}
	}
	if unset(t) {
		return time.Time{}, nil
	}
	// Only a time past protobuf's range is given to timestamppb, which
	// allocates, for its error.
	if secs := t.Unix(); secs < minTimestamp || secs > maxTimestamp {
		if err := timestamppb.New(t).CheckValid(); err != nil {
			return time.Time{}, &DecodeError{Field: alertField(i, name), Offset: -1, Reason: fmt.Sprintf("%q is out of range", s), Err: err}
		}
	}
	return t.UTC(), nil
}

// The range of a protobuf Timestamp: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59Z, in seconds since 1970.
const (
	minTimestamp = -62135596800
	maxTimestamp = 253402300799
)

// alertField names field name of alert i as a DecodeError does.
func alertField(i int, name string) string {
	return "alerts[" + strconv.Itoa(i) + "]." + name
}

// unset reports whether t means "no time": Go's zero time, which Alertmanager
// sends as "0001-01-01T00:00:00Z", or anything in year 1 or before.
func unset(t time.Time) bool {
	return t.IsZero() || t.UTC().Year() <= 1
}
