package shim

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
)

// TestConvertOwnedMapsGiveTheSameNotifications checks the handler's
// shortcut: converting with own=true (maps handed over, not copied) gives
// the same notifications as Convert, and Convert still copies, so a caller
// changing its message afterwards does not change what was converted.
func TestConvertOwnedMapsGiveTheSameNotifications(t *testing.T) {
	for _, n := range benchSizes {
		body := benchWebhookBytes(t, n)
		m1, err := Decode(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		m2, err := Decode(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		copied, err := Convert(m1)
		if err != nil {
			t.Fatal(err)
		}
		owned, err := convert(m2, true, DefaultMaxNotificationBytes)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(copied[0], owned.n) {
			t.Errorf("alerts=%d: owned conversion differs from Convert", n)
		}
		m1.Alerts[0].Labels["pod"] = "changed"
		m1.Alerts[0].Annotations["summary"] = "changed"
		m1.CommonAnnotations["runbook_url"] = "changed"
		if copied[0].GetAlerts()[0].GetLabels()["pod"] == "changed" ||
			copied[0].GetAlerts()[0].GetAnnotations()["summary"] == "changed" ||
			copied[0].GetAnnotations()["runbook_url"] == "changed" {
			t.Errorf("alerts=%d: Convert shares maps with its message", n)
		}
	}
}
