package helm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
)

const (
	heraldPort      = 8093
	dataDir         = "/var/lib/herald"
	secretsDir      = "/run/secrets/herald"
	configFile      = "/etc/herald/herald.yml"
	nonRootID       = 65532
	selectorName    = "app.kubernetes.io/name"
	selectorRelease = "app.kubernetes.io/instance"
)

// TestLint runs Helm's linter, as `helm lint` does, on each value set: no
// error and no warning.
func TestLint(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			res := lint.RunAll(chartDir, vs.values(t), namespace, lint.WithKubeVersion(kubeVersion))
			for _, m := range res.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %v", m)
				} else {
					t.Logf("helm lint: %v", m)
				}
			}
		})
	}
}

// TestRender renders each value set and checks the objects every herald
// needs: one workload of the mode's kind, its Service, its config, its
// probes and its security settings.
func TestRender(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			r := mustRender(t, vs.values(t))
			t.Logf("objects: %v", kinds(r))
			for _, o := range r.objects {
				checkMeta(t, o)
			}

			var pod corev1.PodTemplateSpec
			var selector map[string]string
			sets, deps := all[appsv1.StatefulSet](r), all[appsv1.Deployment](r)
			if vs.external {
				if len(sets) != 0 {
					t.Fatalf("external queue: the chart renders a StatefulSet")
				}
				d := one[appsv1.Deployment](t, r)
				pod, selector = d.Spec.Template, d.Spec.Selector.MatchLabels
				if d.Spec.Replicas == nil || *d.Spec.Replicas != vs.replicas {
					t.Errorf("Deployment replicas = %v, want %d", d.Spec.Replicas, vs.replicas)
				}
				// Rolling updates keep every replica serving: partitions are
				// handed over, never left unserved for long.
				if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
					t.Errorf("Deployment strategy %+v: want a rolling update with maxUnavailable 0", d.Spec.Strategy)
				}
				checkNoQueueVolume(t, pod)
			} else {
				if len(deps) != 0 {
					t.Fatalf("embedded queue: the chart renders a Deployment")
				}
				s := one[appsv1.StatefulSet](t, r)
				pod, selector = s.Spec.Template, s.Spec.Selector.MatchLabels
				if s.Spec.Replicas == nil || *s.Spec.Replicas != 1 {
					t.Errorf("StatefulSet replicas = %v, want 1 (one herald per data dir)", s.Spec.Replicas)
				}
				checkQueueVolume(t, s, vs.values(t))
				svc := one[corev1.Service](t, r)
				if s.Spec.ServiceName != svc.Name {
					t.Errorf("StatefulSet serviceName %q, want the Service %q", s.Spec.ServiceName, svc.Name)
				}
			}
			if !subset(selector, pod.Labels) {
				t.Errorf("the workload's selector %s does not select its pods (%s)", fmtMap(selector), fmtMap(pod.Labels))
			}
			for _, k := range []string{selectorName, selectorRelease} {
				if selector[k] == "" {
					t.Errorf("the workload's selector lacks %s", k)
				}
			}
			checkPod(t, pod)
			checkService(t, one[corev1.Service](t, r), pod)
			checkConfigVolume(t, r, pod, vs)
			checkSecretsVolume(t, pod, vs.secretsMounted)
			checkServiceAccount(t, r, pod)

			pdbs := all[policyv1.PodDisruptionBudget](r)
			if !vs.pdb {
				if len(pdbs) != 0 {
					t.Errorf("the chart renders a PodDisruptionBudget for %d replica(s)", vs.replicas)
				}
			} else if len(pdbs) != 1 {
				t.Errorf("the chart renders %d PodDisruptionBudgets, want 1", len(pdbs))
			} else {
				p := pdbs[0]
				if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.IntValue() != 1 || p.Spec.MinAvailable != nil {
					t.Errorf("PodDisruptionBudget %+v: want maxUnavailable 1", p.Spec)
				}
				if p.Spec.Selector == nil || !subset(p.Spec.Selector.MatchLabels, pod.Labels) {
					t.Errorf("the PodDisruptionBudget's selector does not select herald's pods")
				}
			}

			hasMonitoring := false
			for _, o := range r.objects {
				if o.kind == "ServiceMonitor" || o.kind == "PrometheusRule" {
					hasMonitoring = true
				}
			}
			if hasMonitoring != vs.monitoring {
				t.Errorf("ServiceMonitor/PrometheusRule rendered: %v, want %v", hasMonitoring, vs.monitoring)
			}
		})
	}
}

