package dispatch

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/route"
	"github.com/herald-notify/herald/sinks"
)

// call is one Send a fakeSink received.
type call struct {
	at time.Time
	id string
	to sinks.Target
}

// fakeSink answers Send with its send func and records every call.
type fakeSink struct {
	name string
	send func(ctx context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error)

	mu    sync.Mutex
	calls []call
}

func (s *fakeSink) Name() string { return s.name }

func (s *fakeSink) Send(ctx context.Context, n *heraldv1.Notification, to sinks.Target) (sinks.Receipt, error) {
	s.mu.Lock()
	s.calls = append(s.calls, call{at: time.Now(), id: n.GetId(), to: to})
	s.mu.Unlock()
	if s.send == nil {
		return sinks.Receipt{}, nil
	}
	return s.send(ctx, n, to)
}

func (s *fakeSink) Calls() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]call(nil), s.calls...)
}

// failing returns a send func that fails with errs in turn, then succeeds.
func failing(errs ...error) func(context.Context, *heraldv1.Notification, sinks.Target) (sinks.Receipt, error) {
	var mu sync.Mutex
	return func(context.Context, *heraldv1.Notification, sinks.Target) (sinks.Receipt, error) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) == 0 {
			return sinks.Receipt{}, nil
		}
		err := errs[0]
		errs = errs[1:]
		return sinks.Receipt{}, err
	}
}

// always returns a send func that always fails with err.
func always(err error) func(context.Context, *heraldv1.Notification, sinks.Target) (sinks.Receipt, error) {
	return func(context.Context, *heraldv1.Notification, sinks.Target) (sinks.Receipt, error) {
		return sinks.Receipt{}, err
	}
}

var (
	err503 = sinks.ClassifyStatus(503, "", 0)
	err400 = sinks.ClassifyStatus(400, "invalid attachment", 0)
	err401 = sinks.ClassifyStatus(401, "", 0)
)

func throttled(wait time.Duration) error { return sinks.ClassifyStatus(429, "", wait) }

// fakeMsg is a queued message.
type fakeMsg struct {
	n         *heraldv1.Notification
	delivered int

	mu         sync.Mutex
	inProgress []time.Time
}

func (m *fakeMsg) Notification() *heraldv1.Notification { return m.n }
func (m *fakeMsg) Delivered() int                       { return max(m.delivered, 1) }
func (m *fakeMsg) InProgress(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inProgress = append(m.inProgress, time.Now())
	return nil
}

func (m *fakeMsg) InProgressCalls() []time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]time.Time(nil), m.inProgress...)
}

// replayedMsg is a fakeMsg whose current copy was stored at enqueued.
type replayedMsg struct {
	*fakeMsg
	enqueued time.Time
}

func (m replayedMsg) Enqueued() time.Time { return m.enqueued }

// chainRouter sends every notification to the same chain.
type chainRouter []route.Step

func (r chainRouter) Route(*heraldv1.Notification) route.Decision {
	return route.Decision{Route: "default", Chain: r}
}

// notification returns a notification received now.
func notification(id, group string) *heraldv1.Notification {
	return &heraldv1.Notification{
		Id:         id,
		GroupKey:   group,
		Severity:   heraldv1.Severity_SEVERITY_CRITICAL,
		Status:     heraldv1.Status_STATUS_FIRING,
		Title:      "disk full",
		ReceivedAt: timestamppb.Now(),
	}
}

func msg(id, group string) *fakeMsg { return &fakeMsg{n: notification(id, group), delivered: 1} }

// testConfig is the default config with deterministic, readable numbers.
func testConfig() Config {
	return DefaultConfig()
}

type rig struct {
	d     *Dispatcher
	state *MemoryState
	reg   *prometheus.Registry
	rc    *fakeSink
	slack *fakeSink
}

// newRig builds a dispatcher over two fake sinks, "rc" (primary, channel
// "#alerts") and "slack" (fallback, "#alerts-slack"), with jitter that
// always picks the longest delay.
func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	r := &rig{
		state: NewMemoryState(),
		reg:   prometheus.NewPedanticRegistry(),
		rc:    &fakeSink{name: "rc"},
		slack: &fakeSink{name: "slack"},
	}
	d, err := New(Options{
		Router: chainRouter{{Sink: "rc", Channel: "#alerts"}, {Sink: "slack", Channel: "#alerts-slack"}},
		Sinks:  map[string]sinks.Sink{"rc": r.rc, "slack": r.slack},
		State:  r.state,
		// Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Registerer: r.reg,
		Config:     cfg,
	})
	if err != nil {
		t.Fatal(err)
	}
	d.jitter = func(max time.Duration) time.Duration { return max }
	r.d = d
	return r
}

// offsets returns the calls' times relative to start.
func offsets(start time.Time, calls []call) []time.Duration {
	out := make([]time.Duration, len(calls))
	for i, c := range calls {
		out[i] = c.at.Sub(start)
	}
	return out
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// value reads the one counter or gauge c collects.
func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	close(ch)
	var pb dto.Metric
	if err := (<-ch).Write(&pb); err != nil {
		t.Fatal(err)
	}
	switch {
	case pb.Counter != nil:
		return pb.Counter.GetValue()
	case pb.Gauge != nil:
		return pb.Gauge.GetValue()
	}
	t.Fatalf("%v is neither a counter nor a gauge", c)
	return 0
}

// histogram returns the histogram of family name with the given sink label.
func histogram(t *testing.T, reg prometheus.Gatherer, name, sink string) *dto.Histogram {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "sink" && l.GetValue() == sink {
					return m.GetHistogram()
				}
			}
		}
	}
	return nil
}
