package compose

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDeployReadme checks that deploy/README.md links every way to run
// herald and that its links to files of this repository resolve. The Helm
// chart's README is written separately; only its link is required here.
func TestDeployReadme(t *testing.T) {
	deploy := filepath.Join(repoRoot(t), "deploy")
	text := readFile(t, filepath.Join(deploy, "README.md"))
	links := map[string]bool{}
	for _, m := range regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`).FindAllStringSubmatch(text, -1) {
		links[m[1]] = true
	}
	for _, want := range []string{"../README.md", "systemd/README.md", "Containerfile", "compose/README.md", "helm/README.md"} {
		if !links[want] {
			t.Errorf("deploy/README.md does not link %s", want)
		}
	}
	for l := range links {
		if strings.Contains(l, "://") || strings.HasPrefix(l, "helm/") {
			continue
		}
		if _, err := os.Stat(filepath.Join(deploy, l)); err != nil {
			t.Errorf("deploy/README.md links %s: %v", l, err)
		}
	}

	compose := readFile(t, "README.md")
	if !strings.Contains(compose, "docker compose -f deploy/compose/compose.yaml up --build") {
		t.Error("compose/README.md does not give the command that starts the stack")
	}
}
