package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/queue"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

// The scale scenario runs 1, 2, 3… herald replicas sharing one queue on a
// real 3-node NATS cluster, against one fake chat that answers every post
// after -slow-delay. Each replica bounds its own requests per sink, so N
// replicas can deliver N × max_in_flight_per_sink / delay: it measures how
// close they come.

// natsNodes is the size of the scale scenario's NATS cluster.
const natsNodes = 3

// natsMaxPayload is the nodes' max_payload: herald refuses a server
// whose max_payload cannot hold a webhook body of webhook.max_body_bytes
// (4 MiB) and its headers.
const natsMaxPayload = "8MB"

// primePerPartition webhooks per partition are sent before the load, each
// its own group, so that every partition has been served (and its pin
// taken) before the load starts; their ids begin primeSeqOffset after the
// load's.
const (
	primePerPartition = 20
	primeSeqOffset    = 900_000
)

// scaleCool is cut from the end of the load when counting deliveries: the
// generator's last tick and the answers still under way.
const scaleCool = time.Second

// natsNode is one nats-server child process.
type natsNode struct {
	name       string
	clientPort int
	httpPort   int
	cmd        *exec.Cmd
	log        *os.File
	logPath    string
	exited     chan error
}

// natsCluster is natsNodes nats-server processes routed to each other.
type natsCluster struct {
	nodes []*natsNode
}

// url lists the nodes' client URLs as queue.url takes them.
func (c *natsCluster) url() string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", n.clientPort))
	}
	return strings.Join(urls, ",")
}

// pids are the nodes' process ids, in node order.
func (c *natsCluster) pids() []int {
	var out []int
	for _, n := range c.nodes {
		out = append(out, n.cmd.Process.Pid)
	}
	return out
}

// inMsgs sums in_msgs of every node's /varz: messages the nodes received
// from clients and from each other.
func (c *natsCluster) inMsgs(ctx context.Context) (int64, error) {
	var sum int64
	for _, n := range c.nodes {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/varz", n.httpPort), nil)
		if err != nil {
			cancel()
			return 0, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			return 0, err
		}
		var v struct {
			InMsgs int64 `json:"in_msgs"`
		}
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		cancel()
		if err != nil {
			return 0, fmt.Errorf("%s /varz: %w", n.name, err)
		}
		sum += v.InMsgs
	}
	return sum, nil
}

// stop kills every node: their data is thrown away, and SIGTERM would
// wait out the config's lame-duck period.
func (c *natsCluster) stop() {
	for _, n := range c.nodes {
		_ = n.cmd.Process.Kill()
		<-n.exited
		n.log.Close()
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startNATS starts natsNodes nats-server processes from bin with the
// config at conf (deploy/nats/nats.conf: one file for every node, what
// differs in the environment), storing under dir, and returns once the
// cluster can hold a stream at natsNodes replicas.
func startNATS(ctx context.Context, bin, conf, dir string) (*natsCluster, error) {
	ports, err := freePorts(3 * natsNodes)
	if err != nil {
		return nil, err
	}
	var routes []string
	for i := range natsNodes {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[3*i+1]))
	}
	c := &natsCluster{}
	for i := range natsNodes {
		n := &natsNode{name: fmt.Sprintf("n%d", i), clientPort: ports[3*i], httpPort: ports[3*i+2], logPath: filepath.Join(dir, fmt.Sprintf("nats-%d.log", i)), exited: make(chan error, 1)}
		if n.log, err = os.Create(n.logPath); err != nil {
			c.stop()
			return nil, err
		}
		n.cmd = exec.Command(bin, "-c", conf)
		n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
		n.cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"),
			"NATS_SERVER_NAME=" + n.name,
			"NATS_HOST=127.0.0.1",
			"NATS_PORT=" + strconv.Itoa(ports[3*i]),
			"NATS_CLUSTER_PORT=" + strconv.Itoa(ports[3*i+1]),
			"NATS_HTTP_PORT=" + strconv.Itoa(ports[3*i+2]),
			"NATS_STORE_DIR=" + filepath.Join(dir, n.name),
			"NATS_ROUTES=[" + strings.Join(routes, ", ") + "]",
			"NATS_MAX_PAYLOAD=" + natsMaxPayload,
		}
		if err := n.cmd.Start(); err != nil {
			n.log.Close()
			c.stop()
			return nil, fmt.Errorf("nats-server: %w", err)
		}
		go func() { n.exited <- n.cmd.Wait() }()
		c.nodes = append(c.nodes, n)
	}
	if err := waitJetStream(ctx, c, 60*time.Second); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// waitJetStream waits until c can create (and delete) a stream at
