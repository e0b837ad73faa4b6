package dispatch

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config tunes retries, fallback and the circuit breakers. Decoded from
// YAML, keys left out keep their defaults and unknown keys are errors. New
// treats an all-zero Config (no section in the file) as DefaultConfig(),
// and fills any other zero duration with its default.
type Config struct {
	// QuickRetries is how many times a sink is tried again, after its first
	// attempt failed, before the chain moves on to the next sink. Zero means
	// one attempt per sink.
	QuickRetries int `yaml:"quick_retries"`
	// QuickRetryBudget bounds the time spent on one sink: a retry (and the
	// wait before it) starts only if the wait ends within the budget. An
	// attempt already running is bounded by AttemptTimeout alone, so the
	// longest time on one sink is QuickRetryBudget + AttemptTimeout.
	QuickRetryBudget time.Duration `yaml:"quick_retry_budget"`
	// QuickBackoff is the wait before the first quick retry after a
	// retryable error; it doubles for each further quick retry.
	QuickBackoff time.Duration `yaml:"quick_backoff"`
	// AttemptTimeout bounds one Send.
	AttemptTimeout time.Duration `yaml:"attempt_timeout"`
	// BackoffInitial and BackoffMax bound the exponential backoff between
	// redeliveries of a notification that no sink of its chain took.
	BackoffInitial time.Duration `yaml:"backoff_initial"`
	BackoffMax     time.Duration `yaml:"backoff_max"`
	// RetryBudget is how long a notification is retried, counted from its
	// received_at (or from its replay out of the dead letters), before it
	// is dead-lettered.
	RetryBudget time.Duration `yaml:"retry_budget"`
	Breaker     BreakerConfig `yaml:"breaker"`
	// ThrottleHold is how long a notification may wait for the last sink
	// of its chain when that sink paces itself and merges digests
	// (sinks.Pacer and sinks.Batcher): it waits in the channel's lane, in
	// hand (it counts against queue.max_in_hand), and goes out in the next
	// digest. A longer wait, or one at a sink that has a fallback after
	// it, is bounded by QuickRetryBudget instead and then takes the usual
	// way: fallback, or its group is parked until the throttle ends and
	// then joins the lane with the others that waited as long.
	ThrottleHold time.Duration `yaml:"throttle_hold"`
	// FallbackHold bounds how long a group that started in a later sink of
	// its chain (while the primary was down) keeps its lifecycle there:
	// its updates and its resolve go where people saw it fire. A group
	// that is still active FallbackHold after its message there was
	// posted, for example one that never sends resolved, goes back to the
	// head of the chain with a new message.
	FallbackHold time.Duration `yaml:"fallback_hold"`
	// MaxInFlight bounds the requests to sinks (a Send, or a digest) under
	// way at once, over all sinks. An attempt waits for a slot, the most
	// severe notification first; waiting for a slot is not part of
	// AttemptTimeout. Zero means the default.
	MaxInFlight int `yaml:"max_in_flight"`
	// MaxInFlightPerSink bounds the requests under way at once to any one
	// sink, so that a slow sink cannot take every slot of MaxInFlight. A
	// value above MaxInFlight is lowered to it. Zero means the default.
	MaxInFlightPerSink int `yaml:"max_in_flight_per_sink"`
}

// BreakerConfig tunes the circuit breaker each sink has.
type BreakerConfig struct {
	// Failures is how many consecutive failed attempts open the breaker.
	Failures int `yaml:"failures"`
	// OpenFor is how long an open breaker sends notifications straight to
	// the next sink before it lets one probe attempt through.
	OpenFor time.Duration `yaml:"open_for"`
}

// DefaultConfig returns the defaults: 2 quick retries within 5s, 10s per
// attempt, redelivery backoff from 5s to 5m, a 24h retry budget, and a
// breaker that opens after 3 consecutive failures for 30s, up to 2s
// waiting for a digest at the last sink of a chain, a group kept in its
// fallback sink for up to 24h, and at most 64 requests to sinks under way
// at once, 32 to any one sink.
func DefaultConfig() Config {
	return Config{
		QuickRetries:     2,
		QuickRetryBudget: 5 * time.Second,
		QuickBackoff:     500 * time.Millisecond,
		AttemptTimeout:   10 * time.Second,
		BackoffInitial:   5 * time.Second,
		BackoffMax:       5 * time.Minute,
		RetryBudget:      24 * time.Hour,
		Breaker: BreakerConfig{
			Failures: 3,
			OpenFor:  30 * time.Second,
		},
		ThrottleHold:       2 * time.Minute,
		FallbackHold:       24 * time.Hour,
		MaxInFlight:        64,
		MaxInFlightPerSink: 32,
	}
}

