// Package severity owns the one mapping between severity words and herald's
// Severity: the shim turns a severity label into a Severity with Parse, and
// routing matches the name Name gives, so a notification is routed as it is
// rendered.
package severity

import (
	"strings"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// Parse maps a severity label value to a Severity. Matching ignores case and
// surrounding space; unknown and empty values are info.
//
//	critical: critical crit fatal emergency emerg alert page error err high major p1
//	warning:  warning warn medium minor p2
//	info:     everything else
func Parse(v string) heraldv1.Severity {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "critical", "crit", "fatal", "emergency", "emerg", "alert", "page", "error", "err", "high", "major", "p1":
		return heraldv1.Severity_SEVERITY_CRITICAL
	case "warning", "warn", "medium", "minor", "p2":
		return heraldv1.Severity_SEVERITY_WARNING
	}
	return heraldv1.Severity_SEVERITY_INFO
}

// Names returns the names of the known severities, most urgent first.
func Names() []string { return []string{"critical", "warning", "info"} }

// Name is the lower-case name of s: "critical", "warning" or "info", and ""
// for an unspecified or unknown value.
func Name(s heraldv1.Severity) string {
	switch s {
	case heraldv1.Severity_SEVERITY_CRITICAL:
		return "critical"
	case heraldv1.Severity_SEVERITY_WARNING:
		return "warning"
	case heraldv1.Severity_SEVERITY_INFO:
		return "info"
	}
	return ""
}
