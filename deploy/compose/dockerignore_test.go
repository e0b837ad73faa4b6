package compose

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// maxContextBytes bounds the build context .dockerignore leaves: herald's
// sources are a few MiB; the repository with .tools and .cache is hundreds.
const maxContextBytes = 20 << 20

// dockerignore reads the repository's .dockerignore with the parser and
// matcher Docker's builder uses.
func dockerignore(t *testing.T) *patternmatcher.PatternMatcher {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

func excluded(t *testing.T, pm *patternmatcher.PatternMatcher, path string) bool {
	t.Helper()
	ex, err := pm.MatchesOrParentMatches(path)
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

func TestDockerignoreExcludes(t *testing.T) {
	pm := dockerignore(t)
	for _, p := range []string{
		".git/HEAD",
		".tools/bin/jaeger",
		".cache/go-build/00/x",
		".ci/run",
		".env",
		"bin/herald",
		"data/jetstream/x",
		"herald.test",
		"cmd/herald/herald.test",
		"cover.out",
		"internal/queue/queue.out",
		"sinks/rocketchat/testdata/node_modules/x/index.js",
		"internal/shim/testdata/convert/firing.golden",
		"internal/config/config_test.go",
		"deploy/compose/secrets/herald-am-token",
		"deploy/Containerfile",
		"docs/operations.md",
		"test/alertmanager/alertmanager_test.go",
		"scripts/install-jaeger.sh",
		"tools/go.mod",
		"proto/herald/v1/notification.proto",
		"README.md",
	} {
		if !excluded(t, pm, p) {
			t.Errorf(".dockerignore keeps %s in the build context", p)
		}
	}
}

// TestDockerignoreKeepsBuildInputs checks that every file `go build
// ./cmd/herald` reads from this module (go.mod, go.sum, the Go and embedded
// files of each package it imports) stays in the build context.
func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	pm := dockerignore(t)
	root := repoRoot(t)
	keep := []string{"go.mod", "go.sum"}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-json=ImportPath,Dir,Module,GoFiles,CgoFiles,EmbedFiles,IgnoredGoFiles", "./cmd/herald")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	pkgs := 0
	for {
		var p struct {
			ImportPath string
			Dir        string
			Module     *struct{ Path string }
			GoFiles    []string
			CgoFiles   []string
			EmbedFiles []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || p.Module.Path != "github.com/herald-notify/herald" {
			continue
		}
		pkgs++
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(append(p.GoFiles, p.CgoFiles...), p.EmbedFiles...) {
			keep = append(keep, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	if pkgs < 10 {
		t.Fatalf("go list found %d herald packages behind ./cmd/herald; expected dozens", pkgs)
	}
	for _, p := range keep {
		if excluded(t, pm, p) {
			t.Errorf(".dockerignore leaves out %s, which go build ./cmd/herald reads", p)
		}
	}
	t.Logf("%d files of %d herald packages kept", len(keep), pkgs)
}

// TestBuildContextSize walks the repository as the builder would and
// bounds what .dockerignore leaves in the context.
func TestBuildContextSize(t *testing.T) {
	pm := dockerignore(t)
	root := repoRoot(t)
	var kept, files int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		if excluded(t, pm, filepath.ToSlash(rel)) {
			return nil // a later ! pattern may keep something below
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			kept += fi.Size()
			files++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("build context: %d files, %.1f MiB", files, float64(kept)/(1<<20))
	if kept > maxContextBytes {
		t.Errorf("build context is %d bytes, over %d: .dockerignore lets something big in", kept, maxContextBytes)
	}
	if files == 0 {
		t.Error("build context is empty")
	}
}

// containerfile returns the instructions of deploy/Containerfile, one per
// element, with continuation lines joined.
func containerfile(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "deploy", "Containerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	var cur strings.Builder
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if l, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(l + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestContainerfile(t *testing.T) {
	pm := dockerignore(t)
	root := repoRoot(t)
	instrs := containerfile(t)

	t.Run("COPY sources are in the build context", func(t *testing.T) {
		n := 0
		for _, in := range instrs {
			f := strings.Fields(in)
			if !strings.EqualFold(f[0], "COPY") || strings.Contains(in, "--from=") {
				continue
			}
			var args []string
			for _, a := range f[1:] {
				if !strings.HasPrefix(a, "--") {
					args = append(args, a)
				}
			}
			if len(args) < 2 {
				t.Errorf("%q: want sources and a destination", in)
				continue
			}
			for _, src := range args[:len(args)-1] {
				n++
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("%q: source %s: %v", in, src, err)
				}
				if src != "." && excluded(t, pm, src) {
					t.Errorf("%q: source %s is left out by .dockerignore", in, src)
				}
			}
		}
		if n < 3 {
			t.Errorf("found %d COPY sources from the context; want go.mod, go.sum and the tree", n)
		}
	})

	t.Run("data volume is the nonroot user's", func(t *testing.T) {
		chowned, volume := -1, -1
		for i, in := range instrs {
			f := strings.Fields(in)
			if f[0] != "COPY" || !slices.Contains(f, "--chown=65532:65532") || len(f) < 3 {
				continue
			}
			// Either the directory itself, or a directory holding herald/
			// made in the build stage, copied into /var/lib/.
			src, dst := f[len(f)-2], f[len(f)-1]
			made := regexp.MustCompile(`mkdir -p \S*` + regexp.QuoteMeta(strings.TrimSuffix(src, "/")) + `/herald\b`)
			if dst == "/var/lib/herald" || dst == "/var/lib/" && made.MatchString(strings.Join(instrs[:i], "\n")) {
				chowned = i
			}
		}
		for i, in := range instrs {
			if in == "VOLUME /var/lib/herald" {
				volume = i
			}
		}
		if chowned < 0 || volume < 0 || chowned > volume {
			t.Errorf("want a COPY --chown=65532:65532 that makes /var/lib/herald before VOLUME /var/lib/herald (found at %d, %d)", chowned, volume)
		}
		if !strings.Contains(strings.Join(instrs, "\n"), "static-debian12:nonroot") {
			t.Error("the final stage is not distroless nonroot (uid 65532)")
		}
	})

	t.Run("version stamped and labelled", func(t *testing.T) {
		all := strings.Join(instrs, "\n")
		m := regexp.MustCompile(`-X ([\w./-]+)\.Version=\$\{VERSION\}`).FindStringSubmatch(all)
		if m == nil {
			t.Fatal("go build does not stamp -X .../internal/version.Version=${VERSION}")
		}
		if m[1] != "github.com/herald-notify/herald/internal/version" {
			t.Errorf("-X stamps %s.Version, want github.com/herald-notify/herald/internal/version", m[1])
		}
		src := readFile(t, filepath.Join(root, "internal", "version", "version.go"))
		if !regexp.MustCompile(`(?m)^var Version = `).MatchString(src) {
			t.Error("internal/version has no `var Version = ...` for -X to set")
		}
		for _, l := range []string{"title", "source", "version", "revision"} {
			if !strings.Contains(all, "org.opencontainers.image."+l+"=") {
				t.Errorf("no org.opencontainers.image.%s label", l)
			}
		}
		if strings.Contains(all, ":latest") {
			t.Error("Containerfile uses a :latest image")
		}
	})
}
