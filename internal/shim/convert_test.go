package shim

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// convertCases are the webhook payloads whose conversion is pinned by a
// golden file testdata/convert/<name>.golden.
var convertCases = []struct {
	name  string
	input string
}{
	{"firing", "../../deploy/examples/firing.json"},
	{"resolved", "../../deploy/examples/resolved.json"},
	{"mixed", "testdata/convert/mixed.json"},
	{"truncated", "testdata/convert/truncated.json"},
	{"no_severity", "testdata/convert/no_severity.json"},
	{"unknown_severity", "testdata/convert/unknown_severity.json"},
	{"unicode_long", "testdata/convert/unicode_long.json"},
	{"mentions", "testdata/convert/mentions.json"},
	{"newer_fields", "testdata/convert/newer_fields.json"},
}

func TestConvertGolden(t *testing.T) {
	for _, tc := range convertCases {
		t.Run(tc.name, func(t *testing.T) {
			ns := decodeConvert(t, tc.input)
			got := marshalGolden(t, ns)
			golden := filepath.Join("testdata", "convert", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Convert(%s) differs from %s (run go test -update and review the diff):\n%s", tc.input, golden, got)
			}
			// The golden form must read back into the same notifications.
			for i, n := range unmarshalGolden(t, want) {
				if !proto.Equal(n, ns[i]) {
					t.Errorf("golden notification %d does not round-trip", i)
				}
			}
		})
	}
}

func decodeConvert(t *testing.T, path string) []*heraldv1.Notification {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Decode(f)
	if err != nil {
		t.Fatalf("Decode(%s): %v", path, err)
	}
	ns, err := Convert(m)
	if err != nil {
		t.Fatalf("Convert(%s): %v", path, err)
	}
	if len(ns) != 1 {
		t.Fatalf("Convert(%s) gave %d notifications, want 1 per webhook", path, len(ns))
	}
	return ns
}

// marshalGolden renders notifications as stable, indented protojson:
// protojson's own whitespace is deliberately unstable, so it is compacted and
// re-indented.
func marshalGolden(t *testing.T, ns []*heraldv1.Notification) []byte {
	t.Helper()
	var raw []json.RawMessage
	for _, n := range ns {
		b, err := protojson.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false) // keep "<!channel>" readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(raw); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func unmarshalGolden(t *testing.T, b []byte) []*heraldv1.Notification {
	t.Helper()
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var ns []*heraldv1.Notification
	for _, r := range raw {
		n := &heraldv1.Notification{}
		if err := protojson.Unmarshal(r, n); err != nil {
			t.Fatal(err)
		}
		ns = append(ns, n)
	}
	return ns
}

