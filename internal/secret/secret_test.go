package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	s := String("xoxb-very-secret")
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "tok", s)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "tok", s)
	j, _ := json.Marshal(struct{ T String }{s})
	outs := []string{
		fmt.Sprint(s), fmt.Sprintf("%s %v %+v %#v %q %x %X %10s", s, s, s, s, s, s, s, s),
		fmt.Sprintf("%v", struct{ T String }{s}), fmt.Sprintf("%+v", &struct{ T String }{s}),
		buf.String(), string(j),
	}
	for _, out := range outs {
		if strings.Contains(out, "very-secret") || strings.Contains(out, "7665727") {
			t.Errorf("secret revealed in %q", out)
		}
		if !strings.Contains(out, Redacted) && !strings.Contains(out, `\u003csecret\u003e`) {
			t.Errorf("no %s in %q", Redacted, out)
		}
	}
	if s.Value() != "xoxb-very-secret" {
		t.Error("Value() changed the secret")
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "tok")
	os.WriteFile(f, []byte("from-file\r\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)

	var s String
	if err := Resolve(&s, f, "token"); err != nil || s.Value() != "from-file" {
		t.Errorf("Resolve = %q, %v", s.Value(), err)
	}
	s = "inline"
	if err := Resolve(&s, f, "token"); err == nil || !strings.Contains(err.Error(), "token and token_file are both set") {
		t.Errorf("both set: %v", err)
	}
	s = ""
	if err := Resolve(&s, empty, "token"); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty file: %v", err)
	}
	if err := Resolve(&s, filepath.Join(dir, "missing"), "token"); err == nil || !strings.Contains(err.Error(), "token_file:") {
		t.Errorf("missing file: %v", err)
	}
	s = "inline"
	if err := Resolve(&s, "", "token"); err != nil || s.Value() != "inline" {
		t.Errorf("no file: %q %v", s.Value(), err)
	}
}
