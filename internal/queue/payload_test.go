package queue

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// alertmanagerLike is a notification as the shim makes one from a
// Kubernetes alert group: alerts with 8 labels and 3 annotations each.
func alertmanagerLike(alerts int) *heraldv1.Notification {
	n := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	for i := range alerts {
		n.Alerts = append(n.Alerts, &heraldv1.Alert{
			Fingerprint: fmt.Sprintf("%016x", i*7919),
			Labels: map[string]string{
				"alertname": "KubePodCrashLooping", "namespace": "payments", "pod": fmt.Sprintf("api-7d9c%d", i),
				"container": "api", "cluster": "prod-eu-1", "severity": "critical", "job": "kube-state-metrics",
				"instance": fmt.Sprintf("10.0.%d.17:8080", i),
			},
			Annotations: map[string]string{
				"summary":     "Pod is crash looping.",
				"description": fmt.Sprintf("Pod payments/api-7d9c%d (api) is in waiting state (reason: CrashLoopBackOff).", i),
				"runbook_url": "https://runbooks.example.com/KubePodCrashLooping",
			},
			GeneratorUrl: "http://prometheus:9090/graph?g0.expr=max_over_time%28kube_pod_container_status_waiting_reason%5B5m%5D%29",
			StartsAt:     timestamppb.Now(),
		})
	}
	return n
}

func TestPayloadRoundTrip(t *testing.T) {
	small := notif("g", heraldv1.Severity_SEVERITY_INFO)
	large := alertmanagerLike(10)
	for _, tc := range []struct {
		name string
		n    *heraldv1.Notification
		enc  string
	}{
		{"small stays plain", small, ""},
		{"large is compressed", large, encodingS2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := nats.Header{}
			h.Set(hdrEncoding, "stale")
			data, release, err := encodeNotification(tc.n, h)
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			if got := h.Get(hdrEncoding); got != tc.enc {
				t.Errorf("encoding header = %q, want %q", got, tc.enc)
			}
			plain, _ := proto.Marshal(tc.n)
			if tc.enc != "" && len(data) > len(plain)/2 {
				t.Errorf("compressed to %d of %d bytes; want at most half", len(data), len(plain))
			}
			back, err := decodeNotification(h, data)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(back, tc.n) {
				t.Errorf("round trip = %v, want %v", back, tc.n)
			}
			// The fast codec writes protobuf's own wire format.
			vt, _ := tc.n.MarshalVT()
			std := &heraldv1.Notification{}
			if err := proto.Unmarshal(vt, std); err != nil || !proto.Equal(std, tc.n) {
				t.Errorf("proto.Unmarshal(MarshalVT) = %v, %v", std, err)
			}
		})
	}
}

// Messages stored before herald compressed carry no encoding header and
// must stay readable.
func TestPayloadPlainWithoutHeader(t *testing.T) {
	n := notif("g", heraldv1.Severity_SEVERITY_INFO)
	n.Text = strings.Repeat("plain old payload ", 100)
	data, _ := proto.Marshal(n)
	back, err := decodeNotification(nats.Header{}, data)
	if err != nil || !proto.Equal(back, n) {
		t.Errorf("decode of a plain payload = %v, %v", back, err)
	}
}

func TestPayloadCorrupt(t *testing.T) {
	n := notif("g", heraldv1.Severity_SEVERITY_INFO)
	plain, _ := proto.Marshal(n)
	huge := s2.Encode(nil, make([]byte, 1<<10))
	// Rewrite the length prefix to claim far more than maxDecoded.
	claim := []byte{0xff, 0xff, 0xff, 0xff, 0x0f}
	for _, tc := range []struct {
		name string
		enc  string
		data []byte
	}{
		{"unknown encoding", "zstd", plain},
		{"not s2", encodingS2, []byte("not s2 at all")},
		{"truncated s2", encodingS2, s2.Encode(nil, plain)[:5]},
		{"claims too much", encodingS2, append(claim, huge[2:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := nats.Header{}
			h.Set(hdrEncoding, tc.enc)
			if _, err := decodeNotification(h, tc.data); !errors.Is(err, errBadPayload) {
				t.Errorf("decode = %v, want errBadPayload", err)
			}
		})
	}
}

// BenchmarkPayload measures what storing and handing out one notification
// costs besides JetStream itself: marshal and compress, decompress and
// unmarshal, for a group of 10 Kubernetes alerts.
func BenchmarkPayload(b *testing.B) {
	n := alertmanagerLike(10)
	h := nats.Header{}
	data, _, err := encodeNotification(n, h)
	if err != nil {
		b.Fatal(err)
	}
	plain, _ := proto.Marshal(n)
	b.Logf("%d bytes marshalled, %d stored", len(plain), len(data))
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, release, err := encodeNotification(n, nats.Header{})
			if err != nil {
				b.Fatal(err)
			}
			release()
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeNotification(h, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(n); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := proto.Unmarshal(plain, &heraldv1.Notification{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
