package queue

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []storedRecord{
		{seq: 0, rec: &heraldv1.DeliveryRecord{}},
		{seq: 1, rec: &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_PENDING}},
		{seq: 1<<63 + 5, rec: &heraldv1.DeliveryRecord{
			State: heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, DeliveredBy: "slack", FallbackReason: "breaker open",
			Sinks: []*heraldv1.SinkDelivery{{Sink: "rocketchat", Attempts: 4, LastError: "503"}},
		}},
	} {
		b, err := encodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.seq != r.seq || !proto.Equal(got.rec, r.rec) {
			t.Errorf("round trip %v/%v = %v/%v", r.seq, r.rec, got.seq, got.rec)
		}
	}
	for _, bad := range [][]byte{nil, {}, {2, 1}, {1}, {1, 0x80}, {1, 1, 0xff}} {
		if _, err := decodeRecord(bad); err == nil {
			t.Errorf("decodeRecord(%x) accepted", bad)
		}
	}
}

// Records are read back from a bucket other tools (and other herald
// versions) can write; a bad value must be an error, never a panic.
func FuzzDecodeRecord(f *testing.F) {
	b, _ := encodeRecord(storedRecord{seq: 42, rec: &heraldv1.DeliveryRecord{State: heraldv1.DeliveryState_DELIVERY_STATE_RETRYING}})
	f.Add(b)
	f.Add([]byte{1, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		again, err := encodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := decodeRecord(again)
		if err != nil || r2.seq != r.seq || !proto.Equal(r2.rec, r.rec) {
			t.Fatalf("re-encoded record differs: %v %v", r2, err)
		}
	})
}

// Page tokens come back from API callers.
func FuzzDecodePageToken(f *testing.F) {
	f.Add(encodePageToken(1))
	f.Add(encodePageToken(1 << 60))
	f.Add("")
	f.Add("aHExOjA")
	f.Fuzz(func(t *testing.T, tok string) {
		seq, ok := decodePageToken(tok)
		if !ok {
			return
		}
		if seq == 0 {
			t.Fatalf("token %q decodes to sequence 0", tok)
		}
		if back, ok := decodePageToken(encodePageToken(seq)); !ok || back != seq {
			t.Fatalf("token for %d does not round-trip", seq)
		}
	})
}

func TestPartitionStable(t *testing.T) {
	// The partition of a group key must never change between versions:
	// messages already queued would lose their order.
	for _, tc := range []struct {
		group, id string
		want      int
	}{
		{"", "01ABC", fnvMod("01ABC", 16)},
		{`{}:{alertname="X"}`, "01ABC", fnvMod(`{}:{alertname="X"}`, 16)},
		{"a", "zzz", 0xe40c292c % 16},
	} {
		if got := Partition(tc.group, tc.id, 16); got != tc.want {
			t.Errorf("Partition(%q, %q) = %d, want %d", tc.group, tc.id, got, tc.want)
		}
	}
	if Partition("g", "id1", 16) != Partition("g", "id2", 16) {
		t.Error("one group key landed in two partitions")
	}
}

// fnvMod is FNV-1a 32 written out, to pin the hash.
func fnvMod(s string, n uint32) int {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return int(h % n)
}

func TestThreadKeyIsKVSafe(t *testing.T) {
	for _, sink := range []string{"rocketchat", "slack fallback/eu", "ünï", ""} {
		k := threadKey(sink, `{}:{alertname="a b.c*>"}`)
		for _, c := range k {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=' || c == '.') {
				t.Errorf("threadKey(%q) = %q has %q", sink, k, c)
			}
		}
	}
	if threadKey("s", "a") == threadKey("s", "b") || threadKey("s", "a") == threadKey("t", "a") {
		t.Error("thread keys collide")
	}
}

func TestIDTime(t *testing.T) {
	at := time.UnixMilli(1767225600123) // 2026-01-01T00:00:00.123Z
	for _, tc := range []struct {
		id   string
		want time.Time // zero: not an id the service makes
	}{
		// The example of the ULID specification (ulid(1469918176385)).
		{"01ARYZ6S41TSV4RRFFQ69G5FAV", time.UnixMilli(1469918176385)},
		{testID(at, 0), at},
		{testID(at, 1<<63), at},
		{"7ZZZZZZZZZZZZZZZZZZZZZZZZZ", time.UnixMilli(1<<48 - 1)},
		// What the tests used to use, and other ids callers of the queue
		// may pass: shorter, longer, not Crockford, over 48 bits.
		{"01TEST000001", time.Time{}},
		{"01ARZ3NDEKTSV4RRFFQ69G5FA", time.Time{}},
		{"01ARZ3NDEKTSV4RRFFQ69G5FAVX", time.Time{}},
		{"01ARZ3NDEKTSV4RRFFQ69G5FAI", time.Time{}},
		// ULIDs are case-insensitive; the service writes upper case.
		{"01aryz6s41tsv4rrffq69g5fav", time.UnixMilli(1469918176385)},
		{"81ARZ3NDEKTSV4RRFFQ69G5FAV", time.Time{}},
		{"", time.Time{}},
	} {
		got, ok := idTime(tc.id)
		if ok != !tc.want.IsZero() || !got.Equal(tc.want) {
			t.Errorf("idTime(%q) = %v, %v; want %v", tc.id, got, ok, tc.want)
		}
	}
}
