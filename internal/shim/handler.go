package shim

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/service"
)

// Path is where herald serves the Alertmanager webhook.
const Path = "/webhooks/alertmanager"

// DefaultMaxBodyBytes is the largest webhook body accepted unless
// Options.MaxBodyBytes says otherwise.
const DefaultMaxBodyBytes = 4 << 20

// retryAfterSeconds is sent with every 503. Alertmanager ignores it and
// retries with its own backoff; other callers may use it.
const retryAfterSeconds = 5

// Publisher stores one notification: herald's NotificationService handler.
type Publisher interface {
	Publish(context.Context, *connect.Request[heraldv1.PublishRequest]) (*connect.Response[heraldv1.PublishResponse], error)
}

// Options tunes the handler. The zero value is usable.
type Options struct {
	// MaxBodyBytes caps the request body, after gzip decoding; larger
	// bodies get 413. Zero or less means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxNotificationBytes bounds the protobuf size of the notification
	// published for one webhook: alerts beyond it are left out and counted.
	// Zero or less means DefaultMaxNotificationBytes. A store that refuses a
	// notification as too large makes the handler halve it and try again.
	MaxNotificationBytes int
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
//	     a field of the wrong type, a gzip body that is not valid gzip), or
//	     pub says InvalidArgument
//	405  not a POST
//	413  body over Options.MaxBodyBytes, after gzip decoding
//	415  a Content-Type that is not JSON (no Content-Type is accepted), or a
//	     Content-Encoding other than gzip (answered with Accept-Encoding)
//	503  anything else pub reports, e.g. storage unavailable: Alertmanager
//	     retries
//
// Every payload within the body limit is stored. One over the service's
// limits is shortened (see Convert) rather than refused, and one whose
// notification is larger than the store takes (8 MiB on the embedded queue,
// max_payload on an external NATS server) is stored with fewer alerts, the
// others counted: a 4xx would make Alertmanager drop the whole group, and a
// 5xx would make it retry something that can never fit. The 413 is the one
// refusal of a payload Alertmanager may send: herald does not read such a
// body, so there is nothing to store, and sending it again cannot succeed;
// the cure is a larger webhook.max_body_bytes or max_alerts on the
// Alertmanager receiver, and the refusal is logged.
//
// Authentication of the caller happens before this handler (server
// middleware). Publish runs with the request's context, so the trace that
// the server's otelhttp middleware continued from Alertmanager's traceparent
// carries on into the service.
func NewHandler(pub Publisher, opts Options) http.Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxNotificationBytes <= 0 {
		opts.MaxNotificationBytes = DefaultMaxNotificationBytes
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

	m, gzipped, err := h.read(w, r)
	if err != nil {
		var unsupported *unsupportedEncoding
		var tooBig *http.MaxBytesError
		var bad *DecodeError
		switch {
		case errors.As(err, &unsupported):
			log.WarnContext(ctx, "alertmanager webhook refused: content encoding", "err", err)
			w.Header().Set("Accept-Encoding", "gzip")
			writeError(w, http.StatusUnsupportedMediaType, err.Error())
		case errors.As(err, &tooBig):
			what := "body"
			if gzipped {
				what = "body after gzip decoding"
			}
			log.WarnContext(ctx, "alertmanager webhook refused: body too large", "limit_bytes", tooBig.Limit, "gzip", gzipped)
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s larger than %d bytes", what, tooBig.Limit))
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
	h.publish(ctx, w, m)
}

// publish converts m and publishes it, answering the request.
func (h *handler) publish(ctx context.Context, w http.ResponseWriter, m *Message) {
	log := h.opts.Logger
	// The webhook's attributes go on every line logged from here on; they
	// are attached only when a line is logged (slog's With formats them at
	// once, and most webhooks log nothing).
	group := slog.Group("", "receiver", m.Receiver, "group_key", m.GroupKey, "status", m.Status, "alerts", len(m.Alerts))

	// m is not used after this: the notification may keep its maps.
	f, err := convert(m, true, h.opts.MaxNotificationBytes)
	if err != nil {
		// Decode already checked everything Convert checks.
		log.ErrorContext(ctx, "alertmanager webhook: conversion failed", group, "err", err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	n := f.n
	if len(f.cuts.order) > 0 || f.dropped > 0 {
		log.InfoContext(ctx, "alertmanager webhook shortened to herald's limits", group, "alerts_left_out", f.dropped, "cuts", len(f.cuts.order))
	}
	for {
		// Publishing again is safe: the notification carries its
		// idempotency key, so a retry after a failure stores it once.
		res, err := h.pub.Publish(ctx, connect.NewRequest(&heraldv1.PublishRequest{Notification: n}))
		if err != nil && service.IsTooLarge(err) && len(n.Alerts) > 0 {
			// The store takes less than the shim fitted to (an external
			// NATS server's max_payload): halve the notification and try
			// again; only its alerts can go.
			size := n.SizeVT()
			n.Id, n.ReceivedAt = "", nil // set by an in-process service
			newSize := f.fitSize(size / 2)
			log.WarnContext(ctx, "alertmanager webhook: notification too large for the store; storing fewer alerts",
				group, "bytes", size, "now_bytes", newSize, "alerts_kept", len(n.Alerts), "alerts_left_out", f.dropped)
			continue
		}
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
		resp := Response{Notifications: []Published{{ID: res.Msg.GetId(), Duplicate: res.Msg.GetDuplicate()}}}
		log.DebugContext(ctx, "alertmanager webhook stored", group, "notifications", resp.Notifications)
		writeJSON(w, http.StatusOK, resp)
		return
	}
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

// unsupportedEncoding is a Content-Encoding the handler cannot decode.
type unsupportedEncoding struct{ coding string }

func (e *unsupportedEncoding) Error() string {
	return fmt.Sprintf("content encoding %s: herald decodes gzip only", quoteShort(e.coding))
}

// read decodes the request body, gzip or not (it says which), limited to
// MaxBodyBytes after gzip decoding. A Content-Encoding other than gzip or
// identity is an *unsupportedEncoding; gzip data that is not valid is a
// *DecodeError, so that it gets a 400 while a body that did not arrive whole
// gets a 503.
func (h *handler) read(w http.ResponseWriter, r *http.Request) (*Message, bool, error) {
	limit := h.opts.MaxBodyBytes
	raw := http.MaxBytesReader(w, r.Body, limit)
	gzipped := false
	for _, v := range r.Header.Values("Content-Encoding") {
		for c := range strings.SplitSeq(v, ",") {
			switch c = strings.ToLower(strings.TrimSpace(c)); c {
			case "", "identity":
			case "gzip", "x-gzip":
				if gzipped {
					return nil, false, &unsupportedEncoding{strings.Join(r.Header.Values("Content-Encoding"), ", ")}
				}
				gzipped = true
			default:
				return nil, false, &unsupportedEncoding{c}
			}
		}
	}
	if !gzipped {
		m, err := decodeSized(raw, min(r.ContentLength, limit))
		return m, false, err
	}
	src := &sourceReader{r: raw}
	zr, err := gzip.NewReader(src)
	if err != nil {
		if src.err != nil {
			return nil, true, src.err
		}
		return nil, true, notGzip(err)
	}
	m, err := decodeSized(http.MaxBytesReader(w, &gzipReader{zr: zr, src: src}, limit), 0)
	return m, true, err
}

// sourceReader remembers the first failure to read the raw body, to tell
// a body that did not arrive whole from gzip data that is not valid.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// gzipReader decodes a gzip body; an error that is not the raw body's own
// is a *DecodeError.
type gzipReader struct {
	zr  *gzip.Reader
	src *sourceReader
}

func (g *gzipReader) Read(p []byte) (int, error) {
	n, err := g.zr.Read(p)
	if err != nil && err != io.EOF && g.src.err == nil {
		err = notGzip(err)
	}
	return n, err
}

func (g *gzipReader) Close() error { return g.zr.Close() }

func notGzip(err error) *DecodeError {
	reason := err.Error()
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		reason = "unexpected end of gzip data"
	}
	return &DecodeError{Offset: -1, Reason: "body is not valid gzip: " + reason, Err: err}
}
