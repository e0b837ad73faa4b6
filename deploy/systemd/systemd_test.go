// Package systemd_test checks deploy/systemd: the unit's sandbox rating and
// syntax (with systemd-analyze), and that the unit agrees with the files
// installed next to it, with the example config and with herald's flags.
package systemd_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/testutil"
)

const (
	unitFile = "herald.service"
	// maxExposure is the highest overall exposure systemd-analyze security
	// may give the unit: "OK" starts below 2.0 on its 0 to 10 scale.
	maxExposure = 2.0
	// exampleConfig is what the README installs as /etc/herald/herald.yml.
	exampleConfig = "../herald.example.yml"
)

// systemdAnalyze finds systemd-analyze or ends the test (testutil.Missing).
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testutil.Missing(t, "systemd-analyze is not on PATH", "install systemd; Debian: apt-get install systemd")
	}
	return bin
}

var overallRE = regexp.MustCompile(`Overall exposure level for herald\.service: (\d+\.\d+)`)

// TestUnitExposure keeps the unit's sandbox at or below maxExposure as
// systemd-analyze security rates it, reading only the file (--offline).
func TestUnitExposure(t *testing.T) {
	bin := systemdAnalyze(t)
	// --threshold counts in tenths: exit 1 above 20 is above 2.0.
	cmd := exec.Command(bin, "security", "--offline=true", "--no-pager",
		"--threshold="+strconv.Itoa(int(maxExposure*10)), unitFile)
	out, runErr := cmd.CombinedOutput()
	m := overallRE.FindSubmatch(out)
	if m == nil {
		if bytes.Contains(out, []byte("--offline")) || bytes.Contains(out, []byte("--threshold")) {
			testutil.Missing(t, "this systemd-analyze lacks security --offline/--threshold: "+strings.TrimSpace(string(out)), "needs systemd 250 or newer")
		}
		t.Fatalf("systemd-analyze security: %v; no overall exposure in:\n%s", runErr, out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	if score > maxExposure {
		var open []string
		for line := range strings.Lines(string(out)) {
			if strings.HasPrefix(line, "✗") {
				open = append(open, strings.TrimSpace(line))
			}
		}
		t.Fatalf("exposure %.1f, want at most %.1f; what still counts:\n%s", score, maxExposure, strings.Join(open, "\n"))
	}
	if runErr != nil {
		t.Fatalf("systemd-analyze security --threshold: %v (exposure %.1f)\n%s", runErr, score, out)
	}
	t.Logf("overall exposure %.1f (at most %.1f)", score, maxExposure)
}

// TestUnitVerifies runs systemd-analyze verify, which must print nothing:
// unknown keys and bad values are only warnings to it. The binary is not
// installed here, so a copy of the unit runs a stand-in from a temporary
// directory.
func TestUnitVerifies(t *testing.T) {
	bin := systemdAnalyze(t)
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stub := filepath.Join(dir, "herald")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("/usr/local/bin/herald ")) {
		t.Fatal("the unit does not run /usr/local/bin/herald")
	}
	unit = bytes.ReplaceAll(unit, []byte("/usr/local/bin/herald "), []byte(stub+" "))
	copied := filepath.Join(dir, unitFile)
	if err := os.WriteFile(copied, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "verify", "--man=false", copied).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// unitKeys reads a unit file's [Service] section: key → values in order.
func unitKeys(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: not key=value: %q", unitFile, line)
			}
			keys[k] = append(keys[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// one is the only value of key, failing when there is none or several.
func one(t *testing.T, keys map[string][]string, key string) string {
	t.Helper()
	if len(keys[key]) != 1 {
		t.Fatalf("%s: want one %s=, have %q", unitFile, key, keys[key])
	}
	return keys[key][0]
}

// fields returns the non-comment lines of a sysusers.d or tmpfiles.d file,
// split into fields.
func fields(t *testing.T, name string) [][]string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]string
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			lines = append(lines, f)
		}
	}
	return lines
}

