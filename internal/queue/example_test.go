package queue_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/internal/queue"
)

// Wiring in herald serve: open the queue on data_dir, hand it to the service
// as its store.Store and to the dispatcher as its dispatch.State, and feed
// the dispatcher's Handle to Consume.
func Example() {
	dataDir, err := os.MkdirTemp("", "herald-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dataDir)

	cfg := queue.Config{} // the `queue:` section of the config file
	if err := cfg.Validate(); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	q, err := queue.Open(ctx, cfg, queue.Options{DataDir: dataDir, Registerer: prometheus.NewRegistry()})
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()

	id, dup, err := q.Put(ctx, &heraldv1.Notification{Id: "01EXAMPLE", GroupKey: "disk-full", Title: "Disk full"})
	fmt.Println(id, dup, err)

	ctx, cancel := context.WithCancel(ctx)
	handle := func(ctx context.Context, m delivery.Message) delivery.Outcome {
		fmt.Println("deliver", m.Notification().GetTitle(), "attempt", m.Delivered())
		cancel() // a real dispatcher (dispatch.Dispatcher.Handle) runs until shutdown
		return delivery.Outcome{Action: delivery.Ack}
	}
	q.Consume(ctx, handle)
	// Output:
	// 01EXAMPLE false <nil>
	// deliver Disk full attempt 1
}
