package shim

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/service"
	"github.com/herald-notify/herald/internal/store"
	"github.com/herald-notify/herald/internal/store/storetest"
)

// The service's limits, written out so that a change to them shows here.
const (
	limitText       = 64 << 10
	limitTitle      = 1024
	limitValue      = 8 << 10
	limitName       = 256
	limitLabels     = 256
	limitAlerts     = 5000
	limitGroupKey   = 4096
	limitID         = 128 // receiver, fingerprint
	limitURL        = 8 << 10
	queueMaxPayload = 8 << 20 // the embedded queue's largest message
)

// amMessage is Alertmanager's webhook payload as Alertmanager writes it
// (notify/webhook.Message around template.Data): tests build payloads with
// it rather than with the shim's own types.
type amMessage struct {
	Receiver          string            `json:"receiver"`
	Status            string            `json:"status"`
	Alerts            []amAlert         `json:"alerts"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   uint64            `json:"truncatedAlerts"`
}

type amAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// amGroup is a firing group of n DiskFull alerts with a common summary.
func amGroup(n int) *amMessage {
	m := &amMessage{
		Receiver: "herald", Status: "firing", Version: "4",
		GroupKey:          `{}:{alertname="DiskFull"}`,
		GroupLabels:       map[string]string{"alertname": "DiskFull"},
		CommonLabels:      map[string]string{"alertname": "DiskFull", "severity": "warning"},
		CommonAnnotations: map[string]string{"summary": "Disks are filling up"},
		ExternalURL:       "https://am.example.com",
	}
	start := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	for i := range n {
		m.Alerts = append(m.Alerts, amAlert{
			Status:       "firing",
			Labels:       map[string]string{"alertname": "DiskFull", "severity": "warning", "instance": fmt.Sprintf("db-%d", i)},
			Annotations:  map[string]string{"summary": "Disks are filling up"},
			StartsAt:     start.Add(time.Duration(i) * time.Second),
			GeneratorURL: "https://prometheus.example.com/graph?g0.expr=disk",
			Fingerprint:  fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15),
		})
	}
	return m
}

func (m *amMessage) json(t testing.TB) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// perAlertText gives every alert its own description, so that the text
// has one line per alert.
func perAlertText(size int) func(*amMessage) {
	return func(m *amMessage) {
		clear(m.CommonAnnotations)
		for i := range m.Alerts {
			d := fmt.Sprintf("alert %d: ", i)
			m.Alerts[i].Annotations = map[string]string{"description": d + strings.Repeat("x", size-len(d))}
		}
	}
}

// sizedStore is the fake store refusing, as the queue does, a notification
// over max bytes with store.ErrTooLarge.
type sizedStore struct {
	*storetest.Memory
	max int
}

func (s sizedStore) Put(ctx context.Context, n *heraldv1.Notification) (string, bool, error) {
	if size := n.SizeVT(); size > s.max {
		return "", false, fmt.Errorf("fake queue: %d bytes: %w", size, store.ErrTooLarge)
	}
	return s.Memory.Put(ctx, n)
}

// storingHandler is the webhook in front of the real service, which
// validates, over the fake store holding at most maxStore bytes a
// notification.
func storingHandler(maxStore int, opts Options) (http.Handler, *storetest.Memory) {
	mem := storetest.NewMemory()
	return NewHandler(service.New(sizedStore{mem, maxStore}, service.Options{}), opts), mem
}

var notShown = regexp.MustCompile(`… (\d+) more alerts not shown`)

// TestHandlerStoresPayloadsOverTheLimits sends payloads at and over each of
// the service's limits: every one is stored (Alertmanager drops a webhook
// answered 4xx), no alert goes uncounted, a payload at the limits is stored
// as sent, and one over them is shortened with what was cut said in the
// text.
func TestHandlerStoresPayloadsOverTheLimits(t *testing.T) {
	x := strings.Repeat
	longGroupKey := `{}:{alertname="DiskFull", path="` + x("p", 5000) + `"}`
	cases := []struct {
		name     string
		alerts   int
		edit     func(*amMessage)
		maxBody  int64
		maxStore int
		// cut are in the text of a shortened notification; none means
		// nothing may be cut.
		cut   []string
		check func(t *testing.T, sent *amMessage, n *heraldv1.Notification)
	}{
		{name: "storm of 50 alerts with 1.4 KB descriptions", alerts: 50, edit: perAlertText(1400),
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				if len(n.GetText()) > limitText {
					t.Errorf("text of %d bytes", len(n.GetText()))
				}
				shown := strings.Count(n.GetText(), "- alert ")
				more := notShown.FindStringSubmatch(n.GetText())
				if more == nil || shown+atoi(t, more[1]) != 50 || shown < 40 {
					t.Errorf("text shows %d alerts and says %q; want as many as fit and the rest counted", shown, more)
				}
			}},
		{name: "storm of 300 alerts with short descriptions", alerts: 300, edit: perAlertText(230),
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				shown := strings.Count(n.GetText(), "- alert ")
				more := notShown.FindStringSubmatch(n.GetText())
				if more == nil || shown+atoi(t, more[1]) != 300 {
					t.Errorf("text shows %d alerts and says %q", shown, more)
				}
			}},
		{name: "all alert lines fit", alerts: 20, edit: perAlertText(2000),
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				if shown := strings.Count(n.GetText(), "- alert "); shown != 20 || notShown.MatchString(n.GetText()) {
					t.Errorf("text shows %d of 20 alerts", shown)
				}
			}},
		{name: "annotation at 8 KiB", alerts: 2, edit: func(m *amMessage) { m.Alerts[1].Annotations["description"] = x("d", limitValue) },
			check: func(t *testing.T, sent *amMessage, n *heraldv1.Notification) {
				if got := n.GetAlerts()[1].GetAnnotations()["description"]; got != sent.Alerts[1].Annotations["description"] {
					t.Errorf("description of %d bytes stored as %d", limitValue, len(got))
				}
			}},
		{name: "annotation over 8 KiB", alerts: 2, edit: func(m *amMessage) { m.Alerts[1].Annotations["description"] = x("d", limitValue+1) },
			cut: []string{"(herald shortened this notification: alerts[1].annotations.description cut at 8 KiB)"},
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				if got := n.GetAlerts()[1].GetAnnotations()["description"]; got != x("d", limitValue-3)+"…" {
					t.Errorf("description stored as %d bytes ending %q", len(got), got[max(0, len(got)-8):])
				}
			}},
		{name: "multi-byte annotation cut between runes", alerts: 1, edit: func(m *amMessage) { m.Alerts[0].Annotations["description"] = x("東", 3000) },
			cut: []string{"alerts[0].annotations.description cut at 8 KiB"},
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				if got := n.GetAlerts()[0].GetAnnotations()["description"]; got != x("東", (limitValue-3)/3)+"…" {
					t.Errorf("description stored as %d bytes", len(got))
				}
			}},
		{name: "the same annotation over 8 KiB in every alert", alerts: 40, edit: func(m *amMessage) {
			for i := range m.Alerts {
				m.Alerts[i].Annotations["description"] = x("d", 9000)
			}
		}, cut: []string{"alerts[0].annotations.description cut at 8 KiB (and in 39 more alerts)"}},
		{name: "common annotation over 8 KiB", alerts: 2, edit: func(m *amMessage) { m.CommonAnnotations["summary"] = x("s", 20000) },
			cut: []string{"annotations.summary cut at 8 KiB"},
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				if !strings.HasPrefix(n.GetText(), x("s", limitValue-3)+"…\n") {
					t.Errorf("text does not start with the cut summary")
				}
			}},
		{name: "label value over 8 KiB", alerts: 2, edit: func(m *amMessage) { m.Alerts[0].Labels["instance"] = x("i", limitValue+1) },
			cut: []string{"alerts[0].labels.instance cut at 8 KiB"}},
		{name: "label name at 256 bytes", alerts: 1, edit: func(m *amMessage) { m.Alerts[0].Labels[x("n", limitName)] = "v" },
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				if n.GetAlerts()[0].GetLabels()[x("n", limitName)] != "v" {
					t.Error("label name of 256 bytes not stored")
				}
			}},
		{name: "label name over 256 bytes", alerts: 1, edit: func(m *amMessage) { m.Alerts[0].Labels[x("n", limitName+1)] = "v" },
			cut: []string{"alerts[0].labels: a name over 256 bytes shortened, its hash kept"},
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				found := false
				for k, v := range n.GetAlerts()[0].GetLabels() {
					if strings.HasPrefix(k, x("n", 100)) && v == "v" && len(k) <= limitName {
						found = true
					}
				}
				if !found {
					t.Errorf("label with a long name not kept under a shortened name: %v", slices.Sorted(maps.Keys(n.GetAlerts()[0].GetLabels())))
				}
			}},
		{name: "256 labels", alerts: 2, edit: func(m *amMessage) { fillLabels(&m.Alerts[0].Labels, limitLabels) },
			check: func(t *testing.T, sent *amMessage, n *heraldv1.Notification) {
				if !maps.Equal(n.GetAlerts()[0].GetLabels(), sent.Alerts[0].Labels) {
					t.Errorf("%d labels stored of 256", len(n.GetAlerts()[0].GetLabels()))
				}
			}},
		{name: "257 labels", alerts: 2, edit: func(m *amMessage) { fillLabels(&m.Alerts[0].Labels, limitLabels+1) },
			cut: []string{"alerts[0].labels: entries over 256 left out"},
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				l := n.GetAlerts()[0].GetLabels()
				if len(l) != limitLabels || l["alertname"] != "DiskFull" || l["severity"] != "warning" {
					t.Errorf("%d labels stored, alertname %q, severity %q", len(l), l["alertname"], l["severity"])
				}
			}},
		{name: "300 common labels", alerts: 2, edit: func(m *amMessage) {
			fillLabels(&m.CommonLabels, 300)
			for i := range m.Alerts {
				maps.Copy(m.Alerts[i].Labels, m.CommonLabels)
			}
		}, cut: []string{"labels: 44 entries left out, at most 256 kept", "alerts[0].labels: entries over 256 left out (and in 1 more alerts)"}},
		{name: "300 annotations keep the explaining ones", alerts: 1, edit: func(m *amMessage) {
			fillLabels(&m.Alerts[0].Annotations, 300)
			m.Alerts[0].Annotations["summary"] = "S"
			m.Alerts[0].Annotations["runbook_url"] = "https://runbooks.example.com/x"
		}, cut: []string{"alerts[0].annotations: entries over 256 left out"},
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				a := n.GetAlerts()[0].GetAnnotations()
				if len(a) != limitLabels || a["summary"] != "S" || a["runbook_url"] == "" {
					t.Errorf("%d annotations kept, summary %q, runbook_url %q", len(a), a["summary"], a["runbook_url"])
				}
			}},
		{name: "label with an empty name", alerts: 1, edit: func(m *amMessage) { m.Alerts[0].Labels[""] = "v" },
			cut: []string{"alerts[0].labels: an entry with an empty name left out"}},
		{name: "5000 alerts", alerts: limitAlerts,
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				if len(n.GetAlerts()) != limitAlerts || n.GetTruncatedAlerts() != 0 {
					t.Errorf("%d alerts stored, %d counted out", len(n.GetAlerts()), n.GetTruncatedAlerts())
				}
			}},
		{name: "5001 alerts", alerts: limitAlerts + 1, cut: []string{"(1 more alerts not stored: herald keeps at most 5000 alerts"},
			check: func(t *testing.T, sent *amMessage, n *heraldv1.Notification) {
				if len(n.GetAlerts()) != limitAlerts || n.GetAlerts()[limitAlerts-1].GetFingerprint() != sent.Alerts[limitAlerts-1].Fingerprint {
					t.Errorf("%d alerts stored, want the first 5000", len(n.GetAlerts()))
				}
			}},
		{name: "6000 alerts and Alertmanager's max_alerts", alerts: 6000, edit: func(m *amMessage) { m.TruncatedAlerts = 10 },
			cut: []string{"(10 more alerts not shown: Alertmanager's max_alerts)\n(1000 more alerts not stored"}},
		{name: "group key at 4096 bytes", alerts: 1, edit: func(m *amMessage) { m.GroupKey = x("g", limitGroupKey) },
			check: func(t *testing.T, sent *amMessage, n *heraldv1.Notification) {
				if n.GetGroupKey() != sent.GroupKey {
					t.Error("group key of 4096 bytes changed")
				}
			}},
		{name: "group key over 4096 bytes", alerts: 1, edit: func(m *amMessage) { m.GroupKey = longGroupKey },
			cut: []string{"group_key over 4 KiB: shortened, its hash kept"},
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				if gk := n.GetGroupKey(); len(gk) > limitGroupKey || !strings.HasPrefix(gk, longGroupKey[:4000]) {
					t.Errorf("group key stored as %d bytes", len(gk))
				}
			}},
		{name: "fingerprint at 128 bytes", alerts: 1, edit: func(m *amMessage) { m.Alerts[0].Fingerprint = x("f", limitID) }},
		{name: "fingerprint over 128 bytes", alerts: 2, edit: func(m *amMessage) { m.Alerts[1].Fingerprint = x("f", limitID+1) },
			cut: []string{"alerts[1].fingerprint over 128 bytes: shortened, its hash kept"}},
		{name: "receiver at 128 bytes", alerts: 1, edit: func(m *amMessage) { m.Receiver = x("r", limitID) }},
		{name: "receiver over 128 bytes", alerts: 1, edit: func(m *amMessage) { m.Receiver = x("r", 500) },
			cut: []string{"receiver over 128 bytes: shortened, its hash kept"}},
		{name: "title over 1 KiB", alerts: 1, edit: func(m *amMessage) { m.GroupLabels["path"] = x("p", 2000) },
			cut: []string{"title cut at 1 KiB"},
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				if len(n.GetTitle()) > limitTitle || !strings.HasPrefix(n.GetTitle(), "DiskFull path=ppp") {
					t.Errorf("title %q…", n.GetTitle()[:min(40, len(n.GetTitle()))])
				}
			}},
		{name: "blank alertname", alerts: 1, edit: func(m *amMessage) {
			m.GroupLabels["alertname"], m.CommonLabels["alertname"], m.Alerts[0].Labels["alertname"] = " ", " ", " "
		}, check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
			if n.GetTitle() != "alerts" {
				t.Errorf("title %q", n.GetTitle())
			}
		}},
		{name: "silence link over 8 KiB", alerts: 1, edit: func(m *amMessage) { m.GroupLabels["path"] = x("/", 3000) },
			cut: []string{"title cut at 1 KiB", "links.silence over 8 KiB: left out"},
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				if n.GetLinks().GetSilence() != "" || n.GetLinks().GetGenerator() == "" {
					t.Errorf("links %v", n.GetLinks())
				}
			}},
		{name: "external URL over 8 KiB", alerts: 1, edit: func(m *amMessage) { m.ExternalURL = "https://am.example.com/" + x("u", limitURL) },
			cut: []string{"external_url over 8 KiB: left out", "links.silence over 8 KiB: left out"}},
		{name: "generator URL over 8 KiB", alerts: 2, edit: func(m *amMessage) {
			for i := range m.Alerts {
				m.Alerts[i].GeneratorURL = "https://prometheus.example.com/graph?g0.expr=" + x("u", limitURL)
			}
		}, cut: []string{"links.generator over 8 KiB: left out", "alerts[0].generator_url over 8 KiB: left out (and in 1 more alerts)"}},
		{name: "notification under the store's limit", alerts: 1500, edit: perAlertText(4000), maxBody: 64 << 20,
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				if len(n.GetAlerts()) != 1500 {
					t.Errorf("%d alerts stored of 1500", len(n.GetAlerts()))
				}
			}},
		{name: "notification over the store's limit", alerts: 2500, edit: perAlertText(4000), maxBody: 64 << 20,
			cut: []string{"more alerts not stored: herald keeps at most 5000 alerts and 8128 KiB per notification"},
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				size, one := n.SizeVT(), n.GetAlerts()[0].SizeVT()
				if size > queueMaxPayload || size < queueMaxPayload-64<<10-3*one {
					t.Errorf("notification of %d bytes: want as many alerts as fit in %d", size, queueMaxPayload)
				}
			}},
		{name: "store smaller than herald's limit", alerts: 400, edit: perAlertText(4000), maxStore: 1 << 20,
			cut: []string{"more alerts not stored: herald keeps at most 5000 alerts and"},
			check: func(t *testing.T, _ *amMessage, n *heraldv1.Notification) {
				if size := n.SizeVT(); size > 1<<20 || size < 1<<19 {
					t.Errorf("notification of %d bytes in a store of 1 MiB", size)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sent := amGroup(tc.alerts)
			if tc.edit != nil {
				tc.edit(sent)
			}
			maxStore := cmp.Or(tc.maxStore, queueMaxPayload)
			h, mem := storingHandler(maxStore, Options{MaxBodyBytes: tc.maxBody})
			rec := post(t, h, sent.json(t))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %.300s", rec.Code, rec.Body)
			}
			all := mem.All()
			if len(all) != 1 {
				t.Fatalf("stored %d notifications, want 1", len(all))
			}
			n := all[0]
			if got, want := uint64(len(n.GetAlerts()))+uint64(n.GetTruncatedAlerts()), uint64(len(sent.Alerts))+sent.TruncatedAlerts; got != want {
				t.Errorf("%d alerts stored and %d counted out, want %d in all", len(n.GetAlerts()), n.GetTruncatedAlerts(), want)
			}
			text := n.GetText()
			if len(tc.cut) == 0 && (strings.Contains(text, "herald shortened") || strings.Contains(text, "not stored")) {
				t.Errorf("nothing over a limit, but the text says %q", lastLine(text))
			}
			for _, c := range tc.cut {
				if !strings.Contains(text, c) {
					t.Errorf("text does not say %q; it ends %q", c, lastLine(text))
				}
			}
			if tc.check != nil {
				tc.check(t, sent, n)
			}
		})
	}
}

// TestLongIDsStayStableAndDistinct checks that values shortened with their
// hash (group key, receiver, fingerprint) keep grouping and dedup stable:
// the same value always gives the same stored value, and two values that
// differ only past the limit stay different.
func TestLongIDsStayStableAndDistinct(t *testing.T) {
	x := strings.Repeat
	cases := []struct {
		name  string
		limit int
		set   func(m *amMessage, v string)
		get   func(n *heraldv1.Notification) string
	}{
		{"group key", limitGroupKey, func(m *amMessage, v string) { m.GroupKey = v }, (*heraldv1.Notification).GetGroupKey},
		{"receiver", limitID, func(m *amMessage, v string) { m.Receiver = v }, (*heraldv1.Notification).GetReceiver},
		{"fingerprint", limitID, func(m *amMessage, v string) { m.Alerts[0].Fingerprint = v },
			func(n *heraldv1.Notification) string { return n.GetAlerts()[0].GetFingerprint() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stored := func(v string) string {
				m := amGroup(1)
				tc.set(m, v)
				ns, err := Convert(mustDecode(t, m.json(t)))
				if err != nil {
					t.Fatal(err)
				}
				return tc.get(ns[0])
			}
			a1, a2 := stored(x("k", 2*tc.limit)+"A"), stored(x("k", 2*tc.limit)+"A")
			b := stored(x("k", 2*tc.limit) + "B")
			if a1 != a2 {
				t.Errorf("the same %s stored as %q and %q", tc.name, a1, a2)
			}
			if a1 == b {
				t.Errorf("two %ss that differ past the limit stored alike: %q", tc.name, a1)
			}
			if len(a1) > tc.limit || len(b) > tc.limit {
				t.Errorf("stored %d and %d bytes, limit %d", len(a1), len(b), tc.limit)
			}
		})
	}
}

// TestHandlerShrinksForTheStore runs the handler against a store that takes
// less than the shim fits to (an external NATS server's max_payload): the
// service's "too large" makes the shim store fewer alerts, counted, instead
// of answering 400.
func TestHandlerShrinksForTheStore(t *testing.T) {
	const maxStore = 256 << 10
	sent := amGroup(200)
	perAlertText(4000)(sent)
	mem := storetest.NewMemory()
	pub := service.New(sizedStore{mem, maxStore}, service.Options{})
	rec := post(t, NewHandler(pub, Options{}), sent.json(t))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	n := mem.All()[0]
	if size := n.SizeVT(); size > maxStore || len(n.GetAlerts()) == 0 || int(n.GetTruncatedAlerts())+len(n.GetAlerts()) != 200 {
		t.Errorf("stored %d bytes, %d alerts, %d counted out", size, len(n.GetAlerts()), n.GetTruncatedAlerts())
	}
	if !strings.Contains(n.GetText(), "more alerts not stored") {
		t.Errorf("text does not say alerts were left out: %q", lastLine(n.GetText()))
	}
}

// fillLabels fills *m up to n entries.
func fillLabels(m *map[string]string, n int) {
	if *m == nil {
		*m = map[string]string{}
	}
	for i := 0; len(*m) < n; i++ {
		(*m)[fmt.Sprintf("label_%03d", i)] = "v"
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func lastLine(s string) string {
	return s[strings.LastIndexByte(s, '\n')+1:]
}
