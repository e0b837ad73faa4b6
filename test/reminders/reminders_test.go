// Package reminders_test runs a whole herald against the strict Rocket.Chat
// and Slack fakes (each its own route: fan-out) through a group's life as
// Alertmanager tells it: firing, three repeats of the same (its
// repeat_interval), one alert added, resolved. It checks every message and
// edit each chat received against a golden file: the repeats are short
// reminders in the group's thread, leave the group's message alone, and
// mention people only as configured.
package reminders_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app/apptest"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
	"github.com/herald-notify/herald/sinks/slack/slackfake"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const (
	apiToken = "reminders-api-token"
	hang     = 30 * time.Second
)

func TestGroupLifeWithRepeats(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole herald")
	}
	srv := rocketchattest.NewServer(rocketchattest.WithRooms("alerts"))
	t.Cleanup(srv.Close)
	sl := slackfake.New("xoxb-reminders")
	t.Cleanup(sl.Close)
	sl.AddChannel("alerts")
	h := apptest.Start(t, fmt.Sprintf(`
auth:
  clients: [{name: reminders, token: %s}]
sinks:
  - name: rocketchat
    rocketchat:
      url: %s
      mode: rest
      user_id: %s
      token: %q
      channel: "#alerts"
      mentions: {critical: "@here"}
      remind_mention_every: {critical: 3}
  - name: slack
    slack:
      mode: bot
      api_url: %s
      token: xoxb-reminders
      channel: "#alerts"
      pace: 10ms
      mentions: {critical: "<!here>"}
      remind_mention_every: {critical: 3}
routes:
  - name: chat
    chain: [rocketchat]
    continue: true
  - name: default
    chain: [slack]
`, apiToken, srv.URL, srv.UserID(), srv.Token(), sl.APIURL()), apptest.Options{
		Logger: slog.New(slog.NewTextHandler(testutil.LogWriter(t, ""), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})

	start := time.Date(2026, 12, 4, 13, 42, 0, 0, time.UTC)
	alert := func(fp, instance string, resolved bool) *heraldv1.Alert {
		a := &heraldv1.Alert{
			Fingerprint: fp, Status: heraldv1.Status_STATUS_FIRING,
			Labels:      map[string]string{"alertname": "DiskFull", "severity": "critical", "instance": instance},
			Annotations: map[string]string{"summary": instance + " disk almost full"},
			StartsAt:    timestamppb.New(start),
		}
		if resolved {
			a.Status, a.EndsAt = heraldv1.Status_STATUS_RESOLVED, timestamppb.New(start.Add(time.Hour))
		}
		return a
	}
	two := []*heraldv1.Alert{alert("a1", "db-1", false), alert("b2", "db-2", false)}
	three := append(two[:2:2], alert("c3", "db-3", false))
	done := []*heraldv1.Alert{alert("a1", "db-1", true), alert("b2", "db-2", true), alert("c3", "db-3", true)}
	steps := []struct {
		name   string
		alerts []*heraldv1.Alert
		status heraldv1.Status
	}{
		{"firing", two, heraldv1.Status_STATUS_FIRING},
		{"repeat 1", two, heraldv1.Status_STATUS_FIRING},
		{"repeat 2", two, heraldv1.Status_STATUS_FIRING},
		{"repeat 3", two, heraldv1.Status_STATUS_FIRING},
		{"one alert added", three, heraldv1.Status_STATUS_FIRING},
		{"resolved", done, heraldv1.Status_STATUS_RESOLVED},
	}
	c := h.Client()
	for i, st := range steps {
		// Each repeat is a new webhook of Alertmanager's: its own
		// idempotency key, the group's alerts unchanged.
		res, err := c.Publish(context.Background(), connect.NewRequest(&heraldv1.PublishRequest{Notification: &heraldv1.Notification{
			Source: "alertmanager", Receiver: "oncall", Severity: heraldv1.Severity_SEVERITY_CRITICAL, Status: st.status,
			Title: "DiskFull", GroupKey: `{}:{alertname="DiskFull"}`, IdempotencyKey: fmt.Sprintf("step-%d", i),
			Labels: map[string]string{"alertname": "DiskFull", "severity": "critical"},
			Alerts: st.alerts,
		}}))
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		// One at a time, as Alertmanager's group_interval spaces them; the
		// Slack copy is the fan-out's second (id "-1").
		h.WaitDelivered(t, res.Msg.GetId(), heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, hang)
		h.WaitDelivered(t, res.Msg.GetId()+"-1", heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, hang)
	}

	var b strings.Builder
	for _, m := range srv.TopLevel("alerts") {
		fmt.Fprintf(&b, "== message (as posted)\n%s\n", first(m))
		for i, e := range append(m.Edits[min(1, len(m.Edits)):], m.Text) {
			if len(m.Edits) == 0 {
				break
			}
			fmt.Fprintf(&b, "== edit %d\n%s\n", i+1, e)
		}
		for i, r := range srv.Thread(m.ID) {
			fmt.Fprintf(&b, "== thread reply %d (%d attachments)\n%s\n", i+1, len(r.Attachments), r.Text)
		}
	}
	msgs := sl.Messages("alerts")
	for _, m := range msgs {
		if m.ThreadTS != "" {
			continue
		}
		fmt.Fprintf(&b, "== slack message (%d edits, now)\n%s\n", m.Edits, m.Text)
		i := 0
		for _, r := range msgs {
			if r.ThreadTS == m.TS {
				i++
				fmt.Fprintf(&b, "== slack thread reply %d\n%s\n", i, r.Text)
			}
		}
	}
	got := b.String()
	path := "testdata/group_life.golden"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("the room differs from %s (go test -update to accept):\n%s", path, got)
	}
	if n := srv.Count("chat.update"); n != 2 {
		t.Errorf("%d chat.update calls, want 2: the added alert and the resolve; reminders change nothing", n)
	}
	if len(msgs) == 0 || msgs[0].Edits != 2 {
		t.Errorf("Slack's group message: %+v, want 2 edits: the added alert and the resolve", msgs)
	}
}

// first is a message's text as it was posted.
func first(m rocketchattest.Message) string {
	if len(m.Edits) > 0 {
		return m.Edits[0]
	}
	return m.Text
}
