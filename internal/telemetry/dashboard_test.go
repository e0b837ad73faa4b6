package telemetry

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/herald-notify/herald/internal/testutil"
)

type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		Expr       string      `json:"expr"`
		RefID      string      `json:"refId"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	return d
}

// TestDashboard checks that the Grafana dashboard is well-formed, uses
// its data source variable everywhere, shows the metrics SREs need, and
// only queries metrics herald exports.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 36 {
		t.Errorf("title %q uid %q schemaVersion %d: want both set and schema 36 or later", d.Title, d.UID, d.SchemaVersion)
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDS = true
		}
	}
	if !hasDS {
		t.Error("no Prometheus data source variable named datasource")
	}

	exported := exportedMetrics(t)
	shown := map[string]bool{}
	ids := map[int]string{}
	var boxes []panel
	for _, p := range d.Panels {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for _, b := range boxes {
			if overlap(b, p) {
				t.Errorf("panels %q and %q overlap", b.Title, p.Title)
			}
		}
		boxes = append(boxes, p)
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the ${datasource} variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if refs[q.RefID] {
				t.Errorf("panel %q: refId %s twice", p.Title, q.RefID)
			}
			refs[q.RefID] = true
			if q.Datasource == nil || q.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q query %s does not use the ${datasource} variable", p.Title, q.RefID)
			}
			if !strings.Contains(q.Expr, `job=~"$job"`) {
				t.Errorf("panel %q query %s ignores the job variable: %s", p.Title, q.RefID, q.Expr)
			}
			for _, m := range metricNames(q.Expr) {
				shown[m] = true
				if !exported[m] {
					t.Errorf("panel %q queries %s, which herald does not export", p.Title, m)
				}
			}
		}
	}
	// What issue 7 asks the dashboard to show.
	for _, m := range []string{
		"herald_notifications_received_total", "herald_publish_total", "herald_deliveries_total",
		"herald_delivery_attempts_total", "herald_delivery_latency_seconds", "herald_queue_depth",
		"herald_queue_oldest_pending_age_seconds", "herald_fallbacks_total", "herald_breaker_state",
		"herald_dead_letters_total", "herald_throttle_wait_seconds", "herald_http_requests_total",
		"herald_http_request_duration_seconds",
	} {
		if !shown[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

func overlap(a, b panel) bool {
	ga, gb := a.GridPos, b.GridPos
	return ga.X < gb.X+gb.W && gb.X < ga.X+ga.W && ga.Y < gb.Y+gb.H && gb.Y < ga.Y+ga.H
}

// TestDashboardQueriesParse has promtool parse every dashboard query, by
// checking them as recording rules with Grafana's variables filled in.
func TestDashboardQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		testutil.Missing(t, "promtool not on PATH, needed to parse the dashboard's queries", "install Debian's prometheus package: make tools")
	}
	d := loadDashboard(t)
	fill := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$job", ".*", "$instance", ".*")
	type rec struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rec
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			rules = append(rules, rec{Record: fmt.Sprintf("dashboard:panel%d:%s", p.ID, strings.ToLower(q.RefID)), Expr: fill.Replace(q.Expr)})
		}
	}
	out, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the dashboard's queries: %v\n%s", err, res)
	}
}
