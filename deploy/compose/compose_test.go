// Package compose holds the tests of herald's demo compose stack
// (compose.yaml) and of the container build (deploy/Containerfile and the
// repository's .dockerignore). It is its own module so compose-go stays out
// of herald's go.mod. No Docker daemon is needed: the compose file is loaded
// with compose-go, the library Docker Compose uses, and the configs it
// mounts are checked with herald's, Prometheus' and Alertmanager's own
// checkers.
package compose

import (
	"bytes"
	"context"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

// requireBinariesEnv makes a missing external checker (promtool, amtool) a
// failure instead of a skip; .ci/run sets it.
const requireBinariesEnv = "HERALD_TEST_REQUIRE_BINARIES"

// documentedEnv is every variable compose.yaml reads, with a value a user
// might set; compose.yaml's header and README.md document each one.
var documentedEnv = map[string]string{
	"HERALD_VERSION":    "v1.2.3",
	"RC_USER_ID":        "aB3xYzBotUserId",
	"RC_ADMIN_PASSWORD": "another-fake-password",
}

// The services the stack promises.
var wantServices = []string{
	"herald", "prometheus", "alertmanager-1", "alertmanager-2", "jaeger",
	"grafana", "rocketchat", "mongodb",
}

// load loads compose.yaml with compose-go, validation and interpolation
// on, seeing only env (not the test's own environment).
func load(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		// A copy: the loader adds to the mapping it is given.
		Environment: types.Mapping(maps.Clone(env)),
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("herald", true)
	})
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("compose.yaml has no service %q", name)
	}
	return s
}

func envValue(t *testing.T, s types.ServiceConfig, key string) string {
	t.Helper()
	v, ok := s.Environment[key]
	if !ok || v == nil {
		t.Fatalf("service %s: environment %s is not set", s.Name, key)
	}
	return *v
}

func TestComposeLoads(t *testing.T) {
	t.Run("without environment", func(t *testing.T) {
		p := load(t, nil)
		for _, name := range wantServices {
			service(t, p, name)
		}
		h := service(t, p, "herald")
		if h.Image != "herald:dev" {
			t.Errorf("herald image = %q, want herald:dev when HERALD_VERSION is unset", h.Image)
		}
		if v := envValue(t, h, "RC_USER_ID"); v == "" {
			t.Error("herald's RC_USER_ID is empty without the environment; herald.yml needs a value to start")
		}
		for name, s := range p.Services {
			for k, v := range s.Environment {
				if v == nil || *v == "" {
					t.Errorf("service %s: environment %s is empty without the environment", name, k)
				}
			}
		}
	})

	t.Run("with the documented environment", func(t *testing.T) {
		p := load(t, documentedEnv)
		h := service(t, p, "herald")
		if want := "herald:" + documentedEnv["HERALD_VERSION"]; h.Image != want {
			t.Errorf("herald image = %q, want %q", h.Image, want)
		}
		if h.Build == nil {
			t.Fatal("herald has no build section")
		}
		if v := h.Build.Args["VERSION"]; v == nil || *v != documentedEnv["HERALD_VERSION"] {
			t.Errorf("herald build arg VERSION = %v, want %q", v, documentedEnv["HERALD_VERSION"])
		}
		if v := envValue(t, h, "RC_USER_ID"); v != documentedEnv["RC_USER_ID"] {
			t.Errorf("herald RC_USER_ID = %q, want %q", v, documentedEnv["RC_USER_ID"])
		}
		rc := service(t, p, "rocketchat")
		if v := envValue(t, rc, "ADMIN_PASS"); v != documentedEnv["RC_ADMIN_PASSWORD"] {
			t.Errorf("rocketchat ADMIN_PASS = %q, want %q", v, documentedEnv["RC_ADMIN_PASSWORD"])
		}
	})

	t.Run("every variable is documented", func(t *testing.T) {
		raw := readFile(t, "compose.yaml")
		readme := readFile(t, "README.md")
		used := map[string]bool{}
		for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(raw, -1) {
			used[m[1]] = true
		}
		if len(used) == 0 {
			t.Fatal("found no ${VAR} in compose.yaml; the pattern is broken")
		}
		for v := range used {
			if _, ok := documentedEnv[v]; !ok {
				t.Errorf("compose.yaml reads ${%s}, which the test (documentedEnv) does not know", v)
			}
			if !strings.Contains(readme, v) {
				t.Errorf("compose.yaml reads ${%s}, which README.md does not mention", v)
			}
			if !regexp.MustCompile(`\$\{` + v + `:-[^}]+\}`).MatchString(raw) {
				t.Errorf("${%s} has no default (${%s:-...}); the stack must start without it", v, v)
			}
		}
		for v := range documentedEnv {
			if !used[v] {
				t.Errorf("documentedEnv lists %s, which compose.yaml does not read", v)
			}
		}
	})

	t.Run("images are pinned", func(t *testing.T) {
		p := load(t, nil)
		for name, s := range p.Services {
			if s.Image == "" {
				t.Errorf("service %s has no image", name)
				continue
			}
			ref := s.Image
			if i := strings.LastIndex(ref, "/"); i >= 0 {
				ref = ref[i+1:]
			}
			_, tag, ok := strings.Cut(ref, ":")
			if !ok || tag == "" || tag == "latest" {
				t.Errorf("service %s: image %q is not pinned to a version", name, s.Image)
			}
		}
	})
}