// natsNodes replicas: the first leader elections are over.
func waitJetStream(ctx context.Context, c *natsCluster, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, n := range c.nodes {
			select {
			case err := <-n.exited:
				n.exited <- err
				return fmt.Errorf("nats-server %s exited: %v (log: %s)", n.name, err, n.logPath)
			default:
			}
		}
		if last = probeJetStream(ctx, c.url()); last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the NATS cluster cannot hold a %d-replica stream after %v: %v", natsNodes, timeout, last)
}

func probeJetStream(ctx context.Context, url string) error {
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "HERALDLOAD_PROBE", Subjects: []string{"heraldload.probe"}, Replicas: natsNodes}); err != nil {
		return err
	}
	return js.DeleteStream(ctx, "HERALDLOAD_PROBE")
}

// procStat is the machine's CPU time from the first line of /proc/stat, in
// clock ticks.
type procStat struct {
	busy  uint64 // user, nice, system, irq, softirq
	idle  uint64 // idle, iowait
	steal uint64 // taken by the hypervisor for others
}

func (s procStat) total() uint64 { return s.busy + s.idle + s.steal }

// parseProcStat reads the aggregate "cpu" line of /proc/stat.
func parseProcStat(r io.Reader) (procStat, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 9 {
			return procStat{}, errors.New("/proc/stat: short cpu line")
		}
		var v [8]uint64
		for i := range v {
			n, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				return procStat{}, fmt.Errorf("/proc/stat: %w", err)
			}
			v[i] = n
		}
		// user nice system idle iowait irq softirq steal
		return procStat{busy: v[0] + v[1] + v[2] + v[5] + v[6], idle: v[3] + v[4], steal: v[7]}, nil
	}
	if err := sc.Err(); err != nil {
		return procStat{}, err
	}
	return procStat{}, errors.New("/proc/stat: no cpu line")
}

func readProcStat() (procStat, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return procStat{}, err
	}
	defer f.Close()
	return parseProcStat(f)
}

// share is part's fraction of the ticks between a and b, 0 without any.
func share(a, b procStat, part func(procStat) uint64) float64 {
	t := b.total() - a.total()
	if t == 0 {
		return 0
	}
	return float64(part(b)-part(a)) / float64(t)
}

// parseReplicas reads -scale-replicas: distinct counts from 1 to 9,
// comma-separated, in the order given.
func parseReplicas(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 9 {
			return nil, fmt.Errorf("-scale-replicas: %q is not a count from 1 to 9", f)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("-scale-replicas: %d twice", n)
		}
		out = append(out, n)
	}
	return out, nil
}

// spread reports whether the partitions each replica serves add up to
// parts, each replica serving at least one.
func spread(served []int, parts int) bool {
	sum := 0
	for _, n := range served {
		if n < 1 {
			return false
		}
		sum += n
	}
	return sum == parts
}

// steadyWindow is the part of a load from begin for dur that deliveries
// are counted in: warm cut from its start (slots filling, partitions
// getting their first notifications), scaleCool from its end.
func steadyWindow(begin time.Time, dur, warm time.Duration) (from, to time.Time) {
	return begin.Add(warm), begin.Add(dur - scaleCool)
}

