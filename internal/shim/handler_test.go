package shim

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// fakePublisher stores notifications by idempotency key the way the real
// store does (same key: duplicate, earlier id), or fails with err.
type fakePublisher struct {
	mu     sync.Mutex
	err    error
	byKey  map[string]string
	stored []*heraldv1.Notification
	ctxs   []context.Context
}

func (f *fakePublisher) Publish(ctx context.Context, req *connect.Request[heraldv1.PublishRequest]) (*connect.Response[heraldv1.PublishResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctxs = append(f.ctxs, ctx)
	if f.err != nil {
		return nil, f.err
	}
	n := req.Msg.GetNotification()
	if f.byKey == nil {
		f.byKey = map[string]string{}
	}
	if id, ok := f.byKey[n.GetIdempotencyKey()]; ok && n.GetIdempotencyKey() != "" {
		return connect.NewResponse(&heraldv1.PublishResponse{Id: id, Duplicate: true}), nil
	}
	id := fmt.Sprintf("n%d", len(f.stored)+1)
	f.byKey[n.GetIdempotencyKey()] = id
	f.stored = append(f.stored, n)
	return connect.NewResponse(&heraldv1.PublishResponse{Id: id}), nil
}

func post(t *testing.T, h http.Handler, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func errorOf(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", rec.Body, err)
	}
	return e.Error
}

func TestHandlerStoresAndDeduplicates(t *testing.T) {
	pub := &fakePublisher{}
	h := NewHandler(pub, Options{})
	body := mustRead(t, "../../deploy/examples/firing.json")

	rec := post(t, h, body)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	var first Response
	if err := json.Unmarshal(rec.Body.Bytes(), &first); err != nil {
		t.Fatal(err)
	}
	if len(first.Notifications) != 1 || first.Notifications[0].ID != "n1" || first.Notifications[0].Duplicate {
		t.Errorf("first response %+v", first)
	}
	if len(pub.stored) != 1 {
		t.Fatalf("stored %d notifications, want 1", len(pub.stored))
	}
	want, _ := Convert(mustDecode(t, body))
	if got := pub.stored[0]; got.GetIdempotencyKey() != want[0].GetIdempotencyKey() || got.GetTitle() != want[0].GetTitle() {
		t.Errorf("published %v, want Convert's %v", got, want[0])
	}

	// Alertmanager sends the same notification again (another HA peer, or a
	// retry): 200, the first id, nothing new stored.
	rec = post(t, h, body)
	var second Response
	if err := json.Unmarshal(rec.Body.Bytes(), &second); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusOK || len(second.Notifications) != 1 || second.Notifications[0].ID != "n1" || !second.Notifications[0].Duplicate {
		t.Errorf("duplicate answered %d %s", rec.Code, rec.Body)
	}
	if len(pub.stored) != 1 {
		t.Errorf("stored %d notifications after a duplicate, want 1", len(pub.stored))
	}

	// The resolved notification of the same group is a new one.
	if rec := post(t, h, mustRead(t, "../../deploy/examples/resolved.json")); rec.Code != http.StatusOK || len(pub.stored) != 2 {
		t.Errorf("resolved answered %d, stored %d", rec.Code, len(pub.stored))
	}
}

func TestHandlerStatusCodes(t *testing.T) {
	valid := mustRead(t, "../../deploy/examples/firing.json")
	cases := []struct {
		name       string
		method     string
		ctype      string // "-" for none
		body       string
		maxBody    int64
		pubErr     error
		wantStatus int
		wantError  string // substring of the error message
	}{
		{name: "stored", body: valid, wantStatus: 200},
		{name: "no content type", ctype: "-", body: valid, wantStatus: 200},
		{name: "json with charset", ctype: "application/json; charset=utf-8", body: valid, wantStatus: 200},
		{name: "bad JSON", body: `{"version":`, wantStatus: 400, wantError: "invalid JSON"},
		{name: "wrong version", body: strings.Replace(valid, `"version": "4"`, `"version": "3"`, 1), wantStatus: 400, wantError: `field version: unsupported version "3"`},
		{name: "missing version", body: strings.Replace(valid, `"version": "4",`, ``, 1), wantStatus: 400, wantError: "field version: missing"},
		{name: "no alerts", body: `{"version":"4","status":"firing","alerts":[]}`, wantStatus: 400, wantError: "no alerts"},
		{name: "wrong type", body: strings.Replace(valid, `"truncatedAlerts": 0`, `"truncatedAlerts": "0"`, 1), wantStatus: 400, wantError: "field truncatedAlerts: got JSON string"},
		{name: "service says invalid", body: valid, pubErr: connect.NewError(connect.CodeInvalidArgument, errors.New("title too long")), wantStatus: 400, wantError: "title too long"},
		{name: "GET", method: http.MethodGet, wantStatus: 405},
		{name: "PUT", method: http.MethodPut, body: valid, wantStatus: 405},
		{name: "over the limit", body: valid, maxBody: 100, wantStatus: 413, wantError: "larger than 100 bytes"},
		{name: "form post", ctype: "application/x-www-form-urlencoded", body: valid, wantStatus: 415},
		{name: "text", ctype: "text/plain", body: valid, wantStatus: 415},
		{name: "storage unavailable", body: valid, pubErr: connect.NewError(connect.CodeUnavailable, errors.New("storage unavailable")), wantStatus: 503},
		{name: "deadline", body: valid, pubErr: connect.NewError(connect.CodeDeadlineExceeded, context.DeadlineExceeded), wantStatus: 503},
		{name: "exhausted", body: valid, pubErr: connect.NewError(connect.CodeResourceExhausted, errors.New("full")), wantStatus: 503},
		{name: "internal", body: valid, pubErr: connect.NewError(connect.CodeInternal, errors.New("bug")), wantStatus: 503},
		{name: "plain error", body: valid, pubErr: errors.New("dial tcp: connection refused"), wantStatus: 503},
		{name: "canceled", body: valid, pubErr: context.Canceled, wantStatus: 503},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pub := &fakePublisher{err: tc.pubErr}
			h := NewHandler(pub, Options{MaxBodyBytes: tc.maxBody})
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, Path, strings.NewReader(tc.body))
			switch tc.ctype {
			case "":
				req.Header.Set("Content-Type", "application/json")
			case "-":
			default:
				req.Header.Set("Content-Type", tc.ctype)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.wantStatus == 200 {
				if len(pub.stored) != 1 {
					t.Errorf("stored %d, want 1", len(pub.stored))
				}
				return
			}
			msg := errorOf(t, rec)
			if !strings.Contains(msg, tc.wantError) {
				t.Errorf("error %q does not contain %q", msg, tc.wantError)
			}
			if len(pub.stored) != 0 {
				t.Errorf("stored %d notifications on a failure", len(pub.stored))
			}
			switch tc.wantStatus {
			case 503:
				if rec.Header().Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
			case 405:
				if rec.Header().Get("Allow") != http.MethodPost {
					t.Errorf("405 with Allow %q", rec.Header().Get("Allow"))
				}
			}
		})
	}
}

