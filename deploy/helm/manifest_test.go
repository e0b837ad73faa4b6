package helm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var manifestFile = filepath.Join("..", "kubernetes", "herald.yaml")

// manifestHeader opens deploy/kubernetes/herald.yaml.
const manifestHeader = `# herald on Kubernetes, plain manifests: GENERATED from the Helm chart
# deploy/helm/herald with its default values (release name "herald"), as
#   helm template herald deploy/helm/herald
# renders it. Do not edit: change the chart and run
#   cd deploy/helm && go test ./... -update
# For other values, render your own:
#   helm template herald deploy/helm/herald -f my-values.yaml > herald.yaml
#
# The defaults: the embedded queue (one replica in a StatefulSet, its
# JetStream store on a 5Gi PersistentVolumeClaim), and a config that only
# logs notifications and accepts every caller. deploy/helm/README.md says
# how to give herald a real config, secrets as files, and an external NATS
# cluster with several replicas.
`

// TestKubernetesManifest keeps deploy/kubernetes/herald.yaml equal to the
// chart rendered with its defaults; -update rewrites it.
func TestKubernetesManifest(t *testing.T) {
	r := mustRender(t, map[string]any{})
	want := manifestHeader + strings.TrimSpace(r.manifest) + "\n"
	if *update {
		if err := os.WriteFile(manifestFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(manifestFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is not the chart rendered with its defaults; run `go test ./... -update` in deploy/helm", manifestFile)
	}
}
