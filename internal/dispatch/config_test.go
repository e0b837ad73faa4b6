package dispatch

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestConfigYAML decodes a config section the way the config file does:
// strictly, into a zero value.
func TestConfigYAML(t *testing.T) {
	type file struct {
		Dispatch Config `yaml:"dispatch"`
		Other    string `yaml:"other"`
	}
	decode := func(in string) (Config, error) {
		var f file
		dec := yaml.NewDecoder(strings.NewReader(in))
		dec.KnownFields(true)
		err := dec.Decode(&f)
		return f.Dispatch, err
	}
	changed := func(change func(*Config)) Config {
		c := DefaultConfig()
		change(&c)
		return c
	}
	tests := []struct {
		name    string
		in      string
		want    Config
		wantErr string
	}{{
		name: "keys left out keep their defaults",
		in:   "dispatch:\n  quick_retries: 0\n  attempt_timeout: 3s\n  breaker:\n    open_for: 1m\n",
		want: changed(func(c *Config) {
			c.QuickRetries = 0
			c.AttemptTimeout = 3 * time.Second
			c.Breaker.OpenFor = time.Minute
		}),
	}, {
		name: "every key",
		in: `dispatch:
  quick_retries: 4
  quick_retry_budget: 8s
  quick_backoff: 250ms
  attempt_timeout: 4s
  backoff_initial: 1s
  backoff_max: 10m
  retry_budget: 48h
  breaker: {failures: 5, open_for: 2m}
  throttle_hold: 90s
  fallback_hold: 6h
  max_in_flight: 100
  max_in_flight_per_sink: 20
`,
		want: Config{4, 8 * time.Second, 250 * time.Millisecond, 4 * time.Second, time.Second,
			10 * time.Minute, 48 * time.Hour, BreakerConfig{5, 2 * time.Minute}, 90 * time.Second, 6 * time.Hour,
			100, 20},
	}, {
		name: "an empty section is the defaults",
		in:   "dispatch:\n",
		want: Config{}, // no section: New turns the zero Config into the defaults
	}, {
		name: "no section",
		in:   "other: x\n",
		want: Config{},
	}, {
		name:    "misspelt key",
		in:      "dispatch:\n  quick_retry: 3\n",
		wantErr: "line 2: field quick_retry not found",
	}, {
		name:    "misspelt nested key",
		in:      "dispatch:\n  breaker:\n    failure: 3\n",
		wantErr: "line 3: field failure not found",
	}, {
		name:    "bad duration",
		in:      "dispatch:\n  retry_budget: a day\n",
		wantErr: "line 2",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("decoded %+v, want %+v", got, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Error(err)
			}
		})
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
		{"negative throttle hold", func(c *Config) { c.ThrottleHold = -time.Second }, []string{"throttle_hold: must not be negative"}},
		{"negative in-flight bounds", func(c *Config) {
			c.MaxInFlight = -1
			c.MaxInFlightPerSink = -1
		}, []string{"max_in_flight: must not be negative, got -1", "max_in_flight_per_sink: must not be negative, got -1"}},
		{"in-flight bounds too high", func(c *Config) {
			c.MaxInFlight = 10001
			c.MaxInFlightPerSink = 20000
		}, []string{"max_in_flight: at most 10000, got 10001", "max_in_flight_per_sink: at most 10000, got 20000"}},
		{"highest in-flight bounds", func(c *Config) {
			c.MaxInFlight = 10000
			c.MaxInFlightPerSink = 10000
		}, nil},
		{"per sink above the overall bound is lowered, not refused", func(c *Config) {
			c.MaxInFlight = 8
			c.MaxInFlightPerSink = 100
		}, nil},
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
	if got := (Config{}).withDefaults(); got != DefaultConfig() {
		t.Errorf("zero config = %+v, want the defaults", got)
	}
	got := Config{QuickRetries: 0, AttemptTimeout: time.Second}.withDefaults()
	want := DefaultConfig()
	want.QuickRetries = 0
	want.AttemptTimeout = time.Second
	if got != want {
		t.Errorf("withDefaults = %+v, want %+v", got, want)
	}
}

// TestConfigInFlightDefaults pins down the in-flight bounds in effect.
func TestConfigInFlightDefaults(t *testing.T) {
	tests := []struct {
		name              string
		all, perSink      int
		wantAll, wantSink int
	}{
		{"defaults", 0, 0, 64, 32},
		{"overall only", 100, 0, 100, 32},
		{"overall below the per-sink default", 16, 0, 16, 16},
		{"per sink only", 0, 8, 64, 8},
		{"per sink above overall", 10, 20, 10, 10},
		{"both", 200, 50, 200, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{QuickRetries: 1, MaxInFlight: tt.all, MaxInFlightPerSink: tt.perSink}.withDefaults()
			if c.MaxInFlight != tt.wantAll || c.MaxInFlightPerSink != tt.wantSink {
				t.Errorf("in effect: max_in_flight %d, max_in_flight_per_sink %d; want %d, %d",
					c.MaxInFlight, c.MaxInFlightPerSink, tt.wantAll, tt.wantSink)
			}
		})
	}
}
