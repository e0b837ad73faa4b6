// Package secret holds configuration values that must never be printed:
// tokens, passwords and URLs that embed credentials.
package secret

import (
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"syscall"
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

// MaxFileSize bounds what Resolve reads: a token, a password or a URL is far
// smaller, and a wrong path (a log file, /dev/zero) must not fill memory.
const MaxFileSize = 64 << 10

// Resolve fills *s from file when file is set. It is the single rule for the
// "x" / "x_file" twins: at most one of them may be set. name is the YAML key of
// the inline form, used in errors. The file's trailing newline is dropped.
// Only a regular file of at most MaxFileSize bytes is read: a FIFO or a
// device is refused at once, never waited on.
func Resolve(s *String, file, name string) error {
	if file == "" {
		return nil
	}
	if s.IsSet() {
		return fmt.Errorf("%s and %s_file are both set; use one", name, name)
	}
	b, err := readFile(file)
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

// readFile reads a regular file of at most MaxFileSize bytes.
func readFile(path string) ([]byte, error) {
	// O_NONBLOCK keeps the open of a FIFO from waiting for a writer; the
	// mode of what was opened is checked before anything is read.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s, not a regular file", path, kind(fi.Mode()))
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s is larger than %d KiB", path, MaxFileSize>>10)
	}
	return b, nil
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}
