package main

import (
	"bytes"
	"os"
	"regexp"
	"testing"
)

// TestRouteTestOnExampleConfig runs herald route test on the config the
// docs hand to new users: each severity's route, the fan-out of critical
// to the on-call webhook, and the fallback to Slack.
func TestRouteTestOnExampleConfig(t *testing.T) {
	// The example names its secrets as ${NAME}s; any value does here but
	// the webhook's URL, which must be one.
	for _, name := range regexp.MustCompile(`\$\{([A-Z0-9_]+)\}`).FindAllStringSubmatch(string(mustRead(t, "../../deploy/herald.example.yml")), -1) {
		t.Setenv(name[1], "example-"+name[1])
	}
	t.Setenv("ONCALL_WEBHOOK_URL", "https://oncall.example.com/hooks/herald")
	tests := []struct {
		labels []string
		want   string
	}{
		{[]string{"severity=critical", "team=db"}, `route page (severity critical)
  oncall-webhook

route critical
  rocketchat → #alerts-critical
  slack → #alerts-critical — fallback
`},
		{[]string{"severity=warning"}, `route warning (severity warning)
  rocketchat → #alerts-warning
  slack → #alerts-warning — fallback
`},
		{[]string{"alertname=Watchdog"}, `route default (severity info)
  rocketchat → #alerts-info
  slack → #alerts-info — fallback
`},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		args := append([]string{"route", "test", "-config", "../../deploy/herald.example.yml"}, tt.labels...)
		if code := run(t.Context(), args, &out, &errOut); code != 0 || out.String() != tt.want {
			t.Errorf("route test %v = %d:\n%s\nstderr %s\nwant:\n%s", tt.labels, code, out.String(), errOut.String(), tt.want)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
