// Package datadir keeps herald's data dir to one process at a time: an
// exclusive lock on a file in the dir, held while herald runs and released
// by the kernel however the process ends.
package datadir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the name of the lock file in the data dir. It holds the PID
// of the process that holds the lock; the lock itself is flock(2) on it, so
// a file left behind by a killed process locks nothing.
const LockFile = "herald.lock"

// InUseError says another process holds the data dir's lock.
type InUseError struct {
	// Dir is the data dir, absolute when it could be made so.
	Dir string
	// PID is the holder's process id as its lock file says, 0 if unknown.
	PID int
}

func (e *InUseError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = fmt.Sprintf("another process (pid %d)", e.PID)
	}
	return fmt.Sprintf("data dir %s is in use by %s: one herald per data dir; stop that one or set another data_dir", e.Dir, who)
}

// Lock is an exclusive lock on a data dir.
type Lock struct {
	f *os.File
}

// Acquire creates dir if needed and locks it without waiting. When another
// process (or another Lock in this one) holds it, the error is an
// *InUseError and nothing in dir was changed.
func Acquire(dir string) (*Lock, error) {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir: lock: %w", err)
	}
	if err := flock(f); err != nil {
		pid := readPID(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &InUseError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("data dir %s: lock: %w", dir, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s: lock: write pid: %w", dir, err)
	}
	return &Lock{f: f}, nil
}

// Close releases the lock. The file stays: removing it would let a process
// that opened it a moment before lock a file no one else can find.
func (l *Lock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// readPID reads the holder's PID from its lock file; 0 if there is none
// yet (the holder writes it just after locking).
func readPID(f *os.File) int {
	b, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
