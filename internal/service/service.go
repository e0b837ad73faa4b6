// Package service implements herald.v1.NotificationService: it validates
// what callers publish, assigns ids, persists through a store.Store and
// answers questions about delivery.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/gen/herald/v1/heraldv1connect"
	"github.com/herald-notify/herald/internal/store"
)

// Options configure a Service.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Sinks reports the health of every configured sink for ListSinks; nil
	// answers Unavailable (nothing delivers in this process).
	Sinks func() []*heraldv1.SinkStatus
	// Fanout names the routes that deliver a notification when there are
	// several (routes with continue: true); nil, or fewer than two names,
	// stores the notification once.
	Fanout func(*heraldv1.Notification) []string
}

// Service is the NotificationService handler.
type Service struct {
	store  store.Store
	logger *slog.Logger
	now    func() time.Time
	sinks  func() []*heraldv1.SinkStatus
	fanout func(*heraldv1.Notification) []string

	received *prometheus.CounterVec
	outcomes *prometheus.CounterVec
}

var _ heraldv1connect.NotificationServiceHandler = (*Service)(nil)

// New returns a Service that stores into st.
func New(st store.Store, opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	reg := promauto.With(opts.Registerer)
	s := &Service{
		store:  st,
		logger: opts.Logger,
		now:    opts.Now,
		sinks:  opts.Sinks,
		fanout: opts.Fanout,
		received: reg.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_notifications_received_total",
			Help: "Publish requests received, by source kind (alertmanager or api).",
		}, []string{"source"}),
		outcomes: reg.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_publish_total",
			Help: "Publish outcomes: stored, duplicate, invalid or unavailable.",
		}, []string{"outcome"}),
	}
	// At 0 from the start, so that an alerting rule's rate() sees the
	// first failure after a start.
	for _, o := range []string{"stored", "duplicate", "invalid", "unavailable"} {
		s.outcomes.WithLabelValues(o)
	}
	return s
}

// Publish validates the notification, assigns its id and receipt time, and
// answers only once the store holds it durably.
func (s *Service) Publish(ctx context.Context, req *connect.Request[heraldv1.PublishRequest]) (*connect.Response[heraldv1.PublishResponse], error) {
	s.received.WithLabelValues(sourceKind(req.Msg.GetNotification().GetSource())).Inc()
	if err := validatePublish(req.Msg); err != nil {
		s.outcomes.WithLabelValues("invalid").Inc()
		return nil, invalidArgument(err)
	}
	n := req.Msg.GetNotification()
	now := s.now()
	n.Id = newID(now)
	n.ReceivedAt = timestamppb.New(now)
	id, dup, err := s.put(ctx, n)
	if err != nil {
		s.outcomes.WithLabelValues("unavailable").Inc()
		s.logger.ErrorContext(ctx, "cannot store notification", "id", n.Id, "err", err)
		return nil, storeError(err)
	}
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.String("herald.notification.id", id), attribute.Bool("herald.duplicate", dup))
	if dup {
		// An HA peer's copy, or the caller's retry: the trace says so, and
		// which notification it is a copy of.
		span.AddEvent("duplicate", trace.WithAttributes(attribute.String("herald.duplicate_of", id)))
		s.outcomes.WithLabelValues("duplicate").Inc()
		// Every drop is logged with its reason: one line per notification
		// an HA pair of Alertmanagers sends twice.
		attrs := []any{"id", id, "idempotency_key", n.GetIdempotencyKey(), "source", n.GetSource()}
		if stored, err := ulid.ParseStrict(id); err == nil {
			attrs = append(attrs, "stored_ago", now.Sub(ulid.Time(stored.Time())).Round(time.Millisecond).String())
		}
		s.logger.InfoContext(ctx, "publish stored nothing: a copy of a stored notification (an HA peer's, or a retry) within queue.duplicate_window", attrs...)
	} else {
		s.outcomes.WithLabelValues("stored").Inc()
		s.logger.DebugContext(ctx, "notification stored", "id", id, "source", n.GetSource(), "severity", n.GetSeverity().String())
	}
	return connect.NewResponse(&heraldv1.PublishResponse{Id: id, Duplicate: dup}), nil
}

// put stores n, or, when several routes deliver it, one copy per route:
// the first with n's id, the others with that id and "-1", "-2", ...,
// each naming its route. The answer is the first copy's. Every copy is
// stored under its own idempotency key (the queue adds the route), so a
// publish sent again after a failure here stores the copies missing and
// reports the others as duplicates.
func (s *Service) put(ctx context.Context, n *heraldv1.Notification) (string, bool, error) {
	var routes []string
	if s.fanout != nil {
		routes = s.fanout(n)
	}
	if len(routes) < 2 {
		return s.store.Put(ctx, n)
	}
	var (
		id  string
		dup bool
	)
	for i, r := range routes {
		c := proto.CloneOf(n)
		c.Route, c.FanoutRoutes = r, routes
		if i > 0 {
			c.Id = n.GetId() + "-" + strconv.Itoa(i)
			c.FanoutOf = n.GetId()
		}
		cid, cdup, err := s.store.Put(ctx, c)
		if err != nil {
			return "", false, fmt.Errorf("fan-out copy for route %q: %w", r, err)
		}
		if i == 0 {
			id, dup = cid, cdup
		}
	}
	return id, dup, nil
}

