package helm

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// rulesFile is herald's alerting rules; the chart keeps a copy in
// chartRulesFile, since a chart cannot read files outside its directory.
var (
	rulesFile      = filepath.Join("..", "prometheus", "herald-rules.yml")
	chartRulesFile = filepath.Join(chartDir, "files", "herald-rules.yml")
)

// TestRulesCopy fails when the chart's copy of herald's alerting rules
// differs from deploy/prometheus/herald-rules.yml; -update copies it.
func TestRulesCopy(t *testing.T) {
	want, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(chartRulesFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(chartRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s; run `go test ./... -update` in deploy/helm to copy it", chartRulesFile, rulesFile)
	}
}

// TestPrometheusRule checks that the PrometheusRule carries exactly the
// rule groups of deploy/prometheus/herald-rules.yml, with the labels
// Prometheus selects it by.
func TestPrometheusRule(t *testing.T) {
	r := mustRender(t, readValues(t, "testdata/monitoring.yaml"))
	pr := one[monitoringv1.PrometheusRule](t, r)
	if pr.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("PrometheusRule labels %s lack prometheusRule.labels", fmtMap(pr.Labels))
	}

	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var want monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(b, &want); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	if len(want.Groups) == 0 || len(want.Groups[0].Rules) == 0 {
		t.Fatalf("%s has no rules", rulesFile)
	}
	if !reflect.DeepEqual(pr.Spec, want) {
		t.Errorf("the PrometheusRule's spec differs from %s:\nrendered: %v\nfile:     %v", rulesFile, alerts(pr.Spec), alerts(want))
		for i := range min(len(pr.Spec.Groups), len(want.Groups)) {
			g, w := pr.Spec.Groups[i], want.Groups[i]
			for j := range min(len(g.Rules), len(w.Rules)) {
				if !reflect.DeepEqual(g.Rules[j], w.Rules[j]) {
					got, _ := yaml.Marshal(g.Rules[j])
					t.Errorf("first rule that differs, as rendered:\n%s", got)
					return
				}
			}
		}
	}
}

// TestServiceMonitor checks that the ServiceMonitor scrapes herald's
// /metrics through its Service, under a job name HeraldDown matches.
func TestServiceMonitor(t *testing.T) {
	r := mustRender(t, readValues(t, "testdata/monitoring.yaml"))
	sm := one[monitoringv1.ServiceMonitor](t, r)
	svc := one[corev1.Service](t, r)
	if sm.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor labels %s lack serviceMonitor.labels", fmtMap(sm.Labels))
	}
	if !subset(sm.Spec.Selector.MatchLabels, svc.Labels) || len(sm.Spec.Selector.MatchExpressions) != 0 {
		t.Errorf("the ServiceMonitor selects %s, not the Service (%s)", fmtMap(sm.Spec.Selector.MatchLabels), fmtMap(svc.Labels))
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("the ServiceMonitor has %d endpoints, want 1", len(sm.Spec.Endpoints))
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Port != svc.Spec.Ports[0].Name || ep.Path != "/metrics" || ep.Interval != "15s" {
		t.Errorf("ServiceMonitor endpoint %+v, want port %s, path /metrics, interval 15s", ep, svc.Spec.Ports[0].Name)
	}

	// prometheus-operator names the job after the Service; HeraldDown
	// must match it.
	var spec monitoringv1.PrometheusRuleSpec
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	job := regexp.MustCompile(`up\{job=~"([^"]+)"\}`)
	var matcher string
	for _, g := range spec.Groups {
		for _, rule := range g.Rules {
			if rule.Alert == "HeraldDown" {
				if m := job.FindStringSubmatch(rule.Expr.String()); m != nil {
					matcher = m[1]
				}
			}
		}
	}
	if matcher == "" {
		t.Fatalf("HeraldDown in %s has no up{job=~\"...\"} matcher", rulesFile)
	}
	if !regexp.MustCompile("^(?:" + matcher + ")$").MatchString(svc.Name) {
		t.Errorf("the Service %q (the ServiceMonitor's job) does not match HeraldDown's job=~%q", svc.Name, matcher)
	}
}

// alerts lists a spec's groups and their alerts, for messages.
func alerts(spec monitoringv1.PrometheusRuleSpec) []string {
	var out []string
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			out = append(out, g.Name+"/"+r.Alert+r.Record)
		}
	}
	return out
}
