package queue

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	q           *Queue
	publishes   *prometheus.CounterVec
	deadLetters prometheus.Counter

	depth      *prometheus.Desc
	oldest     *prometheus.Desc
	dlqSize    *prometheus.Desc
	scrapeFail *prometheus.Desc
}

func newMetrics(q *Queue) *metrics {
	m := &metrics{
		q: q,
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_queue_publishes_total",
			Help: "Notifications handed to the queue, by result: stored, duplicate (idempotency key seen before) or error.",
		}, []string{"result"}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_queue_dead_letters_total",
			Help: "Notifications this herald moved to the dead-letter stream.",
		}),
		depth: prometheus.NewDesc("herald_queue_depth",
			"Notifications stored but not yet acknowledged by a dispatcher, over all partitions; queue-wide, so every herald replica reports the same value (aggregate with max).", nil, nil),
		oldest: prometheus.NewDesc("herald_queue_oldest_pending_age_seconds",
			"Age of the oldest notification not yet acknowledged; 0 when the queue is empty; queue-wide like herald_queue_depth.", nil, nil),
		dlqSize: prometheus.NewDesc("herald_queue_dead_letters",
			"Dead letters currently kept, waiting for a replay; queue-wide like herald_queue_depth.", nil, nil),
		scrapeFail: prometheus.NewDesc("herald_queue_scrape_errors",
			"1 when the last collection of queue depth failed (JetStream unreachable).", nil, nil),
	}
	for _, r := range []string{"stored", "duplicate", "error"} {
		m.publishes.WithLabelValues(r)
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	return errors.Join(r.Register(m.publishes), r.Register(m.deadLetters), r.Register(m))
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.depth
	ch <- m.oldest
	ch <- m.dlqSize
	ch <- m.scrapeFail
}

// Collect asks JetStream for each partition's backlog at scrape time.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	depth, oldest, dlq, err := m.q.backlog(ctx)
	fail := 0.0
	if err != nil {
		fail = 1
		m.q.log.Debug("queue metrics", "err", err)
	} else {
		ch <- prometheus.MustNewConstMetric(m.depth, prometheus.GaugeValue, float64(depth))
		ch <- prometheus.MustNewConstMetric(m.oldest, prometheus.GaugeValue, oldest.Seconds())
		ch <- prometheus.MustNewConstMetric(m.dlqSize, prometheus.GaugeValue, float64(dlq))
	}
	ch <- prometheus.MustNewConstMetric(m.scrapeFail, prometheus.GaugeValue, fail)
}

// backlog sums what the partitions have not acknowledged yet, and finds the
// oldest such notification: in each partition it is the first message after
// the consumer's ack floor.
func (q *Queue) backlog(ctx context.Context) (depth uint64, oldest time.Duration, deadLetters uint64, err error) {
	now := time.Now()
	for p := range q.cfg.Partitions {
		c, err := q.stream.Consumer(ctx, consumerName(p))
		if err != nil {
			return 0, 0, 0, err
		}
		info := c.CachedInfo()
		n := info.NumPending + uint64(info.NumAckPending)
		if n == 0 {
			continue
		}
		depth += n
		// The partition's subjects are looked up one by one; the older of
		// the two is its oldest.
		for _, subj := range partitionFilters(p) {
			raw, err := q.stream.GetMsg(ctx, info.AckFloor.Stream+1, jetstream.WithGetMsgSubject(subj))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return 0, 0, 0, err
			}
			oldest = max(oldest, now.Sub(raw.Time))
		}
	}
	info, err := q.dlq.Info(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	return depth, oldest, info.State.Msgs, nil
}
