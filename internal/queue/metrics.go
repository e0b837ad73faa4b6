package queue

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	q            *Queue
	publishes    *prometheus.CounterVec
	deadLetters  prometheus.Counter
	parked       *prometheus.CounterVec
	lost         prometheus.Counter
	takeoverWait prometheus.Histogram
	takeovers    *prometheus.CounterVec
	served       *prometheus.Desc

	held        *prometheus.Desc
	heldNotifs  *prometheus.Desc
	oldestRoute *prometheus.Desc

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
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_queue_groups_held_total",
			Help: "Groups this herald held back (parked with their later notifications), by why: retrying, throttled or broken.",
		}, []string{"hold"}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_queue_lost_total",
			Help: "Notifications of parked groups that were no longer in the stream when their turn came (expired past retention, or a damaged data dir).",
		}),
		takeoverWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_queue_takeover_wait_seconds",
			Help:    "How long new groups of a partition waited, when this herald took the partition over, for the previous herald's deliveries.",
			Buckets: []float64{0.25, 0.5, 1, 2, 5, 10, 20, 30, 60},
		}),
		takeovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_queue_takeovers_total",
			Help: "Partitions this herald began to serve, by what waited for the previous herald's deliveries: none, the groups it had in hand (after a handover), or the whole partition (after a crash, a node loss or a pin that expired).",
		}, []string{"wait"}),
		served: prometheus.NewDesc("herald_queue_partitions_served",
			"Partitions this herald serves now (from the first notification it was handed in each); on a cluster the replicas share them.", nil, nil),
		held: prometheus.NewDesc("herald_queue_groups_held",
			"Groups held back in the partitions this herald serves, by why: retrying, throttled or broken.", []string{"hold"}, nil),
		heldNotifs: prometheus.NewDesc("herald_queue_held_notifications",
			"Notifications waiting in held-back groups of the partitions this herald serves.", nil, nil),
		oldestRoute: prometheus.NewDesc("herald_queue_oldest_waiting_seconds",
			"Age (since receipt) of the oldest notification not yet delivered, per route, over the partitions this herald serves: in hand or in a held-back group.", []string{"route"}, nil),
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
	for _, h := range holds {
		m.parked.WithLabelValues(h)
	}
	for _, w := range []string{"none", "groups", "partition"} {
		m.takeovers.WithLabelValues(w)
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	return errors.Join(r.Register(m.publishes), r.Register(m.deadLetters), r.Register(m.parked),
		r.Register(m.lost), r.Register(m.takeoverWait), r.Register(m.takeovers), r.Register(m))
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.depth
	ch <- m.oldest
	ch <- m.dlqSize
	ch <- m.scrapeFail
	ch <- m.held
	ch <- m.heldNotifs
	ch <- m.served
	ch <- m.oldestRoute
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
	m.collectHeld(ch)
}

// holds are the values of the hold label.
var holds = []string{"retrying", "throttled", "broken"}

// collectHeld reports the held-back groups and the oldest waiting
// notification per route of the partitions this herald serves.
func (m *metrics) collectHeld(ch chan<- prometheus.Metric) {
	held := map[string]int{}
	for _, h := range holds {
		held[h] = 0
	}
	waiting := 0
	oldest := map[string]time.Time{}
	note := func(route string, since time.Time) {
		if o, ok := oldest[route]; !ok || since.Before(o) {
			oldest[route] = since
		}
	}
	served := 0
	if parts := m.q.parts.Load(); parts != nil {
		for _, pt := range *parts {
			pt.mu.Lock()
			if pt.served {
				served++
			}
			for _, pg := range pt.parked {
				held[pg.e.Hold]++
				waiting += len(pg.e.Items)
				note(pg.e.Route, pg.e.Since)
			}
			for _, g := range pt.active {
				if len(g.msgs) == 0 {
					continue
				}
				h := g.msgs[0]
				route := ""
				if pt.opts.routeOf != nil {
					route = pt.opts.routeOf(h.n)
				}
				note(route, receivedAt(h.n, h.md.Timestamp))
			}
			pt.mu.Unlock()
		}
	}
	ch <- prometheus.MustNewConstMetric(m.served, prometheus.GaugeValue, float64(served))
	for h, n := range held {
		ch <- prometheus.MustNewConstMetric(m.held, prometheus.GaugeValue, float64(n), h)
	}
	ch <- prometheus.MustNewConstMetric(m.heldNotifs, prometheus.GaugeValue, float64(waiting))
	now := time.Now()
	for route, since := range oldest {
		ch <- prometheus.MustNewConstMetric(m.oldestRoute, prometheus.GaugeValue, max(now.Sub(since), 0).Seconds(), route)
	}
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
		raw, err := q.stream.GetMsg(ctx, info.AckFloor.Stream+1, jetstream.WithGetMsgSubject(partitionSubject(p)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return 0, 0, 0, err
		}
		oldest = max(oldest, now.Sub(raw.Time))
	}
	info, err := q.dlq.Info(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	return depth, oldest, info.State.Msgs, nil
}
