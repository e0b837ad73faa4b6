package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// benchWebhook is a realistic Alertmanager webhook of one group with n
// alerts: eight labels and three annotations per alert, as a Kubernetes
// alert rule produces.
func benchWebhook(b *testing.B, n int) []byte { return benchWebhookBytes(b, n) }

func benchWebhookBytes(b testing.TB, n int) []byte {
	b.Helper()
	type alert struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	}
	common := map[string]string{"alertname": "HighLatency", "severity": "warning", "namespace": "payments",
		"job": "kubernetes-pods", "cluster": "prod-eu-1", "group": "g-42"}
	w := map[string]any{
		"version": "4", "status": "firing", "receiver": "herald", "truncatedAlerts": 0,
		"groupKey":          `{}/{severity=~"critical|warning"}:{alertname="HighLatency", group="g-42"}`,
		"groupLabels":       map[string]string{"alertname": "HighLatency", "group": "g-42"},
		"commonLabels":      common,
		"commonAnnotations": map[string]string{"runbook_url": "https://runbooks.example.com/HighLatency"},
		"externalURL":       "http://alertmanager.example.com:9093",
	}
	var alerts []alert
	start := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	for i := range n {
		l := map[string]string{"pod": fmt.Sprintf("payments-api-%05x", i*7919), "instance": fmt.Sprintf("10.1.2.%d:8080", i)}
		for k, v := range common {
			l[k] = v
		}
		alerts = append(alerts, alert{
			Status: "firing", Labels: l,
			Annotations: map[string]string{
				"summary":     "HighLatency on " + l["pod"],
				"description": fmt.Sprintf("%s p99 latency has been above 500ms for 10 minutes (value %d ms).", l["pod"], 500+i),
				"runbook_url": "https://runbooks.example.com/HighLatency",
			},
			StartsAt:     start.Add(time.Duration(i) * time.Second),
			GeneratorURL: "http://prometheus.example.com:9090/graph?g0.expr=latency&g0.tab=1",
			Fingerprint:  fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15),
		})
	}
	w["alerts"] = alerts
	body, err := json.Marshal(w)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

var benchSizes = []int{1, 5, 20}

// BenchmarkDecode measures JSON decoding and checking of one webhook.
//
//	go test -run '^$' -bench . -benchmem ./internal/shim/
func BenchmarkDecode(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("alerts=%d", n), func(b *testing.B) {
			body := benchWebhook(b, n)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(bytes.NewReader(body)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeEscaped is BenchmarkDecode/alerts=5 with an escaped '>'
// in every description, as Alertmanager's encoding/json writes '<', '>'
// and '&'.
func BenchmarkDecodeEscaped(b *testing.B) {
	body := bytes.ReplaceAll(benchWebhook(b, 5), []byte("has been above"), []byte(`has been \u003e`))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConvert measures webhook → Notification, idempotency key
// included.
func BenchmarkConvert(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("alerts=%d", n), func(b *testing.B) {
			m, err := Decode(bytes.NewReader(benchWebhook(b, n)))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Convert(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type discardPublisher struct{}

func (discardPublisher) Publish(_ context.Context, req *connect.Request[heraldv1.PublishRequest]) (*connect.Response[heraldv1.PublishResponse], error) {
	return connect.NewResponse(&heraldv1.PublishResponse{Id: "01JBENCH0000000000000000000"}), nil
}

// BenchmarkHandler measures the whole webhook handler — read, decode,
// convert, answer — with a publisher that stores nothing.
func BenchmarkHandler(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("alerts=%d", n), func(b *testing.B) {
			body := benchWebhook(b, n)
			h := NewHandler(discardPublisher{}, Options{})
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// BenchmarkHandlerLogged is BenchmarkHandler/alerts=5 with a JSON logger at
// info level, as herald serve runs it: what logging costs a webhook that
// logs nothing.
func BenchmarkHandlerLogged(b *testing.B) {
	body := benchWebhook(b, 5)
	h := NewHandler(discardPublisher{}, Options{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
