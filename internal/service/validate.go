package service

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// Limits on a notification's fields. They keep one caller from storing
// something no chat server would show, and are generous for alert groups.
const (
	maxSource         = 128
	maxIdempotencyKey = 256
	maxTitle          = 1024
	maxText           = 64 << 10
	maxGroupKey       = 4096
	maxLabelName      = 256
	maxLabelValue     = 8 << 10
	maxLabels         = 256
	maxAlerts         = 5000
	maxURL            = 8 << 10
)

// fieldError is a request field that fails validation.
type fieldError struct {
	field  string
	reason string
}

func (e *fieldError) Error() string { return e.field + ": " + e.reason }

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
	add(requiredString(p+"source", n.GetSource(), maxSource))
	add(requiredString(p+"title", n.GetTitle(), maxTitle))
	add(optionalString(p+"text", n.GetText(), maxText))
	add(optionalString(p+"idempotency_key", n.GetIdempotencyKey(), maxIdempotencyKey))
	add(optionalString(p+"group_key", n.GetGroupKey(), maxGroupKey))
	add(optionalString(p+"external_url", n.GetExternalUrl(), maxURL))
	add(optionalString(p+"receiver", n.GetReceiver(), maxSource))
	switch n.GetSeverity() {
	case heraldv1.Severity_SEVERITY_CRITICAL, heraldv1.Severity_SEVERITY_WARNING, heraldv1.Severity_SEVERITY_INFO:
	case heraldv1.Severity_SEVERITY_UNSPECIFIED:
		add(invalid(p+"severity", "required"))
	default:
		add(invalid(p+"severity", "unknown value %d", n.GetSeverity()))
	}
	switch n.GetStatus() {
	case heraldv1.Status_STATUS_FIRING, heraldv1.Status_STATUS_RESOLVED:
	case heraldv1.Status_STATUS_UNSPECIFIED:
		n.Status = heraldv1.Status_STATUS_FIRING
	default:
		add(invalid(p+"status", "unknown value %d", n.GetStatus()))
	}
	add(validateLabels(p+"labels", n.GetLabels()))
	add(validateLabels(p+"annotations", n.GetAnnotations()))
	if l := n.GetLinks(); l != nil {
		add(optionalString(p+"links.generator", l.GetGenerator(), maxURL))
		add(optionalString(p+"links.silence", l.GetSilence(), maxURL))
		add(optionalString(p+"links.runbook", l.GetRunbook(), maxURL))
		add(optionalString(p+"links.dashboard", l.GetDashboard(), maxURL))
	}
	if len(n.GetAlerts()) > maxAlerts {
		add(invalid(p+"alerts", "%d alerts, at most %d", len(n.GetAlerts()), maxAlerts))
	}
	for i, a := range n.GetAlerts() {
		ap := fmt.Sprintf("%salerts[%d].", p, i)
		if a == nil {
			add(invalid(ap[:len(ap)-1], "null"))
			continue
		}
		switch a.GetStatus() {
		case heraldv1.Status_STATUS_FIRING, heraldv1.Status_STATUS_RESOLVED:
		default:
			add(invalid(ap+"status", "must be firing or resolved"))
		}
		add(optionalString(ap+"fingerprint", a.GetFingerprint(), maxSource))
		add(optionalString(ap+"generator_url", a.GetGeneratorUrl(), maxURL))
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

func validateLabels(field string, m map[string]string) error {
	if len(m) > maxLabels {
		return invalid(field, "%d entries, at most %d", len(m), maxLabels)
	}
	for k, v := range m {
		if k == "" {
			return invalid(field, "empty name")
		}
		if len(k) > maxLabelName {
			return invalid(field+"["+k[:32]+"…]", "name longer than %d bytes", maxLabelName)
		}
		if len(v) > maxLabelValue {
			return invalid(field+"["+k+"]", "value longer than %d bytes", maxLabelValue)
		}
	}
	return nil
}

// invalidArgument turns validation errors into one Connect error whose
// message names every bad field.
func invalidArgument(err error) *connect.Error {
	return connect.NewError(connect.CodeInvalidArgument, err)
}
