package dispatch

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the dispatcher's Prometheus series. Every label is bounded:
// sink names come from the config, the rest from fixed sets.
type metrics struct {
	// attempts{sink,result}: one per Send; result is success, retryable,
	// throttled, permanent or canceled.
	attempts *prometheus.CounterVec
	// attemptSeconds{sink}: how long each Send took.
	attemptSeconds *prometheus.HistogramVec
	// deliveries{sink,outcome}: one per sink of the chain a Handle reached;
	// outcome is delivered, failed (the chain moved on) or skipped (breaker
	// open).
	deliveries *prometheus.CounterVec
	// outcomes{action}: one per Handle: ack, retry, dead_letter, release.
	outcomes *prometheus.CounterVec
	// deadLetters{reason}: permanent (no sink will ever take it), budget
	// (retry budget spent) or invalid (no notification, no chain).
	deadLetters *prometheus.CounterVec
	// fallbacks{from,to}: a notification delivered by a later sink of its
	// chain than the first; from is the first sink.
	fallbacks *prometheus.CounterVec
	// breakerState{sink}: 0 closed, 1 half-open, 2 open.
	breakerState *prometheus.GaugeVec
	// breakerTransitions{sink,to}.
	breakerTransitions *prometheus.CounterVec
	// latency{sink}: from received_at to the chat server's acceptance.
	latency *prometheus.HistogramVec
	// throttleWait{sink}: waits honoured for a sink's rate limit before a
	// quick retry.
	throttleWait *prometheus.HistogramVec
	// alreadyDelivered: messages acked without sending because their
	// record says a sink already took them.
	alreadyDelivered prometheus.Counter
	// retryDelay: the delay of every Retry outcome.
	retryDelay prometheus.Histogram
	// digests{sink,result}: one per digest request (two or more
	// notifications); result is delivered or the error class.
	digests *prometheus.CounterVec
	// digestSize{sink}: notifications per digest.
	digestSize *prometheus.HistogramVec
	// attemptsInFlight{sink}: requests (Send or digest) under way, each
	// holding an in-flight slot.
	attemptsInFlight *prometheus.GaugeVec
	// slotWait{sink}: how long each request waited for its in-flight
	// slots, zero included.
	slotWait *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_delivery_attempts_total",
			Help: "Send attempts to a sink, by result: success, retryable, throttled, permanent or canceled.",
		}, []string{"sink", "result"}),
		attemptSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_delivery_attempt_duration_seconds",
			Help:    "Duration of one Send attempt to a sink.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"sink"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_deliveries_total",
			Help: "Notifications per sink of their chain, by outcome: delivered, failed (moved on to the next sink) or skipped (circuit open).",
		}, []string{"sink", "outcome"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_dispatch_outcomes_total",
			Help: "Dispatcher verdicts on queued notifications: ack, retry, dead_letter or release.",
		}, []string{"action"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_dead_letters_total",
			Help: "Notifications the dispatcher sent to the dead letters, by reason: permanent, budget or invalid.",
		}, []string{"reason"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_fallbacks_total",
			Help: "Notifications delivered by a fallback sink instead of the first sink of their chain.",
		}, []string{"from", "to"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_breaker_state",
			Help: "Circuit breaker state per sink: 0 closed, 1 half-open, 2 open.",
		}, []string{"sink"}),
		breakerTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_breaker_transitions_total",
			Help: "Circuit breaker state changes per sink, by the state entered.",
		}, []string{"sink", "to"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_delivery_latency_seconds",
			Help:    "Time from a notification's receipt by herald to its acceptance by the chat server, by delivering sink.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400},
		}, []string{"sink"}),
		throttleWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_throttle_wait_seconds",
			Help:    "Rate-limit waits honoured before retrying a sink.",
			Buckets: []float64{.1, .25, .5, 1, 2, 5, 10, 30},
		}, []string{"sink"}),
		alreadyDelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_already_delivered_total",
			Help: "Notifications handed out again after their delivery (e.g. herald stopped before the ack), acknowledged without sending twice.",
		}),
		retryDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_retry_delay_seconds",
			Help:    "Delay before redelivering a notification no sink took.",
			Buckets: []float64{1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}),
		digests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_digests_total",
			Help: "Digest messages (several notifications for one channel merged under backlog) sent to a sink, by result: delivered, retryable, throttled or permanent.",
		}, []string{"sink", "result"}),
		digestSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_digest_notifications",
			Help:    "Notifications merged into one digest message.",
			Buckets: []float64{2, 3, 5, 10, 20, 50},
		}, []string{"sink"}),
		attemptsInFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_dispatch_attempts_in_flight",
			Help: "Requests to a sink (a notification or a digest) under way, bounded by max_in_flight and max_in_flight_per_sink.",
		}, []string{"sink"}),
		slotWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_dispatch_slot_wait_seconds",
			Help:    "Time a request to a sink waited for an in-flight slot (max_in_flight_per_sink, then max_in_flight) before it started.",
			Buckets: []float64{.001, .01, .1, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"sink"}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{
		m.attempts, m.attemptSeconds, m.deliveries, m.outcomes, m.deadLetters,
		m.fallbacks, m.breakerState, m.breakerTransitions, m.latency,
		m.throttleWait, m.alreadyDelivered, m.retryDelay, m.digests, m.digestSize,
		m.attemptsInFlight, m.slotWait,
	} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}

// deadLetterReasons are the reason labels of herald_dead_letters_total.
var deadLetterReasons = []string{"permanent", "budget", "invalid"}
