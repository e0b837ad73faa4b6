package route

import (
	"strings"
	"testing"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/severity"
)

func TestParseMatchers(t *testing.T) {
	tests := []struct {
		in      string
		want    string // matchers joined by ","
		wantErr string
	}{
		{in: `severity="critical"`, want: `severity="critical"`},
		{in: `severity=critical`, want: `severity="critical"`},
		{in: `{team=~"db|infra", env!="dev"}`, want: `team=~"db|infra",env!="dev"`},
		{in: ` a != b , c !~ "x.*" `, want: `a!="b",c!~"x.*"`},
		{in: `"servicé name"="a\"b"`, want: `"servicé name"="a\"b"`},
		{in: `a=""`, want: `a=""`},
		{in: ``, wantErr: "no matchers"},
		{in: `{a="b"`, wantErr: "missing closing }"},
		{in: `a`, wantErr: "expected =, !=, =~ or !~"},
		{in: `a="b" c="d"`, wantErr: "expected ,"},
		{in: `a=~"("`, wantErr: "bad regular expression"},
		{in: `a="unterminated`, wantErr: "unterminated"},
		{in: `="x"`, wantErr: "expected a label name"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ms, err := ParseMatchers(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseMatchers(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMatchers(%q): %v", tt.in, err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, m.String())
			}
			if strings.Join(got, ",") != tt.want {
				t.Errorf("ParseMatchers(%q) = %s, want %s", tt.in, strings.Join(got, ","), tt.want)
			}
		})
	}
}

func TestMatcherAnchoredRegexp(t *testing.T) {
	ms, err := ParseMatchers(`team=~"db"`)
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]bool{"db": true, "dba": false, "xdb": false, "": false} {
		if got := ms[0].Matches(v); got != want {
			t.Errorf("team=~db matches %q = %v, want %v", v, got, want)
		}
	}
}

var exampleRoutes = []Config{
	{Name: "critical", Matchers: []string{`severity="critical"`}, Chain: []string{"rc", "slack"},
		Channels: map[string]string{"rc": "#alerts-critical", "slack": "#alerts-critical"}},
	{Name: "db-warning", Matchers: []string{`severity="warning"`, `team=~"db|storage"`}, Chain: []string{"rc"},
		Channels: map[string]string{"rc": "#db"}},
	{Name: "warning", Matchers: []string{`severity="warning"`}, Chain: []string{"rc", "slack"},
		Channels: map[string]string{"rc": "#alerts-warning"}},
	{Name: "default", Chain: []string{"rc", "slack"}, Channels: map[string]string{"rc": "#alerts-info", "slack": "#alerts-info"}},
}

