package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// A webhook body carries its load id in several places (group key, group
// labels, common labels, each alert's labels). Bodies are generated once
// with a fixed-width placeholder and stamped per request by overwriting it
// in place, so the generator spends little CPU on the machine it measures.
const (
	idWidth     = 10
	placeholder = "XXXXXXXXXX" // idWidth characters
	// idPrefix and idSuffix frame a load id in the rendered chat text; the
	// id is findable even when a renderer wraps it in markup.
	idPrefix = "hlq"
	idSuffix = "qlh"
)

// loadToken is the text that identifies webhook seq in a chat message.
func loadToken(seq int) string {
	return idPrefix + pad(seq) + idSuffix
}

func pad(seq int) string {
	s := strconv.Itoa(seq)
	for len(s) < idWidth {
		s = "0" + s
	}
	return s
}

// template is one pre-generated webhook body with the offsets of its
// placeholders.
type template struct {
	body []byte
	at   []int
}

// stamp returns a copy of t's body with every placeholder replaced by seq.
func (t *template) stamp(seq int) []byte {
	b := bytes.Clone(t.body)
	id := pad(seq)
	for _, off := range t.at {
		copy(b[off:off+idWidth], id)
	}
	return b
}

// amWebhook is the Alertmanager webhook payload (version 4) as
// Alertmanager's notify/webhook sends it.
type amWebhook struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   uint64            `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []amAlert         `json:"alerts"`
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

var (
	alertNames = []string{"HighLatency", "KubePodCrashLooping", "DiskWillFillIn4Hours", "TargetDown", "HighErrorRate", "NodeMemoryPressure", "CertificateExpiry", "ReplicationLag"}
	severities = []string{"critical", "warning", "warning", "info"}
	namespaces = []string{"payments", "checkout", "search", "identity", "monitoring", "ingest"}
)

// makeTemplates builds n webhook bodies with 1 to maxAlerts alerts each
// (uniformly), deterministically from seed.
func makeTemplates(n, maxAlerts int, seed uint64) ([]*template, error) {
	return makeTemplatesWith(n, maxAlerts, seed, nil)
}

// makeTemplatesWith is makeTemplates with the severity of body i chosen by
// sevOf from the one drawn at random; nil keeps the drawn one. The random
// stream is the same either way, so everything else about the bodies is
// too.
func makeTemplatesWith(n, maxAlerts int, seed uint64, sevOf func(i int, drawn string) string) ([]*template, error) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	start := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	out := make([]*template, 0, n)
	for i := range n {
		name := alertNames[r.IntN(len(alertNames))]
		sev := severities[r.IntN(len(severities))]
		if sevOf != nil {
			sev = sevOf(i, sev)
		}
		ns := namespaces[r.IntN(len(namespaces))]
		lid := idPrefix + placeholder + idSuffix
		w := amWebhook{
			Version:  "4",
			GroupKey: fmt.Sprintf(`{}/{severity=~"critical|warning|info"}:{alertname=%q, loadid=%q}`, name, lid),
			Status:   "firing",
			Receiver: "herald",
			GroupLabels: map[string]string{
				"alertname": name, "loadid": lid,
			},
			CommonLabels: map[string]string{
				"alertname": name, "loadid": lid, "severity": sev, "namespace": ns,
				"job": "kubernetes-pods", "cluster": "prod-eu-1",
			},
			CommonAnnotations: map[string]string{
				"runbook_url": "https://runbooks.example.com/" + name,
			},
			ExternalURL: "http://alertmanager.example.com:9093",
		}
		k := 1 + r.IntN(maxAlerts)
		for j := range k {
			pod := fmt.Sprintf("%s-%s-%05x", ns, "api", r.IntN(1<<20))
			a := amAlert{
				Status: "firing",
				Labels: map[string]string{
					"alertname": name, "loadid": lid, "severity": sev, "namespace": ns,
					"job": "kubernetes-pods", "cluster": "prod-eu-1",
					"pod": pod, "instance": fmt.Sprintf("10.%d.%d.%d:8080", r.IntN(256), r.IntN(256), r.IntN(256)),
				},
				Annotations: map[string]string{
					"summary":     fmt.Sprintf("%s on %s", name, pod),
					"description": fmt.Sprintf("%s has been above its threshold for 10 minutes (value %.2f, alert %d of %d).", pod, 1+r.Float64()*100, j+1, k),
					"runbook_url": "https://runbooks.example.com/" + name,
				},
				StartsAt:     start.Add(time.Duration(r.IntN(3600)) * time.Second),
				GeneratorURL: "http://prometheus.example.com:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1",
				Fingerprint:  fmt.Sprintf("%016x", r.Uint64()),
			}
			w.Alerts = append(w.Alerts, a)
		}
		if k == 1 {
			// A group of one carries its alert's annotations as common ones.
			w.CommonAnnotations = w.Alerts[0].Annotations
		}
		body, err := json.Marshal(w)
		if err != nil {
			return nil, err
		}
		t := &template{body: body}
		for off := 0; ; {
			j := bytes.Index(body[off:], []byte(placeholder))
			if j < 0 {
				break
			}
			t.at = append(t.at, off+j)
			off += j + idWidth
		}
		if len(t.at) == 0 {
			return nil, fmt.Errorf("template %d has no placeholder", i)
		}
		out = append(out, t)
	}
	return out, nil
}

// brokenEvery: in the broken scenario, every brokenEvery-th webhook (the
// first, the fifth, ...) is critical and goes to the broken route; the
// others go to the healthy one. The number of templates must be a
// multiple of it, so that webhook i is critical whichever template it
// stamps.
const brokenEvery = 4

// toBrokenRoute reports whether webhook i (counted from 0) of the broken
// scenario is critical, and so routed to the broken sink.
func toBrokenRoute(i int) bool { return i%brokenEvery == 0 }

// brokenSeverity is the severity of template i of the broken scenario:
// critical for the broken route, else the drawn one, with critical made
// warning.
func brokenSeverity(i int, drawn string) string {
	switch {
	case toBrokenRoute(i):
		return "critical"
	case drawn == "critical":
		return "warning"
	}
	return drawn
}
