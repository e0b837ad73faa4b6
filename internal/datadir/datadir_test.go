package datadir_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/herald-notify/herald/internal/datadir"
)

// helperEnv makes the test binary a process that locks the dir it names,
// says so, and holds the lock until killed.
const helperEnv = "DATADIR_TEST_HOLD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		if _, err := datadir.Acquire(dir); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("locked")
		select {}
	}
	os.Exit(m.Run())
}

func TestAcquireInProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	l, err := datadir.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, datadir.LockFile))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q (%v), want this process's pid %d", b, err, os.Getpid())
	}
	_, err = datadir.Acquire(dir)
	var inUse *datadir.InUseError
	if !errors.As(err, &inUse) || inUse.Dir != dir || inUse.PID != os.Getpid() {
		t.Fatalf("second Acquire = %v, want an InUseError naming %s and pid %d", err, dir, os.Getpid())
	}
	for _, want := range []string{dir, fmt.Sprintf("pid %d", os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = datadir.Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Close: %v", err)
	}
	l.Close()
}

// TestAcquireAcrossProcesses locks from another process, then kills it
// with SIGKILL: its lock file stays behind, but its lock does not.
func TestAcquireAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper said %q", line)
	}

	_, err = datadir.Acquire(dir)
	var inUse *datadir.InUseError
	if !errors.As(err, &inUse) || inUse.PID != cmd.Process.Pid {
		t.Fatalf("Acquire while another process holds the dir = %v, want an InUseError with pid %d", err, cmd.Process.Pid)
	}

	cmd.Process.Kill()
	cmd.Wait()
	l, err := datadir.Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after the holder was killed: %v", err)
	}
	l.Close()
}

func TestAcquireUnusableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := datadir.Acquire(file)
	var inUse *datadir.InUseError
	if err == nil || errors.As(err, &inUse) {
		t.Errorf("Acquire(a file) = %v, want an error other than in use", err)
	}
}