// TestReferencedFilesExist checks every file the stack reads from the
// host: bind-mount sources, secret and config files, the build context and
// its Containerfile.
func TestReferencedFilesExist(t *testing.T) {
	p := load(t, nil)
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s: bind mount source %s: %v", name, v.Source, err)
			}
		}
		if s.Build != nil {
			fi, err := os.Stat(s.Build.Context)
			if err != nil || !fi.IsDir() {
				t.Errorf("service %s: build context %s is not a directory (%v)", name, s.Build.Context, err)
			}
			df := filepath.Join(s.Build.Context, s.Build.Dockerfile)
			if _, err := os.Stat(df); err != nil {
				t.Errorf("service %s: build dockerfile: %v", name, err)
			}
			if got, want := filepath.Clean(s.Build.Context), repoRoot(t); got != want {
				t.Errorf("service %s: build context %s, want the repository root %s", name, got, want)
			}
		}
	}
	for name, sec := range p.Secrets {
		nonEmptyFile(t, "secret "+name, sec.File)
	}
	for name, c := range p.Configs {
		nonEmptyFile(t, "config "+name, c.File)
	}
	if len(p.Secrets) == 0 {
		t.Error("the stack declares no secrets; herald's and Alertmanager's token should be one")
	}
}

func nonEmptyFile(t *testing.T, what, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		t.Errorf("%s: %v", what, err)
	case !fi.Mode().IsRegular():
		t.Errorf("%s: %s is not a regular file", what, path)
	case fi.Size() == 0:
		t.Errorf("%s: %s is empty", what, path)
	}
}

func TestVolumesDeclaredAndUsed(t *testing.T) {
	p := load(t, nil)
	used := map[string]bool{}
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeVolume {
				continue
			}
			if v.Source == "" {
				t.Errorf("service %s: anonymous volume at %s; name it so it is kept and listed", name, v.Target)
				continue
			}
			used[v.Source] = true
			if _, ok := p.Volumes[v.Source]; !ok {
				t.Errorf("service %s uses volume %q, which is not declared", name, v.Source)
			}
		}
	}
	for name := range p.Volumes {
		if !used[name] {
			t.Errorf("volume %q is declared but no service uses it", name)
		}
	}
	h := service(t, p, "herald")
	if mountOf(h, "/var/lib/herald") == nil || mountOf(h, "/var/lib/herald").Type != types.VolumeTypeVolume {
		t.Error("herald's data dir /var/lib/herald is not on a named volume")
	}
}

func TestDependsOn(t *testing.T) {
	p := load(t, nil)
	for name, s := range p.Services {
		for dep := range s.DependsOn {
			if dep == name {
				t.Errorf("service %s depends on itself", name)
			}
			if _, ok := p.Services[dep]; !ok {
				t.Errorf("service %s depends on %q, which is not a service", name, dep)
			}
		}
	}
	if _, ok := service(t, p, "rocketchat").DependsOn["mongodb-replicaset-init"]; !ok {
		t.Error("rocketchat does not wait for the MongoDB replica set to be initiated")
	}
}