// TestConvertFields checks the rules the golden files only show, one by one,
// so that a careless -update cannot bless a broken rule.
func TestConvertFields(t *testing.T) {
	firing := decodeConvert(t, "../../deploy/examples/firing.json")[0]
	resolved := decodeConvert(t, "../../deploy/examples/resolved.json")[0]
	mixed := decodeConvert(t, "testdata/convert/mixed.json")[0]
	noSev := decodeConvert(t, "testdata/convert/no_severity.json")[0]
	unknownSev := decodeConvert(t, "testdata/convert/unknown_severity.json")[0]
	truncated := decodeConvert(t, "testdata/convert/truncated.json")[0]
	mentions := decodeConvert(t, "testdata/convert/mentions.json")[0]
	unicode := decodeConvert(t, "testdata/convert/unicode_long.json")[0]

	checks := []struct {
		name      string
		got, want any
	}{
		{"firing status", firing.GetStatus(), heraldv1.Status_STATUS_FIRING},
		{"resolved status", resolved.GetStatus(), heraldv1.Status_STATUS_RESOLVED},
		{"firing severity from common labels", firing.GetSeverity(), heraldv1.Severity_SEVERITY_CRITICAL},
		{"mixed severity is the highest of its alerts", mixed.GetSeverity(), heraldv1.Severity_SEVERITY_CRITICAL},
		{"no severity is info", noSev.GetSeverity(), heraldv1.Severity_SEVERITY_INFO},
		{"unknown severity is info", unknownSev.GetSeverity(), heraldv1.Severity_SEVERITY_INFO},
		{"severity ignores case and space", unicode.GetSeverity(), heraldv1.Severity_SEVERITY_WARNING},
		{"firing title", firing.GetTitle(), "HighLatency service=checkout"},
		{"resolved title", resolved.GetTitle(), "HighLatency service=checkout"},
		{"mixed title", mixed.GetTitle(), "DiskFull"},
		{"title without alertname label", noSev.GetTitle(), "CertExpiry, Watchdog"},
		{"firing text from common summary", firing.GetText(), "Checkout p99 latency above 2s"},
		{"mixed text per alert", mixed.GetText(), "- /var is 91% full on db-1\n- [resolved] /var was 90% full on db-0\n- /var is 99% full on db-2"},
		{"truncated count", truncated.GetTruncatedAlerts(), uint32(7)},
		{"truncated text", strings.HasSuffix(truncated.GetText(), "(7 more alerts not shown: Alertmanager's max_alerts)"), true},
		{"source", firing.GetSource(), "alertmanager"},
		{"receiver", firing.GetReceiver(), "herald"},
		{"group key", firing.GetGroupKey(), `{}/{severity=~"critical|warning"}:{alertname="HighLatency", service="checkout"}`},
		{"external url", firing.GetExternalUrl(), "http://alertmanager.example.com:9093"},
		{"labels are common labels", firing.GetLabels()["job"], "api"},
		{"annotations are common annotations", firing.GetAnnotations()["runbook_url"], "https://runbooks.example.com/checkout/high-latency"},
		{"alerts kept", len(firing.GetAlerts()), 3},
		{"fingerprint kept", firing.GetAlerts()[1].GetFingerprint(), "0a93c1d2e4f56789"},
		{"startsAt kept", firing.GetAlerts()[0].GetStartsAt().AsTime(), time.Date(2026, 11, 27, 9, 58, 12, 345e6, time.UTC)},
		{"firing endsAt year 1 is unset", firing.GetAlerts()[0].GetEndsAt() == nil, true},
		{"firing endsAt in the future is unset", mixed.GetAlerts()[2].GetEndsAt() == nil, true},
		{"resolved endsAt kept", resolved.GetAlerts()[0].GetEndsAt().AsTime(), time.Date(2026, 11, 27, 10, 12, 12, 345e6, time.UTC)},
		{"startsAt offset normalised", mixed.GetAlerts()[2].GetStartsAt().AsTime(), time.Date(2026, 11, 27, 6, 10, 0, 0, time.UTC)},
		{"generator link", firing.GetLinks().GetGenerator(), "http://prometheus.example.com:9090/graph?g0.expr=histogram_quantile%280.99%2C+rate%28http_request_duration_seconds_bucket%7Bjob%3D%22api%22%7D%5B5m%5D%29%29+%3E+2&g0.tab=1"},
		{"silence link", firing.GetLinks().GetSilence(), "http://alertmanager.example.com:9093/#/silences/new?filter=%7Balertname%3D%22HighLatency%22%2Cservice%3D%22checkout%22%7D"},
		{"runbook from common annotations", firing.GetLinks().GetRunbook(), "https://runbooks.example.com/checkout/high-latency"},
		{"dashboard from the first alert", firing.GetLinks().GetDashboard(), "https://grafana.example.com/d/checkout?var-instance=api-0.prod:8080"},
		{"runbook from an alert", mixed.GetLinks().GetRunbook(), "https://runbooks.example.com/disk-full"},
		{"no silence link without external URL", noSev.GetLinks().GetSilence(), ""},
		{"javascript runbook dropped", mentions.GetLinks().GetRunbook(), ""},
		{"mention label verbatim", mentions.GetLabels()["team"], "<!channel>"},
		{"mention title verbatim", mentions.GetTitle(), "@all team=<!channel>"},
		{"title on one line", unicode.GetTitle(), `Ошибка path=C:\temp "quoted" next site=東京`},
		{"long annotation cut at 8 KiB", len(unicode.GetAlerts()[0].GetAnnotations()["description"]), 8191},
		{"cut annotation marked", strings.HasSuffix(unicode.GetAlerts()[0].GetAnnotations()["description"], "Пр…"), true},
		{"cut said in the text", strings.HasSuffix(unicode.GetText(), "\n(herald shortened this notification: annotations.description cut at 8 KiB; alerts[0].annotations.description cut at 8 KiB)"), true},
		{"id left to the service", firing.GetId(), ""},
		{"received_at left to the service", firing.GetReceivedAt() == nil, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestSilenceURLEscapesMatcherValues(t *testing.T) {
	m := &Message{
		ExternalURL: "https://am.example.com/sub/",
		GroupLabels: map[string]string{"path": "C:\\temp \"q\"\nx", "site": "東京"},
	}
	got := SilenceURL(m)
	const prefix = "https://am.example.com/sub/#/silences/new?filter="
	if !strings.HasPrefix(got, prefix) {
		t.Fatalf("SilenceURL = %q, want prefix %q", got, prefix)
	}
	filter := strings.TrimPrefix(got, prefix)
	if strings.ContainsAny(filter, "{}\"\n ") {
		t.Errorf("filter %q is not URL-encoded", filter)
	}
	want := `{path="C:\\temp \"q\"\nx",site="東京"}`
	if dec := mustQueryUnescape(t, filter); dec != want {
		t.Errorf("filter decodes to %q, want %q", dec, want)
	}
}

func TestIdempotencyKey(t *testing.T) {
	base := func() *Message {
		m, err := Decode(strings.NewReader(mustRead(t, "../../deploy/examples/resolved.json")))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	key := IdempotencyKey(base())
	if len(key) != 64 || strings.Trim(key, "0123456789abcdef") != "" {
		t.Fatalf("key %q is not hex SHA-256", key)
	}

	same := map[string]func(m *Message){
		"alerts reordered": func(m *Message) { m.Alerts[0], m.Alerts[2] = m.Alerts[2], m.Alerts[0] },
		"labels changed":   func(m *Message) { m.CommonLabels["x"] = "y"; m.Alerts[0].Labels["x"] = "y" },
		"annotations":      func(m *Message) { m.CommonAnnotations["summary"] = "other words" },
		"external URL":     func(m *Message) { m.ExternalURL = "http://peer-2:9093" },
		"reason":           func(m *Message) { m.NotificationReason = "repeat interval elapsed" },
		"time zone":        func(m *Message) { m.Alerts[1].StartsAt = m.Alerts[1].StartsAt.In(time.FixedZone("X", 3600)) },
	}
	for name, change := range same {
		m := base()
		change(m)
		if got := IdempotencyKey(m); got != key {
			t.Errorf("%s: key changed (%s != %s); every HA peer must produce the same key", name, got, key)
		}
	}

	differs := map[string]func(m *Message){
		"receiver":          func(m *Message) { m.Receiver = "other" },
		"group key":         func(m *Message) { m.GroupKey += "x" },
		"group status":      func(m *Message) { m.Status = StatusFiring },
		"alert status":      func(m *Message) { m.Alerts[0].Status = StatusFiring },
		"fingerprint":       func(m *Message) { m.Alerts[0].Fingerprint = "ffffffffffffffff" },
		"startsAt":          func(m *Message) { m.Alerts[0].StartsAt = m.Alerts[0].StartsAt.Add(time.Second) },
		"endsAt":            func(m *Message) { m.Alerts[0].EndsAt = m.Alerts[0].EndsAt.Add(time.Nanosecond) },
		"alert dropped":     func(m *Message) { m.Alerts = m.Alerts[:2] },
		"alert duplicated":  func(m *Message) { m.Alerts = append(m.Alerts, m.Alerts[0]) },
		"fields run across": func(m *Message) { m.Receiver, m.GroupKey = m.Receiver+m.GroupKey[:1], m.GroupKey[1:] },
	}
	for name, change := range differs {
		m := base()
		change(m)
		if got := IdempotencyKey(m); got == key {
			t.Errorf("%s: key unchanged; a different notification would be dropped as a duplicate", name)
		}
	}

	// A firing alert's provisional endsAt is not part of the key.
	f1 := &Message{Version: "4", Status: StatusFiring, Alerts: []Alert{{Status: StatusFiring, Fingerprint: "a", EndsAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}}
	f2 := &Message{Version: "4", Status: StatusFiring, Alerts: []Alert{{Status: StatusFiring, Fingerprint: "a"}}}
	if IdempotencyKey(f1) != IdempotencyKey(f2) {
		t.Error("a firing alert's endsAt changed the key")
	}
	// Alerts without fingerprints still differ by labels.
	l1 := &Message{Version: "4", Status: StatusFiring, Alerts: []Alert{{Status: StatusFiring, Labels: map[string]string{"a": "1"}}}}
	l2 := &Message{Version: "4", Status: StatusFiring, Alerts: []Alert{{Status: StatusFiring, Labels: map[string]string{"a": "2"}}}}
	if IdempotencyKey(l1) == IdempotencyKey(l2) {
		t.Error("alerts without fingerprints but different labels gave the same key")
	}
}

func TestConvertRejectsInvalidMessages(t *testing.T) {
	valid := func() *Message {
		return &Message{Version: "4", Status: StatusFiring, Alerts: []Alert{{Status: StatusFiring, Fingerprint: "a"}}}
	}
	if ns, err := Convert(valid()); err != nil || len(ns) != 1 {
		t.Fatalf("Convert(valid) = %v, %v", ns, err)
	}
	for name, change := range map[string]func(m *Message){
		"version":      func(m *Message) { m.Version = "3" },
		"status":       func(m *Message) { m.Status = "pending" },
		"no alerts":    func(m *Message) { m.Alerts = nil },
		"alert status": func(m *Message) { m.Alerts[0].Status = "" },
		"time range":   func(m *Message) { m.Alerts[0].StartsAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
	} {
		m := valid()
		change(m)
		ns, err := Convert(m)
		if err == nil || ns != nil {
			t.Errorf("%s: Convert = %v, %v; want only an error", name, ns, err)
		}
	}
	if ns, err := Convert(nil); err == nil || ns != nil {
		t.Errorf("Convert(nil) = %v, %v", ns, err)
	}
}

func TestConvertDoesNotAlias(t *testing.T) {
	m, err := Decode(strings.NewReader(mustRead(t, "../../deploy/examples/firing.json")))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := Convert(m)
	if err != nil {
		t.Fatal(err)
	}
	ns[0].Labels["job"] = "changed"
	ns[0].Alerts[0].Labels["job"] = "changed"
	ns[0].Annotations["summary"] = "changed"
	if m.CommonLabels["job"] != "api" || m.Alerts[0].Labels["job"] != "api" || m.CommonAnnotations["summary"] == "changed" {
		t.Error("the notification shares maps with the message")
	}
}

func mustRead(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
