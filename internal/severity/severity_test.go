package severity

import (
	"testing"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want heraldv1.Severity
	}{
		{"critical", heraldv1.Severity_SEVERITY_CRITICAL},
		{" Critical ", heraldv1.Severity_SEVERITY_CRITICAL},
		{"page", heraldv1.Severity_SEVERITY_CRITICAL},
		{"P1", heraldv1.Severity_SEVERITY_CRITICAL},
		{"error", heraldv1.Severity_SEVERITY_CRITICAL},
		{"warning", heraldv1.Severity_SEVERITY_WARNING},
		{"WARN", heraldv1.Severity_SEVERITY_WARNING},
		{"minor", heraldv1.Severity_SEVERITY_WARNING},
		{"info", heraldv1.Severity_SEVERITY_INFO},
		{"", heraldv1.Severity_SEVERITY_INFO},
		{"none", heraldv1.Severity_SEVERITY_INFO},
		{"disaster", heraldv1.Severity_SEVERITY_INFO},
	}
	for _, tt := range tests {
		if got := Parse(tt.in); got != tt.want {
			t.Errorf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestName(t *testing.T) {
	tests := []struct {
		in   heraldv1.Severity
		want string
	}{
		{heraldv1.Severity_SEVERITY_CRITICAL, "critical"},
		{heraldv1.Severity_SEVERITY_WARNING, "warning"},
		{heraldv1.Severity_SEVERITY_INFO, "info"},
		{heraldv1.Severity_SEVERITY_UNSPECIFIED, ""},
		{heraldv1.Severity(77), ""},
	}
	for _, tt := range tests {
		if got := Name(tt.in); got != tt.want {
			t.Errorf("Name(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Every name parses back to its own severity.
	for _, n := range Names() {
		if Name(Parse(n)) != n {
			t.Errorf("Name(Parse(%q)) = %q", n, Name(Parse(n)))
		}
	}
}
