// Package dispatch delivers queued notifications through their sink chain.
// It routes each notification, tries the sinks of its chain in order with a
// few quick retries and a circuit breaker per sink, records every attempt in
// the notification's delivery record, and tells the queue what to do with
// the message: ack, retry later, dead-letter, or release it on shutdown.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/delivery"
	"github.com/herald-notify/herald/internal/route"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/sinks"
)

// Options are what New needs. Router, Sinks and State are required.
type Options struct {
	Router route.Router
	// Sinks maps each configured sink name to its sink; a sink's Name must
	// be its key.
	Sinks map[string]sinks.Sink
	State State
	// Logger receives the dispatcher's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the dispatcher's metrics; nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
	// TracerProvider makes the dispatcher's spans; nil means the global
	// provider (otel.GetTracerProvider).
	TracerProvider trace.TracerProvider
	Config         Config
}

// Dispatcher delivers notifications. Handle is safe for concurrent use by
// any number of groups; within one group key the queue calls it
// sequentially, and the dispatcher adds no parallelism of its own, so
// delivery follows the order of the calls. At most MaxInFlight requests to
// sinks run at once (MaxInFlightPerSink to one sink); when more wait, the
// most severe notification goes first (inflight.go).
type Dispatcher struct {
	// gen is the router, sinks and settings in effect (see Reload).
	gen      atomic.Pointer[generation]
	reloadMu sync.Mutex // serializes Reload
	state    State
	log      *slog.Logger
	m        *metrics
	tracer   trace.Tracer
	// lanes merge notifications into digests (digest.go).
	lanes lanes
	// inflight bounds the requests to sinks under way (inflight.go).
	inflight *inflight
	// jitter returns a random duration in [0, max]; tests replace it.
	jitter func(max time.Duration) time.Duration
	// health is each sink's last outcome (health.go).
	health health
}

// generation is what a Reload replaces at once. A Handle reads the
// dispatcher's generation once, when it starts, and keeps to it.
type generation struct {
	router route.Router
	sinks  map[string]sinks.Sink
	cfg    Config
	// breakers has one breaker per sink.
	breakers map[string]*breaker
	// gates order the lane leaders of each sink that merges digests by
	// priority (digest.go).
	gates map[string]*prioSem
}