// firstDeliveries maps each load id named by msgs to when its first message
// was stored, and counts the ids named by more than one message.
func firstDeliveries(msgs []rocketchattest.Message) (first map[int]time.Time, dup int) {
	first = map[int]time.Time{}
	count := map[int]int{}
	for _, m := range msgs {
		for seq := range tokensOf(m) {
			count[seq]++
			if t, ok := first[seq]; !ok || m.Created.Before(t) {
				first[seq] = m.Created
			}
		}
	}
	for _, n := range count {
		if n > 1 {
			dup++
		}
	}
	return first, dup
}

// countIn counts the times in [from, to).
func countIn(times []time.Time, from, to time.Time) int {
	n := 0
	for _, t := range times {
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return n
}

// perSec is n per second of [from, to), 0 for an empty window.
func perSec(n int, from, to time.Time) float64 {
	s := to.Sub(from).Seconds()
	if s <= 0 {
		return 0
	}
	return float64(n) / s
}

// scaleRun is what one replica count measured.
type scaleRun struct {
	replicas int
	// bound is replicas × the in-flight bound per sink / the chat's delay.
	bound float64
	// served is each replica's herald_queue_partitions_served once the
	// partitions were spread, and servedAfter after the load.
	served, servedAfter []int
	ready               []time.Duration // each replica's exec → /readyz 200
	// spreadAfter is from the last /readyz to spread, priming included.
	spreadAfter time.Duration
	load        *loadResult
	from, to    time.Time // the steady window
	// delivered counts the webhooks whose first chat message was stored
	// in the window, msgs the chat messages stored in it.
	delivered, msgs int
	// dup counts webhooks with more than one message, over the whole run.
	dup int
	// lat is send→chat of the webhooks delivered in the window.
	lat []time.Duration
	// perReplica is each replica's herald_deliveries_total{outcome="delivered"}
	// during the load.
	perReplica []float64
	// CPU during the load (first webhook sent until the last answered).
	span                        time.Duration
	heraldCPU, natsCPU, selfCPU time.Duration
	// natsMsgs is what the nodes received during the load (in_msgs).
	natsMsgs int64
	// heraldIdle and natsIdle are their CPU during idleSpan before it.
	heraldIdle, natsIdle time.Duration
	busy, steal          float64 // shares of the machine's CPU
	// machineCPU is the machine's busy CPU time, every process's.
	machineCPU time.Duration
	// events counts herald's log lines about partitions, summed over the
	// replicas.
	events map[string]int
}

func (r *scaleRun) rate() float64 { return perSec(r.delivered, r.from, r.to) }

// otherCPU is what processes other than herald, nats-server and this one
// used of the machine during the load.
func (r *scaleRun) otherCPU() time.Duration {
	return r.machineCPU - r.heraldCPU - r.natsCPU - r.selfCPU
}

// scaleResult is the scale scenario's runs and the generator's ceiling.
type scaleResult struct {
	delay      time.Duration
	conc       int
	partitions int
	rate       float64
	dur, warm  time.Duration
	natsConf   string // path of the nodes' config
	runs       []*scaleRun
	ceiling    *loadResult
}

// partitionEvents are herald's log messages about moving partitions.
var partitionEvents = []string{"partitions reassigned", "serving partition", "handed the partition over", "took over the partition; every group flows"}

// runScale runs the scale scenario for each of o.scaleReplicas under dir.
func runScale(ctx context.Context, o *options, dir string, templates []*template, logw io.Writer) (*scaleResult, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.natsServer); err != nil {
		return nil, fmt.Errorf("nats-server: %w (install it with scripts/install-nats-server.sh, or pass -nats-server)", err)
	}
	if _, err := os.Stat(o.natsConf); err != nil {
		return nil, fmt.Errorf("nats-server config: %w (run heraldload from the repository root, or pass -nats-conf)", err)
	}
	res := &scaleResult{delay: o.slowDelay, conc: deliveryBound(o.deliveryConc), partitions: cmp.Or(o.partitions, queue.DefaultPartitions),
		rate: o.scaleRate, dur: o.scaleDur, warm: o.scaleWarmup, natsConf: o.natsConf}
	for _, n := range o.scaleReplicas {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		fmt.Fprintf(logw, "  %d replica(s): starting a %d-node NATS cluster ...\n", n, natsNodes)
		r, err := runScaleOnce(ctx, o, res, n, filepath.Join(dir, fmt.Sprintf("replicas-%d", n)), templates, logw)
		if err != nil {
			return nil, fmt.Errorf("%d replica(s): %w", n, err)
		}
		res.runs = append(res.runs, r)
	}
	cspec := loadSpec{concurrency: o.concurrency, duration: ceilingSpan, maxCount: 999_999,
		firstSeq: firstSeqOf("scale"), templates: templates, timeout: 30 * time.Second}
	var err error
	if res.ceiling, _, err = runBare(ctx, cspec, "null-server"); err != nil {
		return nil, err
	}
	return res, nil
}

