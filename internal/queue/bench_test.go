package queue

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/dispatch"
)

func benchNotif(i int) *heraldv1.Notification {
	n := notif(fmt.Sprintf("group-%d", i%64), heraldv1.Severity_SEVERITY_CRITICAL)
	n.IdempotencyKey = "bench/" + n.Id
	n.Text = "Disk /var on db-1 is 97% full; it will be full in 2h at the current rate."
	n.Annotations = map[string]string{"runbook_url": "https://runbooks.example/disk-full"}
	return n
}

// BenchmarkPut measures publish → stored: the JetStream write with its
// acknowledgement plus the delivery record, on the embedded server.
//
//	go test -run '^$' -bench BenchmarkPut -benchmem ./internal/queue/
func BenchmarkPut(b *testing.B) {
	for _, sync := range []string{SyncInterval, SyncAlways} {
		for _, par := range []bool{false, true} {
			name := "sync=" + sync + "/serial"
			if par {
				name = "sync=" + sync + "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				e := openTest(b, b.TempDir(), testConfig(func(c *Config) { c.Sync = sync; c.Partitions = 16 }))
				ns := make([]*heraldv1.Notification, b.N)
				for i := range ns {
					ns[i] = benchNotif(i)
				}
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				if par {
					var next atomic.Int64
					b.SetParallelism(8)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, _, err := e.q.Put(ctx, ns[next.Add(1)-1]); err != nil {
								b.Error(err)
								return
							}
						}
					})
				} else {
					for i := range b.N {
						if _, _, err := e.q.Put(ctx, ns[i]); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "notifications/s")
			})
		}
	}
}

// BenchmarkPutConsume measures publish → handed to the dispatcher and
// acknowledged, over 16 partitions, with a handler that does nothing.
//
//	go test -run '^$' -bench BenchmarkPutConsume -benchmem ./internal/queue/
func BenchmarkPutConsume(b *testing.B) {
	e := openTest(b, b.TempDir(), testConfig(func(c *Config) { c.Partitions = 16 }))
	ns := make([]*heraldv1.Notification, b.N)
	for i := range ns {
		ns[i] = benchNotif(i)
	}
	var handled atomic.Int64
	all := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		done <- e.q.Consume(ctx, func(ctx context.Context, m dispatch.Message) dispatch.Outcome {
			if handled.Add(1) == int64(len(ns)) {
				close(all)
			}
			return dispatch.Outcome{Action: dispatch.Ack}
		})
	}()
	for _, n := range ns {
		if _, _, err := e.q.Put(ctx, n); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatal("not all handled")
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "notifications/s")
	cancel()
	<-done
}

// BenchmarkOpen measures startup on an existing data dir holding 10,000
// notifications: embedded server, stream recovery, consumers ready.
//
//	go test -run '^$' -bench BenchmarkOpen ./internal/queue/
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	cfg := testConfig(func(c *Config) { c.Partitions = 16 })
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	e := openTest(b, dir, cfg)
	for i := range 10000 {
		if _, _, err := e.q.Put(context.Background(), benchNotif(i)); err != nil {
			b.Fatal(err)
		}
	}
	e.q.Close()
	for b.Loop() {
		q, err := Open(context.Background(), cfg, Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		if err := q.Ready(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		q.Close()
		b.StartTimer()
	}
}