// listens returns the container ports a service is reachable on from the
// other services: its published targets and its expose list.
func listens(t *testing.T, s types.ServiceConfig) []int {
	t.Helper()
	var out []int
	for _, p := range s.Ports {
		out = append(out, int(p.Target))
	}
	for _, e := range s.Expose {
		n, err := strconv.Atoi(e)
		if err != nil {
			t.Fatalf("service %s: expose %q is not a port", s.Name, e)
		}
		out = append(out, n)
	}
	return out
}

// flagValue returns the value of --name=value in a service's command.
func flagValue(t *testing.T, s types.ServiceConfig, name string) string {
	t.Helper()
	for _, a := range s.Command {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	t.Fatalf("service %s: command has no --%s", s.Name, name)
	return ""
}

func splitPort(t *testing.T, hostport string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%q: bad port", hostport)
	}
	return h, n
}

func urlHostPort(t *testing.T, raw string) (string, int) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	return splitPort(t, u.Host)
}

// wantReachable fails unless host is a service of the stack that
// listens on port.
func wantReachable(t *testing.T, p *types.Project, what, host string, port int) {
	t.Helper()
	s, ok := p.Services[host]
	if !ok {
		t.Errorf("%s: host %q is not a service of the stack", what, host)
		return
	}
	if !slices.Contains(listens(t, s), port) {
		t.Errorf("%s: service %s does not listen on %d (it has %v)", what, host, port, listens(t, s))
	}
}

