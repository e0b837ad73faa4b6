package app

import (
	"slices"
	"testing"

	"github.com/herald-notify/herald/internal/config"
)

// TestRestartOnly: what a reload cannot change is named; renewed TLS
// files, which a reload reads again, are not.
func TestRestartOnly(t *testing.T) {
	base := func() *config.Config {
		c := config.Default()
		c.TLS = config.TLSConfig{CertFile: "/etc/herald/tls.crt", KeyFile: "/etc/herald/tls.key"}
		return c
	}
	tests := []struct {
		name string
		edit func(*config.Config)
		want []string
	}{
		{"nothing", func(*config.Config) {}, nil},
		{"other TLS files", func(c *config.Config) { c.TLS.CertFile = "/etc/herald/renewed.crt" }, nil},
		{"TLS off", func(c *config.Config) { c.TLS = config.TLSConfig{} }, []string{"tls (on or off)"}},
		{"listen and data_dir", func(c *config.Config) { c.Listen, c.DataDir = ":9999", "/elsewhere" }, []string{"listen", "data_dir"}},
		{"log level", func(c *config.Config) { c.Log.Level = "debug" }, []string{"log"}},
	}
	for _, tt := range tests {
		next := base()
		tt.edit(next)
		if got := restartOnly(base(), next); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
