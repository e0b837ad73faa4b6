package queue

import (
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

func TestPayloadRoundTrip(t *testing.T) {
	small := notif("g", heraldv1.Severity_SEVERITY_INFO)
	large := notif("g", heraldv1.Severity_SEVERITY_CRITICAL)
	for i := range 20 {
		large.Alerts = append(large.Alerts, &heraldv1.Alert{
			Labels:      map[string]string{"alertname": "KubePodCrashLooping", "namespace": "payments", "pod": "api-" + strings.Repeat("x", i)},
			Annotations: map[string]string{"summary": "Pod is crash looping.", "runbook_url": "https://runbooks.example.com/KubePodCrashLooping"},
		})
	}
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
			data, err := encodeNotification(tc.n, h)
			if err != nil {
				t.Fatal(err)
			}
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
