package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"time"
)

// bareHandler is the baseline: it only decodes the webhook JSON into
// Alertmanager's payload type and answers 200, as the simplest Go bridge
// would before doing any work.
func bareHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m amWebhook
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if len(m.Alerts) == 0 {
			http.Error(w, "no alerts", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// nullHandler does nothing with a webhook but read it and answer 200: what
// the load generator reaches against it is the generator's own ceiling on
// this machine.
func nullHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})
}

// serveChild is the hidden `heraldload bare-server ADDR` (the baseline) and
// `heraldload null-server ADDR` (the generator's ceiling) mode: each runs
// in its own process, like herald, so that none shares a Go runtime with
// the load generator.
func serveChild(h http.Handler, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	return srv.Serve(l)
}

// bareProc is a bare-server or null-server child process.
type bareProc struct {
	cmd    *exec.Cmd
	addr   string
	exited chan error
}

// startBare starts `heraldload mode ADDR` (bare-server or null-server) and
// waits until it answers.
func startBare(mode string) (*bareProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	b := &bareProc{addr: addr, exited: make(chan error, 1)}
	b.cmd = exec.Command(self, mode, addr)
	b.cmd.Stderr = os.Stderr
	if err := b.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { b.exited <- b.cmd.Wait() }()
	client := &http.Client{Timeout: 500 * time.Millisecond}
	for range 2500 { // about 5s
		select {
		case err := <-b.exited:
			return nil, fmt.Errorf("%s exited: %v", mode, err)
		default:
		}
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return b, nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.stop()
	return nil, fmt.Errorf("%s did not start within 5s", mode)
}

func (b *bareProc) stop() {
	_ = b.cmd.Process.Kill()
	<-b.exited
}
