// Package secret holds configuration values that must never be printed:
// tokens, passwords and URLs that embed credentials.
package secret

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Redacted is what a secret prints as, everywhere.
const Redacted = "<secret>"

// String is a secret value. It prints, formats and marshals as "<secret>";
// only Value reveals it.
type String string

// Value returns the secret itself, for the one place that sends it.
func (s String) Value() string { return string(s) }

// IsSet reports whether the secret is non-empty.
func (s String) IsSet() bool { return s != "" }

// String returns "<secret>" for a set secret and "" for an empty one.
func (s String) String() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// GoString keeps %#v from revealing the value.
func (s String) GoString() string { return s.String() }

// Format keeps every fmt verb, including %s, %v, %q and %x, from revealing
// the value.
func (s String) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", s.String())
		return
	}
	fmt.Fprint(f, s.String())
}

// MarshalYAML prints the secret as "<secret>" when a config is dumped.
func (s String) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON prints the secret as "<secret>".
func (s String) MarshalJSON() ([]byte, error) { return fmt.Appendf(nil, "%q", s.String()), nil }

// MarshalText prints the secret as "<secret>", which also covers slog.
func (s String) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue keeps slog from revealing the value.
func (s String) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Resolve fills *s from file when file is set. It is the single rule for the
// "x" / "x_file" twins: at most one of them may be set. name is the YAML key of
// the inline form, used in errors. The file's trailing newline is dropped.
func Resolve(s *String, file, name string) error {
	if file == "" {
		return nil
	}
	if s.IsSet() {
		return fmt.Errorf("%s and %s_file are both set; use one", name, name)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		// The error names the file, never its content.
		return fmt.Errorf("%s_file: %w", name, err)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return fmt.Errorf("%s_file: %s is empty", name, file)
	}
	*s = String(v)
	return nil
}