// TestHandlerNeverAnswers4xxForTransientFaults runs every Connect code that
// does not say "this request can never succeed" through the handler: each
// must give a 5xx, which Alertmanager retries, never a 4xx, which it drops.
func TestHandlerNeverAnswers4xxForTransientFaults(t *testing.T) {
	permanent := map[connect.Code]bool{
		connect.CodeInvalidArgument: true,
	}
	body := mustRead(t, "../../deploy/examples/firing.json")
	for code := connect.CodeCanceled; code <= connect.CodeUnauthenticated; code++ {
		if permanent[code] {
			continue
		}
		pub := &fakePublisher{err: connect.NewError(code, errors.New("fault"))}
		rec := post(t, NewHandler(pub, Options{}), body)
		if rec.Code < 500 {
			t.Errorf("Publish failing with %v answered %d; Alertmanager would drop the notification", code, rec.Code)
		}
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestHandlerBodyReadFailureIsRetryable(t *testing.T) {
	pub := &fakePublisher{}
	req := httptest.NewRequest(http.MethodPost, Path, failingReader{io.ErrUnexpectedEOF})
	rec := httptest.NewRecorder()
	NewHandler(pub, Options{}).ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503 when the body did not arrive", rec.Code)
	}
}

func TestHandlerLimitIsExact(t *testing.T) {
	body := mustRead(t, "../../deploy/examples/firing.json")
	n := int64(len(body))
	if rec := post(t, NewHandler(&fakePublisher{}, Options{MaxBodyBytes: n}), body); rec.Code != 200 {
		t.Errorf("body of exactly the limit answered %d", rec.Code)
	}
	if rec := post(t, NewHandler(&fakePublisher{}, Options{MaxBodyBytes: n - 1}), body); rec.Code != 413 {
		t.Errorf("body one byte over the limit answered %d", rec.Code)
	}
	big := `{"version":"4","status":"firing","alerts":[{"status":"firing","annotations":{"x":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}}]}`
	if rec := post(t, NewHandler(&fakePublisher{}, Options{}), big); rec.Code != 413 {
		t.Errorf("body over the default limit answered %d", rec.Code)
	}
}

type ctxKey struct{}

func TestHandlerPublishesWithTheRequestContext(t *testing.T) {
	pub := &fakePublisher{}
	h := NewHandler(pub, Options{})
	req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(mustRead(t, "../../deploy/examples/firing.json")))
	// Stands in for the span otelhttp put in the context from traceparent.
	req = req.WithContext(context.WithValue(req.Context(), ctxKey{}, "trace"))
	h.ServeHTTP(httptest.NewRecorder(), req)
	if len(pub.ctxs) != 1 || pub.ctxs[0].Value(ctxKey{}) != "trace" {
		t.Error("Publish did not get the request's context")
	}
}

func TestHandlerLogsRefusals(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	pub := &fakePublisher{err: connect.NewError(connect.CodeUnavailable, errors.New("storage unavailable"))}
	post(t, NewHandler(pub, Options{Logger: log}), mustRead(t, "../../deploy/examples/firing.json"))
	out := buf.String()
	for _, want := range []string{"publish failed", "http_status=503", "receiver=herald", "idempotency_key="} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
}

