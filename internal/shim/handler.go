package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// Path is where herald serves the Alertmanager webhook.
const Path = "/webhooks/alertmanager"

// DefaultMaxBodyBytes is the largest webhook body accepted unless
// Options.MaxBodyBytes says otherwise.
const DefaultMaxBodyBytes = 4 << 20

// retryAfterSeconds is sent with every 503. Alertmanager ignores it and
// retries with its own backoff; other callers may use it.
const retryAfterSeconds = 5

// Publisher stores one notification. The generated
// heraldv1connect.NotificationServiceClient (a remote herald) and the
// in-process NotificationService handler both satisfy it.
type Publisher interface {
	Publish(context.Context, *connect.Request[heraldv1.PublishRequest]) (*connect.Response[heraldv1.PublishResponse], error)
}

// Options tunes the handler. The zero value is usable.
type Options struct {
	// MaxBodyBytes caps the request body; larger bodies get 413. Zero or
	// less means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives one line per refused or failed webhook; nil discards.
	Logger *slog.Logger
}

// NewHandler serves Alertmanager's webhook: it decodes the POSTed payload,
// converts it and publishes the notification through pub, answering as
// Alertmanager's retry rules need (it retries 5xx and network errors, never
// a 4xx):
//
//	200  stored, or recognised as a duplicate of a stored notification
//	400  a payload that can never succeed (bad JSON, wrong version, no alerts,
//	     a field of the wrong type), or pub says InvalidArgument
//	405  not a POST
//	413  body over Options.MaxBodyBytes
//	415  a Content-Type that is not JSON (no Content-Type is accepted)
//	503  anything else pub reports, e.g. storage unavailable, or a remote
//	     herald refusing the shim's own credentials: Alertmanager retries
//
// Authentication of the caller happens before this handler (server
// middleware). Publish runs with the request's context, so the trace that
// the server's otelhttp middleware continued from Alertmanager's traceparent
// carries on into the service, in process or, through an instrumented
// Connect client, to a remote herald.
func NewHandler(pub Publisher, opts Options) http.Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &handler{pub: pub, opts: opts}
}

type handler struct {
	pub  Publisher
	opts Options
}

// Response is the body of a 200 answer.
type Response struct {
	Notifications []Published `json:"notifications"`
}

// Published is one notification the webhook was stored as.
type Published struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
}

// errorBody is the body of every non-200 answer.
type errorBody struct {
	Error string `json:"error"`
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	log := h.opts.Logger

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: POST an Alertmanager webhook", r.Method))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q: want application/json", ct))
		return
	}

	m, err := decodeSized(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes), min(r.ContentLength, h.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		var bad *DecodeError
		switch {
		case errors.As(err, &tooBig):
			log.WarnContext(ctx, "alertmanager webhook refused: body too large", "limit_bytes", tooBig.Limit)
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", tooBig.Limit))
		case errors.As(err, &bad):
			log.WarnContext(ctx, "alertmanager webhook refused: bad payload", "err", err)
			writeError(w, http.StatusBadRequest, err.Error())
		default:
			// The body did not arrive whole: nothing says a resend would fail.
			log.WarnContext(ctx, "alertmanager webhook: reading body failed", "err", err)
			writeUnavailable(w, "could not read the request body; retry")
		}
		return
	}
	// The webhook's attributes go on every line logged from here on; they
	// are attached only when a line is logged (slog's With formats them at
	// once, and most webhooks log nothing).
	group := slog.Group("", "receiver", m.Receiver, "group_key", m.GroupKey, "status", m.Status, "alerts", len(m.Alerts))

	// m is not used after this: the notifications may keep its maps.
	ns, err := convert(m, true)
	if err != nil {
		// Decode already checked everything Convert checks.
		log.ErrorContext(ctx, "alertmanager webhook: conversion failed", group, "err", err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}

	var resp Response
	for _, n := range ns {
		// Publishing several is safe to repeat: each carries its idempotency
		// key, so a retry after a failure part-way stores each once.
		res, err := h.pub.Publish(ctx, connect.NewRequest(&heraldv1.PublishRequest{Notification: n}))
		if err != nil {
			code, msg := publishStatus(err)
			log.WarnContext(ctx, "alertmanager webhook: publish failed", group, "idempotency_key", n.GetIdempotencyKey(), "http_status", code, "err", err)
			if code == http.StatusServiceUnavailable {
				writeUnavailable(w, msg)
			} else {
				writeError(w, code, msg)
			}
			return
		}
		resp.Notifications = append(resp.Notifications, Published{ID: res.Msg.GetId(), Duplicate: res.Msg.GetDuplicate()})
	}
	log.DebugContext(ctx, "alertmanager webhook stored", group, "notifications", resp.Notifications)
	writeJSON(w, http.StatusOK, resp)
}

// publishStatus maps a Publish failure to the HTTP status Alertmanager must
// see: a 4xx only when sending the same request again cannot succeed.
func publishStatus(err error) (int, string) {
	var msg string
	var ce *connect.Error
	if errors.As(err, &ce) {
		msg = ce.Message()
	}
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument:
		return http.StatusBadRequest, "notification refused: " + msg
	case connect.CodeUnauthenticated, connect.CodePermissionDenied:
		// The remote herald refused the shim's own credentials, not
		// Alertmanager's: a config fault on herald's side that someone will
		// fix. A 4xx would make Alertmanager drop the notification; a 5xx
		// keeps it retrying until then.
		return http.StatusServiceUnavailable, "herald refused the shim's credentials; notification not stored, retry"
	}
	// Unavailable, DeadlineExceeded, ResourceExhausted, Internal, Unknown,
	// Canceled and anything unexpected: the notification is not stored, and
	// Alertmanager must send it again.
	return http.StatusServiceUnavailable, "notification not stored; retry"
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

func writeUnavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	writeError(w, http.StatusServiceUnavailable, msg)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