// UnmarshalYAML decodes a config section on top of DefaultConfig(), so that
// keys left out keep their defaults, and rejects unknown keys (the strict
// mode of the caller's decoder does not reach into a custom unmarshaler).
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	if err := checkKeys(n, reflect.TypeFor[Config]()); err != nil {
		return err
	}
	type plain Config
	p := plain(DefaultConfig())
	if err := n.Decode(&p); err != nil {
		return err
	}
	*c = Config(p)
	return nil
}

// checkKeys reports the first key of mapping n that no field of struct t
// is tagged with, in the words yaml uses for its own strict mode.
func checkKeys(n *yaml.Node, t reflect.Type) error {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			fields[tag] = f.Type
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("line %d: field %s not found in type %s", k.Line, k.Value, t)
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Duration]() {
			if err := checkKeys(v, ft); err != nil {
				return err
			}
		}
	}
	return nil
}

// withDefaults returns DefaultConfig() for an all-zero c, else c with every
// zero duration, a zero breaker failure count and a zero in-flight bound
// replaced by its default, and MaxInFlightPerSink lowered to MaxInFlight.
// QuickRetries is kept: zero is a meaningful choice.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c == (Config{}) {
		return d
	}
	set := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	set(&c.QuickRetryBudget, d.QuickRetryBudget)
	set(&c.QuickBackoff, d.QuickBackoff)
	set(&c.AttemptTimeout, d.AttemptTimeout)
	set(&c.BackoffInitial, d.BackoffInitial)
	set(&c.BackoffMax, d.BackoffMax)
	set(&c.RetryBudget, d.RetryBudget)
	set(&c.Breaker.OpenFor, d.Breaker.OpenFor)
	set(&c.ThrottleHold, d.ThrottleHold)
	set(&c.FallbackHold, d.FallbackHold)
	if c.Breaker.Failures == 0 {
		c.Breaker.Failures = d.Breaker.Failures
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = d.MaxInFlight
	}
	if c.MaxInFlightPerSink == 0 {
		c.MaxInFlightPerSink = d.MaxInFlightPerSink
	}
	c.MaxInFlightPerSink = min(c.MaxInFlightPerSink, c.MaxInFlight)
	return c
}

// maxInFlightLimit is the highest in-flight bound Validate accepts.
const maxInFlightLimit = 10000

// Validate reports every setting that is out of range, naming its YAML key.
// Zero durations and bounds are accepted: they stand for the default.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if c.QuickRetries < 0 {
		bad("quick_retries", "must not be negative, got %d", c.QuickRetries)
	}
	if c.QuickRetries > 100 {
		bad("quick_retries", "at most 100, got %d", c.QuickRetries)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"quick_retry_budget", c.QuickRetryBudget},
		{"quick_backoff", c.QuickBackoff},
		{"attempt_timeout", c.AttemptTimeout},
		{"backoff_initial", c.BackoffInitial},
		{"backoff_max", c.BackoffMax},
		{"retry_budget", c.RetryBudget},
		{"breaker.open_for", c.Breaker.OpenFor},
		{"throttle_hold", c.ThrottleHold},
		{"fallback_hold", c.FallbackHold},
	} {
		if d.v < 0 {
			bad(d.key, "must not be negative, got %s", d.v)
		}
	}
	if c.Breaker.Failures < 0 {
		bad("breaker.failures", "must not be negative, got %d", c.Breaker.Failures)
	}
	for _, b := range []struct {
		key string
		v   int
	}{
		{"max_in_flight", c.MaxInFlight},
		{"max_in_flight_per_sink", c.MaxInFlightPerSink},
	} {
		switch {
		case b.v < 0:
			bad(b.key, "must not be negative, got %d", b.v)
		case b.v > maxInFlightLimit:
			bad(b.key, "at most %d, got %d", maxInFlightLimit, b.v)
		}
	}
	e := c.withDefaults()
	if e.BackoffInitial > 0 && e.BackoffMax > 0 && e.BackoffMax < e.BackoffInitial {
		bad("backoff_max", "%s is less than backoff_initial %s", e.BackoffMax, e.BackoffInitial)
	}
	return errors.Join(errs...)
}
