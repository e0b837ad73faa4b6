package route

import (
	"errors"
	"fmt"
	"strings"

	"github.com/herald-notify/herald/internal/severity"
)

// Config is one route of the config file's `routes` list. Routes are tried
// in order; the first whose matchers all match wins.
type Config struct {
	// Name identifies the route in logs, metrics and delivery records.
	Name string `yaml:"name"`
	// Matchers in Alertmanager syntax, e.g. `severity="critical"`,
	// `team=~"db|infra"`, or one `{a="b", c!="d"}` string. All must match.
	// A route without matchers matches everything. "severity" is matched
	// by its normalised name (critical, warning, info); SeverityLabel is
	// the label's own value. See Table.Route.
	Matchers []string `yaml:"matchers"`
	// Channels maps a sink name to the channel this route uses in it.
	Channels map[string]string `yaml:"channels"`
	// Chain is the ordered list of sinks to try: primary first.
	Chain []string `yaml:"chain"`
	// Templates maps a sink name to a template file overriding its default.
	Templates map[string]string `yaml:"templates"`
	// Continue, as in Alertmanager, goes on to the routes after this one
	// when it matches: the notification is delivered by every matching
	// route up to the first without continue, each route's chain on its
	// own (fan-out).
	Continue bool `yaml:"continue"`
}

// Validate checks a list of routes against the names of configured sinks.
// The last route must match everything, so that no notification is ever
// unroutable.
func Validate(routes []Config, sinkNames map[string]bool) error {
	if len(routes) == 0 {
		return errors.New("routes: at least one route is required")
	}
	var errs []error
	seen := map[string]bool{}
	for i, r := range routes {
		where := fmt.Sprintf("routes[%d]", i)
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: required", where))
		} else if seen[r.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", where, r.Name))
		}
		seen[r.Name] = true
		if len(r.Chain) == 0 {
			errs = append(errs, fmt.Errorf("%s.chain: at least one sink is required", where))
		}
		inChain := map[string]bool{}
		for j, s := range r.Chain {
			if !sinkNames[s] {
				errs = append(errs, fmt.Errorf("%s.chain[%d]: no sink is named %q", where, j, s))
			}
			if inChain[s] {
				errs = append(errs, fmt.Errorf("%s.chain[%d]: %q appears twice", where, j, s))
			}
			inChain[s] = true
		}
		for s := range r.Channels {
			if !inChain[s] {
				errs = append(errs, fmt.Errorf("%s.channels: %q is not in the route's chain", where, s))
			}
		}
		for s := range r.Templates {
			if !inChain[s] {
				errs = append(errs, fmt.Errorf("%s.templates: %q is not in the route's chain", where, s))
			}
		}
		for j, m := range r.Matchers {
			ms, err := ParseMatchers(m)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.matchers[%d]: %w", where, j, err))
				continue
			}
			for _, m := range ms {
				if err := checkSeverity(m); err != nil {
					errs = append(errs, fmt.Errorf("%s.matchers[%d]: %w", where, j, err))
				}
			}
		}
	}
	if last := routes[len(routes)-1]; len(last.Matchers) > 0 {
		errs = append(errs, fmt.Errorf("routes[%d] (%q): the last route must have no matchers, so every notification has a route", len(routes)-1, last.Name))
	} else if last.Continue {
		errs = append(errs, fmt.Errorf("routes[%d] (%q): continue: the last route has no route after it to continue to", len(routes)-1, last.Name))
	}
	return errors.Join(errs...)
}

// checkSeverity refuses a matcher on "severity" that no severity name
// satisfies, such as severity="page": routes see the normalised name, so it
// would never match.
func checkSeverity(m *Matcher) error {
	if m.Name != "severity" {
		return nil
	}
	for _, name := range severity.Names() {
		if m.Matches(name) {
			return nil
		}
	}
	hint := ""
	if m.Type == MatchEqual {
		hint = fmt.Sprintf(" (%q is %s)", m.Value, severity.Name(severity.Parse(m.Value)))
	}
	return fmt.Errorf("%s never matches: routes see severity as %s%s; match the label's own value with %s",
		m, strings.Join(severity.Names(), ", "), hint, SeverityLabel)
}

// Warnings lists what in valid routes is probably a mistake but does not
// stop herald: a route after one that matches every notification is never
// reached.
func Warnings(routes []Config) []string {
	var warns []string
	catchAll := -1
	for i, r := range routes {
		if catchAll >= 0 {
			warns = append(warns, fmt.Sprintf("routes[%d] (%q): never reached: routes[%d] (%q) before it matches every notification",
				i, r.Name, catchAll, routes[catchAll].Name))
			continue
		}
		if matchesAll(r.Matchers) && !r.Continue {
			catchAll = i
		}
	}
	return warns
}

// matchesAll reports whether matchers (of a validated route) match every
// notification: there are none, or each matches any value (=~".*") or, on
// severity, every severity name. Every routed notification has a severity:
// the service refuses one without.
func matchesAll(matchers []string) bool {
	for _, s := range matchers {
		ms, err := ParseMatchers(s)
		if err != nil {
			return false
		}
		for _, m := range ms {
			if !matchesAny(m) {
				return false
			}
		}
	}
	return true
}

func matchesAny(m *Matcher) bool {
	if m.Name == "severity" {
		for _, name := range severity.Names() {
			if !m.Matches(name) {
				return false
			}
		}
		return true
	}
	return m.Type == MatchRegexp && (m.Value == ".*" || m.Value == "(?s).*")
}