// New checks the options and returns a Dispatcher whose breakers are all
// closed.
func New(o Options) (*Dispatcher, error) {
	errs := checkSinks(o.Router, o.Sinks, o.Config)
	if o.State == nil {
		errs = append(errs, errors.New("dispatch: a state is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("dispatch: registering metrics: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tp := o.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	d := &Dispatcher{
		state:  o.State,
		log:    log,
		m:      m,
		tracer: tp.Tracer("herald/dispatch"),
		jitter: func(max time.Duration) time.Duration {
			if max <= 0 {
				return 0
			}
			return rand.N(max + 1)
		},
	}
	for _, reason := range deadLetterReasons {
		m.deadLetters.WithLabelValues(reason)
	}
	cfg := o.Config.withDefaults()
	d.inflight = newInflight(cfg, slices.Collect(maps.Keys(o.Sinks)), m)
	d.install(o.Router, o.Sinks, cfg, nil)
	if o.Registerer != nil {
		if err := o.Registerer.Register(healthCollector{d}); err != nil {
			return nil, fmt.Errorf("dispatch: registering metrics: %w", err)
		}
	}
	return d, nil
}

// checkSinks returns what is wrong with a router, sinks and settings for a
// dispatcher.
func checkSinks(router route.Router, ss map[string]sinks.Sink, cfg Config) []error {
	var errs []error
	if router == nil {
		errs = append(errs, errors.New("dispatch: a router is required"))
	}
	if len(ss) == 0 {
		errs = append(errs, errors.New("dispatch: at least one sink is required"))
	}
	for name, s := range ss {
		switch {
		case s == nil:
			errs = append(errs, fmt.Errorf("dispatch: sink %q is nil", name))
		case s.Name() != name:
			errs = append(errs, fmt.Errorf("dispatch: sink %q calls itself %q", name, s.Name()))
		}
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("dispatch: %w", err))
	}
	return errs
}

// Reload is what Dispatcher.Reload replaces.
type Reload struct {
	Router route.Router
	Sinks  map[string]sinks.Sink
	Config Config
	// Reset names the sinks whose breakers start closed again although a
	// sink of that name was there before: those whose config changed.
	Reset map[string]bool
}

// Reload replaces the router, the sinks and the settings at once, after
// checking them as New does (an error changes nothing). Every Handle that
// starts afterwards routes and delivers with the new ones; a Handle under
// way finishes with those it started with, so nothing handed to the
// dispatcher is dropped, and a group's order holds because the queue calls
// Handle for one group at a time. A sink keeps its breaker (its state and
// count of failures, with the new breaker settings) unless it is new or
// named in Reset. The in-flight bounds change in place: requests under way
// keep their slots.
func (d *Dispatcher) Reload(r Reload) error {
	if err := errors.Join(checkSinks(r.Router, r.Sinks, r.Config)...); err != nil {
		return err
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	cfg := r.Config.withDefaults()
	d.inflight.resize(cfg, slices.Collect(maps.Keys(r.Sinks)))
	d.install(r.Router, r.Sinks, cfg, r.Reset)
	return nil
}

// install makes router, ss and cfg the dispatcher's generation, carrying
// over the breakers and gates of sinks that keep their name (a breaker only
// when not in reset).
func (d *Dispatcher) install(router route.Router, ss map[string]sinks.Sink, cfg Config, reset map[string]bool) {
	old := d.gen.Load()
	g := &generation{
		router:   router,
		sinks:    ss,
		cfg:      cfg,
		breakers: make(map[string]*breaker, len(ss)),
		gates:    make(map[string]*prioSem),
	}
	for name, s := range ss {
		var b *breaker
		if old != nil && !reset[name] {
			b = old.breakers[name]
		}
		if b != nil {
			b.setConfig(cfg.Breaker)
		} else {
			b = &breaker{cfg: cfg.Breaker}
			b.changed = d.breakerChanged(name, b)
			d.m.breakerState.WithLabelValues(name).Set(float64(BreakerClosed))
		}
		g.breakers[name] = b
		// Every series an alerting rule reads exists from the start at 0,
		// so that increase() and rate() see the first event after a
		// start: a series born at 1 shows no increase.
		for _, result := range []string{"success", "retryable", "throttled", "permanent", "canceled"} {
			d.m.attempts.WithLabelValues(name, result)
		}
		if laned(s) {
			var gate *prioSem
			if old != nil {
				gate = old.gates[name]
			}
			if gate == nil {
				gate = newPrioSem(1)
			}
			g.gates[name] = gate
		}
	}
	d.gen.Store(g)
	if old != nil {
		// A sink the reload removed: its breaker state would read open
		// for good and keep HeraldBreakerOpen firing.
		for name := range old.breakers {
			if _, ok := ss[name]; !ok {
				d.m.breakerState.DeleteLabelValues(name)
			}
		}
	}
}

// config is the configuration in effect.
func (d *Dispatcher) config() Config { return d.gen.Load().cfg }

// Config returns the configuration in effect, defaults filled in.
func (d *Dispatcher) Config() Config { return d.config() }

// RouteOf returns the name of the route n takes, as Handle would route it
// now. It sends nothing and reads no state.
func (d *Dispatcher) RouteOf(n *heraldv1.Notification) string {
	return d.gen.Load().router.Route(n).Route
}

// Breakers returns the breaker state of every sink, for readiness checks
// and status pages. A breaker whose open period has passed reads "open"
// until the next notification probes the sink.
func (d *Dispatcher) Breakers() map[string]BreakerState {
	g := d.gen.Load()
	out := make(map[string]BreakerState, len(g.breakers))
	for name, b := range g.breakers {
		out[name] = b.current()
	}
	return out
}

// breakerChanged is b's callback on a change of state. The gauge follows
// the sink's breaker in effect only: one a reload replaced (the sink's
// config changed, or the sink was removed) may still change while the
// deliveries that started with it finish.
func (d *Dispatcher) breakerChanged(sink string, b *breaker) func(context.Context, BreakerState, BreakerState, string) {
	log := d.log.With("sink", sink)
	return func(ctx context.Context, from, to BreakerState, why string) {
		if d.gen.Load().breakers[sink] == b {
			d.m.breakerState.WithLabelValues(sink).Set(float64(to))
		}
		d.m.breakerTransitions.WithLabelValues(sink, to.String()).Inc()
		trace.SpanFromContext(ctx).AddEvent("breaker", trace.WithAttributes(
			attribute.String("herald.sink", sink),
			attribute.String("herald.breaker.from", from.String()),
			attribute.String("herald.breaker.to", to.String()),
			attribute.String("herald.breaker.reason", why),
		))
		level := slog.LevelInfo
		if to == BreakerOpen && from == BreakerClosed {
			level = slog.LevelWarn
		}
		log.Log(ctx, level, "circuit breaker "+to.String(), "from", from.String(), "reason", why)
	}
}

// handling is the state of one Handle call.
type handling struct {
	// g is the generation this Handle keeps to.
	g     *generation
	m     delivery.Message
	n     *heraldv1.Notification
	dec   route.Decision
	rec   *heraldv1.DeliveryRecord
	log   *slog.Logger
	first bool // no attempt made yet in this Handle
	// failures are "sink: reason" for every sink that did not take the
	// notification, in chain order.
	failures []string
	// fallbackFrom is the first sink of the chain that did not take it.
	fallbackFrom string
	// allPermanent stays true while every sink failed permanently.
	allPermanent bool
	// transient is set once a sink failed in a way worth retrying other
	// than a rate limit (or was skipped with its breaker open).
	transient bool
	// longestThrottle is the longest rate-limit wait any sink asked for.
	longestThrottle time.Duration
	// attempted is set once a sink of the chain was tried (a Send or a
	// digest), rather than skipped.
	attempted bool
	// parents caches the group's message per sink as read by
	// lifecycleChain (nil entries included), so trySink reads each once.
	parents map[string]*heraldv1.MessageRef
}

func (h *handling) fallbackReason() string { return strings.Join(h.failures, "; ") }

// Handle delivers one notification through its chain and returns what the
// queue must do with the message: Ack once a sink accepted it (now, or
// before, as its delivery record says), Retry or DeadLetter when none did,
// Release whenever ctx ends before a sink accepted it. A Retry says why in
// its Hold; every outcome of a notification carries its Route.
func (d *Dispatcher) Handle(ctx context.Context, m delivery.Message) delivery.Outcome {
	n := m.Notification()
	if n == nil {
		d.m.deadLetters.WithLabelValues("invalid").Inc()
		d.m.outcomes.WithLabelValues("dead_letter").Inc()
		d.log.ErrorContext(ctx, "queued message holds no notification; dead-lettering it")
		return delivery.Outcome{Action: delivery.DeadLetter, Reason: "message holds no notification"}
	}
	g := d.gen.Load()
	dec := g.router.Route(n)
	ctx, span := d.tracer.Start(ctx, "herald.dispatch")
	// Attributes only for a span that keeps them (see send).
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("herald.notification.id", n.GetId()),
			attribute.String("herald.severity", n.GetSeverity().String()),
			attribute.String("herald.status", n.GetStatus().String()),
			attribute.String("herald.route", dec.Route),
			attribute.Int("herald.delivered", m.Delivered()),
		)
		if gk := n.GetGroupKey(); gk != "" {
			span.SetAttributes(attribute.String("herald.group_key_hash", telemetry.GroupKeyHash(gk)))
		}
	}
	defer span.End()
	h := &handling{
		g:            g,
		m:            m,
		n:            n,
		dec:          dec,
		log:          d.log.With("notification_id", n.GetId(), "group", telemetry.GroupKeyHash(n.GetGroupKey()), "route", dec.Route),
		first:        true,
		allPermanent: true,
	}
	out := d.handle(ctx, h)
	out.Route = dec.Route
	span.SetAttributes(attribute.String("herald.outcome", out.Action.String()))
	if out.Action != delivery.Ack {
		span.SetStatus(codes.Error, out.Reason)
	}
	d.m.outcomes.WithLabelValues(out.Action.String()).Inc()
	return out
}

func (d *Dispatcher) handle(ctx context.Context, h *handling) delivery.Outcome {
	if ctx.Err() != nil {
		return delivery.Outcome{Action: delivery.Release, Reason: "shutting down"}
	}
	h.rec = d.loadRecord(ctx, h)
	if h.rec.GetState() == heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED {
		// A copy handed out again after its delivery, e.g. herald died
		// between the chat server's answer and the ack: do not post twice.
		d.m.alreadyDelivered.Inc()
		h.log.InfoContext(ctx, "already delivered; acknowledging without sending again",
			"delivered_by", h.rec.GetDeliveredBy(), "delivered", h.m.Delivered())
		return delivery.Outcome{Action: delivery.Ack, Reason: "already delivered by " + h.rec.GetDeliveredBy()}
	}
	h.rec.Route = h.dec.Route
	if len(h.dec.Chain) == 0 {
		return d.deadLetter(ctx, h, "invalid", "route "+strconv.Quote(h.dec.Route)+" has no sinks")
	}
	h.dec.Chain = d.lifecycleChain(ctx, h)
	for i, step := range h.dec.Chain {
		if ctx.Err() != nil {
			return delivery.Outcome{Action: delivery.Release, Reason: "shutting down"}
		}
		r := d.trySink(ctx, h, i, step)
		switch r {
		case sinkDelivered:
			return delivery.Outcome{Action: delivery.Ack}
		case sinkReleased:
			return delivery.Outcome{Action: delivery.Release, Reason: "shutting down"}
		}
	}
	if ctx.Err() != nil {
		return delivery.Outcome{Action: delivery.Release, Reason: "shutting down"}
	}
	reason := h.fallbackReason()
	if h.allPermanent {
		return d.deadLetter(ctx, h, "permanent", "no sink can take it: "+reason)
	}
	start := budgetStart(h.m)
	if start.IsZero() {
		// The service always sets received_at; without it the budget
		// cannot be measured, so the notification is kept.
		start = time.Now()
		h.log.WarnContext(ctx, "notification has no received_at; its retry budget never runs out")
	}
	if spent := time.Since(start); spent >= h.g.cfg.RetryBudget {
		return d.deadLetter(ctx, h, "budget", "retry budget of "+h.g.cfg.RetryBudget.String()+" spent: "+reason)
	}
	backoff := d.backoff(h.m.Delivered())
	delay := max(backoff, h.longestThrottle)
	hold := delivery.HoldRetrying
	switch {
	case !h.attempted:
		hold = delivery.HoldBroken
	case h.longestThrottle > 0 && !h.transient:
		// Only rate limits stood in the way: retry when they end, not
		// after a backoff that grows with every window the group waits.
		delay, hold = h.longestThrottle, delivery.HoldThrottled
	case h.longestThrottle > 0 && h.longestThrottle >= backoff:
		hold = delivery.HoldThrottled
	}
	h.rec.State = heraldv1.DeliveryState_DELIVERY_STATE_RETRYING
	d.putRecord(ctx, h)
	d.m.retryDelay.Observe(delay.Seconds())
	h.log.WarnContext(ctx, "no sink took the notification; retrying later",
		"delay", delay, "hold", hold.String(), "delivered", h.m.Delivered(), "reason", reason)
	return delivery.Outcome{Action: delivery.Retry, Delay: delay, Reason: reason, Hold: hold}
}

// budgetStart is when m's retry budget started: the later of its
// notification's received_at and, for a Replayable message, the time its
// current copy was stored. Zero when neither is known.
func budgetStart(m delivery.Message) time.Time {
	var start time.Time
	if ra := m.Notification().GetReceivedAt(); ra != nil {
		start = ra.AsTime()
	}
	if r, ok := m.(delivery.Replayable); ok && r.Enqueued().After(start) {
		start = r.Enqueued()
	}
	return start
}

// backoff is the redelivery delay after the delivered-th delivery failed:
// exponential from BackoffInitial, capped at BackoffMax, with equal jitter
// (between half and all of it).
func (d *Dispatcher) backoff(delivered int) time.Duration {
	base := d.config().BackoffInitial
	for i := 1; i < delivered && base < d.config().BackoffMax; i++ {
		base *= 2
	}
	base = min(base, d.config().BackoffMax)
	half := base / 2
	return base - half + d.jitter(half)
}

func (d *Dispatcher) deadLetter(ctx context.Context, h *handling, kind, reason string) delivery.Outcome {
	h.rec.State = heraldv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED
	d.putRecord(ctx, h)
	d.m.deadLetters.WithLabelValues(kind).Inc()
	h.log.ErrorContext(ctx, "dead-lettering notification", "reason", reason, "delivered", h.m.Delivered())
	return delivery.Outcome{Action: delivery.DeadLetter, Reason: reason}
}

type sinkResult int

const (
	sinkDelivered sinkResult = iota + 1
	sinkFailed
	sinkSkipped
	sinkReleased
)

// trySink makes the attempts one step of the chain gets.
func (d *Dispatcher) trySink(ctx context.Context, h *handling, idx int, step route.Step) sinkResult {
	sd := sinkEntry(h.rec, step)
	s, ok := h.g.sinks[step.Sink]
	if !ok {
		// The config validation rejects this; a router built from another
		// config could still name a sink that is not there.
		sd.State = heraldv1.DeliveryState_DELIVERY_STATE_FAILED
		sd.LastError = "no sink of that name is configured"
		sd.ErrorClass = sinks.ClassPermanent.String()
		sd.UpdatedAt = timestamppb.Now()
		d.putRecord(ctx, h)
		d.m.deliveries.WithLabelValues(step.Sink, "failed").Inc()
		d.fail(h, step.Sink, "not configured", true)
		return sinkFailed
	}
	st := &stepRun{d: d, h: h, idx: idx, step: step, sd: sd, sink: s, br: h.g.breakers[step.Sink]}
	var allowed bool
	if allowed, st.probe = st.br.acquire(ctx); !allowed {
		sd.State = heraldv1.DeliveryState_DELIVERY_STATE_RETRYING
		sd.LastError = "circuit open"
		sd.ErrorClass = ""
		sd.UpdatedAt = timestamppb.Now()
		d.putRecord(ctx, h)
		d.m.deliveries.WithLabelValues(step.Sink, "skipped").Inc()
		h.transient = true
		d.fail(h, step.Sink, "circuit open", false)
		return sinkSkipped
	}
	st.log = h.log.With("sink", step.Sink)
	st.parent = st.groupParent(ctx)
	st.reminder = reminder(h.n, st.parent)
	st.deadline = time.Now().Add(h.g.cfg.QuickRetryBudget)
	for retry := 0; ; retry++ {
		res := st.attempt(ctx)
		if res.err == nil {
			st.sd.UpdatedAt = timestamppb.Now()
			if !res.shared() {
				st.br.success(ctx)
			} else {
				sd.DigestSize = uint32(res.size)
			}
			d.delivered(ctx, h, idx, step, sd, st.parent, st.reminder, res.rcpt, st.log)
			res.done()
			return sinkDelivered
		}
		res.done()
		if ctx.Err() != nil {
			return st.interrupted(ctx)
		}
		wait, again := st.failed(ctx, res, retry)
		if !again {
			return sinkFailed
		}
		sd.State = heraldv1.DeliveryState_DELIVERY_STATE_RETRYING
		h.rec.State = heraldv1.DeliveryState_DELIVERY_STATE_RETRYING
		d.putRecord(ctx, h)
		h.touch(ctx)
		if !sleep(ctx, wait) {
			st.log.InfoContext(ctx, "shutdown while waiting to retry; releasing the message")
			return sinkReleased
		}
		if allowed, st.probe = st.br.acquire(ctx); !allowed {
			// Other notifications opened the breaker meanwhile.
			return d.giveUp(ctx, h, step, sd, res.err)
		}
	}
}

// stepRun is one step of a chain while trySink makes its attempts.
type stepRun struct {
	d        *Dispatcher
	h        *handling
	idx      int
	step     route.Step
	sd       *heraldv1.SinkDelivery
	sink     sinks.Sink
	br       *breaker
	probe    bool
	log      *slog.Logger
	parent   *heraldv1.MessageRef
	reminder int       // see sinks.Target.Reminder
	deadline time.Time // of the quick retries
}

// reminder is n's sinks.Target.Reminder: the count of reminders its
// group's message in the sink (parent) has had, plus one, when n says what
// the message already says; zero when it changes something, resolves the
// group, or there is no message.
func reminder(n *heraldv1.Notification, parent *heraldv1.MessageRef) int {
	if parent.GetContent() == "" || n.GetStatus() == heraldv1.Status_STATUS_RESOLVED || parent.GetContent() != delivery.Content(n) {
		return 0
	}
	if parent.GetNotificationId() == n.GetId() {
		// n is being delivered again after its own delivery was
		// recorded on the group's message: it is what it was then.
		return int(parent.GetReminders())
	}
	return int(parent.GetReminders()) + 1
}

// groupParent is the message that stands for the notification's group in
// the step's sink, or nil.
func (st *stepRun) groupParent(ctx context.Context) *heraldv1.MessageRef {
	parent, cached := st.h.parents[st.step.Sink]
	gk := delivery.GroupKey(st.h.n)
	if gk == "" || cached {
		return parent
	}
	parent, err := st.d.state.Parent(ctx, st.step.Sink, gk)
	if err != nil {
		// Delivering a new message beats not delivering at all.
		st.log.WarnContext(ctx, "cannot read the group's message; posting a new one", "err", err)
		return nil
	}
	return parent
}

// attempt makes one attempt, counted in the record.
func (st *stepRun) attempt(ctx context.Context) attemptResult {
	h := st.h
	if !h.first {
		h.touch(ctx)
	}
	h.first = false
	h.attempted = true
	st.sd.Attempts++
	to := st.target()
	res := st.d.attempt(ctx, h, st.sink, to, st.probe, st.d.holdFor(h, st.idx, st.sink, st.deadline))
	if res.err != nil {
		st.sd.UpdatedAt = timestamppb.Now()
	}
	return res
}

// target is where the next attempt goes.
func (st *stepRun) target() sinks.Target {
	h := st.h
	to := sinks.Target{
		Channel:  st.step.Channel,
		Route:    h.dec.Route,
		Parent:   st.parent,
		Attempt:  int(st.sd.Attempts),
		Template: h.dec.Templates[st.step.Sink],
		Reminder: st.reminder,
	}
	if st.idx > 0 {
		to.FallbackReason, to.FallbackFrom = h.fallbackReason(), h.fallbackFrom
	}
	return to
}

// interrupted records an attempt that shutdown cut short. The attempt is
// kept in the record: the chat server may have taken it, and the next
// attempt must know it is not the first.
func (st *stepRun) interrupted(ctx context.Context) sinkResult {
	st.br.abandon(ctx, st.probe)
	st.d.m.attempts.WithLabelValues(st.step.Sink, "canceled").Inc()
	st.sd.State = heraldv1.DeliveryState_DELIVERY_STATE_RETRYING
	st.sd.LastError, st.sd.ErrorClass = "interrupted by shutdown", ""
	st.d.putRecord(ctx, st.h)
	st.log.InfoContext(ctx, "delivery interrupted by shutdown; releasing the message")
	return sinkReleased
}

// failed records a failed attempt and decides whether to try again after
// wait (again), or to move the chain on: at once for a permanent failure,
// and when the quick retries are spent, the wait is longer than they may
// take, the breaker opened or the attempt was the breaker's probe.
func (st *stepRun) failed(ctx context.Context, res attemptResult, retry int) (wait time.Duration, again bool) {
	d, h, sd, err := st.d, st.h, st.sd, res.err
	class := sinks.Classify(err)
	d.m.attempts.WithLabelValues(st.step.Sink, class.String()).Inc()
	sd.LastError, sd.ErrorClass = truncate(err.Error(), 500), class.String()
	st.log.WarnContext(ctx, "delivery attempt failed",
		"attempt", sd.Attempts, "class", class.String(), "err", err, "probe", st.probe)
	switch class {
	case sinks.ClassPermanent:
		sd.State = heraldv1.DeliveryState_DELIVERY_STATE_FAILED
		switch {
		case res.shared():
			// The digest's outcome is counted once, by the lane.
		case sinkFault(err):
			st.br.failure(ctx, st.probe, err.Error())
		default:
			// The sink answered; it refused this notification only.
			st.br.success(ctx)
		}
		d.putRecord(ctx, h)
		d.m.deliveries.WithLabelValues(st.step.Sink, "failed").Inc()
		d.fail(h, st.step.Sink, err.Error(), true)
		return 0, false
	case sinks.ClassThrottled:
		// A rate limit means the sink is up.
		if !res.shared() {
			st.br.success(ctx)
		}
		wait, _ = sinks.ThrottleWait(err)
		h.longestThrottle = max(h.longestThrottle, wait)
		if st.probe || retry >= h.g.cfg.QuickRetries || wait > d.holdFor(h, st.idx, st.sink, st.deadline) {
			d.giveUp(ctx, h, st.step, sd, err)
			return 0, false
		}
		d.m.throttleWait.WithLabelValues(st.step.Sink).Observe(wait.Seconds())
		if paced(st.sink, st.target()) {
			// The sink's pace knows the wait: the lane waits it out.
			wait = 0
		}
		return wait, true
	default:
		h.transient = true
		open := st.br.current() != BreakerClosed
		if !res.shared() {
			open = st.br.failure(ctx, st.probe, err.Error())
		}
		wait = h.g.cfg.QuickBackoff << min(retry, 30)
		if open || st.probe || retry >= h.g.cfg.QuickRetries || wait > time.Until(st.deadline) {
			d.giveUp(ctx, h, st.step, sd, err)
			return 0, false
		}
		return wait, true
	}
}

// giveUp moves the chain on from a sink that failed in a way worth retrying
// later.
func (d *Dispatcher) giveUp(ctx context.Context, h *handling, step route.Step, sd *heraldv1.SinkDelivery, err error) sinkResult {
	sd.State = heraldv1.DeliveryState_DELIVERY_STATE_RETRYING
	h.rec.State = heraldv1.DeliveryState_DELIVERY_STATE_RETRYING
	d.putRecord(ctx, h)
	d.m.deliveries.WithLabelValues(step.Sink, "failed").Inc()
	d.fail(h, step.Sink, err.Error(), false)
	return sinkFailed
}

// fail notes that sink did not take the notification.
func (d *Dispatcher) fail(h *handling, sink, reason string, permanent bool) {
	if h.fallbackFrom == "" {
		h.fallbackFrom = sink
	}
	h.failures = append(h.failures, sink+": "+truncate(reason, 200))
	h.allPermanent = h.allPermanent && permanent
}

// lifecycleChain keeps a group where its lifecycle started. When the
// group's message lives in a later sink of the chain and not in the first
// (it started there while the primary was down), that sink goes first, so
// the group's updates and its resolve land on the message people already
// saw; the rest of the chain follows in order. Once the group resolves, its
// messages are forgotten (see forgetGroup) and the next firing starts at
// the head of the chain again: failback happens per group, at its end.
func (d *Dispatcher) lifecycleChain(ctx context.Context, h *handling) []route.Step {
	chain := h.dec.Chain
	gk := delivery.GroupKey(h.n)
	if gk == "" || len(chain) < 2 {
		return chain
	}
	h.parents = make(map[string]*heraldv1.MessageRef, len(chain))
	for i, step := range chain {
		ref, err := d.state.Parent(ctx, step.Sink, gk)
		if err != nil {
			continue // trySink reads it again and decides
		}
		h.parents[step.Sink] = ref
		if ref == nil {
			continue
		}
		if i == 0 {
			return chain
		}
		if pa := ref.GetPostedAt(); pa != nil && time.Since(pa.AsTime()) > h.g.cfg.FallbackHold {
			// Active for longer than the hold (it may never send a
			// resolved): back to the head of the chain, with a new message.
			h.log.InfoContext(ctx, "group's message in a fallback sink is older than fallback_hold; back to the head of the chain",
				"sink", step.Sink, "posted_at", pa.AsTime())
			return chain
		}
		out := make([]route.Step, 0, len(chain))
		out = append(out, step)
		out = append(out, chain[:i]...)
		out = append(out, chain[i+1:]...)
		h.log.InfoContext(ctx, "group started in a fallback sink; keeping it there until it resolves", "sink", step.Sink)
		trace.SpanFromContext(ctx).AddEvent("lifecycle_kept", trace.WithAttributes(attribute.String("herald.sink", step.Sink)))
		return out
	}
	return chain
}

// forgetGroup ends a resolved group's lifecycle: it forgets the group's
// message in every sink of the chain, so its next firing posts a new
// message at the head of the chain.
func (d *Dispatcher) forgetGroup(ctx context.Context, h *handling, log *slog.Logger) {
	gk := delivery.GroupKey(h.n)
	if gk == "" || h.n.GetStatus() != heraldv1.Status_STATUS_RESOLVED {
		return
	}
	for _, step := range h.dec.Chain {
		if err := d.state.SetParent(ctx, step.Sink, gk, nil); err != nil {
			log.WarnContext(ctx, "cannot forget the resolved group's message; its next firing continues it", "sink", step.Sink, "err", err)
		}
	}
}

func (d *Dispatcher) delivered(ctx context.Context, h *handling, idx int, step route.Step,
	sd *heraldv1.SinkDelivery, parent *heraldv1.MessageRef, reminder int, rcpt sinks.Receipt, log *slog.Logger) {
	d.m.attempts.WithLabelValues(step.Sink, "success").Inc()
	d.m.deliveries.WithLabelValues(step.Sink, "delivered").Inc()
	sd.State = heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED
	sd.LastError, sd.ErrorClass = "", ""
	sd.Message = rcpt.Message
	if sd.Message == nil {
		sd.Message = rcpt.Parent
	}
	h.rec.State = heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED
	h.rec.DeliveredBy = step.Sink
	h.rec.FallbackReason = ""
	if idx > 0 {
		h.rec.FallbackReason = h.fallbackReason()
		d.m.fallbacks.WithLabelValues(h.dec.Chain[0].Sink, step.Sink).Inc()
		trace.SpanFromContext(ctx).AddEvent("fallback", trace.WithAttributes(
			attribute.String("herald.fallback.from", h.fallbackFrom),
			attribute.String("herald.sink", step.Sink),
			attribute.String("herald.fallback.reason", h.rec.FallbackReason),
		))
	}
	// The group's message first, then the record that says delivered: a
	// herald that dies between the two hands the notification out again,
	// and its sink finds the message it posted; the other way round the
	// group's next notification would post a second message.
	if gk := delivery.GroupKey(h.n); gk != "" && rcpt.Parent != nil {
		d.storeParent(ctx, step.Sink, gk, parent, reminder, rcpt.Parent, h.n, log)
	}
	d.putRecord(ctx, h)
	d.forgetGroup(context.WithoutCancel(ctx), h, log)
	var latency time.Duration
	if ra := h.n.GetReceivedAt(); ra != nil {
		latency = time.Since(ra.AsTime())
		telemetry.Observe(ctx, d.m.latency.WithLabelValues(step.Sink), max(latency, 0).Seconds())
	}
	log.InfoContext(ctx, "delivered", "attempts", sd.Attempts, "latency", latency,
		"fallback_reason", h.rec.FallbackReason)
}

// storeParent records got as the group's message in sink, with the content
// it now shows (n's; unchanged by a reminder) and its count of reminders,
// when that differs from what parent (as read before the delivery) says.
func (d *Dispatcher) storeParent(ctx context.Context, sink, gk string, parent *heraldv1.MessageRef, reminder int,
	got *heraldv1.MessageRef, n *heraldv1.Notification, log *slog.Logger) {
	if got.GetDigest() && parent != nil && !sameMessage(got, parent) {
		// A digest that showed the group stands for it only when the group
		// has no message of its own (or an earlier digest) in the sink.
		return
	}
	want := proto.CloneOf(got)
	want.Content, want.Reminders, want.NotificationId = delivery.Content(n), uint32(reminder), n.GetId()
	// A digest stays one: a reply in its thread must not turn it into a
	// message the group's next notification edits.
	want.Digest = got.GetDigest() || (sameMessage(got, parent) && parent.GetDigest())
	if !sameMessage(got, parent) {
		// A new message (the old one was gone) shows all of n: the count
		// of reminders starts again.
		want.Reminders = 0
	} else {
		want.PostedAt = parent.GetPostedAt()
		if reminder > 0 {
			// A reminder left the message as it was.
			want.Content = parent.GetContent()
		}
		if want.Content == parent.GetContent() && want.Reminders == parent.GetReminders() && want.NotificationId == parent.GetNotificationId() {
			return
		}
	}
	if ctx.Err() != nil {
		// Shutdown after the sink took it: record the group's message
		// anyway, as putRecord does, or the group's next notification
		// posts a second one.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
	}
	if err := d.state.SetParent(ctx, sink, gk, want); err != nil {
		log.ErrorContext(ctx, "cannot store the group's message; the next notification of the group posts a new one", "err", err)
	}
}

// sameMessage reports whether a and b are the same chat message; posted_at,
// which the state adds, does not count.
func sameMessage(a, b *heraldv1.MessageRef) bool {
	return a.GetChannelId() == b.GetChannelId() && a.GetMessageId() == b.GetMessageId() &&
		a.GetThreadId() == b.GetThreadId() && (a == nil) == (b == nil)
}

// send makes one attempt, bounded by AttemptTimeout, in its own span, while
// it holds an in-flight slot of s and of the dispatcher (waiting for them
// first, by n's severity; ctx ending meanwhile is the attempt's error). A
// panicking sink is turned into a retryable error, so that one bad sink
// cannot take herald down.
//
// The slots are still held when send returns: the caller gives them back
// with release once it has recorded the outcome (see attemptResult.done),
// so that at any instant at most the in-flight bound of posts have reached
// the sink without a record that says so.
func (d *Dispatcher) send(ctx context.Context, s sinks.Sink, n *heraldv1.Notification, to sinks.Target) (rcpt sinks.Receipt, release func(), err error) {
	release, err = d.inflight.acquire(ctx, s.Name(), priorityOf(n))
	if err != nil {
		return sinks.Receipt{}, func() {}, err
	}
	rcpt, err = d.sendHeld(ctx, s, n, to)
	return rcpt, release, err
}

func (d *Dispatcher) sendHeld(ctx context.Context, s sinks.Sink, n *heraldv1.Notification, to sinks.Target) (rcpt sinks.Receipt, err error) {
	// outer ends only at shutdown; ctx also at the attempt timeout, which
	// is the sink's failure, not shutdown's.
	outer := ctx
	ctx, cancel := context.WithTimeout(ctx, d.config().AttemptTimeout)
	defer cancel()
	ctx, span := d.tracer.Start(ctx, "herald.dispatch.attempt")
	// A span that is not recorded (every trace herald starts while nothing
	// exports) gets no attributes: building them cost allocations on every
	// notification. herald's samplers never look at start attributes.
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("herald.sink", s.Name()),
			attribute.String("herald.channel", to.Channel),
			attribute.Int("herald.attempt", to.Attempt),
		)
		if to.FallbackReason != "" {
			span.SetAttributes(attribute.String("herald.fallback.reason", to.FallbackReason))
		}
	}
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			d.log.ErrorContext(ctx, "sink panicked", "sink", s.Name(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			rcpt, err = sinks.Receipt{}, fmt.Errorf("sink %s panicked", s.Name())
		}
		d.m.attemptSeconds.WithLabelValues(s.Name()).Observe(time.Since(start).Seconds())
		d.health.note(outer, s.Name(), err)
		if err != nil {
			span.SetAttributes(attribute.String("herald.error.class", sinks.Classify(err).String()))
			span.SetStatus(codes.Error, err.Error())
		} else if ref := rcpt.Message; ref.GetMessageId() != "" {
			span.SetAttributes(attribute.String("herald.chat.message_id", ref.GetMessageId()))
		}
		span.End()
	}()
	return s.Send(ctx, n, to)
}