func TestTableRoute(t *testing.T) {
	if err := Validate(exampleRoutes, map[string]bool{"rc": true, "slack": true}); err != nil {
		t.Fatal(err)
	}
	table, err := New(exampleRoutes)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		n         *heraldv1.Notification
		wantRoute string
		wantChain string
	}{
		{"label severity", &heraldv1.Notification{Labels: map[string]string{"severity": "critical"}}, "critical", "rc:#alerts-critical,slack:#alerts-critical"},
		{"enum severity when no label", &heraldv1.Notification{Severity: heraldv1.Severity_SEVERITY_CRITICAL}, "critical", "rc:#alerts-critical,slack:#alerts-critical"},
		{"enum wins over label", &heraldv1.Notification{Severity: heraldv1.Severity_SEVERITY_CRITICAL, Labels: map[string]string{"severity": "page"}}, "critical", "rc:#alerts-critical,slack:#alerts-critical"},
		{"label normalised when no enum", &heraldv1.Notification{Labels: map[string]string{"severity": "page"}}, "critical", "rc:#alerts-critical,slack:#alerts-critical"},
		{"all matchers must match", &heraldv1.Notification{Labels: map[string]string{"severity": "warning", "team": "storage"}}, "db-warning", "rc:#db"},
		{"first match wins", &heraldv1.Notification{Labels: map[string]string{"severity": "warning", "team": "web"}}, "warning", "rc:#alerts-warning,slack:"},
		{"nothing matches: default", &heraldv1.Notification{}, "default", "rc:#alerts-info,slack:#alerts-info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := table.Route(tt.n)
			var chain []string
			for _, s := range d.Chain {
				chain = append(chain, s.Sink+":"+s.Channel)
			}
			if d.Route != tt.wantRoute || strings.Join(chain, ",") != tt.wantChain {
				t.Errorf("Route = %s %s, want %s %s", d.Route, strings.Join(chain, ","), tt.wantRoute, tt.wantChain)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	sinks := map[string]bool{"rc": true, "slack": true}
	tests := []struct {
		name   string
		routes []Config
		want   string
	}{
		{"none", nil, "at least one route"},
		{"unknown sink", []Config{{Name: "a", Chain: []string{"mail"}}}, `routes[0].chain[0]: no sink is named "mail"`},
		{"twice in chain", []Config{{Name: "a", Chain: []string{"rc", "rc"}}}, `appears twice`},
		{"no chain", []Config{{Name: "a"}}, "routes[0].chain: at least one sink"},
		{"channel for sink not in chain", []Config{{Name: "a", Chain: []string{"rc"}, Channels: map[string]string{"slack": "#x"}}}, `"slack" is not in the route's chain`},
		{"last route not catch-all", []Config{{Name: "a", Chain: []string{"rc"}, Matchers: []string{"a=b"}}}, "last route must have no matchers"},
		{"bad matcher", []Config{{Name: "a", Chain: []string{"rc"}, Matchers: []string{"a=~("}}, {Name: "b", Chain: []string{"rc"}}}, "routes[0].matchers[0]"},
		{"severity matcher on a raw label value", []Config{{Name: "a", Chain: []string{"rc"}, Matchers: []string{`severity="page"`}}, {Name: "b", Chain: []string{"rc"}}},
			`routes[0].matchers[0]: severity="page" never matches: routes see severity as critical, warning, info ("page" is critical); match the label's own value with severity_label`},
		{"severity regexp matching no name", []Config{{Name: "a", Chain: []string{"rc"}, Matchers: []string{`{team="db", severity=~"P[0-9]"}`}}, {Name: "b", Chain: []string{"rc"}}},
			`routes[0].matchers[0]: severity=~"P[0-9]" never matches`},
		{"duplicate name", []Config{{Name: "a", Chain: []string{"rc"}}, {Name: "a", Chain: []string{"rc"}}}, `"a" is used twice`},
		{"missing name", []Config{{Chain: []string{"rc"}}}, "routes[0].name: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.routes, sinks)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestSeverityRoutesAsRendered: a route on severity sees the severity the
// notification is rendered with, whatever word its label used. The
// notifications are as the shim makes them: the label kept, the Severity
// from severity.Parse of it.
func TestSeverityRoutesAsRendered(t *testing.T) {
	routes := append([]Config{
		{Name: "pager-raw", Matchers: []string{`severity_label="P1"`}, Chain: []string{"rc"}, Channels: map[string]string{"rc": "#pager"}},
	}, exampleRoutes...)
	if err := Validate(routes, map[string]bool{"rc": true, "slack": true}); err != nil {
		t.Fatal(err)
	}
	table, err := New(routes)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		label     string
		wantRoute string
	}{
		{"critical", "critical"},
		{"page", "critical"},
		{"Critical", "critical"},
		{" error ", "critical"},
		{"P1", "pager-raw"},
		{"p1", "critical"},
		{"warning", "warning"},
		{"warn", "warning"},
		{"minor", "warning"},
		{"info", "default"},
		{"none", "default"},
		{"", "default"},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			n := &heraldv1.Notification{
				Severity: severity.Parse(tt.label),
				Labels:   map[string]string{"alertname": "X", "severity": tt.label},
			}
			if got := table.Route(n).Route; got != tt.wantRoute {
				t.Errorf("severity=%q (rendered %s) routed to %q, want %q", tt.label, severity.Name(n.Severity), got, tt.wantRoute)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name   string
		routes []Config
		want   []string
	}{
		{"none", exampleRoutes, nil},
		{"route after a catch-all", []Config{
			{Name: "crit", Matchers: []string{`severity="critical"`}},
			{Name: "all"},
			{Name: "db", Matchers: []string{`team="db"`}},
			{Name: "default"},
		}, []string{
			`routes[2] ("db"): never reached: routes[1] ("all") before it matches every notification`,
			`routes[3] ("default"): never reached: routes[1] ("all") before it matches every notification`,
		}},
		{"matchers that match everything", []Config{
			{Name: "any", Matchers: []string{`team=~".*"`, `severity=~"critical|warning|info"`}},
			{Name: "default"},
		}, []string{`routes[1] ("default"): never reached: routes[0] ("any") before it matches every notification`}},
		{"a matcher that can fail", []Config{
			{Name: "some", Matchers: []string{`team=~".+"`}},
			{Name: "not-info", Matchers: []string{`severity!="info"`}},
			{Name: "default"},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Warnings(tt.routes)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Warnings =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func FuzzParseMatchers(f *testing.F) {
	for _, s := range []string{`a="b"`, `{a=~"x|y", b!="z"}`, `a!~b`, `"ü"="\u00fc"`, `{`, `a="\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseMatchers(s)
		if (err == nil) == (len(ms) == 0) {
			t.Fatalf("ParseMatchers(%q) = %d matchers, err %v: want exactly one of them", s, len(ms), err)
		}
		for _, m := range ms {
			// A parsed matcher prints in a form that parses to itself.
			again, err := ParseMatchers(m.String())
			if err != nil || len(again) != 1 || again[0].String() != m.String() {
				t.Fatalf("matcher %s does not round-trip: %v %v", m, again, err)
			}
		}
	})
}

// TestContinue: every matching route up to the first without continue
// delivers, as in Alertmanager; a copy that names its route is routed by
// it; continue on the last route and a catch-all with continue are handled.
func TestContinue(t *testing.T) {
	routes := []Config{
		{Name: "page-email", Matchers: []string{`severity="critical"`}, Chain: []string{"email"}, Continue: true},
		{Name: "db-webhook", Matchers: []string{`team="db"`}, Chain: []string{"webhook"}, Continue: true},
		{Name: "critical", Matchers: []string{`severity="critical"`}, Chain: []string{"rc", "slack"}},
		{Name: "db-never", Matchers: []string{`team="db"`}, Chain: []string{"rc"}},
		{Name: "default", Chain: []string{"rc"}},
	}
	sinks := map[string]bool{"email": true, "webhook": true, "rc": true, "slack": true}
	if err := Validate(routes, sinks); err != nil {
		t.Fatal(err)
	}
	tbl, err := New(routes)
	if err != nil {
		t.Fatal(err)
	}
	n := func(sev heraldv1.Severity, team string) *heraldv1.Notification {
		return &heraldv1.Notification{Severity: sev, Labels: map[string]string{"team": team}}
	}
	tests := []struct {
		name string
		n    *heraldv1.Notification
		want string
	}{
		{"critical db: both continue routes, then critical stops", n(heraldv1.Severity_SEVERITY_CRITICAL, "db"), "page-email,db-webhook,critical"},
		{"critical web", n(heraldv1.Severity_SEVERITY_CRITICAL, "web"), "page-email,critical"},
		{"warning db: the webhook, then the first plain match", n(heraldv1.Severity_SEVERITY_WARNING, "db"), "db-webhook,db-never"},
		{"info web: only the catch-all", n(heraldv1.Severity_SEVERITY_INFO, "web"), "default"},
	}
	for _, tt := range tests {
		var got []string
		for _, d := range tbl.Routes(tt.n) {
			got = append(got, d.Route)
		}
		if strings.Join(got, ",") != tt.want {
			t.Errorf("%s: routes %v, want %s", tt.name, got, tt.want)
		}
		if first := tbl.Route(tt.n).Route; first != got[0] {
			t.Errorf("%s: Route = %s, want the first of Routes", tt.name, first)
		}
	}
	// A fan-out copy is routed by the route it names, even one its labels
	// would not reach first; an unknown name falls back to matching.
	c := n(heraldv1.Severity_SEVERITY_CRITICAL, "db")
	c.Route = "critical"
	if d := tbl.Route(c); d.Route != "critical" || d.Chain[0].Sink != "rc" || d.Chain[1].Sink != "slack" {
		t.Errorf("copy for critical routed as %+v", d)
	}
	c.Route = "removed-since"
	if d := tbl.Route(c); d.Route != "page-email" {
		t.Errorf("copy for an unknown route routed to %s, want its labels' first route", d.Route)
	}
	// Its copies' routes known: a renamed route ("pager" became
	// "db-webhook") is found among the routes no copy was made for...
	c.Route, c.FanoutRoutes = "pager", []string{"page-email", "pager", "critical"}
	if d := tbl.Route(c); d.Route != "db-webhook" {
		t.Errorf("copy for a renamed route routed to %s, want db-webhook, the one route no copy covers", d.Route)
	}
	// ...and a removed one, whose notification its other copies deliver,
	// goes to the first route: twice rather than not at all.
	c.Route, c.FanoutRoutes = "removed-since", []string{"page-email", "db-webhook", "removed-since", "critical"}
	if d := tbl.Route(c); d.Route != "page-email" {
		t.Errorf("copy for a removed route routed to %s, want page-email", d.Route)
	}

	bad := append(routes[:4:4], Config{Name: "default", Chain: []string{"rc"}, Continue: true})
	if err := Validate(bad, sinks); err == nil || !strings.Contains(err.Error(), "no route after it to continue to") {
		t.Errorf("continue on the last route: %v", err)
	}
	catchAllContinues := []Config{{Name: "all-email", Chain: []string{"email"}, Continue: true}, {Name: "default", Chain: []string{"rc"}}}
	if w := Warnings(catchAllContinues); len(w) != 0 {
		t.Errorf("a catch-all with continue reaches the routes after it; warnings %v", w)
	}
}
