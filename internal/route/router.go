package route

import (
	"slices"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/severity"
)

type compiled struct {
	matchers []*Matcher
	decision Decision
	cont     bool
}

// Table is a Router built from validated route configs.
type Table struct {
	routes []compiled
}

// New compiles routes. They must have passed Validate.
func New(routes []Config) (*Table, error) {
	t := &Table{}
	for _, r := range routes {
		c := compiled{decision: Decision{Route: r.Name, Templates: r.Templates}, cont: r.Continue}
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

// SeverityLabel is the name under which matchers see the notification's own
// "severity" label, unchanged ("page", "P1"), since "severity" itself is the
// normalised severity. A real label of this name wins.
const SeverityLabel = "severity_label"

// Route returns the decision of the route the notification names (a
// fan-out copy's, see Routes), or else of the first route whose matchers
// all match the notification's labels. "severity" is the severity the
// notification is rendered with, by name: "critical", "warning" or "info"
// (severity.Name), whatever word its label used; for a notification
// without one, its severity label's value normalised by severity.Parse.
// SeverityLabel is the label's own value. "source", when the notification
// has no such label, is the source field.
//
// A copy whose route is no longer configured (a reload removed or renamed
// it) takes the first route its labels take now that none of its copies
// was made for (a renamed route); when its copies' routes cover them all,
// the first, which its copy for that route delivers too: twice rather than
// not at all.
func (t *Table) Route(n *heraldv1.Notification) Decision {
	name := n.GetRoute()
	if name == "" {
		return t.Routes(n)[0]
	}
	for _, r := range t.routes {
		if r.decision.Route == name {
			return r.decision
		}
	}
	ds := t.Routes(n)
	for _, d := range ds {
		if !slices.Contains(n.GetFanoutRoutes(), d.Route) {
			return d
		}
	}
	return ds[0]
}

// Routes returns the decisions of every route that delivers the
// notification: the first whose matchers all match and, while the matched
// route says continue, the next matching ones. Never empty.
func (t *Table) Routes(n *heraldv1.Notification) []Decision {
	lookup := func(name string) string {
		if name == "severity" {
			return severityName(n)
		}
		if v, ok := n.GetLabels()[name]; ok {
			return v
		}
		switch name {
		case SeverityLabel:
			return n.GetLabels()["severity"]
		case "source":
			return n.GetSource()
		}
		return ""
	}
	var out []Decision
next:
	for _, r := range t.routes {
		for _, m := range r.matchers {
			if !m.Matches(lookup(m.Name)) {
				continue next
			}
		}
		out = append(out, r.decision)
		if !r.cont {
			return out
		}
	}
	if len(out) == 0 {
		// Unreachable for a validated config, whose last route matches all.
		out = append(out, t.routes[len(t.routes)-1].decision)
	}
	return out
}

// severityName is what a matcher on "severity" sees.
func severityName(n *heraldv1.Notification) string {
	if s := n.GetSeverity(); s != heraldv1.Severity_SEVERITY_UNSPECIFIED {
		return severity.Name(s)
	}
	if v, ok := n.GetLabels()["severity"]; ok {
		return severity.Name(severity.Parse(v))
	}
	return ""
}
