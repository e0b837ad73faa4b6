// Command heraldload is herald's end-to-end load benchmark. It builds and
// starts `herald serve` as a child process (embedded queue in a temporary
// data dir, default fsync policy) with a fake Rocket.Chat (rocketchattest,
// REST bot mode, no rate limit) in this process as its only sink, fires
// realistic Alertmanager webhooks at it over loopback, and reports:
//
//   - ingest: webhooks/s answered 200, request latency p50/p99;
//   - receipt→chat: from sending each webhook (and from its 200) to the
//     moment the fake stored the chat message it produced, matched by a
//     unique label rendered in the message text; delivered, lost,
//     duplicated;
//   - herald's CPU seconds per 1,000 webhooks (utime+stime from
//     /proc/<pid>/stat, from before the load until everything was delivered);
//   - herald's RSS idle (after start, before load) and peak (VmHWM);
//   - ready-to-serve time: from exec to /readyz 200, on a fresh data dir and
//     on the same data dir restarted.
//
// The ingest scenario also runs a bare decode-only HTTP handler (in its own
// process) with the same generator and prints herald's ingest as a ratio of
// it: absolute numbers on a shared machine are noisy, the ratio less so.
// Every scenario also drives a server that does nothing (in its own
// process) at -c for a few seconds: the load generator's own ceiling on
// this machine, printed beside every ratio, since a ratio near it measures
// the generator and not herald.
//
// Scenarios (-scenario, comma-separated, default all):
//
//	ingest       fixed concurrency -c (32) for -ingest-duration, delivering
//	             meanwhile
//	ingest-only  the same while the fake holds every chat post: herald's
//	             ingest without its own deliveries competing for the CPUs
//	e2e          fixed rate -rate (1000/s) for -e2e-duration (30s)
//	slow         the fake answers every chat.sendMessage after -slow-delay
//	             (200ms); -slow-rate for -slow-duration, every webhook its
//	             own group: ingest must not wait on the sink, delivery runs
//	             at most dispatch.max_in_flight_per_sink / delay
//	broken       two routes, each with its own fake and no fallback:
//	             severity="critical" to one that answers 503 to everything,
//	             the rest to a healthy one; -broken-rate for
//	             -broken-duration, every fourth webhook critical, each its
//	             own group: the healthy route's receipt→chat while the
//	             broken one retries, and what herald holds back
//	scale        not part of all: for each count of -scale-replicas
//	             (1,2,3), a fresh 3-node cluster of -nats-server processes
//	             (deploy/nats/nats.conf) and that many herald replicas
//	             sharing its queue (started at once), one fake
//	             answering every chat.sendMessage after -slow-delay;
//	             -scale-rate over the replicas for -scale-duration: the
//	             deliveries per second against replicas ×
//	             dispatch.max_in_flight_per_sink / delay, side by side
//
// Run it from the repository root (it runs `go build ./cmd/herald`) or pass
// -herald. All traffic stays on 127.0.0.1.
//
//	go run ./cmd/heraldload
//	go run ./cmd/heraldload -scenario e2e -rate 500 -e2e-duration 10s
//	go run ./cmd/heraldload -scenario ingest -profile /tmp/prof  # then go tool pprof
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

type options struct {
	heraldBin    string
	scenarios    []string
	concurrency  int
	ingestDur    time.Duration
	rate         float64
	e2eDur       time.Duration
	slowRate     float64
	slowDur      time.Duration
	slowDelay    time.Duration
	brokenRate   float64
	brokenDur    time.Duration
	partitions   int
	deliveryConc int
	maxAlerts    int
	drainTimeout time.Duration
	restarts     int
	seed         uint64
	keep         bool
	noBare       bool
	profileDir   string
	heraldEnv    []string
	jsonOut      string

	// The scale scenario.
	scaleReplicas []int
	scaleRate     float64
	scaleDur      time.Duration
	scaleWarmup   time.Duration
	natsServer    string
	natsConf      string
}

