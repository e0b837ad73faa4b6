package shim

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzDecodeConvert feeds arbitrary bodies through Decode and Convert, as
// the handler does: neither may panic, each returns a result or an error but
// never both, an accepted payload gives exactly one notification that
// marshals as protobuf (valid UTF-8, valid timestamps), and conversion is
// deterministic.
func FuzzDecodeConvert(f *testing.F) {
	addBodySeeds(f, mapEdgeCases, v1Quirks)
	f.Add([]byte(`{"version":"4","status":"resolved","alerts":[{"status":"resolved","endsAt":"0000-01-01T00:00:00Z","startsAt":"9999-12-31T23:59:59.999999999Z"}]}`))
	f.Add([]byte(`{"version":"4","status":"firing","truncatedAlerts":18446744073709551615,"alerts":[{"status":"firing","labels":{"\u0000":"\ud800"}}]}`))

	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Decode(bytes.NewReader(body))
		if (m == nil) == (err == nil) {
			t.Fatalf("Decode = %v, %v: want exactly one of message and error", m, err)
		}
		if err != nil {
			return
		}
		ns, err := Convert(m)
		if (ns == nil) == (err == nil) {
			t.Fatalf("Convert = %v, %v: want exactly one of notifications and error", ns, err)
		}
		if err != nil {
			t.Fatalf("Convert refused a message Decode accepted: %v", err)
		}
		if len(ns) != 1 {
			t.Fatalf("Convert gave %d notifications, want 1", len(ns))
		}
		if _, err := proto.Marshal(ns[0]); err != nil {
			t.Fatalf("notification does not marshal: %v", err)
		}
		again, err := Convert(m)
		if err != nil || !proto.Equal(again[0], ns[0]) {
			t.Fatal("Convert is not deterministic")
		}
	})
}

// addBodySeeds seeds a webhook fuzz test with the example webhooks, the
// conversion test bodies and each list of bodies given.
func addBodySeeds(f *testing.F, lists ...[]string) {
	f.Helper()
	seeds, _ := filepath.Glob("../../deploy/examples/*.json")
	more, _ := filepath.Glob("testdata/convert/*.json")
	for _, p := range append(seeds, more...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, l := range lists {
		for _, s := range l {
			f.Add([]byte(s))
		}
	}
}