// GetNotification returns one notification and its delivery record.
func (s *Service) GetNotification(ctx context.Context, req *connect.Request[heraldv1.GetNotificationRequest]) (*connect.Response[heraldv1.GetNotificationResponse], error) {
	if req.Msg.GetId() == "" {
		return nil, invalidArgument(invalid("id", "required"))
	}
	sum, err := s.store.Get(ctx, req.Msg.GetId())
	if err != nil {
		return nil, storeError(err)
	}
	return connect.NewResponse(&heraldv1.GetNotificationResponse{
		Notification: sum.GetNotification(),
		Delivery:     sum.GetDelivery(),
	}), nil
}

// ListNotifications returns notifications newest first.
func (s *Service) ListNotifications(ctx context.Context, req *connect.Request[heraldv1.ListNotificationsRequest]) (*connect.Response[heraldv1.ListNotificationsResponse], error) {
	if err := validateList(req.Msg); err != nil {
		return nil, invalidArgument(err)
	}
	page, err := s.store.List(ctx, store.Query{
		PageSize:  pageSize(req.Msg.GetPageSize()),
		PageToken: req.Msg.GetPageToken(),
		State:     req.Msg.GetState(),
		Severity:  req.Msg.GetSeverity(),
	})
	if err != nil {
		return nil, storeError(err)
	}
	return connect.NewResponse(&heraldv1.ListNotificationsResponse{
		Notifications: page.Items, NextPageToken: page.NextPageToken,
	}), nil
}

// ListDeadLetters returns dead-lettered notifications newest first.
func (s *Service) ListDeadLetters(ctx context.Context, req *connect.Request[heraldv1.ListDeadLettersRequest]) (*connect.Response[heraldv1.ListDeadLettersResponse], error) {
	page, err := s.store.ListDeadLetters(ctx, pageSize(req.Msg.GetPageSize()), req.Msg.GetPageToken())
	if err != nil {
		return nil, storeError(err)
	}
	return connect.NewResponse(&heraldv1.ListDeadLettersResponse{
		Notifications: page.Items, NextPageToken: page.NextPageToken,
	}), nil
}

// ReplayDeadLetters queues dead letters for delivery again.
func (s *Service) ReplayDeadLetters(ctx context.Context, req *connect.Request[heraldv1.ReplayDeadLettersRequest]) (*connect.Response[heraldv1.ReplayDeadLettersResponse], error) {
	ids, all := req.Msg.GetIds(), req.Msg.GetAll()
	switch {
	case len(ids) == 0 && !all:
		return nil, invalidArgument(invalid("ids", "required unless all is set"))
	case len(ids) > 0 && all:
		return nil, invalidArgument(invalid("all", "set ids or all, not both"))
	}
	replayed, err := s.store.ReplayDeadLetters(ctx, ids, all)
	if err != nil {
		return nil, storeError(err)
	}
	s.logger.InfoContext(ctx, "dead letters replayed", "count", len(replayed))
	return connect.NewResponse(&heraldv1.ReplayDeadLettersResponse{ReplayedIds: replayed}), nil
}

func pageSize(n uint32) int {
	switch {
	case n == 0:
		return 50
	case n > 500:
		return 500
	}
	return int(n)
}

// sourceKind bounds the label values of the received counter.
func sourceKind(source string) string {
	if source == "alertmanager" {
		return "alertmanager"
	}
	return "api"
}

// TooLargeHeader is set on the error Publish returns for a notification
// larger than the store can hold, so that a caller across the network (the
// Alertmanager shim in front of a remote herald) can tell it from other
// InvalidArgument errors and send a smaller notification.
const TooLargeHeader = "Herald-Too-Large"

// IsTooLarge reports whether err, from Publish in process or over Connect,
// says the notification is larger than the store can hold.
func IsTooLarge(err error) bool {
	if errors.Is(err, store.ErrTooLarge) {
		return true
	}
	var ce *connect.Error
	return errors.As(err, &ce) && connect.CodeOf(err) == connect.CodeInvalidArgument && ce.Meta().Get(TooLargeHeader) != ""
}

// storeError maps store errors to Connect codes. Anything unrecognised is
// Unavailable: a caller must retry rather than drop the notification.
func storeError(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, store.ErrTooLarge):
		ce := connect.NewError(connect.CodeInvalidArgument, &fieldError{field: "notification", reason: "too large to store", err: store.ErrTooLarge})
		ce.Meta().Set(TooLargeHeader, "true")
		return ce
	case errors.Is(err, store.ErrBadPageToken):
		return connect.NewError(connect.CodeInvalidArgument, invalid("page_token", "not from a previous response"))
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	return connect.NewError(connect.CodeUnavailable, errors.New("notification storage is unavailable; retry"))
}

// ListSinks returns the health of every configured sink, as the dispatcher
// of this process sees it.
func (s *Service) ListSinks(context.Context, *connect.Request[heraldv1.ListSinksRequest]) (*connect.Response[heraldv1.ListSinksResponse], error) {
	if s.sinks == nil {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("no dispatcher runs in this process"))
	}
	return connect.NewResponse(&heraldv1.ListSinksResponse{Sinks: s.sinks()}), nil
}
