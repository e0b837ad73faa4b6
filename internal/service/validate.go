package service

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// Limits on a notification's fields. They keep one caller from storing
// something no chat server would show, and are generous for alert groups.
// An API caller over one gets InvalidArgument naming the field; the
// Alertmanager shim shortens what it converts to fit them.
const (
	MaxSourceBytes         = 128 // source and receiver
	MaxFingerprintBytes    = 128
	MaxIdempotencyKeyBytes = 256
	MaxTitleBytes          = 1024
	MaxTextBytes           = 64 << 10
	MaxGroupKeyBytes       = 4096
	MaxLabelNameBytes      = 256 // a label's or an annotation's name
	MaxLabelValueBytes     = 8 << 10
	MaxLabels              = 256 // entries of one labels or annotations map
	MaxAlerts              = 5000
	MaxURLBytes            = 8 << 10
)

// fieldError is a request field that fails validation.
type fieldError struct {
	field  string
	reason string
	err    error // the cause, for errors.Is; not shown
}

func (e *fieldError) Error() string { return e.field + ": " + e.reason }

func (e *fieldError) Unwrap() error { return e.err }

func invalid(field, format string, args ...any) error {
	return &fieldError{field: field, reason: fmt.Sprintf(format, args...)}
}

// validatePublish checks a publish request and normalises its notification
// in place (status defaults to firing). It returns every problem, each
// naming its field.
func validatePublish(req *heraldv1.PublishRequest) error {
	n := req.GetNotification()
	if n == nil {
		return invalid("notification", "required")
	}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	const p = "notification."
	if n.GetId() != "" {
		add(invalid(p+"id", "assigned by herald; must be empty"))
	}
	if n.GetReceivedAt() != nil {
		add(invalid(p+"received_at", "assigned by herald; must be empty"))
	}
	if n.GetRoute() != "" {
		add(invalid(p+"route", "set by herald on fan-out copies; must be empty"))
	}
	if n.GetFanoutOf() != "" {
		add(invalid(p+"fanout_of", "set by herald on fan-out copies; must be empty"))
	}
	if len(n.GetFanoutRoutes()) != 0 {
		add(invalid(p+"fanout_routes", "set by herald on fan-out copies; must be empty"))
	}
	add(requiredString(p+"source", n.GetSource(), MaxSourceBytes))
	add(requiredString(p+"title", n.GetTitle(), MaxTitleBytes))
	add(optionalString(p+"text", n.GetText(), MaxTextBytes))
	add(optionalString(p+"idempotency_key", n.GetIdempotencyKey(), MaxIdempotencyKeyBytes))
	add(optionalString(p+"group_key", n.GetGroupKey(), MaxGroupKeyBytes))
	add(optionalString(p+"external_url", n.GetExternalUrl(), MaxURLBytes))
	add(optionalString(p+"receiver", n.GetReceiver(), MaxSourceBytes))
	add(enumValue(p+"severity", n.GetSeverity(), true))
	if n.GetStatus() == heraldv1.Status_STATUS_UNSPECIFIED {
		n.Status = heraldv1.Status_STATUS_FIRING
	}
	add(enumValue(p+"status", n.GetStatus(), false))
	add(validateLabels(p+"labels", n.GetLabels()))
	add(validateLabels(p+"annotations", n.GetAnnotations()))
	if l := n.GetLinks(); l != nil {
		add(optionalString(p+"links.generator", l.GetGenerator(), MaxURLBytes))
		add(optionalString(p+"links.silence", l.GetSilence(), MaxURLBytes))
		add(optionalString(p+"links.runbook", l.GetRunbook(), MaxURLBytes))
		add(optionalString(p+"links.dashboard", l.GetDashboard(), MaxURLBytes))
	}
	if len(n.GetAlerts()) > MaxAlerts {
		add(invalid(p+"alerts", "%d alerts, at most %d", len(n.GetAlerts()), MaxAlerts))
	}
	for i, a := range n.GetAlerts() {
		ap := p + "alerts[" + strconv.Itoa(i) + "]."
		if a == nil {
			add(invalid(ap[:len(ap)-1], "null"))
			continue
		}
		switch a.GetStatus() {
		case heraldv1.Status_STATUS_FIRING, heraldv1.Status_STATUS_RESOLVED:
		default:
			add(enumValue(ap+"status", a.GetStatus(), true))
		}
		add(optionalString(ap+"fingerprint", a.GetFingerprint(), MaxFingerprintBytes))
		add(optionalString(ap+"generator_url", a.GetGeneratorUrl(), MaxURLBytes))
		add(validateLabels(ap+"labels", a.GetLabels()))
		add(validateLabels(ap+"annotations", a.GetAnnotations()))
		if a.GetStartsAt() != nil && a.GetStartsAt().CheckValid() != nil {
			add(invalid(ap+"starts_at", "not a valid timestamp"))
		}
		if a.GetEndsAt() != nil && a.GetEndsAt().CheckValid() != nil {
			add(invalid(ap+"ends_at", "not a valid timestamp"))
		}
		if len(errs) > 20 {
			break
		}
	}
	return errors.Join(errs...)
}