// sinkFault reports whether a permanent error says the sink itself is
// unusable (bad credentials, no permission) rather than that this
// notification is refused. Such errors count towards opening the breaker:
// every notification would fail the same way, so they go straight to the
// fallback, and the open breaker shows the problem on the dashboard.
func sinkFault(err error) bool { return sinks.IsBroken(err) }

// touch tells the queue the message is still being worked on.
func (h *handling) touch(ctx context.Context) {
	if err := h.m.InProgress(ctx); err != nil && ctx.Err() == nil {
		h.log.DebugContext(ctx, "cannot extend the message's ack deadline", "err", err)
	}
}

// sleep waits for d, or until ctx ends; it reports whether it waited.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// loadRecord returns the notification's delivery record, or a new one.
func (d *Dispatcher) loadRecord(ctx context.Context, h *handling) *heraldv1.DeliveryRecord {
	rec, err := d.state.Record(ctx, h.n.GetId())
	if err != nil {
		h.log.WarnContext(ctx, "cannot read the delivery record; starting a new one", "err", err)
	}
	if rec == nil {
		rec = &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_PENDING}
	}
	return rec
}

// putRecord stores the delivery record. A failure is logged, not fatal:
// delivering the notification matters more than its record. It also writes
// during shutdown, so that the attempt counts survive.
func (d *Dispatcher) putRecord(ctx context.Context, h *handling) {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
	}
	if err := d.state.PutRecord(ctx, h.n.GetId(), h.rec); err != nil {
		h.log.WarnContext(ctx, "cannot store the delivery record", "err", err)
	}
}

// sinkEntry returns the record's entry for step's sink, adding it if new.
func sinkEntry(rec *heraldv1.DeliveryRecord, step route.Step) *heraldv1.SinkDelivery {
	for _, s := range rec.Sinks {
		if s.GetSink() == step.Sink {
			s.Channel = step.Channel
			return s
		}
	}
	s := &heraldv1.SinkDelivery{
		Sink:    step.Sink,
		State:   heraldv1.DeliveryState_DELIVERY_STATE_PENDING,
		Channel: step.Channel,
	}
	rec.Sinks = append(rec.Sinks, s)
	return s
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
