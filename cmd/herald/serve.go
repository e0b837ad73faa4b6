package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/version"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "[-config FILE] [flags]",
		"Runs herald. Without a config file it runs with the defaults: an embedded queue\n"+
			"in ./data, one log sink that every notification is routed to, and :8093.")
	path := fs.String("config", os.Getenv("HERALD_CONFIG"), "config file (default: built-in defaults; env HERALD_CONFIG)")
	listen := fs.String("listen", "", "listen address, overriding the config's listen")
	dataDir := fs.String("data-dir", "", "data directory, overriding the config's data_dir")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf(fs, "unexpected argument %q (a config file is given with -config FILE)", fs.Arg(0))
	}
	// load reads the config as a start and each reload see it: the file
	// (or the defaults) with the command line's overrides.
	load := func() (*config.Config, error) {
		cfg := config.Default()
		if *path != "" {
			var err error
			if cfg, err = config.Load(*path); err != nil {
				return nil, err
			}
		}
		if *listen != "" {
			cfg.Listen = *listen
		}
		if *dataDir != "" {
			cfg.DataDir = *dataDir
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	var reload func() (*config.Config, error)
	if *path != "" {
		reload = load
	}
	logger := app.NewLogger(cfg.Log)
	logger.Info("starting", "version", version.String(), "config", *path)
	for _, w := range cfg.Warnings() {
		logger.Warn("config: " + w)
	}
	// Under a container's or systemd unit's memory limit (cgroup), keep the
	// Go heap within 90% of it, as Prometheus does: near the limit the GC
	// works harder instead of letting a burst grow the heap into an OOM
	// kill. GOMEMLIMIT set in the environment wins; AUTOMEMLIMIT=off turns
	// this off. Without a limit nothing changes.
	if _, err := memlimit.Set(memlimit.WithLogger(logger.With("component", "memlimit"))); err != nil {
		logger.Warn("cannot derive GOMEMLIMIT from the cgroup memory limit", "err", err)
	}
	shutdownTracing, err := telemetry.Setup(ctx, telemetry.Options{ServiceVersion: version.Version, Logger: logger})
	if err != nil {
		return err
	}
	defer func() {
		// After the server drained: flush the last spans, bounded.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(sctx); err != nil {
			logger.Warn("flushing traces", "err", err)
		}
	}()
	a, err := app.New(ctx, cfg, logger, app.Options{Load: reload})
	if err != nil {
		return err
	}
	// SIGHUP reloads the config, as it does Prometheus and Alertmanager;
	// App.Reload logs the outcome.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = a.Reload(ctx)
			}
		}
	}()
	serveErr := a.Serve(ctx)
	closeErr := a.Close()
	if serveErr != nil {
		return serveErr
	}
	if closeErr == nil {
		logger.Info("stopped cleanly")
	}
	return closeErr
}
