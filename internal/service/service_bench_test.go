package service

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/store"
)

// putOnly is a store that keeps nothing: the benchmark measures the
// service's own work (validation, id, metrics), not storage.
type putOnly struct {
	store.Store
	puts int
}

func (p *putOnly) Put(_ context.Context, n *heraldv1.Notification) (string, bool, error) {
	p.puts++
	return n.GetId(), false, nil
}

func benchNotification(alerts int) *heraldv1.Notification {
	labels := map[string]string{"alertname": "HighLatency", "severity": "warning", "namespace": "payments", "job": "kubernetes-pods", "cluster": "prod-eu-1"}
	n := &heraldv1.Notification{
		IdempotencyKey: "4d1c3e0a9b7f6e5d4c3b2a190817f6e5d4c3b2a190817f6e5d4c3b2a19081726",
		Source:         "alertmanager",
		Severity:       heraldv1.Severity_SEVERITY_WARNING,
		Status:         heraldv1.Status_STATUS_FIRING,
		Title:          fmt.Sprintf("[FIRING:%d] HighLatency group=g-42", alerts),
		Labels:         labels,
		Annotations:    map[string]string{"runbook_url": "https://runbooks.example.com/HighLatency"},
		GroupKey:       `{}:{alertname="HighLatency", group="g-42"}`,
		Receiver:       "herald",
		ExternalUrl:    "http://alertmanager.example.com:9093",
	}
	start := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	for i := range alerts {
		l := map[string]string{"pod": fmt.Sprintf("payments-api-%05x", i), "instance": fmt.Sprintf("10.1.2.%d:8080", i)}
		for k, v := range labels {
			l[k] = v
		}
		n.Alerts = append(n.Alerts, &heraldv1.Alert{
			Fingerprint: fmt.Sprintf("%016x", i),
			Status:      heraldv1.Status_STATUS_FIRING,
			Labels:      l,
			Annotations: map[string]string{"summary": "HighLatency on " + l["pod"], "description": "p99 latency above 500ms for 10 minutes."},
			StartsAt:    timestamppb.New(start.Add(time.Duration(i) * time.Second)),
		})
	}
	return n
}

// BenchmarkPublish measures Publish without storage: validation, id and
// receipt time, metrics.
//
//	go test -run '^$' -bench . -benchmem ./internal/service/
func BenchmarkPublish(b *testing.B) {
	for _, alerts := range []int{1, 20} {
		b.Run(fmt.Sprintf("alerts=%d", alerts), func(b *testing.B) {
			st := &putOnly{}
			svc := New(st, Options{Registerer: prometheus.NewRegistry()})
			n := benchNotification(alerts)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				n.Id, n.ReceivedAt = "", nil
				res, err := svc.Publish(ctx, connect.NewRequest(&heraldv1.PublishRequest{Notification: n}))
				if err != nil {
					b.Fatal(err)
				}
				if res.Msg.GetId() == "" {
					b.Fatal("no id")
				}
			}
			if st.puts != b.N {
				b.Fatalf("%d puts for %d publishes", st.puts, b.N)
			}
		})
	}
}
