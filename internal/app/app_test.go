package app_test

import (
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app/apptest"
)

const logOnly = `
auth:
  clients: [{name: t, token: tok-app-test}]
sinks: [{name: log, log: {}}]
routes: [{name: default, chain: [log]}]
`

// TestPublishIsDeliveredAndSurvivesRestart sends through the whole herald:
// API → JetStream → dispatcher → sink, and reads the record back after a
// restart on the same data dir.
func TestPublishIsDeliveredAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	h := apptest.Start(t, logOnly, apptest.Options{DataDir: dir})
	res, err := h.Client().Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{Notification: &heraldv1.Notification{
		Source: "t", Severity: heraldv1.Severity_SEVERITY_WARNING, Title: "hello", IdempotencyKey: "k1",
	}}))
	if err != nil {
		t.Fatal(err)
	}
	got := h.WaitDelivered(t, res.Msg.GetId(), heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, 10*time.Second)
	if got.GetDelivery().GetDeliveredBy() != "log" {
		t.Errorf("delivered_by = %q, want log", got.GetDelivery().GetDeliveredBy())
	}
	h.Stop()

	h2 := apptest.Start(t, logOnly, apptest.Options{DataDir: dir})
	again, err := h2.Client().Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{Notification: &heraldv1.Notification{
		Source: "t", Severity: heraldv1.Severity_SEVERITY_WARNING, Title: "hello", IdempotencyKey: "k1",
	}}))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Msg.GetDuplicate() || again.Msg.GetId() != res.Msg.GetId() {
		t.Errorf("publish after restart = %v, want duplicate of %s", again.Msg, res.Msg.GetId())
	}
	rec := h2.WaitDelivered(t, res.Msg.GetId(), heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, 10*time.Second)
	if rec.GetNotification().GetTitle() != "hello" {
		t.Errorf("after restart: %v", rec.GetNotification())
	}
}

func TestWebhookStatusCodesThroughServe(t *testing.T) {
	h := apptest.Start(t, logOnly, apptest.Options{})
	if code := h.PostWebhook(t, `{"version":"4","status":"firing","receiver":"r","groupKey":"{}:{a=\"b\"}","alerts":[{"status":"firing","labels":{"alertname":"A"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"f1"}]}`); code != 200 {
		t.Errorf("valid webhook: HTTP %d", code)
	}
	if code := h.PostWebhook(t, `{"version":"3"}`); code != 400 {
		t.Errorf("wrong version: HTTP %d, want 400", code)
	}
	if code := h.PostWebhook(t, strings.Repeat("x", 5<<20)); code != 413 {
		t.Errorf("5 MiB webhook: HTTP %d, want 413", code)
	}
}