// validateList checks the filters of a ListNotifications request.
func validateList(req *heraldv1.ListNotificationsRequest) error {
	return errors.Join(
		enumValue("state", req.GetState(), false),
		enumValue("severity", req.GetSeverity(), false),
	)
}

// enumValue checks an enum field: a number the enum does not define is an
// error (binary protobuf and JSON both carry any number), and so is the
// zero, UNSPECIFIED, value when the field is required.
func enumValue(field string, v protoreflect.Enum, required bool) error {
	d := v.Descriptor()
	switch num := v.Number(); {
	case num == 0 && required:
		return invalid(field, "required, want one of %s", enumNames(d))
	case num != 0 && d.Values().ByNumber(num) == nil:
		return invalid(field, "unknown value %d, want one of %s", num, enumNames(d))
	}
	return nil
}

// enumNames lists the values of an enum but its zero (UNSPECIFIED) one.
func enumNames(d protoreflect.EnumDescriptor) string {
	vals := d.Values()
	names := make([]string, 0, vals.Len())
	for i := range vals.Len() {
		if v := vals.Get(i); v.Number() != 0 {
			names = append(names, string(v.Name()))
		}
	}
	return strings.Join(names, ", ")
}

func requiredString(field, v string, limit int) error {
	if strings.TrimSpace(v) == "" {
		return invalid(field, "required")
	}
	return optionalString(field, v, limit)
}

func optionalString(field, v string, limit int) error {
	if len(v) > limit {
		return invalid(field, "%d bytes, at most %d", len(v), limit)
	}
	if !utf8.ValidString(v) {
		return invalid(field, "not valid UTF-8")
	}
	return nil
}

// maxEntryErrors bounds the problems reported for one labels map.
const maxEntryErrors = 3

// validateLabels checks a labels or annotations map. Its problems are
// reported in the order of their names, each naming its entry as
// field.name (field["name"] for a name that is not a plain identifier).
func validateLabels(field string, m map[string]string) error {
	if len(m) > MaxLabels {
		return invalid(field, "%d entries, at most %d", len(m), MaxLabels)
	}
	var bad []string
	for k, v := range m {
		if k == "" || len(k) > MaxLabelNameBytes || len(v) > MaxLabelValueBytes {
			bad = append(bad, k)
		}
	}
	if bad == nil {
		return nil
	}
	slices.Sort(bad)
	var errs []error
	for _, k := range bad[:min(len(bad), maxEntryErrors)] {
		switch {
		case k == "":
			errs = append(errs, invalid(field, "empty name"))
		case len(k) > MaxLabelNameBytes:
			errs = append(errs, invalid(entryField(field, k), "name of %d bytes, at most %d", len(k), MaxLabelNameBytes))
		default:
			errs = append(errs, invalid(entryField(field, k), "value of %d bytes, at most %d", len(m[k]), MaxLabelValueBytes))
		}
	}
	if len(bad) > maxEntryErrors {
		errs = append(errs, invalid(field, "%d more entries over the limits", len(bad)-maxEntryErrors))
	}
	return errors.Join(errs...)
}

// entryField names the entry k of the map field: field.k for a plain name,
// else field["k"], with a long name shortened to 64 bytes.
func entryField(field, k string) string {
	if isPlainName(k) {
		return field + "." + k
	}
	return field + "[" + quoteShort(k) + "]"
}

// isPlainName reports whether s is a Prometheus-style label name of at
// most 64 bytes, which reads unambiguously after a dot.
func isPlainName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, r := range s {
		if !(r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || i > 0 && '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// invalidArgument turns validation errors into one Connect error whose
// message names every bad field.
func invalidArgument(err error) *connect.Error {
	return connect.NewError(connect.CodeInvalidArgument, err)
}
