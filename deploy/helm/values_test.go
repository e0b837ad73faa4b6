package helm

import (
	"cmp"
	"maps"
	"strings"
	"testing"
)

// checksum renders vals and returns the pod's checksum/config annotation.
func checksum(t *testing.T, vals map[string]any) string {
	t.Helper()
	return podOf(t, mustRender(t, vals)).Annotations["checksum/config"]
}

// TestConfigChecksum checks that a change of the config, and only of the
// config, changes the pods' checksum/config annotation, so that
// `helm upgrade` with a new config rolls the pods.
func TestConfigChecksum(t *testing.T) {
	base := readValues(t, "testdata/embedded.yaml")
	sum := checksum(t, base)
	if len(sum) != 64 {
		t.Fatalf("checksum/config %q, want a sha256", sum)
	}

	changed := maps.Clone(base)
	config := maps.Clone(base["config"].(map[string]any))
	config["log"] = map[string]any{"level": "debug", "format": "json"}
	changed["config"] = config
	if got := checksum(t, changed); got == sum {
		t.Error("changing config.log.level leaves checksum/config as it was")
	}

	unrelated := maps.Clone(base)
	unrelated["resources"] = map[string]any{"limits": map[string]any{"memory": "512Mi"}}
	unrelated["replicaCount"] = 1
	if got := checksum(t, unrelated); got != sum {
		t.Error("changing resources changes checksum/config")
	}

	asSecret := maps.Clone(base)
	asSecret["configKind"] = "Secret"
	if got := checksum(t, asSecret); got != sum {
		t.Error("the same config in a Secret has another checksum/config")
	}
}

// TestRefusedValues checks that values which would deploy a broken herald
// fail the render with a message naming the value.
func TestRefusedValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]any
		want string
	}{
		{"several replicas on the embedded queue",
			map[string]any{"replicaCount": 3},
			"replicaCount: 3 replicas need an external NATS cluster"},
		{"external queue without queue.url",
			map[string]any{"queue": map[string]any{"external": true}},
			"config.queue.url is not set"},
		{"two existing configs",
			map[string]any{"existingConfig": map[string]any{"configMapName": "a", "secretName": "b"}},
			"set configMapName or secretName, not both"},
		{"image tag latest",
			map[string]any{"image": map[string]any{"tag": "latest"}},
			`image.tag: "latest" is refused`},
		{"an unknown configKind",
			map[string]any{"configKind": "Volume"},
			"configKind"},
		{"a misspelt top-level value",
			map[string]any{"replicas": 3},
			"replicas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, tc.vals)
			if err == nil {
				t.Fatalf("the chart renders %v", tc.vals)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// TestNotes checks that NOTES.txt names the queue mode and warns about a
// config that only logs or lets every caller in.
func TestNotes(t *testing.T) {
	for _, tc := range []struct {
		file      string
		want, not []string
	}{
		{"", []string{"Queue: embedded", "5Gi PersistentVolumeClaim", "no sinks", "no auth.clients"}, []string{"WARNING"}},
		{"testdata/embedded.yaml", []string{"Queue: embedded", "herald 1.2.3"}, []string{"no sinks", "no auth.clients"}},
		{"testdata/external.yaml", []string{"Queue: the external NATS cluster", "the 3 replica(s) of a Deployment"}, []string{"embedded", "no sinks"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			vals := map[string]any{}
			if tc.file != "" {
				vals = readValues(t, tc.file)
			}
			notes := mustRender(t, vals).notes
			for _, w := range tc.want {
				if !strings.Contains(notes, w) {
					t.Errorf("NOTES lack %q:\n%s", w, notes)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(notes, w) {
					t.Errorf("NOTES say %q:\n%s", w, notes)
				}
			}
		})
	}
	vals := map[string]any{"persistence": map[string]any{"enabled": false}}
	if notes := mustRender(t, vals).notes; !strings.Contains(notes, "WARNING: persistence.enabled is false") {
		t.Errorf("NOTES for persistence off lack the warning:\n%s", notes)
	}
}

// TestImage checks the image reference: the chart's appVersion by
// default, else the tag, and the digest when one is given.
func TestImage(t *testing.T) {
	ch := loadChart(t)
	if ch.Metadata.AppVersion == "" || ch.Metadata.AppVersion == "latest" {
		t.Fatalf("Chart.yaml appVersion %q", ch.Metadata.AppVersion)
	}
	for _, tc := range []struct{ file, want string }{
		{"", "herald:" + ch.Metadata.AppVersion},
		{"testdata/embedded.yaml", "registry.example.com/herald:1.2.3"},
		{"testdata/existing-configmap.yaml", "registry.example.com/herald@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
	} {
		vals := map[string]any{}
		if tc.file != "" {
			vals = readValues(t, tc.file)
		}
		if got := herald(t, podOf(t, mustRender(t, vals))).Image; got != tc.want {
			t.Errorf("%s: image %q, want %q", cmp.Or(tc.file, "defaults"), got, tc.want)
		}
	}
}
