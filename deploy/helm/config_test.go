package helm

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestRenderedConfigPassesCheckConfig runs `herald check-config` on the
// herald.yml each value set renders, as the pod sees it: the files under
// /run/secrets/herald exist (with stand-in content, in a temporary
// directory the paths are rewritten to) and the container's literal
// environment variables are set. It also checks that the pod's grace
// period outlasts the shutdown_timeout herald reads from that config.
func TestRenderedConfigPassesCheckConfig(t *testing.T) {
	bin := heraldBinary(t)
	for _, vs := range valueSets {
		if !vs.ownConfig {
			continue
		}
		t.Run(vs.name, func(t *testing.T) {
			vals := vs.values(t)
			r := mustRender(t, vals)
			yml := configOf(t, r)

			// The rendered file holds the config of the values, and only it.
			var got, want map[string]any
			if err := yaml.UnmarshalStrict([]byte(yml), &got); err != nil {
				t.Fatalf("rendered herald.yml: %v\n%s", err, yml)
			}
			withDefaults := readValues(t, filepath.Join(chartDir, "values.yaml"))
			want, _ = withDefaults["config"].(map[string]any)
			if c, ok := vals["config"].(map[string]any); ok {
				want = c
			}
			if !equalJSON(t, got, want) {
				t.Errorf("rendered herald.yml differs from the values' config:\n%s", yml)
			}

			pod := podOf(t, r)
			dir := t.TempDir()
			secrets := filepath.Join(dir, "secrets")
			files := secretFiles(t, got)
			if vs.secretsMounted != (len(files) > 0) {
				t.Errorf("the config reads %d files under %s; secrets mounted: %v", len(files), secretsDir, vs.secretsMounted)
			}
			for _, f := range files {
				p := filepath.Join(secrets, strings.TrimPrefix(f, secretsDir+"/"))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte("s3cr3t-"+filepath.Base(f)+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			conf := filepath.Join(dir, "herald.yml")
			if err := os.WriteFile(conf, []byte(strings.ReplaceAll(yml, secretsDir+"/", secrets+"/")), 0o600); err != nil {
				t.Fatal(err)
			}

			stdout, stderr := checkConfig(t, bin, conf, containerEnv(t, pod))
			for line := range strings.Lines(stderr) {
				if !strings.Contains(line, "warning") {
					continue
				}
				allowed := false
				for _, w := range vs.warnings {
					allowed = allowed || strings.Contains(line, w)
				}
				if !allowed {
					t.Errorf("herald check-config warns: %s", line)
				}
			}
			for _, w := range vs.warnings {
				if !strings.Contains(stderr, w) {
					t.Errorf("herald check-config does not warn %q; the test expects it", w)
				}
			}

			// check-config prints the config with its defaults applied.
			var loaded struct {
				Server struct {
					ShutdownTimeout string `json:"shutdown_timeout"`
				} `json:"server"`
			}
			if err := yaml.Unmarshal([]byte(stdout), &loaded); err != nil {
				t.Fatalf("herald check-config's output: %v\n%s", err, stdout)
			}
			shutdown, err := time.ParseDuration(loaded.Server.ShutdownTimeout)
			if err != nil {
				t.Fatalf("server.shutdown_timeout %q: %v", loaded.Server.ShutdownTimeout, err)
			}
			// herald drains requests for shutdown_timeout, then flushes its
			// traces for at most 5s.
			grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
			if grace <= shutdown+5*time.Second {
				t.Errorf("terminationGracePeriodSeconds %v, want more than shutdown_timeout %v + 5s", grace, shutdown)
			}
		})
	}
}

// secretFiles lists the values of the config's *_file keys, each of which
// must be a file under /run/secrets/herald.
func secretFiles(t *testing.T, config any) []string {
	t.Helper()
	var files []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if s, ok := e.(string); ok && strings.HasSuffix(k, "_file") {
					if !strings.HasPrefix(s, secretsDir+"/") {
						t.Errorf("%s.%s: %q is not under %s", path, k, s, secretsDir)
					}
					files = append(files, s)
					continue
				}
				walk(path+"."+k, e)
			}
		case []any:
			for _, e := range v {
				walk(path+"[]", e)
			}
		}
	}
	walk("config", config)
	return files
}

// containerEnv is the herald container's environment as far as the chart
// sets it with literal values (valueFrom and envFrom come from the cluster).
func containerEnv(t *testing.T, pod corev1.PodTemplateSpec) []string {
	t.Helper()
	env := []string{} // not nil: a nil Env would inherit the test's
	for _, e := range herald(t, pod).Env {
		if e.ValueFrom == nil {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	return env
}

func podOf(t *testing.T, r *rendered) corev1.PodTemplateSpec {
	t.Helper()
	if s := all[appsv1.StatefulSet](r); len(s) == 1 {
		return s[0].Spec.Template
	}
	return one[appsv1.Deployment](t, r).Spec.Template
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := yaml.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := yaml.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

// heraldBinary builds herald from the repository once per test run.
func heraldBinary(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "herald-helm-test-")
		if buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "herald")
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", builtBin, "./cmd/herald")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = &buildError{err: err, out: string(out)}
		}
	})
	if buildErr != nil {
		t.Fatalf("building herald: %v", buildErr)
	}
	return builtBin
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }
func (e *buildError) Unwrap() error { return e.err }

// checkConfig runs `herald check-config FILE` with only env set and fails
// the test unless it succeeds; it returns the command's output.
func checkConfig(t *testing.T, bin, file string, env []string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "check-config", file)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("herald check-config: %v\n%s%s", err, errOut.String(), out.String())
	}
	return out.String(), errOut.String()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}