// envFile reads a NAME=value file as systemd's EnvironmentFile= does for
// unquoted values.
func envFile(t *testing.T, name string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(v, `"'\`) {
			t.Fatalf("%s: want NAME=value without quotes, have %q", name, line)
		}
		env[k] = v
	}
	return env
}

// TestUnitMatchesFiles checks that what the unit expects is what the files
// next to it install: its user (herald.sysusers), /etc/herald with the
// unit's group and closed to others (herald.tmpfiles), an example of its
// environment file that sets every ${NAME} of the example config, a stop
// timeout above the config's shutdown_timeout, and a state directory that is
// the example config's data_dir.
func TestUnitMatchesFiles(t *testing.T) {
	keys := unitKeys(t)
	user, group := one(t, keys, "User"), one(t, keys, "Group")

	if !slices.ContainsFunc(fields(t, "herald.sysusers"), func(f []string) bool {
		return len(f) >= 2 && f[0] == "u" && f[1] == user
	}) {
		t.Errorf("herald.sysusers creates no user %q (the unit's User=)", user)
	}

	envPath := strings.TrimPrefix(one(t, keys, "EnvironmentFile"), "-")
	execStart := strings.Fields(one(t, keys, "ExecStart"))
	cfgAt := slices.Index(execStart, "-config")
	if cfgAt < 0 || cfgAt+1 == len(execStart) {
		t.Fatalf("ExecStart=%s has no -config FILE", strings.Join(execStart, " "))
	}
	cfgPath := execStart[cfgAt+1]
	if pre := one(t, keys, "ExecStartPre"); !strings.HasSuffix(pre, " check-config "+cfgPath) {
		t.Errorf("ExecStartPre=%s does not check %s", pre, cfgPath)
	}
	for _, p := range []string{envPath, cfgPath} {
		dir := path.Dir(p)
		if !slices.ContainsFunc(fields(t, "herald.tmpfiles"), func(f []string) bool {
			return len(f) >= 5 && f[0] == "d" && f[1] == dir && f[3] == "root" && f[4] == group &&
				strings.HasSuffix(f[2], "0") // nothing for others
		}) {
			t.Errorf("herald.tmpfiles creates no %s owned by root:%s and closed to others, for %s", dir, group, p)
		}
	}

	env := envFile(t, path.Base(envPath))
	example, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	// Load the example config as ExecStartPre would, with the environment
	// file's names set and every other ${NAME} it mentions unset.
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`).FindAllSubmatch(example, -1) {
		name := string(m[1])
		if _, ok := env[name]; !ok {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	loaded, err := config.Load(exampleConfig)
	if err != nil {
		t.Fatalf("%s with the names of %s: %v", exampleConfig, path.Base(envPath), err)
	}
	// Stopping takes the server's shutdown_timeout, then up to 10s to drain
	// the queue connection and 5s to flush traces.
	stop := one(t, keys, "TimeoutStopSec")
	secs, err := strconv.Atoi(stop)
	if err != nil {
		t.Fatalf("TimeoutStopSec=%s: want whole seconds: %v", stop, err)
	}
	if need := loaded.Server.ShutdownTimeout + 25*time.Second; time.Duration(secs)*time.Second < need {
		t.Errorf("TimeoutStopSec=%s is shorter than server.shutdown_timeout (%s) + 25s", stop, loaded.Server.ShutdownTimeout)
	}

	var cfg struct {
		DataDir string `yaml:"data_dir"`
	}
	if err := yaml.Unmarshal(example, &cfg); err != nil {
		t.Fatal(err)
	}
	if state := "/var/lib/" + one(t, keys, "StateDirectory"); state != cfg.DataDir {
		t.Errorf("StateDirectory= gives %s, but %s's data_dir is %s", state, exampleConfig, cfg.DataDir)
	}
}

// TestUnitCommands builds herald and checks that serve accepts every flag
// ExecStart= gives it, and that ExecStartPre='s command passes the example
// config with herald.env as its whole environment.
func TestUnitCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/herald")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		testutil.Missing(t, "no go command on PATH to build herald with", "install Go")
	}
	bin := filepath.Join(t.TempDir(), "herald")
	build := exec.CommandContext(t.Context(), goBin, "build", "-o", bin, "./cmd/herald")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/herald: %v\n%s", err, out)
	}
	keys := unitKeys(t)
	args := strings.Fields(one(t, keys, "ExecStart"))[1:]
	if len(args) == 0 || args[0] != "serve" {
		t.Fatalf("ExecStart runs %q, not herald serve", args)
	}
	// serve -h lists its flags; its exit status does not matter here.
	usage, _ := exec.Command(bin, "serve", "-h").CombinedOutput()
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(name) + `(\s|$)`).Match(usage) {
			t.Errorf("herald serve has no flag -%s; its usage:\n%s", name, usage)
		}
	}

	pre := strings.Fields(one(t, keys, "ExecStartPre"))[1:]
	if len(pre) == 0 {
		t.Fatal("ExecStartPre= runs herald without arguments")
	}
	pre[len(pre)-1] = exampleConfig // the config file (TestUnitMatchesFiles)
	check := exec.Command(bin, pre...)
	check.Env = []string{}
	for k, v := range envFile(t, path.Base(strings.TrimPrefix(one(t, keys, "EnvironmentFile"), "-"))) {
		check.Env = append(check.Env, k+"="+v)
	}
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("herald %s: %v\n%s", strings.Join(pre, " "), err, out)
	}
}
