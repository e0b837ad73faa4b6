package main

import (
	"encoding/json"
	"os"
	"time"
)

// summary is one scenario's numbers in -json output, for tracking runs
// over time: durations in milliseconds, memory in MiB.
type summary struct {
	Scenario       string   `json:"scenario"`
	IngestPerSec   float64  `json:"ingest_per_sec"`
	IngestP50Ms    float64  `json:"ingest_p50_ms"`
	IngestP99Ms    float64  `json:"ingest_p99_ms"`
	BarePerSec     *float64 `json:"bare_per_sec,omitempty"`
	IngestRatio    *float64 `json:"ingest_ratio,omitempty"`
	Sent           int      `json:"sent"`
	Acknowledged   int      `json:"acknowledged"`
	Delivered      *int     `json:"delivered,omitempty"`
	Lost           *int     `json:"lost,omitempty"`
	Duplicated     *int     `json:"duplicated,omitempty"`
	ChatP50Ms      *float64 `json:"receipt_to_chat_p50_ms,omitempty"`
	ChatP99Ms      *float64 `json:"receipt_to_chat_p99_ms,omitempty"`
	ChatMaxMs      *float64 `json:"receipt_to_chat_max_ms,omitempty"`
	DeliveryPerSec *float64 `json:"delivery_per_sec,omitempty"`
	// DeliveryBoundPerSec is what the in-flight bound allows (slow only).
	DeliveryBoundPerSec *float64 `json:"delivery_bound_per_sec,omitempty"`
	// GeneratorCeilingPerSec is the load generator against a server that
	// does nothing.
	GeneratorCeilingPerSec *float64 `json:"generator_ceiling_per_sec,omitempty"`
	// The broken scenario: Delivered and the latencies above are its
	// healthy route's; these are its broken route's.
	BrokenAcknowledged *int               `json:"broken_acknowledged,omitempty"`
	BrokenRequests     *int               `json:"broken_requests,omitempty"`
	BrokenRetries      int                `json:"broken_retries,omitempty"`
	HealthyWaited      *int               `json:"healthy_waited,omitempty"`
	HeldGroups         map[string]float64 `json:"held_groups,omitempty"`
	HeldNotifications  *float64           `json:"held_notifications,omitempty"`
	CPUSecPer1000      float64            `json:"cpu_sec_per_1000"`
	// BareCPUSecPer1000 is the bare handler's CPU at the same rate, a
	// reference for the machine's speed during the run (e2e only).
	BareCPUSecPer1000 *float64 `json:"bare_cpu_sec_per_1000,omitempty"`
	RSSIdleMiB        float64  `json:"rss_idle_mib"`
	RSSPeakMiB        float64  `json:"rss_peak_mib"`
	ReadyColdMs       float64  `json:"ready_fresh_ms"`
	ReadyRestartMedMs float64  `json:"ready_restart_median_ms"`
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *scenarioResult) summary() summary {
	l := r.load
	lat := l.latencies()
	s := summary{
		Scenario:          r.sc.name,
		IngestPerSec:      l.throughput(),
		IngestP50Ms:       msf(percentile(lat, 50)),
		IngestP99Ms:       msf(percentile(lat, 99)),
		Sent:              len(l.sent),
		Acknowledged:      l.ok,
		RSSIdleMiB:        float64(r.idleRSS) / (1 << 20),
		RSSPeakMiB:        float64(r.peakRSS) / (1 << 20),
		ReadyColdMs:       msf(r.readyCold),
		ReadyRestartMedMs: msf(median(r.readyRestarts)),
	}
	s.CPUSecPer1000 = perThousand(r.cpu, l.ok)
	if b := r.bareRef; b != nil && b.ok > 0 {
		ref := perThousand(r.bareRefCPU, b.ok)
		s.BareCPUSecPer1000 = &ref
	}
	if r.bare != nil {
		b := r.bare.throughput()
		s.BarePerSec = &b
		if b > 0 {
			ratio := l.throughput() / b
			s.IngestRatio = &ratio
		}
	}
	if c := r.ceiling; c != nil {
		v := c.throughput()
		s.GeneratorCeilingPerSec = &v
	}
	if !r.sc.holdSink {
		d := r.delivery
		p50, p99, pmax, rate := msf(percentile(d.fromSend, 50)), msf(percentile(d.fromSend, 99)), msf(percentile(d.fromSend, 100)), d.throughput()
		s.Delivered, s.Lost, s.Duplicated = &d.delivered, &d.lost, &d.dup
		s.ChatP50Ms, s.ChatP99Ms, s.ChatMaxMs, s.DeliveryPerSec = &p50, &p99, &pmax, &rate
	}
	if r.sc.slowDelay > 0 {
		bound := r.slowBound()
		s.DeliveryBoundPerSec = &bound
	}
	if b := r.broken; b != nil {
		s.BrokenAcknowledged, s.BrokenRequests, s.HealthyWaited = &b.critical, &b.attempts.requests, &b.waited
		s.BrokenRetries = sum(b.herald.retries)
		if b.held != nil {
			s.HeldGroups, s.HeldNotifications = b.held, &b.heldNotifs
		}
	}
	return s
}

// writeSummary writes every scenario's summary to path as a JSON array.
func writeSummary(path string, rs []*scenarioResult) error {
	out := make([]summary, len(rs))
	for i, r := range rs {
		out[i] = r.summary()
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