func main() {
	if len(os.Args) == 6 && os.Args[1] == "herald-profiled" {
		if err := serveProfiled(os.Args[2], os.Args[3], os.Args[4], os.Args[5]); err != nil {
			fmt.Fprintln(os.Stderr, "herald-profiled:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 3 && (os.Args[1] == "bare-server" || os.Args[1] == "null-server") {
		h := bareHandler()
		if os.Args[1] == "null-server" {
			h = nullHandler()
		}
		if err := serveChild(h, os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, os.Args[1]+":", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "heraldload:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("heraldload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scen := fs.String("scenario", "all", "scenarios to run, comma-separated: ingest, ingest-only, e2e, slow, broken, all (these five), scale")
	fs.StringVar(&o.heraldBin, "herald", "", "herald binary (default: go build ./cmd/herald into a temp dir)")
	fs.IntVar(&o.concurrency, "c", 32, "ingest: concurrent senders")
	fs.DurationVar(&o.ingestDur, "ingest-duration", 10*time.Second, "ingest: how long to send")
	fs.Float64Var(&o.rate, "rate", 1000, "e2e: webhooks per second")
	fs.DurationVar(&o.e2eDur, "e2e-duration", 30*time.Second, "e2e: how long to send")
	fs.Float64Var(&o.slowRate, "slow-rate", 200, "slow: webhooks per second")
	fs.DurationVar(&o.slowDur, "slow-duration", 10*time.Second, "slow: how long to send")
	fs.DurationVar(&o.slowDelay, "slow-delay", 200*time.Millisecond, "slow: the fake's delay per chat.sendMessage")
	fs.Float64Var(&o.brokenRate, "broken-rate", 20, "broken: webhooks per second")
	fs.DurationVar(&o.brokenDur, "broken-duration", 10*time.Second, "broken: how long to send")
	replicas := fs.String("scale-replicas", "1,2,3", "scale: herald replica counts to run, comma-separated")
	fs.Float64Var(&o.scaleRate, "scale-rate", 600, "scale: webhooks per second, over all replicas")
	fs.DurationVar(&o.scaleDur, "scale-duration", 20*time.Second, "scale: how long to send")
	fs.DurationVar(&o.scaleWarmup, "scale-warmup", 5*time.Second, "scale: time from the start of the load not counted in delivered/s")
	fs.StringVar(&o.natsServer, "nats-server", ".tools/bin/nats-server", "scale: the nats-server binary (scripts/install-nats-server.sh)")
	fs.StringVar(&o.natsConf, "nats-conf", "deploy/nats/nats.conf", "scale: the config every nats-server node runs")
	fs.IntVar(&o.partitions, "partitions", 0, "herald queue.partitions (0: herald's default)")
	fs.IntVar(&o.deliveryConc, "delivery-concurrency", 0, "herald dispatch.max_in_flight_per_sink, with dispatch.max_in_flight this times the scenario's sinks (0: herald's defaults)")
	fs.IntVar(&o.maxAlerts, "max-alerts", 20, "alerts per webhook: 1 to this many, uniformly")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 120*time.Second, "how long to wait for deliveries after the load")
	fs.IntVar(&o.restarts, "restarts", 3, "times to restart herald on the used data dir to time ready-to-serve")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the generated webhooks")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp dir (config, data, herald logs)")
	fs.BoolVar(&o.noBare, "no-bare", false, "skip the bare decode-only baseline")
	fs.StringVar(&o.profileDir, "profile", "", "run herald inside a heraldload herald-profiled child and write its CPU, mutex, block and heap profiles to this dir as <scenario>.*.pprof (numbers then include the profiler's cost)")
	fs.StringVar(&o.jsonOut, "json", "", "also write each scenario's numbers to this file as JSON")
	env := fs.String("herald-env", "", "extra environment for herald, comma-separated NAME=value (e.g. GOGC=50,GOMEMLIMIT=64MiB)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, kv := range strings.Split(*env, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("-herald-env: %q is not NAME=value", kv)
		}
		o.heraldEnv = append(o.heraldEnv, kv)
	}
	var err error
	if o.scaleReplicas, err = parseReplicas(*replicas); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, s := range strings.Split(*scen, ",") {
		switch s = strings.TrimSpace(s); s {
		case "all":
			o.scenarios = append(o.scenarios, "ingest", "ingest-only", "e2e", "slow", "broken")
		case "ingest", "ingest-only", "e2e", "slow", "broken", "scale":
			o.scenarios = append(o.scenarios, s)
		default:
			return nil, fmt.Errorf("-scenario: unknown %q (ingest, ingest-only, e2e, slow, broken, all, scale)", s)
		}
	}
	switch {
	case o.concurrency < 1 || o.concurrency > 1024:
		return nil, errors.New("-c: between 1 and 1024")
	case o.rate <= 0 || o.slowRate <= 0 || o.brokenRate <= 0 || o.scaleRate <= 0 ||
		o.rate > 100000 || o.slowRate > 100000 || o.brokenRate > 100000 || o.scaleRate > 100000:
		return nil, errors.New("-rate, -slow-rate, -broken-rate, -scale-rate: between 0 and 100000")
	case o.maxAlerts < 1 || o.maxAlerts > 1000:
		return nil, errors.New("-max-alerts: between 1 and 1000")
	case o.ingestDur <= 0 || o.e2eDur <= 0 || o.slowDur <= 0 || o.brokenDur <= 0 ||
		o.ingestDur > time.Hour || o.e2eDur > time.Hour || o.slowDur > time.Hour || o.brokenDur > time.Hour ||
		o.scaleDur <= 0 || o.scaleDur > time.Hour || o.slowDelay <= 0:
		return nil, errors.New("durations: between 0 and 1h")
	case o.scaleWarmup < 0 || o.scaleWarmup+scaleCool >= o.scaleDur:
		return nil, fmt.Errorf("-scale-warmup: from 0 to -scale-duration less %v", scaleCool)
	case o.deliveryConc < 0 || o.deliveryConc > 5000:
		return nil, errors.New("-delivery-concurrency: between 0 and 5000")
	case o.restarts < 0 || o.restarts > 20:
		return nil, errors.New("-restarts: between 0 and 20")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "heraldload-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(stderr, "keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if o.heraldBin == "" {
		fmt.Fprintln(stderr, "building herald ...")
		if o.heraldBin, err = buildHerald(ctx, tmp); err != nil {
			return err
		}
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}
	templates, err := makeTemplates(512, o.maxAlerts, o.seed)
	if err != nil {
		return err
	}
	// The same bodies with the severity set by brokenSeverity; 512 is a
	// multiple of brokenEvery.
	brokenTemplates, err := makeTemplatesWith(512, o.maxAlerts, o.seed, brokenSeverity)
	if err != nil {
		return err
	}
	printMachine(stdout)
	fmt.Fprintf(stdout, "command: heraldload %s\n", strings.Join(args, " "))
	var results []*scenarioResult
	for i, name := range o.scenarios {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		dir := filepath.Join(tmp, fmt.Sprintf("%d-%s", i, name))
		if name == "scale" {
			fmt.Fprintf(stderr, "scenario %s ...\n", name)
			r, err := runScale(ctx, o, dir, templates, stderr)
			if err != nil {
				return fmt.Errorf("scenario %s: %w", name, err)
			}
			r.print(stdout)
			continue
		}
		sc := scenarioFor(name, o)
		sc.dir = dir
		sc.templates = templates
		if sc.broken {
			sc.templates = brokenTemplates
		}
		fmt.Fprintf(stderr, "scenario %s ...\n", name)
		r, err := runScenario(ctx, sc, stderr)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", name, err)
		}
		r.print(stdout)
		results = append(results, r)
	}
	if len(results) > 0 {
		printTargets(stdout, results)
	}
	if o.jsonOut != "" {
		return writeSummary(o.jsonOut, results)
	}
	return nil
}

func printMachine(w io.Writer) {
	model := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s, %s/%s, %s\n",
		runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format(time.RFC3339))
}
