package message

import (
	"testing"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/sinks"
)

// TestSummaryOnce: a summary every alert shares is the notification's and
// is shown there only; alerts keep summaries of their own (the values).
func TestSummaryOnce(t *testing.T) {
	alert := func(instance, summary string) *heraldv1.Alert {
		return &heraldv1.Alert{Status: heraldv1.Status_STATUS_FIRING,
			Labels:      map[string]string{"alertname": "DiskFull", "instance": instance},
			Annotations: map[string]string{"summary": summary}}
	}
	shared := &heraldv1.Notification{Status: heraldv1.Status_STATUS_FIRING,
		Annotations: map[string]string{"summary": "Disk almost full"},
		Alerts:      []*heraldv1.Alert{alert("a", "Disk almost full"), alert("b", "Disk almost full"), alert("c", "Disk almost full")}}
	d := New(shared, sinks.Target{}, Options{})
	if d.Summary != "Disk almost full" {
		t.Errorf("Summary %q", d.Summary)
	}
	for _, a := range d.Alerts {
		if a.Summary != "" || a.Name != "DiskFull" {
			t.Errorf("alert repeats the shared summary: %+v", a)
		}
	}
	own := &heraldv1.Notification{Status: heraldv1.Status_STATUS_FIRING,
		Alerts: []*heraldv1.Alert{alert("a", "/var 99.2% full"), alert("b", "/var 99.7% full")}}
	d = New(own, sinks.Target{}, Options{})
	if d.Summary != "" || d.Alerts[0].Summary != "/var 99.2% full" || d.Alerts[1].Name != "/var 99.7% full" {
		t.Errorf("alerts' own summaries: summary %q, alerts %+v", d.Summary, d.Alerts)
	}
}

// TestPerAlertLinks: alerts that link to different dashboards each get
// their own link, and the notification's button, which showed the first
// alert's for all, goes; a dashboard they share stays the notification's.
func TestPerAlertLinks(t *testing.T) {
	alert := func(instance, dashboard string) *heraldv1.Alert {
		return &heraldv1.Alert{Status: heraldv1.Status_STATUS_FIRING,
			Labels:      map[string]string{"alertname": "DiskFull", "instance": instance},
			Annotations: map[string]string{"dashboard_url": dashboard, "runbook_url": "https://runbooks.example/disk"}}
	}
	n := &heraldv1.Notification{Status: heraldv1.Status_STATUS_FIRING,
		Links:  &heraldv1.Links{Dashboard: "https://grafana.example/d/a", Runbook: "https://runbooks.example/disk"},
		Alerts: []*heraldv1.Alert{alert("a", "https://grafana.example/d/a"), alert("b", "https://grafana.example/d/b")}}
	d := New(n, sinks.Target{}, Options{})
	if d.Links.Dashboard != "" || d.Alerts[0].Dashboard != "https://grafana.example/d/a" || d.Alerts[1].Dashboard != "https://grafana.example/d/b" {
		t.Errorf("different dashboards: group %q, alerts %q %q", d.Links.Dashboard, d.Alerts[0].Dashboard, d.Alerts[1].Dashboard)
	}
	if d.Links.Runbook != "https://runbooks.example/disk" || d.Alerts[0].Runbook != "" {
		t.Errorf("a shared runbook: group %q, alert %q", d.Links.Runbook, d.Alerts[0].Runbook)
	}
}

// TestStatusText: what a message says its state is.
func TestStatusText(t *testing.T) {
	alert := []*heraldv1.Alert{{Status: heraldv1.Status_STATUS_FIRING, Labels: map[string]string{"alertname": "A"}}}
	tests := []struct {
		name string
		n    *heraldv1.Notification
		want string
	}{
		{"an info event a service published", &heraldv1.Notification{Severity: heraldv1.Severity_SEVERITY_INFO, Status: heraldv1.Status_STATUS_FIRING}, "INFO"},
		{"an info alert from Alertmanager", &heraldv1.Notification{Severity: heraldv1.Severity_SEVERITY_INFO, Status: heraldv1.Status_STATUS_FIRING, Alerts: alert}, "FIRING"},
		{"a critical event", &heraldv1.Notification{Severity: heraldv1.Severity_SEVERITY_CRITICAL, Status: heraldv1.Status_STATUS_FIRING}, "FIRING"},
		{"a resolved info alert", &heraldv1.Notification{Severity: heraldv1.Severity_SEVERITY_INFO, Status: heraldv1.Status_STATUS_RESOLVED, Alerts: alert}, "RESOLVED"},
	}
	for _, tt := range tests {
		d := New(tt.n, sinks.Target{}, Options{})
		if d.StatusText != tt.want {
			t.Errorf("%s: StatusText %q, want %q", tt.name, d.StatusText, tt.want)
		}
		if d.Firing == d.Resolved || d.Firing != (d.Status == "firing") {
			t.Errorf("%s: Status %q, Firing %v, Resolved %v disagree", tt.name, d.Status, d.Firing, d.Resolved)
		}
	}
}

// TestAlertDescriptions: in a group whose alerts share their summary, each
// alert shows its own description (the values), and a description they
// all share is the notification's, shown once.
func TestAlertDescriptions(t *testing.T) {
	alert := func(instance, desc string) *heraldv1.Alert {
		return &heraldv1.Alert{Status: heraldv1.Status_STATUS_FIRING,
			Labels:      map[string]string{"alertname": "DiskFull", "instance": instance},
			Annotations: map[string]string{"summary": "Disk almost full", "description": desc}}
	}
	own := &heraldv1.Notification{Status: heraldv1.Status_STATUS_FIRING,
		Annotations: map[string]string{"summary": "Disk almost full"},
		Alerts:      []*heraldv1.Alert{alert("a", "/var on a is 98.2% full"), alert("b", "/var on b is 99.1% full")}}
	d := New(own, sinks.Target{}, Options{})
	if d.Description != "" || d.Alerts[0].Summary != "/var on a is 98.2% full" || d.Alerts[1].Summary != "/var on b is 99.1% full" {
		t.Errorf("own descriptions: description %q, alerts %+v", d.Description, d.Alerts)
	}
	shared := &heraldv1.Notification{Status: heraldv1.Status_STATUS_FIRING,
		Annotations: map[string]string{"summary": "Disk almost full", "description": "Clean up /var"},
		Alerts:      []*heraldv1.Alert{alert("a", "Clean up /var"), alert("b", "Clean up /var")}}
	d = New(shared, sinks.Target{}, Options{})
	if d.Description != "Clean up /var" || d.Alerts[0].Summary != "" || d.Alerts[1].Summary != "" {
		t.Errorf("shared description: description %q, alerts %+v", d.Description, d.Alerts)
	}
}