// checkMeta checks what every object carries: the release's labels, a name,
// and no namespace (the release's namespace applies, and the generated
// manifest applies in any namespace).
func checkMeta(t *testing.T, o object) {
	t.Helper()
	var labels map[string]string
	var ns string
	switch v := o.value.(type) {
	case interface{ GetLabels() map[string]string }:
		labels = v.GetLabels()
		ns = v.(interface{ GetNamespace() string }).GetNamespace()
	default:
		t.Fatalf("%s %s has no metadata accessors", o.kind, o.name)
	}
	if o.name == "" {
		t.Errorf("%s from %s has no name", o.kind, o.source)
	}
	if ns != "" {
		t.Errorf("%s %s sets namespace %q", o.kind, o.name, ns)
	}
	for _, k := range []string{selectorName, selectorRelease, "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
		if labels[k] == "" {
			t.Errorf("%s %s lacks the label %s", o.kind, o.name, k)
		}
	}
	if labels[selectorName] != "herald" || labels[selectorRelease] != releaseName {
		t.Errorf("%s %s labels %s", o.kind, o.name, fmtMap(labels))
	}
}

// herald returns the pod's herald container.
func herald(t *testing.T, pod corev1.PodTemplateSpec) corev1.Container {
	t.Helper()
	if len(pod.Spec.Containers) != 1 || pod.Spec.Containers[0].Name != "herald" {
		t.Fatalf("the pod's containers: %+v; want one named herald", pod.Spec.Containers)
	}
	return pod.Spec.Containers[0]
}

func checkPod(t *testing.T, pod corev1.PodTemplateSpec) {
	t.Helper()
	c := herald(t, pod)

	// The image: a version tag or a digest, never latest.
	repo, tag, ok := strings.Cut(c.Image, ":")
	if at := strings.Index(c.Image, "@sha256:"); at >= 0 {
		repo, tag, ok = c.Image[:at], c.Image[at+1:], true
	}
	if !ok || repo == "" || tag == "" || tag == "latest" {
		t.Errorf("image %q: want REPOSITORY:VERSION or REPOSITORY@sha256:...", c.Image)
	}

	wantArgs := []string{"serve", "-config", configFile, "-listen", fmt.Sprintf(":%d", heraldPort), "-data-dir", dataDir}
	if !slices.Equal(c.Args, wantArgs) || len(c.Command) != 0 {
		t.Errorf("command %q args %q, want the image's entrypoint with args %q", c.Command, c.Args, wantArgs)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != heraldPort || c.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("ports %+v, want http %d/TCP", c.Ports, heraldPort)
	}

	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"startup", c.StartupProbe, "/healthz"},
		{"liveness", c.LivenessProbe, "/healthz"},
		{"readiness", c.ReadinessProbe, "/readyz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe: %+v, want GET %s", p.name, p.probe, p.path)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path || g.Port.String() != "http" || (g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP) {
			t.Errorf("%s probe: GET %s on port %s (%s), want GET %s on port http", p.name, g.Path, g.Port.String(), g.Scheme, p.path)
		}
	}
	// The startup probe gives an embedded store that recovers a large
	// stream a minute before liveness counts.
	if sp := c.StartupProbe; sp != nil && sp.PeriodSeconds*sp.FailureThreshold < 60 {
		t.Errorf("startup probe allows %ds, want at least 60s", sp.PeriodSeconds*sp.FailureThreshold)
	}

	ps := pod.Spec.SecurityContext
	if ps == nil {
		t.Fatal("the pod has no securityContext")
	}
	if ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser != nonRootID ||
		ps.RunAsGroup == nil || *ps.RunAsGroup != nonRootID || ps.FSGroup == nil || *ps.FSGroup != nonRootID {
		t.Errorf("pod securityContext %+v: want runAsNonRoot, uid, gid and fsGroup %d", ps, nonRootID)
	}
	if ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod seccompProfile %+v, want RuntimeDefault", ps.SeccompProfile)
	}
	cs := c.SecurityContext
	if cs == nil {
		t.Fatal("the container has no securityContext")
	}
	if cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
		cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem ||
		cs.RunAsNonRoot == nil || !*cs.RunAsNonRoot ||
		cs.Privileged != nil && *cs.Privileged {
		t.Errorf("container securityContext %+v: want no privilege escalation, a read-only root, non-root", cs)
	}
	if cs.Capabilities == nil || !slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(cs.Capabilities.Add) != 0 {
		t.Errorf("capabilities %+v, want drop [ALL] and none added", cs.Capabilities)
	}
	if cs.SeccompProfile == nil || cs.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container seccompProfile %+v, want RuntimeDefault", cs.SeccompProfile)
	}

	if pod.Spec.TerminationGracePeriodSeconds == nil || *pod.Spec.TerminationGracePeriodSeconds <= 25 {
		t.Errorf("terminationGracePeriodSeconds %v, want more than herald's default shutdown_timeout (20s) and trace flush (5s)",
			pod.Spec.TerminationGracePeriodSeconds)
	}
	if c.Resources.Limits.Memory().IsZero() {
		t.Error("no memory limit: herald derives GOMEMLIMIT from it")
	}

	// Every mount has its volume (or, in a StatefulSet, its claim).
	volumes := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		if volumes[v.Name] {
			t.Errorf("two volumes named %s", v.Name)
		}
		volumes[v.Name] = true
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
		if !volumes[m.Name] && m.Name != "data" {
			t.Errorf("mount %s of volume %s: no such volume", m.MountPath, m.Name)
		}
	}
	if mounts["/etc/herald"] != "config" {
		t.Errorf("/etc/herald mounts %q, want the config volume", mounts["/etc/herald"])
	}
}

