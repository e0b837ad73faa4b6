package main

import (
	"context"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"

	"github.com/herald-notify/herald/internal/config"
)

// checkConfig loads a config strictly and prints it with defaults applied,
// secrets (URL credentials too) shown as <secret>. Warnings go to stderr
// and do not fail the check.
func checkConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check-config", "FILE",
		"Checks a config file as herald serve would load it, and prints it with every\n"+
			"default applied and secrets shown as <secret>. Problems name the line and key;\n"+
			"any problem exits 1. Warnings go to stderr and do not fail the check.")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf(fs, "one config file is required")
	}
	path := fs.Arg(0)
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "herald check-config: warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "# %s is valid; with defaults applied:\n%s", path, out)
	return nil
}
