package shim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/service"
	"github.com/herald-notify/herald/internal/store/storetest"
)

// FuzzDecodeConvert feeds arbitrary bodies through Decode and Convert, as
// the handler does: neither may panic, each returns a result or an error but
// never both, an accepted payload gives exactly one notification that
// marshals as protobuf (valid UTF-8, valid timestamps) and that the service
// accepts, and conversion is deterministic.
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
		svc := service.New(storetest.NewMemory(), service.Options{})
		if _, err := svc.Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{Notification: ns[0]})); err != nil {
			t.Fatalf("the service refuses the notification: %v", err)
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

// payloadGen draws an Alertmanager webhook from fuzz input: each choice
// takes bytes from the input (zero, the small choice, when it runs out),
// and sizes are drawn around the service's limits, at, just under and over
// them. It keeps the payload's text under about budget bytes.
type payloadGen struct {
	in     []byte
	budget int
}

func (g *payloadGen) byte() byte {
	if len(g.in) == 0 {
		return 0
	}
	b := g.in[0]
	g.in = g.in[1:]
	return b
}

// intn is in [0, n).
func (g *payloadGen) intn(n int) int {
	return (int(g.byte())<<8 | int(g.byte())) % n
}

// size is a length for a field limited to limit: mostly small, often at
// or just over the limit.
func (g *payloadGen) size(limit int) int {
	var n int
	switch g.byte() % 8 {
	case 0:
		n = 0
	case 1, 2, 3:
		n = 1 + g.intn(24)
	case 4:
		n = limit - 1
	case 5:
		n = limit
	case 6:
		n = limit + 1
	default:
		n = limit + 1 + g.intn(limit)
	}
	if n > g.budget {
		n = min(n, 8)
	}
	g.budget -= n
	return n
}

// pieces are what strings are made of: ASCII, multi-byte runes, and what
// JSON and chat markup escape.
var pieces = []string{"a", "Z", "0", " ", "é", "東", "🔥", `"`, `\`, "\n", "<", "@", "_", "\u200b"}

// str is a valid UTF-8 string of exactly n bytes.
func (g *payloadGen) str(n int) string {
	var b strings.Builder
	for b.Len() < n {
		p := pieces[int(g.byte())%len(pieces)]
		if b.Len()+len(p) > n {
			p = "x"
		}
		b.WriteString(p)
	}
	return b.String()
}

// name is a non-empty label name: Alertmanager refuses empty ones.
func (g *payloadGen) name() string {
	if s := g.str(g.size(limitName)); s != "" {
		return s
	}
	return "l" + strconv.Itoa(g.intn(8))
}

func (g *payloadGen) count(limit int) int {
	switch g.byte() % 16 {
	case 13:
		return limit - 1
	case 14:
		return limit
	case 15:
		return limit + 1 + g.intn(50)
	}
	return g.intn(6)
}

func (g *payloadGen) labels(limit int, keep ...string) map[string]string {
	n := g.count(limit)
	if n > 8 && g.budget < n*16 {
		n = 8
	}
	m := map[string]string{}
	for _, k := range keep {
		m[k] = g.str(g.size(limitValue))
	}
	for i := 0; len(m) < n; i++ {
		k := g.name()
		if _, dup := m[k]; dup || n > 8 {
			k += strconv.Itoa(i) // enough distinct names without many bytes
		}
		m[k] = g.str(g.size(limitValue))
		g.budget -= len(k) + 8
	}
	return m
}

func (g *payloadGen) url(limit int) string {
	const base = "https://example.com/"
	if n := g.size(limit); n > len(base) {
		return base + strings.Repeat("u", n-len(base))
	}
	return ""
}

// webhook draws a payload in Alertmanager's shape: every alert firing or
// resolved with its times, group status firing when any alert fires,
// common labels and annotations those all alerts share, group labels a
// part of the common labels.
func (g *payloadGen) webhook() *amMessage {
	m := &amMessage{Version: "4", Receiver: g.str(g.size(limitID)), ExternalURL: g.url(limitURL)}
	if g.byte()%4 == 3 {
		m.TruncatedAlerts = uint64(g.intn(1000))
		if g.byte()%8 == 7 {
			m.TruncatedAlerts = math.MaxUint64 - uint64(g.intn(1000))
		}
	}
	n := 1 + g.intn(8)
	switch g.byte() % 32 {
	case 31:
		n = limitAlerts + g.intn(3) - 1
	case 30:
		n = 300 + g.intn(100)
	}
	start := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	m.Status = StatusResolved
	for i := range n {
		a := amAlert{Status: StatusFiring, StartsAt: start.Add(time.Duration(g.intn(1<<16)) * time.Second)}
		if g.byte()%3 == 2 {
			a.Status = StatusResolved
			a.EndsAt = a.StartsAt.Add(time.Duration(1+g.intn(1<<16)) * time.Second)
		} else {
			m.Status = StatusFiring
		}
		if i < 16 || g.byte()%64 == 63 {
			a.Labels = g.labels(limitLabels, "alertname")
			a.Annotations = g.labels(limitLabels)
			a.GeneratorURL = g.url(limitURL)
			a.Fingerprint = g.str(g.size(limitID))
		} else {
			a.Labels = map[string]string{"alertname": "A", "i": strconv.Itoa(i)}
			a.Fingerprint = fmt.Sprintf("%016x", i)
		}
		m.Alerts = append(m.Alerts, a)
	}
	m.CommonLabels = common(m.Alerts, func(a amAlert) map[string]string { return a.Labels })
	m.CommonAnnotations = common(m.Alerts, func(a amAlert) map[string]string { return a.Annotations })
	m.GroupLabels = map[string]string{}
	for k, v := range m.CommonLabels {
		if g.byte()%2 == 0 {
			m.GroupLabels[k] = v
		}
	}
	m.GroupKey = "{}:" + fmt.Sprint(m.GroupLabels)
	if g.byte()%4 == 3 {
		m.GroupKey = g.str(g.size(limitGroupKey))
	}
	return m
}

// common is the entries all alerts share, as Alertmanager computes
// commonLabels and commonAnnotations.
func common(alerts []amAlert, of func(amAlert) map[string]string) map[string]string {
	c := maps.Clone(of(alerts[0]))
	for _, a := range alerts[1:] {
		maps.DeleteFunc(c, func(k, v string) bool { w, ok := of(a)[k]; return !ok || w != v })
	}
	return c
}

// FuzzHandlerStoresAlertmanagerPayloads checks the promise the webhook
// makes Alertmanager: a payload Alertmanager can send, drawn from the fuzz
// input and sent plain or gzip, is answered 200 and stored once by the real
// service, with every alert either stored (in order) or counted, and a
// second send is a duplicate of the first.
func FuzzHandlerStoresAlertmanagerPayloads(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"))
	f.Add(bytes.Repeat([]byte{5}, 64))
	f.Add(bytes.Repeat([]byte{6, 0xff}, 64))
	f.Add(bytes.Repeat([]byte{7, 0x80, 0x01}, 64))
	f.Add(append([]byte{3, 0, 0, 0, 0, 0}, bytes.Repeat([]byte{2}, 64)...))
	// Plain; no receiver, no URL, no truncatedAlerts; 5000 alerts.
	f.Add([]byte{0, 0, 0, 0, 0, 0, 31, 0, 1})
	// Plain; no receiver, no URL; truncatedAlerts near the maximum.
	f.Add([]byte{0, 0, 0, 3, 0, 0, 7, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		g := &payloadGen{in: in, budget: 2 << 20}
		gz := g.byte()%4 == 3
		sent := g.webhook()
		body := sent.json(t)
		h, mem := storingHandler(queueMaxPayload, Options{MaxBodyBytes: 64 << 20})
		send := func() Response {
			var hdr []string
			b := body
			if gz {
				hdr, b = []string{"Content-Encoding", "gzip"}, gzipped(t, body)
			}
			rec := post(t, h, b, hdr...)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d for an Alertmanager payload: %.500s", rec.Code, rec.Body)
			}
			var r Response
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || len(r.Notifications) != 1 {
				t.Fatalf("answer %.200s: %v", rec.Body, err)
			}
			return r
		}
		first := send()
		all := mem.All()
		if len(all) != 1 {
			t.Fatalf("stored %d notifications, want 1", len(all))
		}
		n := all[0]
		// Counts past what truncated_alerts holds saturate.
		want := uint64(len(sent.Alerts)) + min(sent.TruncatedAlerts, math.MaxUint32)
		got := uint64(len(n.GetAlerts())) + uint64(n.GetTruncatedAlerts())
		if got != want && (want <= math.MaxUint32 || n.GetTruncatedAlerts() != math.MaxUint32) {
			t.Errorf("%d alerts stored and %d counted out of %d sent and %d truncated", len(n.GetAlerts()), n.GetTruncatedAlerts(), len(sent.Alerts), sent.TruncatedAlerts)
		}
		changed := false
		for i, a := range n.GetAlerts() {
			s := sent.Alerts[i]
			if a.GetStatus() != status(s.Status) || !a.GetStartsAt().AsTime().Equal(s.StartsAt) {
				t.Fatalf("stored alert %d is not sent alert %d", i, i)
			}
			changed = changed || !maps.Equal(a.GetLabels(), nilIfEmpty(s.Labels)) || !maps.Equal(a.GetAnnotations(), nilIfEmpty(s.Annotations)) ||
				a.GetFingerprint() != s.Fingerprint || a.GetGeneratorUrl() != s.GeneratorURL
		}
		if changed && !strings.Contains(n.GetText(), "(herald shortened this notification: ") {
			t.Errorf("alerts changed, but the text does not say so: %q", lastLine(n.GetText()))
		}
		if len(n.GetAlerts()) < len(sent.Alerts) && !strings.Contains(n.GetText(), "more alerts not stored") {
			t.Errorf("%d alerts left out, but the text does not say so", len(sent.Alerts)-len(n.GetAlerts()))
		}
		if again := send(); again.Notifications[0] != (Published{ID: first.Notifications[0].ID, Duplicate: true}) {
			t.Errorf("sent again: %+v, want a duplicate of %+v", again, first)
		}
	})
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// FuzzHandlerGzipBody sends arbitrary bytes as a gzip body: the handler
// must not panic, must answer 200, 400 or 413 (the body arrived whole, so a
// 5xx would be wrong), and stores only on 200.
func FuzzHandlerGzipBody(f *testing.F) {
	valid := gzipped(f, mustRead(f, "../../deploy/examples/firing.json"))
	f.Add([]byte(valid))
	f.Add([]byte(valid[:len(valid)/2]))
	f.Add([]byte(valid + valid))
	f.Add([]byte(valid + "trailing"))
	f.Add([]byte{})
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, body []byte) {
		pub := &fakePublisher{}
		rec := post(t, NewHandler(pub, Options{MaxBodyBytes: 1 << 20}), string(body), "Content-Encoding", "gzip")
		switch rec.Code {
		case http.StatusOK:
			if len(pub.stored) != 1 {
				t.Errorf("200 with %d stored", len(pub.stored))
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if len(pub.stored) != 0 {
				t.Errorf("%d with %d stored", rec.Code, len(pub.stored))
			}
		default:
			t.Errorf("status %d: %s", rec.Code, rec.Body)
		}
	})
}