// checkQueueVolume checks the embedded queue's store: the StatefulSet's
// claim "data", or an emptyDir when persistence is off, at data_dir.
func checkQueueVolume(t *testing.T, s *appsv1.StatefulSet, vals map[string]any) {
	t.Helper()
	c := herald(t, s.Spec.Template)
	var mounted bool
	for _, m := range c.VolumeMounts {
		if m.MountPath == dataDir {
			mounted = m.Name == "data" && !m.ReadOnly
		}
	}
	if !mounted {
		t.Errorf("%s is not mounted writable from the volume data", dataDir)
	}
	persistence, _ := vals["persistence"].(map[string]any)
	if enabled, ok := persistence["enabled"].(bool); ok && !enabled {
		if len(s.Spec.VolumeClaimTemplates) != 0 {
			t.Errorf("persistence off, but the StatefulSet has claim templates")
		}
		var emptyDir bool
		for _, v := range s.Spec.Template.Spec.Volumes {
			emptyDir = emptyDir || v.Name == "data" && v.EmptyDir != nil
		}
		if !emptyDir {
			t.Errorf("persistence off: want the volume data to be an emptyDir")
		}
		return
	}
	if len(s.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("the StatefulSet has %d claim templates, want 1", len(s.Spec.VolumeClaimTemplates))
	}
	for _, v := range s.Spec.Template.Spec.Volumes {
		if v.Name == "data" {
			t.Errorf("the pod has a volume named data besides the claim template")
		}
	}
	pvc := s.Spec.VolumeClaimTemplates[0]
	wantSize, wantClass := "5Gi", ""
	if v, ok := persistence["size"].(string); ok {
		wantSize = v
	}
	if v, ok := persistence["storageClassName"].(string); ok {
		wantClass = v
	}
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if pvc.Name != "data" || size.String() != wantSize ||
		!slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("claim template %s: %s %v, want data: %s ReadWriteOnce", pvc.Name, size.String(), pvc.Spec.AccessModes, wantSize)
	}
	gotClass := ""
	if pvc.Spec.StorageClassName != nil {
		gotClass = *pvc.Spec.StorageClassName
	}
	if gotClass != wantClass {
		t.Errorf("storageClassName %q, want %q", gotClass, wantClass)
	}
}

// checkNoQueueVolume: in the external mode the pods keep no state: no
// claim, and nothing mounted at data_dir.
func checkNoQueueVolume(t *testing.T, pod corev1.PodTemplateSpec) {
	t.Helper()
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil || v.Ephemeral != nil {
			t.Errorf("volume %s claims storage in the external queue mode", v.Name)
		}
	}
	for _, m := range herald(t, pod).VolumeMounts {
		if m.MountPath == dataDir {
			t.Errorf("%s is mounted (volume %s) in the external queue mode", dataDir, m.Name)
		}
	}
}

func checkService(t *testing.T, svc *corev1.Service, pod corev1.PodTemplateSpec) {
	t.Helper()
	if !subset(svc.Spec.Selector, pod.Labels) {
		t.Errorf("the Service selects %s, not herald's pods (%s)", fmtMap(svc.Spec.Selector), fmtMap(pod.Labels))
	}
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("the Service has %d ports, want 1", len(svc.Spec.Ports))
	}
	p := svc.Spec.Ports[0]
	if p.Name != "http" || p.Port != heraldPort || p.TargetPort.String() != "http" ||
		p.AppProtocol == nil || *p.AppProtocol != "kubernetes.io/h2c" {
		t.Errorf("Service port %+v, want http %d -> http, appProtocol kubernetes.io/h2c", p, heraldPort)
	}
}