func TestPorts(t *testing.T) {
	p := load(t, nil)

	t.Run("no host port twice", func(t *testing.T) {
		seen := map[string]string{}
		for name, s := range p.Services {
			for _, pc := range s.Ports {
				if pc.Published == "" {
					t.Errorf("service %s: port %d is published on a random host port", name, pc.Target)
					continue
				}
				if pc.HostIP != "127.0.0.1" {
					t.Errorf("service %s: port %s is published on %q; the demo's fake secrets stay on 127.0.0.1", name, pc.Published, pc.HostIP)
				}
				key := pc.Published + "/" + pc.Protocol
				if other, ok := seen[key]; ok {
					t.Errorf("host port %s is published by %s and %s", key, other, name)
				}
				seen[key] = name
			}
		}
	})

	herald := service(t, p, "herald")
	cfg := heraldConfig(t)
	_, heraldPort := splitPort(t, cfg.Listen)

	t.Run("herald", func(t *testing.T) {
		if !slices.Contains(listens(t, herald), heraldPort) {
			t.Errorf("herald.yml listens on %d, but the herald service publishes %v", heraldPort, listens(t, herald))
		}
		host, port := urlHostPort(t, envValue(t, herald, "OTEL_EXPORTER_OTLP_ENDPOINT"))
		wantReachable(t, p, "herald's OTEL_EXPORTER_OTLP_ENDPOINT", host, port)
		if host != "jaeger" {
			t.Errorf("herald sends spans to %q, want the jaeger service", host)
		}
		rc := cfg.rocketChatURL(t)
		host, port = urlHostPort(t, rc)
		wantReachable(t, p, "herald.yml rocketchat.url", host, port)
		if host != "rocketchat" {
			t.Errorf("herald.yml rocketchat.url = %q, want the rocketchat service", rc)
		}
		if want := envValue(t, service(t, p, "rocketchat"), "PORT"); strconv.Itoa(port) != want {
			t.Errorf("herald.yml rocketchat.url port %d, Rocket.Chat listens on PORT=%s", port, want)
		}
	})

	t.Run("prometheus", func(t *testing.T) {
		prom := service(t, p, "prometheus")
		_, webPort := splitPort(t, flagValue(t, prom, "web.listen-address"))
		if !slices.Contains(listens(t, prom), webPort) {
			t.Errorf("prometheus listens on %d, publishes %v", webPort, listens(t, prom))
		}
		pc := prometheusConfig(t)
		var heraldTargets []string
		for _, sc := range pc.ScrapeConfigs {
			for _, st := range sc.StaticConfigs {
				for _, target := range st.Targets {
					host, port := splitPort(t, target)
					if host == "localhost" {
						if port != webPort {
							t.Errorf("job %s scrapes %s, but Prometheus listens on %d", sc.JobName, target, webPort)
						}
						continue
					}
					wantReachable(t, p, "prometheus job "+sc.JobName, host, port)
					if sc.JobName == "herald" {
						heraldTargets = append(heraldTargets, target)
					}
				}
			}
		}
		if want := []string{"herald:" + strconv.Itoa(heraldPort)}; !slices.Equal(heraldTargets, want) {
			t.Errorf("prometheus job herald scrapes %v, want %v", heraldTargets, want)
		}
		var ams []string
		for _, a := range pc.Alerting.Alertmanagers {
			for _, st := range a.StaticConfigs {
				for _, target := range st.Targets {
					host, port := splitPort(t, target)
					wantReachable(t, p, "prometheus alerting", host, port)
					ams = append(ams, host)
				}
			}
		}
		slices.Sort(ams)
		if want := []string{"alertmanager-1", "alertmanager-2"}; !slices.Equal(ams, want) {
			t.Errorf("prometheus sends alerts to %v, want %v", ams, want)
		}
		ds := grafanaDatasourceURL(t)
		host, port := urlHostPort(t, ds)
		if host != "prometheus" || port != webPort {
			t.Errorf("grafana's datasource url %s, want prometheus:%d", ds, webPort)
		}
	})

	t.Run("alertmanager", func(t *testing.T) {
		am := alertmanagerConfig(t)
		if len(am.Receivers) == 0 || len(am.Receivers[0].WebhookConfigs) == 0 {
			t.Fatal("alertmanager.yml has no webhook receiver")
		}
		for _, r := range am.Receivers {
			for _, w := range r.WebhookConfigs {
				host, port := urlHostPort(t, w.URL)
				if host != "herald" || port != heraldPort {
					t.Errorf("alertmanager webhook url %s, want herald:%d", w.URL, heraldPort)
				}
				if !strings.HasSuffix(w.URL, "/webhooks/alertmanager") {
					t.Errorf("alertmanager webhook url %s is not herald's /webhooks/alertmanager", w.URL)
				}
			}
		}
		host, port := splitPort(t, am.Tracing.Endpoint)
		if host != "jaeger" {
			t.Errorf("alertmanager tracing endpoint %s, want the jaeger service", am.Tracing.Endpoint)
		}
		wantReachable(t, p, "alertmanager tracing endpoint", host, port)
		if am.Tracing.ClientType == "http" && port != 4318 || am.Tracing.ClientType == "grpc" && port != 4317 {
			t.Errorf("alertmanager tracing client_type %s on port %d: Jaeger takes OTLP/HTTP on 4318, gRPC on 4317", am.Tracing.ClientType, port)
		}

		peers := map[string]string{"alertmanager-1": "alertmanager-2", "alertmanager-2": "alertmanager-1"}
		for name, peer := range peers {
			s := service(t, p, name)
			_, webPort := splitPort(t, flagValue(t, s, "web.listen-address"))
			if !slices.Contains(listens(t, s), webPort) {
				t.Errorf("%s listens on %d, publishes %v", name, webPort, listens(t, s))
			}
			peerHost, peerPort := splitPort(t, flagValue(t, s, "cluster.peer"))
			if peerHost != peer {
				t.Errorf("%s --cluster.peer names %q, want %q", name, peerHost, peer)
			}
			_, clusterPort := splitPort(t, flagValue(t, service(t, p, peer), "cluster.listen-address"))
			if peerPort != clusterPort {
				t.Errorf("%s --cluster.peer port %d, %s listens for the cluster on %d", name, peerPort, peer, clusterPort)
			}
			ext := flagValue(t, s, "web.external-url")
			_, extPort := urlHostPort(t, ext)
			if !publishes(s, extPort, webPort) {
				t.Errorf("%s --web.external-url %s is not the host port published for %d", name, ext, webPort)
			}
		}
	})

	t.Run("grafana and rocketchat", func(t *testing.T) {
		g := service(t, p, "grafana")
		gp, _ := strconv.Atoi(envValue(t, g, "GF_SERVER_HTTP_PORT"))
		if !slices.Contains(listens(t, g), gp) {
			t.Errorf("grafana listens on %d, publishes %v", gp, listens(t, g))
		}
		rc := service(t, p, "rocketchat")
		rp, _ := strconv.Atoi(envValue(t, rc, "PORT"))
		if !slices.Contains(listens(t, rc), rp) {
			t.Errorf("rocketchat listens on PORT=%d, publishes %v", rp, listens(t, rc))
		}
		host, mport := urlHostPort(t, envValue(t, rc, "MONGO_URL"))
		wantReachable(t, p, "rocketchat MONGO_URL", host, mport)
		_, rootPort := urlHostPort(t, envValue(t, rc, "ROOT_URL"))
		if !publishes(rc, rootPort, rp) {
			t.Errorf("rocketchat ROOT_URL port %d is not the host port published for %d", rootPort, rp)
		}
	})
}

