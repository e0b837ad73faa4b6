package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/version"
)

// serveProfiled is the hidden `heraldload herald-profiled PREFIX CONFIG
// LISTEN DATADIR` mode: what `herald serve` does, in a child process like
// herald's, with a CPU profile written to PREFIX.cpu.pprof and, at exit,
// mutex, block and heap profiles to PREFIX.{mutex,block,heap}.pprof, and
// on SIGUSR1 a heap profile to PREFIX.loaded.heap.pprof. It is
// how -profile looks inside herald under load without a pprof endpoint.
func serveProfiled(prefix, cfgPath, listen, dataDir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	cfg.Listen, cfg.DataDir = listen, dataDir

	f, err := os.Create(prefix + ".cpu.pprof")
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.SetMutexProfileFraction(5)
	runtime.SetBlockProfileRate(int(100 * time.Microsecond))
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()

	// SIGUSR1 writes a heap profile of that moment: heraldload sends it
	// when the load ends, near the peak of the heap.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go func() {
		for range usr1 {
			runtime.GC()
			_ = writeProfile(prefix+".loaded", "heap")
		}
	}()

	logger := app.NewLogger(cfg.Log)
	logger.Info("starting (profiled)", "version", version.String())
	shutdownTracing, err := telemetry.Setup(ctx, telemetry.Options{ServiceVersion: version.Version, Logger: logger})
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, logger, app.Options{})
	if err != nil {
		return err
	}
	serveErr := a.Serve(ctx)
	closeErr := a.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = shutdownTracing(sctx)
	var errs []error
	for _, name := range []string{"mutex", "block", "heap"} {
		if err := writeProfile(prefix, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(append(errs, serveErr, closeErr)...)
}

func writeProfile(prefix, name string) error {
	f, err := os.Create(fmt.Sprintf("%s.%s.pprof", prefix, name))
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup(name).WriteTo(f, 0)
}