// runScaleOnce measures n replicas on a fresh cluster in dir: start,
// priming, spread, the load, and what it cost.
func runScaleOnce(ctx context.Context, o *options, res *scaleResult, n int, dir string, templates []*template, logw io.Writer) (*scaleRun, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cluster, err := startNATS(ctx, o.natsServer, o.natsConf, dir)
	if err != nil {
		return nil, err
	}
	defer cluster.stop()

	fake := rocketchattest.NewServer(rocketchattest.WithRooms("alerts"), rocketchattest.WithBotRole(true))
	defer fake.Close()
	fake.Inject(rocketchattest.Fault{Endpoint: "chat.sendMessage", Delay: res.delay})
	sc := &scenario{partitions: res.partitions, deliveryConc: o.deliveryConc, queueURL: cluster.url(), queueReplicas: natsNodes, logLevel: "info"}
	cfgPath := filepath.Join(dir, "herald.yml")
	if err := os.WriteFile(cfgPath, []byte(sc.config(fake.URL, "")), 0o600); err != nil {
		return nil, err
	}

	r := &scaleRun{replicas: n, bound: float64(n*res.conc) / res.delay.Seconds(), ready: make([]time.Duration, n), events: map[string]int{}}
	hs := make([]*herald, n)
	bases := make([]string, n)
	for i := range hs {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		hs[i] = &herald{bin: o.heraldBin, config: cfgPath, dataDir: filepath.Join(dir, fmt.Sprintf("herald-%d", i)),
			logPath: filepath.Join(dir, fmt.Sprintf("herald-%d.log", i)), addr: addr, env: o.heraldEnv}
		bases[i] = "http://" + addr
	}
	// Started at once, as a Deployment's pods are.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, h := range hs {
		wg.Go(func() { r.ready[i], errs[i] = h.start(90 * time.Second) })
	}
	wg.Wait()
	defer func() {
		var wg sync.WaitGroup
		for i, h := range hs {
			if errs[i] == nil { // a herald that failed to start was killed
				wg.Go(func() { _ = h.stop() })
			}
		}
		wg.Wait()
	}()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	readyAt := time.Now()
	urls := make([]string, n)
	for i, b := range bases {
		urls[i] = b + "/webhooks/alertmanager"
	}
	// A replica counts a partition as served from its first notification
	// on, so an idle queue shows none: prime every partition first.
	fmt.Fprintf(logw, "  %d replica(s) ready in %v; priming the partitions and waiting for them to be spread ...\n", n, roundAll(r.ready))
	prime := loadSpec{urls: urls, concurrency: 8, duration: time.Minute, maxCount: primePerPartition * res.partitions,
		firstSeq: firstSeqOf("scale") + primeSeqOffset, templates: templates, timeout: 30 * time.Second, retry5xx: true}
	pl := runLoad(ctx, prime)
	if pl.ok != prime.maxCount {
		return nil, fmt.Errorf("priming: %d of %d webhooks acknowledged: %v", pl.ok, prime.maxCount, pl.errs)
	}
	if d := waitDelivered(ctx, fake, pl, time.Minute); !d.drained {
		return nil, fmt.Errorf("priming: %d of %d webhooks delivered within a minute", d.delivered, pl.ok)
	}
	if r.served, err = waitSpread(ctx, bases, res.partitions, time.Minute); err != nil {
		return nil, err
	}
	r.spreadAfter = time.Since(readyAt)
	delivered0, err := scrapeDelivered(ctx, bases)
	if err != nil {
		return nil, err
	}

	spec := loadSpec{urls: urls, rate: res.rate, duration: res.dur,
		maxCount: min(int(math.Ceil(res.rate*res.dur.Seconds())), primeSeqOffset), maxInFlight: 512,
		firstSeq: firstSeqOf("scale"), templates: templates, timeout: 30 * time.Second, retry5xx: true}
	pids := cluster.pids()
	for _, h := range hs {
		pids = append(pids, h.pid())
	}
	idle0, err := cpuTimes(pids)
	if err != nil {
		return nil, err
	}
	time.Sleep(idleSpan)
	cpu0, err := cpuTimes(pids)
	if err != nil {
		return nil, err
	}
	r.heraldIdle, r.natsIdle = splitCPU(idle0, cpu0)
	msgs0, err := cluster.inMsgs(ctx)
	if err != nil {
		return nil, err
	}
	self0 := selfCPU()
	stat0, err := readProcStat()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "  %d replica(s) serve %v partitions; %.0f webhooks/s for %v ...\n", n, r.served, res.rate, res.dur)
	begin := time.Now()
	r.load = runLoad(ctx, spec)
	r.span = time.Since(begin)
	cpu1, err := cpuTimes(pids)
	if err != nil {
		return nil, err
	}
	r.selfCPU = selfCPU() - self0
	stat1, err := readProcStat()
	if err != nil {
		return nil, err
	}
	r.heraldCPU, r.natsCPU = splitCPU(cpu0, cpu1)
	msgs1, err := cluster.inMsgs(ctx)
	if err != nil {
		return nil, err
	}
	r.natsMsgs = msgs1 - msgs0
	r.busy = share(stat0, stat1, func(s procStat) uint64 { return s.busy })
	r.machineCPU = time.Duration(stat1.busy-stat0.busy) * time.Second / clockTicks
	r.steal = share(stat0, stat1, func(s procStat) uint64 { return s.steal })

	r.from, r.to = steadyWindow(begin, res.dur, res.warm)
	msgs := fake.TopLevel("alerts")
	first, dup := firstDeliveries(msgs)
	r.dup = dup
	var times []time.Time
	for _, m := range msgs {
		times = append(times, m.Created)
	}
	r.msgs = countIn(times, r.from, r.to)
	for _, s := range r.load.sent {
		t, ok := first[s.seq]
		if !ok || t.Before(r.from) || !t.Before(r.to) {
			continue
		}
		r.delivered++
		r.lat = append(r.lat, t.Sub(s.start))
	}
	delivered1, err := scrapeDelivered(ctx, bases)
	if err != nil {
		return nil, err
	}
	for i := range delivered1 {
		r.perReplica = append(r.perReplica, delivered1[i]-delivered0[i])
	}
	if r.servedAfter, err = scrapeServed(ctx, bases); err != nil {
		return nil, err
	}
	for _, h := range hs {
		if b, err := os.ReadFile(h.logPath); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				for _, e := range partitionEvents {
					if strings.Contains(line, ` msg="`+e+`"`) {
						r.events[e]++
					}
				}
			}
		}
	}
	fmt.Fprintf(logw, "  %d replica(s): %.0f delivered/s in the window (bound %.0f/s)\n", n, r.rate(), r.bound)
	return r, nil
}

