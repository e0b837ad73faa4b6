package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuTime returns the user+system CPU time pid has used so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("stat: no command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, errors.New("stat: too few fields")
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	return time.Duration(u+s) * time.Second / clockTicks, nil
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memStatus returns VmRSS and VmHWM (peak RSS) of pid in bytes.
func memStatus(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	return parseStatusMem(bufio.NewScanner(f))
}

func parseStatusMem(sc *bufio.Scanner) (rss, hwm int64, err error) {
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) != 2 || fs[1] != "kB" {
			return 0, 0, fmt.Errorf("status: %s: %q", k, v)
		}
		n, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("status: %s: %w", k, err)
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, errors.New("status: no VmRSS or VmHWM")
	}
	return rss, hwm, nil
}

// herald is a `herald serve` child process.
type herald struct {
	bin, config, dataDir, logPath string
	addr                          string
	cmd                           *exec.Cmd
	log                           *os.File
	exited                        chan error
	stopped                       bool
	// profile, when set, runs herald in `heraldload herald-profiled` with
	// profiles written to this path prefix.
	profile string
	env     []string
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// start runs herald serve and returns how long it took from exec until
// /readyz answered 200. It gives up after timeout.
func (h *herald) start(timeout time.Duration) (time.Duration, error) {
	var err error
	if h.log, err = os.OpenFile(h.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return 0, err
	}
	h.stopped = false
	h.cmd = exec.Command(h.bin, "serve", "-config", h.config, "-listen", h.addr, "-data-dir", h.dataDir)
	if h.profile != "" {
		self, err := os.Executable()
		if err != nil {
			return 0, err
		}
		h.cmd = exec.Command(self, "herald-profiled", h.profile, h.config, h.addr, h.dataDir)
	}
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	// No OTEL_* from the caller's environment: tracing would export spans.
	h.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "OTEL_SDK_DISABLED=true"}, h.env...)
	begin := time.Now()
	if err := h.cmd.Start(); err != nil {
		return 0, err
	}
	h.exited = make(chan error, 1)
	go func() { h.exited <- h.cmd.Wait() }()
	client := &http.Client{Timeout: 500 * time.Millisecond}
	url := "http://" + h.addr + "/readyz"
	deadline := begin.Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-h.exited:
			h.exited <- err
			return 0, fmt.Errorf("herald exited before it was ready: %v (log: %s)", err, h.logPath)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(begin), nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	h.kill()
	return 0, fmt.Errorf("herald not ready after %v (log: %s)", timeout, h.logPath)
}

func (h *herald) pid() int { return h.cmd.Process.Pid }

// stop sends SIGTERM and waits up to 20s, then kills.
func (h *herald) stop() error {
	if h.cmd == nil || h.cmd.Process == nil || h.stopped {
		return nil
	}
	h.stopped = true
	defer h.log.Close()
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-h.exited:
		return err
	case <-time.After(20 * time.Second):
		h.kill()
		return errors.New("herald did not stop within 20s of SIGTERM; killed")
	}
}

func (h *herald) kill() {
	_ = h.cmd.Process.Kill()
	<-h.exited
}

// buildHerald compiles ./cmd/herald into dir.
func buildHerald(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "herald")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/herald")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/herald (run heraldload from the repository root, or pass -herald): %w", err)
	}
	return bin, nil
}
