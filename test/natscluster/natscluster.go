// Package natscluster runs a NATS cluster of real nats-server processes
// (.tools/bin/nats-server, scripts/install-nats-server.sh) with herald's
// server config, deploy/nats/nats.conf, for tests that kill and restart
// nodes as an operator's cluster loses them.
package natscluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/testutil"
)

// Cluster is a running cluster. Its nodes are killed at the end of the
// test; their logs are printed when the test failed.
type Cluster struct {
	t     testing.TB
	bin   string
	conf  string
	nodes []*node
}

type node struct {
	name       string
	port, http int
	env        []string
	dir, log   string
	cmd        *exec.Cmd
	exited     chan struct{}
}

// Option changes the cluster's config.
type Option func(*options)

type options struct{ maxPayload string }

// MaxPayload sets the servers' max_payload ("1MB"); the default is what
// deploy/nats/nats.conf is meant to run with, 8MB.
func MaxPayload(v string) Option { return func(o *options) { o.maxPayload = v } }

// Start runs an n-node cluster on loopback and returns once every node
// answers its JetStream health check. Without the nats-server binary the
// test is skipped, or fails in CI (testutil.Missing).
func Start(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	o := options{maxPayload: "8MB"}
	for _, f := range opts {
		f(&o)
	}
	root := repoRoot(t)
	bin := filepath.Join(root, ".tools", "bin", "nats-server")
	if _, err := os.Stat(bin); err != nil {
		testutil.Missing(t, "nats-server not found: "+err.Error(), "run scripts/install-nats-server.sh or make tools")
	}
	c := &Cluster{t: t, bin: bin, conf: filepath.Join(root, "deploy", "nats", "nats.conf")}
	var routes []string
	for i := range n {
		nd := &node{
			name: fmt.Sprintf("n%d", i),
			port: testutil.FreePort(t),
			http: testutil.FreePort(t),
			dir:  t.TempDir(),
		}
		nd.log = filepath.Join(nd.dir, "nats.log")
		cluster := testutil.FreePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", cluster))
		nd.env = []string{
			"NATS_SERVER_NAME=" + nd.name,
			"NATS_HOST=127.0.0.1",
			"NATS_PORT=" + strconv.Itoa(nd.port),
			"NATS_HTTP_PORT=" + strconv.Itoa(nd.http),
			"NATS_CLUSTER_PORT=" + strconv.Itoa(cluster),
			"NATS_STORE_DIR=" + filepath.Join(nd.dir, "store"),
			"NATS_MAX_PAYLOAD=" + o.maxPayload,
		}
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		nd.env = append(nd.env, "NATS_ROUTES=["+strings.Join(routes, ",")+"]")
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			c.kill(nd)
		}
		if t.Failed() {
			for _, nd := range c.nodes {
				b, _ := os.ReadFile(nd.log)
				t.Logf("nats-server %s log:\n%s", nd.name, tail(string(b), 60))
			}
		}
	})
	for i := range c.nodes {
		c.start(i)
	}
	for i := range c.nodes {
		c.WaitHealthy(i)
	}
	return c
}

// URL lists the nodes' client URLs, comma-separated, as queue.url takes
// them.
func (c *Cluster) URL() string {
	var urls []string
	for _, nd := range c.nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", nd.port))
	}
	return strings.Join(urls, ",")
}

// Kill sends node i SIGKILL and waits for it to exit.
func (c *Cluster) Kill(i int) { c.kill(c.nodes[i]) }

// Stop sends node i SIGTERM, as an orchestrator stops a node, and waits
// for it to exit: the server hands its leaderships to the other nodes
// first. It fails the test when the node is still running after a minute.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	if nd.cmd == nil {
		return
	}
	_ = nd.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-nd.exited:
		nd.cmd = nil
	case <-time.After(time.Minute):
		c.kill(nd)
		c.t.Fatalf("nats-server %s still running a minute after SIGTERM", nd.name)
	}
}

// Restart starts node i again on its ports and store, and waits until it
// is healthy. The node must have been killed or stopped.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.nodes[i].cmd != nil {
		c.t.Fatalf("restart nats-server %s: it is running", c.nodes[i].name)
	}
	c.start(i)
	c.WaitHealthy(i)
}

// Name is node i's server name.
func (c *Cluster) Name(i int) string { return c.nodes[i].name }

// StreamLeader returns the index of the node leading stream.
func (c *Cluster) StreamLeader(stream string) int {
	c.t.Helper()
	nc, err := nats.Connect(c.URL())
	if err != nil {
		c.t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	var leader string
	testutil.Eventually(c.t, 30*time.Second, "a leader of stream "+stream, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil || s.CachedInfo().Cluster == nil {
			return false
		}
		leader = s.CachedInfo().Cluster.Leader
		return leader != ""
	})
	for i, nd := range c.nodes {
		if nd.name == leader {
			return i
		}
	}
	c.t.Fatalf("stream %s is led by %q, not a node of this cluster", stream, leader)
	return -1
}

// WaitHealthy waits until node i answers its JetStream health check.
func (c *Cluster) WaitHealthy(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz?js-enabled-only=true", nd.http)
	testutil.Eventually(c.t, 30*time.Second, "nats-server "+nd.name+" healthy", func() bool {
		res, err := http.Get(url)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	logf, err := os.OpenFile(nd.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, "-c", c.conf)
	cmd.Env = append(os.Environ(), nd.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("start nats-server %s: %v", nd.name, err)
	}
	nd.cmd, nd.exited = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(nd.exited)
	}()
}

func (c *Cluster) kill(nd *node) {
	if nd.cmd == nil {
		return
	}
	_ = nd.cmd.Process.Signal(syscall.SIGKILL)
	<-nd.exited
	nd.cmd = nil
}

// repoRoot is the directory holding go.mod, above the working directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