// cpuTimes is cpuTime of each pid.
func cpuTimes(pids []int) ([]time.Duration, error) {
	out := make([]time.Duration, len(pids))
	for i, p := range pids {
		var err error
		if out[i], err = cpuTime(p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// splitCPU sums the CPU used between a and b, as cpuTimes of the
// cluster's pids followed by the heralds', into herald's and nats-server's.
func splitCPU(a, b []time.Duration) (herald, nats time.Duration) {
	for i := range a {
		if i < natsNodes {
			nats += b[i] - a[i]
		} else {
			herald += b[i] - a[i]
		}
	}
	return herald, nats
}

// scrapeMetrics returns the /metrics text of the herald at base.
func scrapeMetrics(ctx context.Context, base string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s/metrics: %s", base, resp.Status)
	}
	return string(b), nil
}

// scrapeServed reads herald_queue_partitions_served of each replica.
func scrapeServed(ctx context.Context, bases []string) ([]int, error) {
	out := make([]int, len(bases))
	for i, b := range bases {
		text, err := scrapeMetrics(ctx, b)
		if err != nil {
			return nil, err
		}
		v, ok := metricValues(text, "herald_queue_partitions_served")[""]
		if !ok {
			return nil, fmt.Errorf("%s/metrics: no herald_queue_partitions_served", b)
		}
		out[i] = int(v)
	}
	return out, nil
}

// scrapeDelivered reads herald_deliveries_total of sinkName, outcome
// delivered, of each replica (0 before the first delivery).
func scrapeDelivered(ctx context.Context, bases []string) ([]float64, error) {
	out := make([]float64, len(bases))
	for i, b := range bases {
		text, err := scrapeMetrics(ctx, b)
		if err != nil {
			return nil, err
		}
		for labels, v := range metricValues(text, "herald_deliveries_total") {
			if strings.Contains(labels, `outcome="delivered"`) && strings.Contains(labels, `sink="`+sinkName+`"`) {
				out[i] += v
			}
		}
	}
	return out, nil
}

// waitSpread waits until the replicas at bases serve every partition
// between them, each some, on two scrapes in a row, and returns what each
// serves.
func waitSpread(ctx context.Context, bases []string, parts int, timeout time.Duration) ([]int, error) {
	deadline := time.Now().Add(timeout)
	var last []int
	var lastErr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		served, err := scrapeServed(ctx, bases)
		lastErr = err
		if err == nil && spread(served, parts) {
			if slices.Equal(served, last) {
				return served, nil
			}
		}
		last = served
		time.Sleep(250 * time.Millisecond)
	}
	return nil, fmt.Errorf("the replicas did not spread the %d partitions within %v: last served %v (err %v)", parts, timeout, last, lastErr)
}

func (res *scaleResult) print(w io.Writer) {
	fmt.Fprintf(w, "\n== scenario scale\n")
	fmt.Fprintf(w, "setup:           %d-node NATS cluster (nats-server processes, %s, max_payload %s), queue.replicas %d, queue.partitions %d; one fake chat for every replica answering each chat.sendMessage after %v\n",
		natsNodes, res.natsConf, natsMaxPayload, natsNodes, res.partitions, res.delay)
	fmt.Fprintf(w, "load:            %.0f webhooks/s for %v, round-robin over the replicas, 5xx retried as Alertmanager does; delivered counted from %v after the start to %v before the end\n",
		res.rate, res.dur, res.warm, scaleCool)
	fmt.Fprintf(w, "bound:           replicas × %d (dispatch.max_in_flight_per_sink) / %v\n", res.conc, res.delay)
	for _, r := range res.runs {
		l := r.load
		fmt.Fprintf(w, "-- %d replica(s)\n", r.replicas)
		fmt.Fprintf(w, "  start:         ready in %v; partitions spread %v after the last /readyz: served %v, after the load %v\n",
			roundAll(r.ready), r.spreadAfter.Round(time.Millisecond), r.served, r.servedAfter)
		retried := 0
		for _, s := range l.sent {
			if s.retries > 0 {
				retried++
			}
		}
		fmt.Fprintf(w, "  ingest:        %d sent, %d acknowledged (%d after a retry), refused %v, %d skipped (%d in flight); p50 %s, p99 %s\n",
			len(l.sent), l.ok, retried, l.errs, l.behind, l.spec.maxInFlight, ms(percentile(l.latencies(), 50)), ms(percentile(l.latencies(), 99)))
		fmt.Fprintf(w, "  delivered:     %d webhooks in %.1f s = %.1f/s (%d chat messages, %.1f/s); bound %.0f/s, reached %.0f%%; duplicated %d\n",
			r.delivered, r.to.Sub(r.from).Seconds(), r.rate(), r.msgs, perSec(r.msgs, r.from, r.to), r.bound, 100*r.rate()/r.bound, r.dup)
		fmt.Fprintf(w, "  per replica:   herald_deliveries_total during the load %v\n", r.perReplica)
		fmt.Fprintf(w, "  send→chat:     p50 %s, p99 %s (of those delivered in the window; grows with the backlog)\n",
			ms(percentile(r.lat, 50)), ms(percentile(r.lat, 99)))
		fmt.Fprintf(w, "  CPU:           over %.1f s: herald %.1f s, nats-server %.1f s, load generator and fake chat %.1f s, other processes %.1f s; machine busy %.0f%%, steal %.0f%% of %d CPUs\n",
			r.span.Seconds(), r.heraldCPU.Seconds(), r.natsCPU.Seconds(), r.selfCPU.Seconds(), r.otherCPU().Seconds(), 100*r.busy, 100*r.steal, runtime.NumCPU())
		fmt.Fprintf(w, "  nats-server:   %d messages received by the nodes (in_msgs: from clients and from each other), %.1f per webhook acknowledged\n",
			r.natsMsgs, float64(r.natsMsgs)/float64(max(l.ok, 1)))
		fmt.Fprintf(w, "  idle CPU:      for %v before the load: herald %.0f%%, nats-server %.0f%% of a CPU (all replicas, all nodes)\n",
			idleSpan, 100*r.heraldIdle.Seconds()/idleSpan.Seconds(), 100*r.natsIdle.Seconds()/idleSpan.Seconds())
		fmt.Fprintf(w, "  herald log:    ")
		for i, e := range partitionEvents {
			if i > 0 {
				fmt.Fprint(w, ", ")
			}
			fmt.Fprintf(w, "%q %d", e, r.events[e])
		}
		fmt.Fprintln(w)
	}
	ceiling := 0.0
	if res.ceiling != nil {
		ceiling = res.ceiling.throughput()
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "replicas\tpartitions served\tbound/s\tdelivered/s\tof bound\t× first row\tsend→chat p50 / p99\tingest acked/s\therald CPU-s\tnats CPU-s\tother CPU-s\tmachine busy\tgenerator ceiling/s")
	for _, r := range res.runs {
		vs := 0.0
		if first := res.runs[0].rate(); first > 0 {
			vs = r.rate() / first
		}
		fmt.Fprintf(tw, "%d\t%v\t%.0f\t%.1f\t%.0f%%\t%.2f\t%.0f / %.0f ms\t%.0f\t%.1f\t%.1f\t%.1f\t%.0f%%\t%.0f\n",
			r.replicas, r.served, r.bound, r.rate(), 100*r.rate()/r.bound, vs,
			msf(percentile(r.lat, 50)), msf(percentile(r.lat, 99)), r.load.throughput(),
			r.heraldCPU.Seconds(), r.natsCPU.Seconds(), r.otherCPU().Seconds(), 100*r.busy, ceiling)
	}
	tw.Flush()
	var busy []string
	for _, r := range res.runs {
		if cpuBound(r.rate()/r.bound, r.busy) {
			busy = append(busy, strconv.Itoa(r.replicas))
		}
	}
	if len(busy) > 0 {
		fmt.Fprintf(w, "CPU-bound?       with %s replica(s) delivery stayed under %.0f%% of the bound while the machine was %.0f%% busy or more: the CPUs, not the chat's delay, may bound it there; lower -delivery-concurrency and -scale-rate (e.g. 8 and 150)\n",
			strings.Join(busy, ", "), 100*boundReached, 100*cpuBoundBusy)
	}
}

// A run that reached less than boundReached of its bound while the
// machine was cpuBoundBusy busy or more may be bound by the CPUs rather
// than by the chat's delay.
const (
	boundReached = 0.9
	cpuBoundBusy = 0.85
)

// cpuBound applies boundReached and cpuBoundBusy to a run that reached
// reached of its bound with the machine busy busy.
func cpuBound(reached, busy float64) bool { return reached < boundReached && busy >= cpuBoundBusy }
