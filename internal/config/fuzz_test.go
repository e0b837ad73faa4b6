package config

import (
	"os"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the config parser: it must never
// panic, and a config it accepts must be valid and parse the same way again.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	if b, err := os.ReadFile("../../deploy/herald.example.yml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("routes: [{name: a, chain: [x], matchers: ['a=~\"(\"']}]\n"))
	f.Add([]byte("sinks: [{name: a, rocketchat: {url: 'http://x', token: t, user_id: u, channel: '#a'}}]\nroutes: [{name: d, chain: [a]}]\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("fuzz.yml", b)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned both a config and an error")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate again: %v", err)
		}
	})
}
