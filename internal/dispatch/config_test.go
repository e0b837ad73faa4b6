package dispatch

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestConfigYAML(t *testing.T) {
	const in = `
quick_retries: 0
attempt_timeout: 3s
breaker:
  open_for: 1m
`
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(in))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.QuickRetries = 0
	want.AttemptTimeout = 3 * time.Second
	want.Breaker.OpenFor = time.Minute
	if cfg != want {
		t.Errorf("decoded %+v, want %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}

	dec = yaml.NewDecoder(strings.NewReader("quick_retry: 3\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err == nil {
		t.Error("a misspelt key was accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // each must appear in the error; none: valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"zero durations mean the default", func(c *Config) { *c = Config{} }, nil},
		{"negative retries", func(c *Config) { c.QuickRetries = -1 }, []string{"quick_retries: must not be negative"}},
		{"too many retries", func(c *Config) { c.QuickRetries = 1000 }, []string{"quick_retries: at most 100"}},
		{"negative durations", func(c *Config) {
			c.AttemptTimeout = -time.Second
			c.Breaker.OpenFor = -time.Second
		}, []string{"attempt_timeout: must not be negative", "breaker.open_for: must not be negative"}},
		{"max below initial", func(c *Config) { c.BackoffMax = time.Second }, []string{"backoff_max: 1s is less than backoff_initial 5s"}},
		{"max below the default initial", func(c *Config) {
			c.BackoffInitial = 0
			c.BackoffMax = time.Second
		}, []string{"backoff_max"}},
		{"negative failures", func(c *Config) { c.Breaker.Failures = -2 }, []string{"breaker.failures"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	got := Config{QuickRetries: 0, AttemptTimeout: time.Second}.withDefaults()
	want := DefaultConfig()
	want.QuickRetries = 0
	want.AttemptTimeout = time.Second
	if got != want {
		t.Errorf("withDefaults = %+v, want %+v", got, want)
	}
}
