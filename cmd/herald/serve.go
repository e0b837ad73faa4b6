package main

import (
	"context"
	"flag"
	"io"
	"os"

	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/version"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", os.Getenv("HERALD_CONFIG"), "config file (default: built-in defaults; env HERALD_CONFIG)")
	listen := fs.String("listen", "", "listen address, overriding the config's listen")
	dataDir := fs.String("data-dir", "", "data directory, overriding the config's data_dir")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := config.Default()
	if *path != "" {
		var err error
		if cfg, err = config.Load(*path); err != nil {
			return err
		}
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	logger := app.NewLogger(cfg.Log)
	logger.Info("starting", "version", version.String(), "config", *path)
	a, err := app.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
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