// publishes reports whether s publishes container port target on host port.
func publishes(s types.ServiceConfig, host, target int) bool {
	for _, p := range s.Ports {
		if int(p.Target) == target && p.Published == strconv.Itoa(host) {
			return true
		}
	}
	return false
}

func mountOf(s types.ServiceConfig, target string) *types.ServiceVolumeConfig {
	for i, v := range s.Volumes {
		if v.Target == target {
			return &s.Volumes[i]
		}
	}
	return nil
}

// hostPaths maps each path a service sees (bind mounts, files below a
// bind-mounted directory, and secrets in /run/secrets) to the host file
// compose puts there.
func hostPaths(t *testing.T, p *types.Project, s types.ServiceConfig) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind {
			m[v.Target] = v.Source
		}
	}
	for _, sec := range s.Secrets {
		target := sec.Target
		if target == "" {
			target = sec.Source
		}
		if !filepath.IsAbs(target) {
			target = "/run/secrets/" + target
		}
		def, ok := p.Secrets[sec.Source]
		if !ok {
			t.Fatalf("service %s uses secret %q, which is not declared", s.Name, sec.Source)
		}
		m[target] = def.File
	}
	return m
}

// resolve returns the host file behind container path c, or "".
func resolve(m map[string]string, c string) string {
	if h, ok := m[c]; ok {
		return h
	}
	for target, src := range m {
		if rel, ok := strings.CutPrefix(c, target+"/"); ok {
			return filepath.Join(src, rel)
		}
	}
	return ""
}

