package queue

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/herald-notify/herald/internal/secret"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Replicas: 1, Partitions: 16, MaxInHand: 256,
		Sync: SyncInterval, SyncInterval: 2 * time.Minute,
		DuplicateWindow: 45 * time.Second, Retention: 7 * 24 * time.Hour,
		AckWait: 10 * time.Second, PublishTimeout: 15 * time.Second,
	}
	if c != want {
		t.Errorf("defaults = %+v, want %+v", c, want)
	}
	// Validate twice (check-config, then serve) changes nothing.
	again := c
	if err := again.Validate(); err != nil || again != c {
		t.Errorf("second Validate = %+v, %v", again, err)
	}
}

func TestConfigYAML(t *testing.T) {
	src := `
url: nats://a:4222,nats://b:4222
token: hunter2
replicas: 3
partitions: 32
concurrency: 8
duplicate_window: 2h
retention: 72h
ack_wait: 1m
`
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Replicas != 3 || c.Partitions != 32 || c.Concurrency != 8 || c.DuplicateWindow != 2*time.Hour ||
		c.Retention != 72*time.Hour || c.AckWait != time.Minute || c.Token.Value() != "hunter2" || c.Sync != "" {
		t.Errorf("decoded %+v", c)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hunter2") || !strings.Contains(string(out), secret.Redacted) {
		t.Errorf("marshalled config shows the token:\n%s", out)
	}
}

func TestConfigTokenFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Config{URL: "nats://x:4222", TokenFile: f}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Token.Value() != "from-file" {
		t.Errorf("token = %q", c.Token.Value())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		key  string
	}{
		{"replicas embedded", Config{Replicas: 3}, "replicas"},
		{"replicas range", Config{URL: "nats://x", Replicas: 7}, "replicas"},
		{"partitions", Config{Partitions: -1}, "partitions"},
		{"partitions huge", Config{Partitions: 5000}, "partitions"},
		{"max_in_hand too large", Config{Partitions: 4, MaxInHand: 1_000_000}, "max_in_hand"},
		{"negative concurrency", Config{Partitions: 4, Concurrency: -1}, "concurrency"},
		{"sync unknown", Config{Sync: "never"}, "sync"},
		{"sync with url", Config{URL: "nats://x", Sync: SyncAlways}, "sync"},
		{"sync_interval with always", Config{Sync: SyncAlways, SyncInterval: time.Second}, "sync_interval"},
		{"listen with url", Config{URL: "nats://x", Listen: ":4222"}, "listen"},
		{"listen malformed", Config{Listen: "4222"}, "listen"},
		{"credentials embedded", Config{CredentialsFile: "/x.creds"}, "credentials_file"},
		{"token without listen", Config{Token: "t"}, "token"},
		{"token and credentials", Config{URL: "nats://x", Token: "t", CredentialsFile: "/x.creds"}, "token"},
		{"token and token_file", Config{URL: "nats://x", Token: "t", TokenFile: "/nonexistent"}, "token"},
		{"token_file missing", Config{URL: "nats://x", TokenFile: "/nonexistent/token"}, "token_file"},
		{"credentials_file missing", Config{URL: "nats://x", CredentialsFile: "/nonexistent/nats.creds"}, "credentials_file"},
		{"dedup longer than retention", Config{Retention: time.Hour, DuplicateWindow: 2 * time.Hour}, "duplicate_window"},
		{"negative retention", Config{Retention: -time.Hour}, "retention"},
		{"ack_wait short", Config{AckWait: time.Millisecond}, "ack_wait"},
		{"listen on all addresses without a token", Config{Listen: ":4222"}, "listen"},
		{"listen on a LAN address without a token", Config{Listen: "10.0.0.5:4222"}, "listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want an error about %s", tc.c, tc.key)
			}
			if !strings.HasPrefix(err.Error(), tc.key+":") && !strings.HasPrefix(err.Error(), tc.key+" ") {
				t.Errorf("error %q does not start with the key %q", err, tc.key)
			}
		})
	}
}