func mustDecode(t *testing.T, body string) *Message {
	t.Helper()
	m, err := Decode(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func gzipped(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestHandlerContentEncoding: a gzip body is decoded (Alertmanager drops a
// webhook answered 4xx), bounded by the body limit after decoding so a
// small bomb cannot exhaust memory; bad gzip data is a 400, and any other
// encoding a 415 naming the one herald decodes.
func TestHandlerContentEncoding(t *testing.T) {
	valid := mustRead(t, "../../deploy/examples/firing.json")
	zipped := gzipped(t, valid)
	bomb := gzipped(t, `{"version":"4","status":"firing","alerts":[{"status":"firing","annotations":{"x":"`+strings.Repeat("a", 10<<20)+`"}}]}`)
	cases := []struct {
		name       string
		encoding   []string
		body       string
		maxBody    int64
		wantStatus int
		wantError  string
	}{
		{name: "gzip", encoding: []string{"gzip"}, body: zipped, wantStatus: 200},
		{name: "x-gzip", encoding: []string{"x-gzip"}, body: zipped, wantStatus: 200},
		{name: "case and space", encoding: []string{" GZip "}, body: zipped, wantStatus: 200},
		{name: "identity", encoding: []string{"identity"}, body: valid, wantStatus: 200},
		{name: "identity then gzip", encoding: []string{"identity", "gzip"}, body: zipped, wantStatus: 200},
		{name: "gzip at the limit after decoding", encoding: []string{"gzip"}, body: zipped, maxBody: int64(len(valid)), wantStatus: 200},
		{name: "gzip over the limit after decoding", encoding: []string{"gzip"}, body: zipped, maxBody: int64(len(valid)) - 1, wantStatus: 413, wantError: "body after gzip decoding larger than"},
		{name: "gzip bomb", encoding: []string{"gzip"}, body: bomb, wantStatus: 413, wantError: "larger than 4194304 bytes"},
		{name: "not gzip", encoding: []string{"gzip"}, body: valid, wantStatus: 400, wantError: "body is not valid gzip"},
		{name: "empty gzip", encoding: []string{"gzip"}, body: "", wantStatus: 400, wantError: "body is not valid gzip"},
		{name: "truncated gzip", encoding: []string{"gzip"}, body: zipped[:len(zipped)/2], wantStatus: 400, wantError: "body is not valid gzip: unexpected end"},
		{name: "bad checksum", encoding: []string{"gzip"}, body: zipped[:len(zipped)-8] + "\x00\x00\x00\x00" + zipped[len(zipped)-4:], wantStatus: 400, wantError: "body is not valid gzip"},
		{name: "gzip of bad JSON", encoding: []string{"gzip"}, body: gzipped(t, `{"version":`), wantStatus: 400, wantError: "invalid JSON"},
		{name: "brotli", encoding: []string{"br"}, body: valid, wantStatus: 415, wantError: `content encoding "br": herald decodes gzip only`},
		{name: "deflate", encoding: []string{"deflate"}, body: valid, wantStatus: 415},
		{name: "gzip then br", encoding: []string{"gzip, br"}, body: zipped, wantStatus: 415},
		{name: "gzip twice", encoding: []string{"gzip", "gzip"}, body: gzipped(t, zipped), wantStatus: 415},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pub := &fakePublisher{}
			req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			for _, e := range tc.encoding {
				req.Header.Add("Content-Encoding", e)
			}
			rec := httptest.NewRecorder()
			NewHandler(pub, Options{MaxBodyBytes: tc.maxBody}).ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if tc.wantStatus == 200 {
				want, _ := Convert(mustDecode(t, valid))
				if len(pub.stored) != 1 || !proto.Equal(pub.stored[0], want[0]) {
					t.Errorf("stored %d notifications, want the plain body's", len(pub.stored))
				}
				return
			}
			if msg := errorOf(t, rec); !strings.Contains(msg, tc.wantError) {
				t.Errorf("error %q does not contain %q", msg, tc.wantError)
			}
			if len(pub.stored) != 0 {
				t.Errorf("stored %d notifications on a failure", len(pub.stored))
			}
			if tc.wantStatus == 415 && rec.Header().Get("Accept-Encoding") != "gzip" {
				t.Errorf("415 with Accept-Encoding %q, want gzip", rec.Header().Get("Accept-Encoding"))
			}
		})
	}
}

// TestHandlerGzipBodyCutShortIsRetryable: a gzip body whose connection
// fails part-way is a 503, like a plain one, not a 400 for bad gzip.
func TestHandlerGzipBodyCutShortIsRetryable(t *testing.T) {
	zipped := gzipped(t, mustRead(t, "../../deploy/examples/firing.json"))
	body := io.MultiReader(strings.NewReader(zipped[:len(zipped)/2]), failingReader{io.ErrUnexpectedEOF})
	req := httptest.NewRequest(http.MethodPost, Path, body)
	req.Header.Set("Content-Encoding", "gzip")
	rec := httptest.NewRecorder()
	NewHandler(&fakePublisher{}, Options{}).ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503: %s", rec.Code, rec.Body)
	}
}