// checkConfigVolume checks that /etc/herald/herald.yml comes from the
// chart's own ConfigMap or Secret, or from the existing one named.
func checkConfigVolume(t *testing.T, r *rendered, pod corev1.PodTemplateSpec, vs valueSet) {
	t.Helper()
	var vol *corev1.Volume
	for i, v := range pod.Spec.Volumes {
		if v.Name == "config" {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if vol == nil {
		t.Fatal("the pod has no config volume")
	}
	var name string
	var items []corev1.KeyToPath
	switch {
	case vol.ConfigMap != nil:
		name, items = vol.ConfigMap.Name, vol.ConfigMap.Items
	case vol.Secret != nil:
		name, items = vol.Secret.SecretName, vol.Secret.Items
	default:
		t.Fatalf("config volume %+v is neither a ConfigMap nor a Secret", vol.VolumeSource)
	}
	if len(items) != 1 || items[0].Path != "herald.yml" {
		t.Fatalf("config volume items %+v, want one, at herald.yml", items)
	}
	key := items[0].Key

	owned := renderedConfigObjects(r)
	if !vs.ownConfig {
		if len(owned) != 0 {
			t.Errorf("existing config named, yet the chart renders %v", owned)
		}
		existing := vs.values(t)["existingConfig"].(map[string]any)
		wantKey := "herald.yml"
		if k, ok := existing["key"].(string); ok {
			wantKey = k
		}
		if cm, _ := existing["configMapName"].(string); cm != "" && (vol.ConfigMap == nil || name != cm) {
			t.Errorf("config volume %q, want the existing ConfigMap %q", name, cm)
		}
		if s, _ := existing["secretName"].(string); s != "" && (vol.Secret == nil || name != s) {
			t.Errorf("config volume %q, want the existing Secret %q", name, s)
		}
		if key != wantKey {
			t.Errorf("config volume key %q, want %q", key, wantKey)
		}
		if _, ok := pod.Annotations["checksum/config"]; ok {
			t.Error("a checksum/config annotation for a config the chart cannot see")
		}
		return
	}
	yml := configOf(t, r)
	if (vol.ConfigMap != nil) != (owned[0] == "ConfigMap") || name != releaseName+"-config" || key != "herald.yml" {
		t.Errorf("config volume %q key %q, want the chart's %s %s-config, key herald.yml", name, key, owned[0], releaseName)
	}
	sum := sha256.Sum256([]byte(yml))
	if got := pod.Annotations["checksum/config"]; got != hex.EncodeToString(sum[:]) {
		t.Errorf("checksum/config %q, want the sha256 of the rendered herald.yml", got)
	}
}

// renderedConfigObjects lists the kinds of the config objects the chart
// renders ("ConfigMap" or "Secret").
func renderedConfigObjects(r *rendered) []string {
	var out []string
	for _, cm := range all[corev1.ConfigMap](r) {
		if _, ok := cm.Data["herald.yml"]; ok {
			out = append(out, "ConfigMap")
		}
	}
	for _, s := range all[corev1.Secret](r) {
		if _, ok := s.Data["herald.yml"]; ok {
			out = append(out, "Secret")
		}
	}
	return out
}

// configOf returns herald.yml as the chart renders it.
func configOf(t *testing.T, r *rendered) string {
	t.Helper()
	var found []string
	for _, cm := range all[corev1.ConfigMap](r) {
		if v, ok := cm.Data["herald.yml"]; ok {
			found = append(found, v)
		}
	}
	for _, s := range all[corev1.Secret](r) {
		if v, ok := s.Data["herald.yml"]; ok {
			found = append(found, string(v))
		}
	}
	if len(found) != 1 {
		t.Fatalf("the chart renders herald.yml %d times, want once", len(found))
	}
	return found[0]
}

func checkSecretsVolume(t *testing.T, pod corev1.PodTemplateSpec, want bool) {
	t.Helper()
	var vol *corev1.Volume
	for i, v := range pod.Spec.Volumes {
		if v.Name == "secrets" {
			vol = &pod.Spec.Volumes[i]
		}
	}
	var mount *corev1.VolumeMount
	c := herald(t, pod)
	for i, m := range c.VolumeMounts {
		if m.MountPath == secretsDir {
			mount = &c.VolumeMounts[i]
		}
	}
	if !want {
		if vol != nil || mount != nil {
			t.Errorf("a secrets volume or mount without secrets.secretName")
		}
		return
	}
	if vol == nil || vol.Secret == nil || vol.Secret.SecretName != "herald-secrets" || len(vol.Secret.Items) != 0 {
		t.Errorf("secrets volume %+v, want every key of the Secret herald-secrets", vol)
	}
	if mount == nil || mount.Name != "secrets" || !mount.ReadOnly {
		t.Errorf("%s mount %+v, want the secrets volume, read-only", secretsDir, mount)
	}
}

func checkServiceAccount(t *testing.T, r *rendered, pod corev1.PodTemplateSpec) {
	t.Helper()
	sa := one[corev1.ServiceAccount](t, r)
	if pod.Spec.ServiceAccountName != sa.Name {
		t.Errorf("the pod runs as %q, not the chart's ServiceAccount %q", pod.Spec.ServiceAccountName, sa.Name)
	}
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken ||
		pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Error("a Kubernetes API token is mounted; herald never calls the API")
	}
}
