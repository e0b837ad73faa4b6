package telemetry

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/herald-notify/herald/internal/testutil"
)

// The deploy files checked here live outside any Go package; the tests sit
// with the telemetry they describe.
const (
	rulesDir      = "../../deploy/prometheus"
	rulesFile     = rulesDir + "/herald-rules.yml"
	rulesTestFile = "herald-rules.test.yml"
	runbookFile   = "../../docs/runbook.md"
	dashboardFile = "../../deploy/grafana/herald.json"
)

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s holds no rules", rulesFile)
	}
	return out
}

// TestRulesWithPromtool checks the rules' syntax and runs their unit tests
// with Prometheus's own tool. CI installs it (scripts/install-tools.sh,
// Debian package prometheus); without it the test skips, or fails in CI.
func TestRulesWithPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		testutil.Missing(t, "promtool not on PATH, needed to check deploy/prometheus", "install Debian's prometheus package: make tools")
	}
	for _, args := range [][]string{
		{"check", "rules", filepath.Base(rulesFile)},
		{"test", "rules", rulesTestFile},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = rulesDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestRulesAreComplete checks what promtool does not: every alert says how
// bad it is, what it means, and where its runbook section is, and it only
// uses metrics herald exports.
func TestRulesAreComplete(t *testing.T) {
	runbook, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	anchors := markdownAnchors(string(runbook))
	metrics := exportedMetrics(t)
	seen := map[string]bool{}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			t.Errorf("recording rule or unnamed alert with expr %q: herald's rules are all alerts", r.Expr)
			continue
		}
		if seen[r.Alert] {
			t.Errorf("alert %s defined twice", r.Alert)
		}
		seen[r.Alert] = true
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		anchor := strings.ToLower(r.Alert)
		if !strings.HasSuffix(r.Annotations["runbook_url"], "docs/runbook.md#"+anchor) {
			t.Errorf("%s: runbook_url %q, want it to end in docs/runbook.md#%s", r.Alert, r.Annotations["runbook_url"], anchor)
		}
		if !anchors[anchor] {
			t.Errorf("%s: %s has no section %q", r.Alert, runbookFile, r.Alert)
		}
		for _, m := range metricNames(r.Expr) {
			if !metrics[m] {
				t.Errorf("%s: expr uses %s, which herald does not export", r.Alert, m)
			}
		}
	}
}

var (
	// metricName finds herald's series names in PromQL or Go source.
	metricName = regexp.MustCompile(`\bherald_[a-z0-9_]+`)
	// goMetricName finds the names Go code passes to client_golang.
	goMetricName = regexp.MustCompile(`"(herald_[a-z0-9_]+)"`)
)

// metricNames returns the herald series an expression selects, with
// histogram suffixes removed.
func metricNames(expr string) []string {
	var out []string
	for _, m := range metricName.FindAllString(expr, -1) {
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if base, ok := strings.CutSuffix(m, suffix); ok && strings.HasSuffix(base, "_seconds") {
				m = base
			}
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// exportedMetrics collects every herald_* metric name in the non-test Go
// source, so that a renamed metric breaks the rules and the dashboard here
// rather than silently in production.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	err := filepath.WalkDir("../..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "gen" || d.Name() == "testdata") && path != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range goMetricName.FindAllStringSubmatch(string(src), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("found no herald_* metric in the Go source")
	}
	return names
}

// markdownAnchors returns the GitHub anchors of the headings in md.
func markdownAnchors(md string) map[string]bool {
	anchors := map[string]bool{}
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range h {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}
