package dispatch

import (
	"context"
	"fmt"
	"slices"
	"testing"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/sinks"
)

// TestReminders: a notification that says what its group's message already
// says is a reminder, counted from 1 since the content last changed; one
// that changes the alerts is not, and starts the count again; a resolved
// one never is.
func TestReminders(t *testing.T) {
	r := newRig(t, testConfig())
	var got []int
	r.rc.send = func(_ context.Context, _ *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
		got = append(got, to.Reminder)
		ref := &heraldv1.MessageRef{ChannelId: "C1", MessageId: "parent-1"}
		if to.Parent != nil {
			return sinks.Receipt{Parent: to.Parent, Message: &heraldv1.MessageRef{ChannelId: "C1", MessageId: "reply"}}, nil
		}
		return sinks.Receipt{Parent: ref, Message: ref}, nil
	}
	alert := func(fp string, st heraldv1.Status) *heraldv1.Alert {
		return &heraldv1.Alert{Fingerprint: fp, Status: st, Labels: map[string]string{"alertname": "DiskFull", "fp": fp}}
	}
	firing := heraldv1.Status_STATUS_FIRING
	steps := []struct {
		alerts []*heraldv1.Alert
		status heraldv1.Status
		text   string
	}{
		{[]*heraldv1.Alert{alert("a", firing)}, firing, "98%"},
		{[]*heraldv1.Alert{alert("a", firing)}, firing, "98.5%"}, // the value changed, the alerts did not
		{[]*heraldv1.Alert{alert("a", firing)}, firing, "99%"},
		{[]*heraldv1.Alert{alert("a", firing), alert("b", firing)}, firing, "99%"},
		{[]*heraldv1.Alert{alert("b", firing), alert("a", firing)}, firing, "99%"}, // order does not matter
		{[]*heraldv1.Alert{alert("a", heraldv1.Status_STATUS_RESOLVED), alert("b", firing)}, firing, "99%"},
		{[]*heraldv1.Alert{alert("a", heraldv1.Status_STATUS_RESOLVED), alert("b", heraldv1.Status_STATUS_RESOLVED)}, heraldv1.Status_STATUS_RESOLVED, ""},
	}
	for i, st := range steps {
		m := msg("n"+string(rune('0'+i)), "g1")
		m.n.Alerts, m.n.Status, m.n.Text = st.alerts, st.status, st.text
		if out := r.d.Handle(t.Context(), m); out.Action != delivery.Ack {
			t.Fatalf("step %d: %+v", i, out)
		}
	}
	if want := []int{0, 1, 2, 0, 1, 0, 0}; !slices.Equal(got, want) {
		t.Errorf("reminders %v, want %v", got, want)
	}
	// The group's message keeps when it was first posted and the content
	// it shows; the resolved forgot it.
	if p, _ := r.state.Parent(t.Context(), "rc", "g1"); p != nil {
		t.Errorf("after the resolve the group still has a message: %v", p)
	}
}

// TestReminderRedelivered: a notification handed out again after its
// delivery reached the group's message (a crash before its record) is
// what it was the first time, not a reminder of itself.
func TestReminderRedelivered(t *testing.T) {
	r := newRig(t, testConfig())
	var got []int
	r.rc.send = func(_ context.Context, _ *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
		got = append(got, to.Reminder)
		ref := &heraldv1.MessageRef{ChannelId: "C1", MessageId: "parent-1"}
		return sinks.Receipt{Parent: ref, Message: ref}, nil
	}
	first := msg("n1", "g1")
	if out := r.d.Handle(t.Context(), first); out.Action != delivery.Ack {
		t.Fatal(out)
	}
	// The record is lost; the group's message was stored.
	if err := r.state.PutRecord(t.Context(), "n1", &heraldv1.DeliveryRecord{}); err != nil {
		t.Fatal(err)
	}
	again := msg("n1", "g1")
	again.delivered = 2
	r.d.Handle(t.Context(), again)
	repeat := msg("n2", "g1")
	r.d.Handle(t.Context(), repeat)
	if want := []int{0, 0, 1}; !slices.Equal(got, want) {
		t.Errorf("reminders %v, want %v: the redelivery is not a reminder, the repeat is the first", got, want)
	}
}

// TestReminderAfterNewMessage: when the group's message was gone and the
// sink posted a new one in its place of a reminder, the count starts again.
func TestReminderAfterNewMessage(t *testing.T) {
	r := newRig(t, testConfig())
	var got []int
	parentID := "parent-1"
	r.rc.send = func(_ context.Context, _ *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
		got = append(got, to.Reminder)
		if to.Reminder == 2 {
			parentID = "parent-2" // the old message was deleted: a new one
		}
		ref := &heraldv1.MessageRef{ChannelId: "C1", MessageId: parentID}
		return sinks.Receipt{Parent: ref, Message: ref}, nil
	}
	for i := range 4 {
		if out := r.d.Handle(t.Context(), msg(fmt.Sprintf("n%d", i), "g1")); out.Action != delivery.Ack {
			t.Fatal(out)
		}
	}
	if want := []int{0, 1, 2, 1}; !slices.Equal(got, want) {
		t.Errorf("reminders %v, want %v", got, want)
	}
}
