package main

import (
	"encoding/json"
	"errors"
	"fmt"
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

// serveBare is the hidden `heraldload bare-server ADDR` mode: the baseline
// runs in its own process, like herald, so that neither shares a Go
// runtime with the load generator.
func serveBare(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: bareHandler(), ReadHeaderTimeout: 5 * time.Second}
	return srv.Serve(l)
}

// bareProc is the baseline server child process.
type bareProc struct {
	cmd    *exec.Cmd
	addr   string
	exited chan error
}

func startBare() (*bareProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	b := &bareProc{addr: addr, exited: make(chan error, 1)}
	b.cmd = exec.Command(self, "bare-server", addr)
	b.cmd.Stderr = os.Stderr
	if err := b.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { b.exited <- b.cmd.Wait() }()
	client := &http.Client{Timeout: 500 * time.Millisecond}
	for range 2500 { // about 5s
		select {
		case err := <-b.exited:
			return nil, fmt.Errorf("bare server exited: %v", err)
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
	return nil, errors.New("bare server did not start within 5s")
}

func (b *bareProc) stop() {
	_ = b.cmd.Process.Kill()
	<-b.exited
}
