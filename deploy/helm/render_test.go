// Package helm holds the tests of herald's Helm chart (herald/). It is its
// own module so Helm's and Kubernetes' dependencies stay out of herald's
// go.mod. No cluster is needed: the chart is linted and rendered with Helm's
// Go SDK, client-only as `helm template` does, every rendered object is
// decoded strictly into its Kubernetes API type, and the herald config the
// chart renders is checked by herald's own `check-config`.
package helm

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite deploy/kubernetes/herald.yaml and the chart's copy of herald's alert rules")

const (
	chartDir = "herald"
	// releaseName is the release every render uses; deploy/kubernetes/herald.yaml
	// is rendered with it, so its objects are named "herald".
	releaseName = "herald"
	namespace   = "monitoring"
)

// kubeVersion is the Kubernetes version renders and lints assume, as
// `helm template --kube-version` does; the chart requires 1.23 or newer.
var kubeVersion = &common.KubeVersion{Version: "v1.33.0", Major: "1", Minor: "33"}

// A valueSet is one of the value files under testdata/ (or the chart's
// defaults) and what the chart must make of it.
type valueSet struct {
	name string
	// file is relative to this directory; "" is the chart's defaults.
	file string
	// external: a Deployment on an external NATS cluster; otherwise the
	// embedded queue in a StatefulSet.
	external bool
	replicas int32
	// ownConfig: the chart renders herald.yml into an object of its own.
	ownConfig bool
	// secretsMounted: a Secret is mounted as files under /run/secrets/herald.
	secretsMounted bool
	pdb            bool
	monitoring     bool
	// warnings are the check-config warnings the rendered config may give,
	// as substrings.
	warnings []string
}

var valueSets = []valueSet{
	{name: "default", replicas: 1, ownConfig: true,
		warnings: []string{"no sinks or routes: every notification goes to herald's log"}},
	{name: "embedded", file: "testdata/embedded.yaml", replicas: 1, ownConfig: true, secretsMounted: true},
	{name: "external", file: "testdata/external.yaml", external: true, replicas: 3, ownConfig: true, secretsMounted: true, pdb: true},
	{name: "existing-config", file: "testdata/existing-config.yaml", external: true, replicas: 2, secretsMounted: true, pdb: true},
	{name: "existing-configmap", file: "testdata/existing-configmap.yaml", replicas: 1},
	{name: "no-persistence", file: "testdata/no-persistence.yaml", replicas: 1, ownConfig: true,
		warnings: []string{"no sinks or routes: every notification goes to herald's log"}},
	{name: "monitoring", file: "testdata/monitoring.yaml", replicas: 1, ownConfig: true, monitoring: true,
		warnings: []string{"no sinks or routes: every notification goes to herald's log"}},
}

func (vs valueSet) values(t *testing.T) map[string]any {
	t.Helper()
	if vs.file == "" {
		return map[string]any{}
	}
	return readValues(t, vs.file)
}

func readValues(t *testing.T, file string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]any{}
	// Strict: a duplicated key in a value file is a mistake in the test.
	if err := yaml.UnmarshalStrict(b, &vals); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return vals
}

func loadChart(t *testing.T) *chartv2.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	return ch
}

// rendered is what `helm template` makes of one value set.
type rendered struct {
	manifest string
	notes    string
	objects  []object
}

// An object is one rendered document, decoded strictly into its API type.
type object struct {
	kind, name string
	source     string // the template it came from
	value      any    // *appsv1.StatefulSet, *corev1.Service, ...
}

