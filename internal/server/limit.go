package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

const (
	// DefaultMaxInFlight is how many webhook and Publish requests are read
	// and handled at once: with bodies of up to 4 MiB (the default
	// max_body_bytes), a few hundred MB at worst, where an unbounded storm
	// of 500 concurrent 1 MiB webhooks took 2 GB.
	DefaultMaxInFlight = 64
	// DefaultInFlightWait is how long a request beyond the bound waits for
	// a slot before it gets 503. A waiting request's body is not read yet,
	// so waiting costs little memory and absorbs the bursts Alertmanager
	// sends when many groups fire at once.
	DefaultInFlightWait = time.Second
	// DefaultMaxAnswerBytes bounds a list page: below the 4 MiB that gRPC
	// clients accept by default, also once encoded as JSON.
	DefaultMaxAnswerBytes = 2 << 20
	// maxPageSize bounds the notifications a list page asks the store for,
	// and so the memory of building one before its size is known.
	maxPageSize = 100
	// retryAfter is the Retry-After of a 503 for a full server, in seconds.
	retryAfter = "1"
)

// limiter bounds the requests handled at once over every handler it wraps.
type limiter struct {
	slots chan struct{}
	wait  time.Duration
	shed  *prometheus.CounterVec
}

func newLimiter(n int, wait time.Duration, shed *prometheus.CounterVec) *limiter {
	return &limiter{slots: make(chan struct{}, n), wait: wait, shed: shed}
}

// wrap hands a request to next when it gets a slot within the wait, and
// answers it with busy (a 503 with Retry-After, never a 4xx: Alertmanager
// drops a notification refused with a 4xx) when it does not.
func (l *limiter) wrap(name string, next http.Handler, busy func(http.ResponseWriter, *http.Request)) http.Handler {
	shed := l.shed.WithLabelValues(name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.acquire(r.Context()) {
			shed.Inc()
			w.Header().Set("Retry-After", retryAfter)
			busy(w, r)
			return
		}
		defer func() { <-l.slots }()
		next.ServeHTTP(w, r)
	})
}

func (l *limiter) acquire(ctx context.Context) bool {
	select {
	case l.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

const busyMessage = "herald is handling as many requests as it may at once; retry"

func httpBusy(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, busyMessage, http.StatusServiceUnavailable)
}

// rpcErrors writes errors in the protocol of the request: Connect, gRPC or
// gRPC-Web.
var rpcErrors = connect.NewErrorWriter()

// connectBusy answers Unavailable in the request's protocol (HTTP 503 for
// Connect unary).
func connectBusy(w http.ResponseWriter, r *http.Request) {
	if !rpcErrors.IsSupported(r) {
		httpBusy(w, r)
		return
	}
	_ = rpcErrors.Write(w, r, connect.NewError(connect.CodeUnavailable, errors.New(busyMessage)))
}

// boundPages keeps the pages of ListNotifications and ListDeadLetters
// within maxBytes and maxPageSize notifications. A page over maxBytes is
// asked for again with as many notifications as fit (at least one), so its
// next page token, which only the store can make, still follows the last
// notification it holds.
func boundPages(maxBytes int) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			var size *uint32
			switch m := req.Any().(type) {
			case *heraldv1.ListNotificationsRequest:
				size = &m.PageSize
			case *heraldv1.ListDeadLettersRequest:
				size = &m.PageSize
			default:
				return next(ctx, req)
			}
			if *size > maxPageSize {
				*size = maxPageSize
			}
			for {
				res, err := next(ctx, req)
				if err != nil {
					return nil, err
				}
				msg, ok := res.Any().(proto.Message)
				if !ok || proto.Size(msg) <= maxBytes {
					return res, nil
				}
				var items []*heraldv1.NotificationSummary
				switch m := msg.(type) {
				case *heraldv1.ListNotificationsResponse:
					items = m.GetNotifications()
				case *heraldv1.ListDeadLettersResponse:
					items = m.GetNotifications()
				}
				fit := fitting(items, maxBytes)
				if fit >= len(items) {
					// Over the bound by its token alone, or one
					// notification larger than the bound: nothing to cut.
					return res, nil
				}
				*size = uint32(fit)
			}
		}
	}
}

// fitting counts the leading items whose encoded size stays within
// maxBytes; at least one.
func fitting(items []*heraldv1.NotificationSummary, maxBytes int) int {
	total := 0
	for i, it := range items {
		// The field's tag and length take a few bytes more.
		total += proto.Size(it) + 8
		if total > maxBytes {
			return max(i, 1)
		}
	}
	return len(items)
}
