package route

import (
	"strings"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

type compiled struct {
	matchers []*Matcher
	decision Decision
}

// Table is a Router built from validated route configs.
type Table struct {
	routes []compiled
}

// New compiles routes. They must have passed Validate.
func New(routes []Config) (*Table, error) {
	t := &Table{}
	for _, r := range routes {
		c := compiled{decision: Decision{Route: r.Name, Templates: r.Templates}}
		for _, s := range r.Matchers {
			ms, err := ParseMatchers(s)
			if err != nil {
				return nil, err
			}
			c.matchers = append(c.matchers, ms...)
		}
		for _, sink := range r.Chain {
			c.decision.Chain = append(c.decision.Chain, Step{Sink: sink, Channel: r.Channels[sink]})
		}
		t.routes = append(t.routes, c)
	}
	return t, nil
}

// Route returns the decision of the first route whose matchers all match
// the notification's labels. The label "severity", when the notification has
// none, is the severity field in lower case ("critical", "warning", "info");
// "source" likewise defaults to the source field.
func (t *Table) Route(n *heraldv1.Notification) Decision {
	lookup := func(name string) string {
		if v, ok := n.GetLabels()[name]; ok {
			return v
		}
		switch name {
		case "severity":
			if s := n.GetSeverity(); s != heraldv1.Severity_SEVERITY_UNSPECIFIED {
				return strings.ToLower(strings.TrimPrefix(s.String(), "SEVERITY_"))
			}
		case "source":
			return n.GetSource()
		}
		return ""
	}
next:
	for _, r := range t.routes {
		for _, m := range r.matchers {
			if !m.Matches(lookup(m.Name)) {
				continue next
			}
		}
		return r.decision
	}
	// Unreachable for a validated config, whose last route matches all.
	return t.routes[len(t.routes)-1].decision
}
