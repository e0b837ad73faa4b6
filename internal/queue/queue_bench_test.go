package queue

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
)

// processCPU is the user+system CPU time of this process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkConsume measures the delivery side alone: b.N notifications
// already stored over 16 partitions are handed to a handler that acks at
// once. It reports the CPU the process spent per notification (the
// embedded server included), which is what the dispatcher's share of
// herald's cost per webhook comes from, and the longest pause between
// two handled messages (max-gap-ms), which shows a stalled partition.
//
//	go test -run '^$' -bench BenchmarkConsume -benchmem ./internal/queue/
func BenchmarkConsume(b *testing.B) {
	e := openTest(b, b.TempDir(), testConfig(func(c *Config) { c.Partitions = 16 }))
	ctx := context.Background()
	for i := range b.N {
		n := benchNotif(i)
		n.IdempotencyKey = ""
		if _, _, err := e.q.Put(ctx, n); err != nil {
			b.Fatal(err)
		}
	}
	var handled, last, maxGap atomic.Int64
	all := make(chan struct{})
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	go func() {
		defer close(done)
		e.q.Consume(cctx, func(ctx context.Context, m delivery.Message) delivery.Outcome {
			// The longest pause between two handled messages: a partition
			// whose pull went unanswered shows here as its pull expiry.
			now := time.Now().UnixNano()
			if prev := last.Swap(now); prev != 0 && now-prev > maxGap.Load() {
				maxGap.Store(now - prev)
			}
			if handled.Add(1) == int64(b.N) {
				close(all)
			}
			return delivery.Outcome{Action: delivery.Ack}
		})
	}()
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatal("not all handled")
	}
	b.StopTimer()
	cpu := processCPU(b) - cpu0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "notifications/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(maxGap.Load())/1e6, "max-gap-ms")
	cancel()
	<-done
}

// BenchmarkPutCPU is BenchmarkPut (interval sync, 8 writers) with the
// process's CPU time per stored notification, the embedded server's work
// included.
//
//	go test -run '^$' -bench BenchmarkPutCPU -benchmem ./internal/queue/
func BenchmarkPutCPU(b *testing.B) {
	e := openTest(b, b.TempDir(), testConfig(func(c *Config) { c.Partitions = 16 }))
	ns := make([]*heraldv1.Notification, b.N)
	for i := range ns {
		ns[i] = benchNotif(i)
	}
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	cpu0 := processCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := e.q.Put(ctx, ns[next.Add(1)-1]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	cpu := processCPU(b) - cpu0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}
