package logsink

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
)

func TestSendLogsRenderedNotification(t *testing.T) {
	var buf bytes.Buffer
	s, _ := New("log", Config{}, sinks.Deps{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	n := &heraldv1.Notification{Id: "01X", Title: "Disk full", Text: "on\n  db-1", Status: heraldv1.Status_STATUS_FIRING,
		Severity: heraldv1.Severity_SEVERITY_CRITICAL, Labels: map[string]string{"b": "2", "a": "1"},
		Alerts: []*heraldv1.Alert{{}, {}}}
	if _, err := s.Send(t.Context(), n, sinks.Target{Channel: "#x"}); err != nil {
		t.Fatal(err)
	}
	want := `[FIRING] [critical] Disk full — on db-1 {a="1", b="2"} (2 alerts)`
	if got := Render(n); got != want {
		t.Errorf("Render = %q, want %q", got, want)
	}
	if !strings.Contains(buf.String(), "id=01X") || !strings.Contains(buf.String(), "channel=#x") {
		t.Errorf("log line lacks id or channel: %s", buf.String())
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Send(ctx, n, sinks.Target{}); err == nil {
		t.Error("Send with a cancelled context succeeded")
	}
}
