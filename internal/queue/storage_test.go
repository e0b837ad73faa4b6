package queue

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/store"
	"github.com/herald-notify/herald/internal/testutil"
)

// tmpfs mounts a small tmpfs on a new directory: a disk that fills. Root is
// needed (as in CI); without it the test is skipped, or fails in CI
// (testutil.Missing).
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		testutil.Missing(t, strings.TrimSpace(fmt.Sprintf("cannot mount a tmpfs: %v %s", err, out)), "run as root, as CI does")
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file until the disk is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			return
		}
	}
}

// A full disk makes publishes fail with Unavailable and the queue not
// ready; once space returns the queue recovers by itself: ready again,
// publishes stored, and what was acknowledged before is all there.
func TestDiskFullRecovers(t *testing.T) {
	dir := tmpfs(t, "24m")
	e := openTest(t, dir, testConfig(nil))
	var acked []string
	for range 20 {
		acked = append(acked, mustPut(t, e.q, notif("g", heraldv1.Severity_SEVERITY_INFO)))
	}
	junk := filepath.Join(dir, "junk")
	fill(t, junk)

	// Publish until the store refuses (it buffers a little first).
	refused := false
	for i := 0; i < 5000 && !refused; i++ {
		n := notif("g", heraldv1.Severity_SEVERITY_INFO)
		n.Text = string(make([]byte, 4000))
		id, _, err := e.q.Put(t.Context(), n)
		switch {
		case err == nil:
			acked = append(acked, id)
		case errors.Is(err, store.ErrUnavailable):
			refused = true
		default:
			t.Fatalf("Put on a full disk: %v, want Unavailable", err)
		}
	}
	if !refused {
		t.Fatal("the store took every publish on a full disk")
	}
	waitFor(t, func() bool { return e.q.Ready(t.Context()) != nil })
	if err := e.q.Ready(t.Context()); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ready on a full disk = %v, want Unavailable", err)
	}

	if err := os.Remove(junk); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return e.q.Ready(t.Context()) == nil })
	acked = append(acked, mustPut(t, e.q, notif("g", heraldv1.Severity_SEVERITY_INFO)))
	for _, id := range acked {
		if _, err := e.q.Get(t.Context(), id); err != nil {
			t.Errorf("acknowledged %s: %v", id, err)
		}
	}
}

func TestSizeYAML(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		bad  bool
	}{
		{"max_storage: 20GiB", 20 << 30, false},
		{"max_storage: 500MB", 500e6, false},
		{"max_storage: 1048576", 1 << 20, false},
		{"max_storage: 12 KiB", 12 << 10, false},
		{"max_storage: lots", 0, true},
		{"max_storage: -1", 0, true},
	} {
		var c struct {
			MaxStorage Size `yaml:"max_storage"`
		}
		err := yaml.Unmarshal([]byte(tc.in), &c)
		if (err != nil) != tc.bad || c.MaxStorage != tc.want {
			t.Errorf("%s: %v, %v; want %v (error %v)", tc.in, c.MaxStorage, err, tc.want, tc.bad)
		}
	}
	if got := Size(20 << 30).String(); got != "20GiB" {
		t.Errorf("String = %s", got)
	}
}
