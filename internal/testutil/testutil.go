// Package testutil holds the helpers herald's tests share: waiting for a
// condition with a deadline, free loopback ports, log writers that are safe
// to use from several goroutines, and Missing, the one way a test skips (or,
// in CI, fails) when a tool it needs is not installed.
package testutil

import (
	"bytes"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Eventually polls cond every 20ms until it holds, and fails the test when
// it still does not after within. what says what was waited for.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	addr, err := net.ResolveTCPAddr("tcp", FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return addr.Port
}

// Buffer is a bytes.Buffer that several goroutines may write, e.g. a
// logger's output a test reads afterwards.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// LogWriter writes each line it gets to t.Log, after prefix when it is not
// empty; for a logger whose lines show with the test's.
func LogWriter(t testing.TB, prefix string) *TestLog {
	return &TestLog{t: t, prefix: prefix}
}

// TestLog is LogWriter's writer.
type TestLog struct {
	t      testing.TB
	prefix string
}

func (w *TestLog) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	if w.prefix != "" {
		line = w.prefix + ": " + line
	}
	w.t.Log(line)
	return len(p), nil
}

// RequireBinariesEnv names the environment variable that turns Missing's
// skips into failures when set to 1, as .ci/run does: there, a test that
// skips for want of a tool would pass without having run.
const RequireBinariesEnv = "HERALD_TEST_REQUIRE_BINARIES"

// Missing ends a test that cannot run because something it needs from the
// machine is absent: a binary, an installed package, root. what says what is
// missing and how how to get it. It skips t, or fails it under
// HERALD_TEST_REQUIRE_BINARIES=1 or CI=true.
func Missing(t testing.TB, what, how string) {
	t.Helper()
	msg := what + " (" + how + ")"
	switch {
	case os.Getenv(RequireBinariesEnv) == "1":
		t.Fatalf("%s; failing instead of skipping because %s=1", msg, RequireBinariesEnv)
	case os.Getenv("CI") == "true":
		t.Fatalf("%s; failing instead of skipping because CI=true", msg)
	}
	t.Skipf("%s; skipped (%s=1 makes this a failure)", msg, RequireBinariesEnv)
}