// render renders the chart client-only, as `helm template` does, and
// returns Helm's error (a failed template, a value the schema refuses).
func render(t *testing.T, vals map[string]any) (*rendered, error) {
	t.Helper()
	install := action.NewInstall(action.NewConfiguration())
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = releaseName
	install.Namespace = namespace
	install.Replace = true
	install.KubeVersion = kubeVersion
	rel, err := install.Run(loadChart(t), vals)
	if err != nil {
		return nil, err
	}
	r, ok := rel.(*releasev1.Release)
	if !ok {
		t.Fatalf("install returned a %T, not a *release.Release", rel)
	}
	if len(r.Hooks) > 0 {
		t.Errorf("the chart has %d hooks; it promises none", len(r.Hooks))
	}
	out := &rendered{manifest: r.Manifest, notes: r.Info.Notes}
	for _, doc := range splitManifest(r.Manifest) {
		out.objects = append(out.objects, decode(t, doc))
	}
	return out, nil
}

// mustRender renders a value set that must render.
func mustRender(t *testing.T, vals map[string]any) *rendered {
	t.Helper()
	r, err := render(t, vals)
	if err != nil {
		t.Fatalf("rendering the chart: %v", err)
	}
	return r
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// splitManifest splits Helm's manifest into its documents, dropping
// empty ones.
func splitManifest(m string) []string {
	var docs []string
	for _, d := range docSeparator.Split(m, -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// apiTypes maps apiVersion and kind to the Go type a rendered object is
// decoded into: every kind the chart renders, and no other.
var apiTypes = map[string]func() any{
	"v1/ConfigMap":                            func() any { return new(corev1.ConfigMap) },
	"v1/Secret":                               func() any { return new(corev1.Secret) },
	"v1/Service":                              func() any { return new(corev1.Service) },
	"v1/ServiceAccount":                       func() any { return new(corev1.ServiceAccount) },
	"apps/v1/StatefulSet":                     func() any { return new(appsv1.StatefulSet) },
	"apps/v1/Deployment":                      func() any { return new(appsv1.Deployment) },
	"policy/v1/PodDisruptionBudget":           func() any { return new(policyv1.PodDisruptionBudget) },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return new(monitoringv1.ServiceMonitor) },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return new(monitoringv1.PrometheusRule) },
}

var sourceComment = regexp.MustCompile(`(?m)^# Source: (\S+)`)

// decode decodes one document strictly: a field its API type lacks, or a
// duplicated key, fails the test.
func decode(t *testing.T, doc string) object {
	t.Helper()
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
		t.Fatalf("a rendered document is not YAML: %v\n%s", err, doc)
	}
	o := object{kind: head.Kind, name: head.Metadata.Name}
	if m := sourceComment.FindStringSubmatch(doc); m != nil {
		o.source = m[1]
	}
	newValue, ok := apiTypes[head.APIVersion+"/"+head.Kind]
	if !ok {
		t.Fatalf("%s renders %s %s, a kind the tests do not know", o.source, head.APIVersion, head.Kind)
	}
	o.value = newValue()
	if err := yaml.UnmarshalStrict([]byte(doc), o.value); err != nil {
		t.Fatalf("%s: %s %q does not decode strictly into %T: %v\n%s", o.source, o.kind, o.name, o.value, err, doc)
	}
	return o
}

// all returns the rendered objects of type T.
func all[T any](r *rendered) []*T {
	var out []*T
	for _, o := range r.objects {
		if v, ok := o.value.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}

// one returns the one rendered object of type T, failing unless there is
// exactly one.
func one[T any](t *testing.T, r *rendered) *T {
	t.Helper()
	objs := all[T](r)
	if len(objs) != 1 {
		t.Fatalf("the chart renders %d objects of type %T, want 1", len(objs), *new(T))
	}
	return objs[0]
}

func kinds(r *rendered) []string {
	var ks []string
	for _, o := range r.objects {
		ks = append(ks, o.kind+"/"+o.name)
	}
	slices.Sort(ks)
	return ks
}

// repoRoot is herald's repository root: the module this one sits in.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.HasPrefix(string(b), "module github.com/herald-notify/herald\n") {
		t.Fatalf("%s is not herald's repository root (go.mod: %v)", root, err)
	}
	return root
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func fmtMap(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%s", k, m[k])
	}
	return strings.Join(parts, ",")
}