// rewrite replaces each quoted or bare container path listed in paths in
// the file at path by its host file, failing for a path nothing is mounted
// at, and writes the result to a temporary file.
func rewrite(t *testing.T, path string, m map[string]string, paths []string) string {
	t.Helper()
	text := readFile(t, path)
	for _, c := range paths {
		h := resolve(m, c)
		if h == "" {
			t.Errorf("%s names %s, but nothing is mounted there", path, c)
			continue
		}
		if _, err := os.Stat(h); err != nil {
			t.Errorf("%s names %s, mounted from %s: %v", path, c, h, err)
		}
		text = strings.ReplaceAll(text, c, h)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(out, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHeraldCheckConfig runs `herald check-config` on herald.yml as the
// herald container sees it: each *_file path replaced by the host file
// compose mounts there, with the environment compose gives the container.
func TestHeraldCheckConfig(t *testing.T) {
	p := load(t, documentedEnv)
	h := service(t, p, "herald")
	cfg := heraldConfig(t)

	cmd := strings.Join(h.Command, " ")
	m := mountOf(h, "/etc/herald/herald.yml")
	if m == nil || filepath.Base(m.Source) != "herald.yml" || !strings.Contains(cmd, "-config /etc/herald/herald.yml") {
		t.Errorf("herald does not run with deploy/compose/herald.yml as -config (command %q)", cmd)
	}
	if cfg.DataDir != "/var/lib/herald" || !strings.Contains(cmd, "-data-dir /var/lib/herald") {
		t.Errorf("herald.yml data_dir %q and the command %q should both name the volume /var/lib/herald", cfg.DataDir, cmd)
	}

	files := fileKeys(t, "herald.yml")
	if len(files) < 2 {
		t.Fatalf("herald.yml has %d *_file keys, want the alertmanager token and the Rocket.Chat token", len(files))
	}
	conf := rewrite(t, "herald.yml", hostPaths(t, p, h), files)
	if t.Failed() {
		return
	}

	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOFLAGS", "GOPROXY", "GOTOOLCHAIN", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range h.Environment {
		if v != nil {
			env = append(env, k+"="+*v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "go", "run", "./cmd/herald", "check-config", conf)
	c.Dir = repoRoot(t)
	c.Env = env
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("herald check-config: %v\n%s%s", err, stderr.String(), stdout.String())
	}
	// It prints the config as loaded: the environment's user id, and the
	// tokens read from their files shown as <secret>.
	for _, want := range []string{"user_id: " + documentedEnv["RC_USER_ID"], "token: <secret>"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("herald check-config's output lacks %q:\n%s", want, stdout.String())
		}
	}
	if s := stderr.String(); strings.Contains(s, "warning") {
		t.Errorf("herald check-config warns:\n%s", s)
	}
	// The Alertmanagers send the token herald accepts.
	for _, name := range []string{"alertmanager-1", "alertmanager-2"} {
		am := alertmanagerConfig(t)
		hm := hostPaths(t, p, service(t, p, name))
		for _, r := range am.Receivers {
			for _, w := range r.WebhookConfigs {
				got := resolve(hm, w.HTTPConfig.Authorization.CredentialsFile)
				want := resolve(hostPaths(t, p, h), cfg.Auth.Clients[0].TokenFile)
				if got == "" || got != want {
					t.Errorf("%s sends the token in %q (host %q); herald's client %s reads %q",
						name, w.HTTPConfig.Authorization.CredentialsFile, got, cfg.Auth.Clients[0].Name, want)
				}
			}
		}
	}
}

// checker finds an external checker on PATH or in the repository's
// .tools/bin; when it is missing the test skips, or fails under
// HERALD_TEST_REQUIRE_BINARIES=1 or CI=true (as internal/testutil.Missing
// does in herald's module).
func checker(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := filepath.Join(repoRoot(t), ".tools", "bin", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	msg := name + " is not on PATH or in .tools/bin; install it to check this config"
	switch {
	case os.Getenv(requireBinariesEnv) == "1":
		t.Fatalf("%s; failing instead of skipping because %s=1", msg, requireBinariesEnv)
	case os.Getenv("CI") == "true":
		t.Fatalf("%s; failing instead of skipping because CI=true", msg)
	}
	t.Skipf("%s; skipped (%s=1 makes this a failure)", msg, requireBinariesEnv)
	return ""
}

func runChecker(t *testing.T, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	t.Logf("%s", out)
}

// TestPromtool checks prometheus.yml and the rule files it loads, as the
// prometheus container sees them, with `promtool check config`.
func TestPromtool(t *testing.T) {
	bin := checker(t, "promtool")
	p := load(t, nil)
	pc := prometheusConfig(t)
	if len(pc.RuleFiles) != 2 {
		t.Errorf("prometheus.yml loads %v, want herald's rules and the demo rule", pc.RuleFiles)
	}
	conf := rewrite(t, "prometheus/prometheus.yml", hostPaths(t, p, service(t, p, "prometheus")), pc.RuleFiles)
	if t.Failed() {
		return
	}
	runChecker(t, bin, "check", "config", conf)
}

// TestAmtool checks alertmanager.yml with `amtool check-config`.
func TestAmtool(t *testing.T) {
	bin := checker(t, "amtool")
	p := load(t, nil)
	conf := rewrite(t, "alertmanager.yml", hostPaths(t, p, service(t, p, "alertmanager-1")), fileKeys(t, "alertmanager.yml"))
	if t.Failed() {
		return
	}
	runChecker(t, bin, "check-config", conf)
}

// heraldYML is the part of herald.yml the tests compare with the stack.
type heraldYML struct {
	Listen  string `yaml:"listen"`
	DataDir string `yaml:"data_dir"`
	Auth    struct {
		Clients []struct {
			Name      string `yaml:"name"`
			TokenFile string `yaml:"token_file"`
		} `yaml:"clients"`
	} `yaml:"auth"`
	Sinks []struct {
		Name       string `yaml:"name"`
		RocketChat *struct {
			URL string `yaml:"url"`
		} `yaml:"rocketchat"`
	} `yaml:"sinks"`
}

func heraldConfig(t *testing.T) heraldYML {
	t.Helper()
	var c heraldYML
	unmarshal(t, "herald.yml", &c)
	if len(c.Auth.Clients) != 1 || c.Auth.Clients[0].Name != "alertmanager" || c.Auth.Clients[0].TokenFile == "" {
		t.Fatalf("herald.yml should have one auth client, alertmanager, with a token_file; has %+v", c.Auth.Clients)
	}
	return c
}

func (c heraldYML) rocketChatURL(t *testing.T) string {
	t.Helper()
	for _, s := range c.Sinks {
		if s.RocketChat != nil {
			return s.RocketChat.URL
		}
	}
	t.Fatal("herald.yml has no rocketchat sink")
	return ""
}

type promYML struct {
	RuleFiles []string `yaml:"rule_files"`
	Alerting  struct {
		Alertmanagers []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"alertmanagers"`
	} `yaml:"alerting"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func prometheusConfig(t *testing.T) promYML {
	t.Helper()
	var c promYML
	unmarshal(t, "prometheus/prometheus.yml", &c)
	return c
}

type amYML struct {
	Receivers []struct {
		Name           string `yaml:"name"`
		WebhookConfigs []struct {
			URL        string `yaml:"url"`
			HTTPConfig struct {
				Authorization struct {
					CredentialsFile string `yaml:"credentials_file"`
				} `yaml:"authorization"`
			} `yaml:"http_config"`
		} `yaml:"webhook_configs"`
	} `yaml:"receivers"`
	Tracing struct {
		ClientType string `yaml:"client_type"`
		Endpoint   string `yaml:"endpoint"`
	} `yaml:"tracing"`
}

func alertmanagerConfig(t *testing.T) amYML {
	t.Helper()
	var c amYML
	unmarshal(t, "alertmanager.yml", &c)
	return c
}

func grafanaDatasourceURL(t *testing.T) string {
	t.Helper()
	var c struct {
		Datasources []struct {
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	unmarshal(t, "grafana/provisioning/datasources/prometheus.yml", &c)
	for _, d := range c.Datasources {
		if d.Type == "prometheus" {
			return d.URL
		}
	}
	t.Fatal("grafana has no prometheus datasource")
	return ""
}

// fileKeys returns the values of every key ending in _file in a YAML file.
func fileKeys(t *testing.T, path string) []string {
	t.Helper()
	var doc yaml.Node
	unmarshal(t, path, &doc)
	var out []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if strings.HasSuffix(k.Value, "_file") && v.Kind == yaml.ScalarNode {
					out = append(out, v.Value)
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	return out
}

func unmarshal(t *testing.T, path string, v any) {
	t.Helper()
	if err := yaml.Unmarshal([]byte(readFile(t, path)), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "herald")); err != nil {
		t.Fatalf("%s is not herald's repository root: %v", root, err)
	}
	return root
}

// TestProvisioning checks that the stack loads what it promises from the
// repository: herald's alert rules into Prometheus and herald's dashboard
// into Grafana.
func TestProvisioning(t *testing.T) {
	p := load(t, nil)
	root := repoRoot(t)

	prom := service(t, p, "prometheus")
	pm := hostPaths(t, p, prom)
	var rules []string
	for _, f := range prometheusConfig(t).RuleFiles {
		h := resolve(pm, f)
		if h == "" {
			t.Errorf("prometheus.yml loads %s, but nothing is mounted there", f)
		}
		rules = append(rules, h)
	}
	for _, want := range []string{
		filepath.Join(root, "deploy", "prometheus", "herald-rules.yml"),
		filepath.Join(root, "deploy", "compose", "prometheus", "demo-rules.yml"),
	} {
		if !slices.Contains(rules, want) {
			t.Errorf("prometheus loads %v, not %s", rules, want)
		}
	}
	if !strings.Contains(readFile(t, "prometheus/demo-rules.yml"), "expr: vector(1)") {
		t.Error("the demo rule does not always fire (expr: vector(1))")
	}

	g := service(t, p, "grafana")
	gm := hostPaths(t, p, g)
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	unmarshal(t, "grafana/provisioning/dashboards/herald.yml", &prov)
	if len(prov.Providers) != 1 {
		t.Fatalf("grafana dashboard providers: %+v, want one", prov.Providers)
	}
	dash := filepath.Join(prov.Providers[0].Options.Path, "herald.json")
	if got, want := resolve(gm, dash), filepath.Join(root, "deploy", "grafana", "herald.json"); got != want {
		t.Errorf("grafana's dashboard folder has %s from %q, want %s", dash, got, want)
	}
	for _, f := range []string{"datasources/prometheus.yml", "dashboards/herald.yml"} {
		if got := resolve(gm, "/etc/grafana/provisioning/"+f); got != filepath.Join(root, "deploy", "compose", "grafana", "provisioning", f) {
			t.Errorf("grafana sees /etc/grafana/provisioning/%s from %q", f, got)
		}
	}
}
