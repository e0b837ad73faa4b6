package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestCheckConfigGolden pins what check-config prints for the files in
// testdata/checkconfig: the defaults herald runs with (dispatch's too, and
// the log sink for a file without sinks and routes), URL credentials as
// <secret> in the output and in errors, the scopes each client has,
// warnings on stderr that do not fail the check, and problems named by
// line and key path.
func TestCheckConfigGolden(t *testing.T) {
	tests := []struct {
		name     string
		wantCode int
	}{
		{"defaults", 0},
		{"url-credentials", 0},
		{"bad-url-credentials", 1},
		{"unreachable-route", 0},
		{"scopes", 0},
		{"minimal", 0},
		{"empty", 0},
		{"bad-keys", 1},
		{"bad-syntax", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := filepath.Join("testdata", "checkconfig", tt.name+".yml")
			var out, errOut bytes.Buffer
			code := run(t.Context(), []string{"check-config", in}, &out, &errOut)
			got := fmt.Sprintf("exit %d\n-- stdout --\n%s-- stderr --\n%s", code, out.String(), errOut.String())
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			for _, s := range []string{"PW-", "TOKEN-"} {
				if strings.Contains(got, s) {
					t.Errorf("check-config printed a secret (%s...):\n%s", s, got)
				}
			}
			golden := filepath.Join("testdata", "checkconfig", tt.name+".golden")
			if want, ok := matchGolden(t, golden, got); !ok {
				t.Errorf("check-config %s printed\n%s\nwant (%s; -update rewrites it)\n%s", in, got, golden, want)
			}
		})
	}
}

// matchGolden compares got with the golden file, which -update rewrites
// first, and returns the file's content.
func matchGolden(t *testing.T, golden, got string) (want string, ok bool) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), got == string(b)
}
