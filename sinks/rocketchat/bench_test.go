package rocketchat

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/secret"

	"github.com/herald-notify/herald/sinks"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

// go test -run '^$' -bench . -benchmem ./sinks/rocketchat/
func BenchmarkRender(b *testing.B) {
	r := &renderer{max: DefaultMaxMessageSize, mentions: map[string]string{"critical": "@here"}}
	for _, c := range []struct {
		name string
		n    func() rendered
	}{
		{"firing3", func() rendered { m, _ := r.render(defaultTemplates, firing(), renderOpts{mention: true}); return m }},
		{"many300", func() rendered { m, _ := r.render(defaultTemplates, many(300), renderOpts{mention: true}); return m }},
		{"huge", func() rendered { m, _ := r.render(defaultTemplates, huge(), renderOpts{}); return m }},
		{"kube1", func() rendered { m, _ := r.render(defaultTemplates, kube1, renderOpts{mention: true}); return m }},
		{"kube10", func() rendered { m, _ := r.render(defaultTemplates, kube10, renderOpts{mention: true}); return m }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				c.n()
			}
		})
	}
}

// kube1 and kube10 have the shape of cmd/heraldload's notifications, as
// internal/shim converts its webhooks: a group of one or of ten alerts of a
// Kubernetes alert rule, each with 8 labels (6 of them common to the group)
// and 3 annotations.
var (
	kube1  = kube(1, 1)
	kube10 = kube(10, 2)
)

// kube builds a group of k alerts the way cmd/heraldload generates them and
// internal/shim converts them, deterministically from seed.
func kube(k int, seed uint64) *heraldv1.Notification {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	names := []string{"HighLatency", "KubePodCrashLooping", "DiskWillFillIn4Hours", "TargetDown", "HighErrorRate", "NodeMemoryPressure", "CertificateExpiry", "ReplicationLag"}
	sevs := []string{"critical", "warning", "warning", "info"}
	nss := []string{"payments", "checkout", "search", "identity", "monitoring", "ingest"}
	name, sev, ns := names[r.IntN(len(names))], sevs[r.IntN(len(sevs))], nss[r.IntN(len(nss))]
	lid := fmt.Sprintf("hlq%010dqlh", r.IntN(1e9))
	start := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	gen := "http://prometheus.example.com:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
	runbook := "https://runbooks.example.com/" + name
	n := &heraldv1.Notification{
		Id: "01JDX0KUBE", Source: "alertmanager", Receiver: "herald",
		Severity: map[string]heraldv1.Severity{"critical": heraldv1.Severity_SEVERITY_CRITICAL, "warning": heraldv1.Severity_SEVERITY_WARNING, "info": heraldv1.Severity_SEVERITY_INFO}[sev],
		Status:   heraldv1.Status_STATUS_FIRING,
		Title:    name + " loadid=" + lid,
		GroupKey: fmt.Sprintf(`{}/{severity=~"critical|warning|info"}:{alertname=%q, loadid=%q}`, name, lid),
		Labels: map[string]string{
			"alertname": name, "loadid": lid, "severity": sev, "namespace": ns,
			"job": "kubernetes-pods", "cluster": "prod-eu-1",
		},
		Annotations: map[string]string{"runbook_url": runbook},
		Links: &heraldv1.Links{
			Generator: gen,
			Silence:   "http://alertmanager.example.com:9093/#/silences/new?filter=" + url.QueryEscape(fmt.Sprintf(`{alertname=%q,loadid=%q}`, name, lid)),
			Runbook:   runbook,
		},
		ExternalUrl: "http://alertmanager.example.com:9093",
		ReceivedAt:  timestamppb.New(start.Add(time.Hour)),
	}
	var text []string
	for j := range k {
		pod := fmt.Sprintf("%s-%s-%05x", ns, "api", r.IntN(1<<20))
		a := &heraldv1.Alert{
			Fingerprint: fmt.Sprintf("%016x", r.Uint64()),
			Status:      heraldv1.Status_STATUS_FIRING,
			Labels: map[string]string{
				"alertname": name, "loadid": lid, "severity": sev, "namespace": ns,
				"job": "kubernetes-pods", "cluster": "prod-eu-1",
				"pod": pod, "instance": fmt.Sprintf("10.%d.%d.%d:8080", r.IntN(256), r.IntN(256), r.IntN(256)),
			},
			Annotations: map[string]string{
				"summary":     fmt.Sprintf("%s on %s", name, pod),
				"description": fmt.Sprintf("%s has been above its threshold for 10 minutes (value %.2f, alert %d of %d).", pod, 1+r.Float64()*100, j+1, k),
				"runbook_url": runbook,
			},
			StartsAt:     timestamppb.New(start.Add(time.Duration(r.IntN(3600)) * time.Second)),
			GeneratorUrl: gen,
		}
		n.Alerts = append(n.Alerts, a)
		text = append(text, "- "+a.Annotations["summary"])
	}
	if k == 1 {
		// A group of one carries its alert's annotations as common ones.
		n.Annotations = maps.Clone(n.Alerts[0].Annotations)
		text = []string{n.Annotations["summary"], n.Annotations["description"]}
	}
	n.Text = strings.Join(text, "\n")
	return n
}

// BenchmarkSendREST measures one Send (post of a new parent) against the
// in-process fake, request encoding and answer decoding included.
func BenchmarkSendREST(b *testing.B) {
	srv := rocketchattest.NewUnstarted(rocketchattest.WithRooms("alerts"))
	s, err := New("rc", Config{URL: fakeURL, UserID: srv.UserID(), Token: secret.String(srv.Token())}, sinks.Deps{Transport: srv.Transport()})
	if err != nil {
		b.Fatal(err)
	}
	n := firing()
	to := sinks.Target{Channel: "#alerts", Attempt: 1}
	i := 0
	for b.Loop() {
		i++
		n.Id = strconv.Itoa(i)
		if _, err := s.Send(b.Context(), n, to); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseAnswer measures decoding Rocket.Chat's answers: a success
// of chat.sendMessage, which echoes the whole posted message, and a refusal.
func BenchmarkParseAnswer(b *testing.B) {
	r := &renderer{max: DefaultMaxMessageSize, mentions: map[string]string{"critical": "@here"}}
	msg, _ := r.render(defaultTemplates, firing(), renderOpts{mention: true})
	stored := map[string]any{
		"_id": MessageID("rc", "01JDX0FIRING", roleParent), "rid": "GENERAL", "msg": msg.Text,
		"ts": "2026-11-27T03:04:05.000Z", "_updatedAt": "2026-11-27T03:04:05.000Z",
		"u":         map[string]any{"_id": "botUserId000001", "username": "herald.bot", "name": "herald.bot"},
		"groupable": false, "attachments": msg.Attachments,
	}
	sent, err := json.Marshal(map[string]any{"message": stored, "success": true})
	if err != nil {
		b.Fatal(err)
	}
	refused := []byte(`{"success":false,"error":"Invalid room [error-invalid-room]","errorType":"error-invalid-room"}`)
	now := time.Now()
	for _, c := range []struct {
		name   string
		status int
		body   []byte
	}{
		{"sent", http.StatusOK, sent},
		{"refused", http.StatusBadRequest, refused},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				_, _ = decodeAnswer("chat.sendMessage", c.status, nil, c.body, now, noRedact)
			}
		})
	}
}
