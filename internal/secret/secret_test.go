package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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

// TestResolveReadsOnlySmallRegularFiles: a token_file that is a FIFO, a
// device or a huge file must fail at once with an error naming the key,
// not hang start-up or fill memory.
func TestResolveReadsOnlySmallRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, bytes.Repeat([]byte("x"), MaxFileSize+1), 0o600)
	atMax := filepath.Join(dir, "at-max")
	os.WriteFile(atMax, bytes.Repeat([]byte("y"), MaxFileSize), 0o600)

	tests := []struct {
		name, file, wantErr string
	}{
		{"fifo", fifo, "token_file: " + fifo + " is a named pipe (FIFO), not a regular file"},
		{"dev zero", "/dev/zero", "token_file: /dev/zero is a device, not a regular file"},
		{"directory", dir, "token_file: " + dir + " is a directory, not a regular file"},
		{"over the bound", big, "token_file: " + big + " is larger than 64 KiB"},
		{"at the bound", atMax, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			var s String
			go func() { done <- Resolve(&s, tt.file, "token") }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("Resolve(%s) still reading after 10s", tt.file)
			}
			if tt.wantErr == "" {
				if err != nil || len(s.Value()) != MaxFileSize {
					t.Fatalf("Resolve = %d bytes, %v", len(s.Value()), err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Resolve error = %v\nwant %s", err, tt.wantErr)
			}
		})
	}
}

func TestRedactURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://user:PW@nats.example.com:4222", "nats://user:<secret>@nats.example.com:4222"},
		{"nats://s3cr3t-token@nats:4222", "nats://<secret>@nats:4222"},
		{"nats://a:1@n1:4222,nats://b:2@n2:4222, tls://n3", "nats://a:<secret>@n1:4222,nats://b:<secret>@n2:4222, tls://n3"},
		{"https://u:p%40ss@chat.example.com/path?q=a@b", "https://u:<secret>@chat.example.com/path?q=a@b"},
		{"https://u:p@ss@host/x", "https://u:<secret>@host/x"},
		{"https://u:a,b@host", "https://u:<secret>@host"},
		{`url: "ftp://bob:hunter2@files" is not an http(s) URL`, `url: "ftp://bob:<secret>@files" is not an http(s) URL`},
		{"parse \"nats://u:pw@h:port\": invalid port", "parse \"nats://u:<secret>@h:port\": invalid port"},
		{"nats://nats.example.com:4222", "nats://nats.example.com:4222"},
		{"mailto:someone@example.com and x@y", "mailto:someone@example.com and x@y"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := RedactURLs(tt.in); got != tt.want {
			t.Errorf("RedactURLs(%q)\n = %q\nwant %q", tt.in, got, tt.want)
		}
	}
}
