package main

import (
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"

	"github.com/herald-notify/herald/internal/config"
)

// checkConfig loads a config strictly and prints it with defaults applied,
// secrets (URL credentials too) shown as <secret>. Warnings go to stderr
// and do not fail the check.
func checkConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: herald check-config FILE")
	}
	cfg, err := config.Load(args[0])
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
	fmt.Fprintf(stdout, "# %s is valid; with defaults applied:\n%s", args[0], out)
	return nil
}
