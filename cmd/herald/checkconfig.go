package main

import (
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"

	"github.com/herald-notify/herald/internal/config"
)

// checkConfig loads a config strictly and prints it with defaults applied
// and secrets shown as <secret>.
func checkConfig(args []string, stdout io.Writer) error {
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
	fmt.Fprintf(stdout, "# %s is valid; with defaults applied:\n%s", args[0], out)
	return nil
}
