package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"testing/slogtest"
	"time"

	"go.opentelemetry.io/otel/trace"
)

var testSpan = trace.NewSpanContext(trace.SpanContextConfig{
	TraceID:    trace.TraceID{0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c},
	SpanID:     trace.SpanID{0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31},
	TraceFlags: trace.FlagsSampled,
})

const (
	testTraceID = "0af7651916cd43dd8448eb211c80319c"
	testSpanID  = "b7ad6b7169203331"
)

// decode parses JSON log lines.
func decode(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLogHandlerAddsIDs(t *testing.T) {
	spanCtx := trace.ContextWithSpanContext(context.Background(), testSpan)
	remoteCtx := trace.ContextWithRemoteSpanContext(context.Background(), testSpan)
	tests := []struct {
		name   string
		log    func(l *slog.Logger)
		want   map[string]any // top-level keys; nil value means absent
		nested map[string]any // keys inside group "g"
	}{{
		name: "span in context",
		log:  func(l *slog.Logger) { l.InfoContext(spanCtx, "delivered", "notification_id", "n1") },
		want: map[string]any{"trace_id": testTraceID, "span_id": testSpanID, "notification_id": "n1"},
	}, {
		name: "remote span context",
		log:  func(l *slog.Logger) { l.InfoContext(remoteCtx, "received") },
		want: map[string]any{"trace_id": testTraceID, "span_id": testSpanID},
	}, {
		name: "no span",
		log:  func(l *slog.Logger) { l.InfoContext(context.Background(), "started") },
		want: map[string]any{"trace_id": nil, "span_id": nil},
	}, {
		name: "no context",
		log:  func(l *slog.Logger) { l.Info("started") },
		want: map[string]any{"trace_id": nil},
	}, {
		name: "with attrs",
		log:  func(l *slog.Logger) { l.With("sink", "slack").InfoContext(spanCtx, "sent") },
		want: map[string]any{"trace_id": testTraceID, "sink": "slack"},
	}, {
		name:   "group stays below the ids",
		log:    func(l *slog.Logger) { l.With("a", 1).WithGroup("g").With("b", 2).InfoContext(spanCtx, "sent", "c", 3) },
		want:   map[string]any{"trace_id": testTraceID, "span_id": testSpanID, "a": 1.0},
		nested: map[string]any{"b": 2.0, "c": 3.0, "trace_id": nil},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(slog.New(NewLogHandler(slog.NewJSONHandler(&buf, nil))))
			lines := decode(t, &buf)
			if len(lines) != 1 {
				t.Fatalf("%d lines", len(lines))
			}
			check := func(m map[string]any, want map[string]any, where string) {
				for k, w := range want {
					got, ok := m[k]
					if w == nil && ok {
						t.Errorf("%s: %s = %v, want absent", where, k, got)
					} else if w != nil && got != w {
						t.Errorf("%s: %s = %v, want %v", where, k, got, w)
					}
				}
			}
			check(lines[0], tt.want, "top level")
			if tt.nested != nil {
				g, _ := lines[0]["g"].(map[string]any)
				check(g, tt.nested, "group g")
			}
		})
	}
}

// TestLogHandlerDoesNotAlterRecord checks that the ids go on a copy: a
// second handler given the same record must not see them.
func TestLogHandlerDoesNotAlterRecord(t *testing.T) {
	var a, b bytes.Buffer
	ha, hb := NewLogHandler(slog.NewJSONHandler(&a, nil)), slog.NewJSONHandler(&b, nil)
	ctx := trace.ContextWithSpanContext(context.Background(), testSpan)
	r := slog.NewRecord(testTime, slog.LevelInfo, "m", 0)
	r.AddAttrs(slog.String("k", "v"))
	if err := ha.Handle(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := hb.Handle(ctx, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(a.String(), testTraceID) || strings.Contains(b.String(), testTraceID) {
		t.Errorf("wrapped:\n%splain:\n%s", a.String(), b.String())
	}
}

func TestNewLogger(t *testing.T) {
	ctx := trace.ContextWithSpanContext(context.Background(), testSpan)
	t.Run("json debug", func(t *testing.T) {
		var buf bytes.Buffer
		l := NewLogger("json", "debug", &buf)
		l.DebugContext(ctx, "d")
		lines := decode(t, &buf)
		if len(lines) != 1 || lines[0]["level"] != "DEBUG" || lines[0]["trace_id"] != testTraceID {
			t.Errorf("lines %v", lines)
		}
	})
	t.Run("text warn", func(t *testing.T) {
		var buf bytes.Buffer
		l := NewLogger("text", "warn", &buf)
		l.InfoContext(ctx, "hidden")
		l.WarnContext(ctx, "shown")
		out := buf.String()
		if strings.Contains(out, "hidden") || !strings.Contains(out, "msg=shown") ||
			!strings.Contains(out, "trace_id="+testTraceID) || !strings.Contains(out, "span_id="+testSpanID) {
			t.Errorf("output %q", out)
		}
	})
	for level, enabled := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError, "": slog.LevelInfo} {
		l := NewLogger("json", level, &bytes.Buffer{})
		if !l.Enabled(ctx, enabled) || l.Enabled(ctx, enabled-1) {
			t.Errorf("level %q: enabled from the wrong level", level)
		}
	}
}

var testTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// TestLogHandlerConformance runs the standard library's handler checks on
// the wrapper, with no span in the context.
func TestLogHandlerConformance(t *testing.T) {
	var buf bytes.Buffer
	slogtest.Run(t, func(*testing.T) slog.Handler {
		buf.Reset()
		return NewLogHandler(slog.NewJSONHandler(&buf, nil))
	}, func(t *testing.T) map[string]any {
		lines := decode(t, &buf)
		if len(lines) != 1 {
			t.Fatalf("%d lines", len(lines))
		}
		return lines[0]
	})
}

// BenchmarkLoggerWith is the logger derived for every notification handled,
// which mostly logs nothing: go test -run '^$' -bench LoggerWith -benchmem
func BenchmarkLoggerWith(b *testing.B) {
	log := slog.New(NewLogHandler(slog.NewJSONHandler(io.Discard, nil)))
	for b.Loop() {
		l := log.With("notification_id", "01KB7Z3Q8W5Q3YQ0M8ZJ9X4T2C", "group", "3f1a9c0d2b7e4f60", "route", "critical")
		l.With("sink", "rocketchat").Debug("not logged")
	}
}

// TestNewLoggerDurations: durations are Go duration strings in JSON as in
// text, at the top level and in groups, in a record's attributes and in a
// derived logger's (With), and from a LogValuer.
func TestNewLoggerDurations(t *testing.T) {
	for _, tt := range []struct{ format, want string }{
		{"json", `{"level":"INFO","msg":"group flows again","budget":"24h0m0s","waited":"1m30s","g":{"backoff":"1.5s","none":"0s"},"valuer":"250ms"}`},
		{"text", `level=INFO msg="group flows again" budget=24h0m0s waited=1m30s g.backoff=1.5s g.none=0s valuer=250ms`},
	} {
		t.Run(tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			NewLogger(tt.format, "info", &buf).With("budget", 24*time.Hour).Info("group flows again", "waited", 90*time.Second,
				slog.Group("g", "backoff", 1500*time.Millisecond, "none", time.Duration(0)),
				"valuer", durationValuer(250*time.Millisecond))
			if got := withoutTime(buf.String()); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// durationValuer logs as the duration it holds.
type durationValuer time.Duration

func (d durationValuer) LogValue() slog.Value { return slog.DurationValue(time.Duration(d)) }

// withoutTime drops the time attribute of one log line.
func withoutTime(line string) string {
	line = strings.TrimSpace(line)
	if strings.HasPrefix(line, "{") {
		_, rest, _ := strings.Cut(line, `"level"`)
		return `{"level"` + rest
	}
	_, rest, _ := strings.Cut(line, " level=")
	return "level=" + rest
}

// TestNewLoggerClipsValues: a string or error from outside (a group key, a
// path) is clipped to MaxLogValue bytes with its length said; short values
// and the message are not.
func TestNewLoggerClipsValues(t *testing.T) {
	long := strings.Repeat("k", 3<<20)
	var buf bytes.Buffer
	NewLogger("json", "info", &buf).Warn("alertmanager webhook: publish failed", slog.Group("", "group_key", long),
		"err", errors.New("bad group "+long), "receiver", "team-a", "alerts", 3)
	line := buf.String()
	if len(line) > 3*MaxLogValue {
		t.Errorf("log line of %d bytes", len(line))
	}
	m := decode(t, &buf)[0]
	wantKey := strings.Repeat("k", MaxLogValue) + "…(3145728 bytes)"
	if m["group_key"] != wantKey {
		t.Errorf("group_key = %.80q…, want %d bytes of it and its length", m["group_key"], MaxLogValue)
	}
	if err, _ := m["err"].(string); !strings.HasPrefix(err, "bad group kkk") || !strings.HasSuffix(err, "…(3145738 bytes)") {
		t.Errorf("err = %.80q…", err)
	}
	if m["receiver"] != "team-a" || m["alerts"] != 3.0 || m["msg"] != "alertmanager webhook: publish failed" {
		t.Errorf("short values changed: %v %v %v", m["receiver"], m["alerts"], m["msg"])
	}

	// An error interface holding a nil pointer is still written as
	// slog writes it, not a panic.
	buf.Reset()
	var nilErr *os.PathError
	NewLogger("json", "info", &buf).Info("m", "err", error(nilErr))
	if m := decode(t, &buf)[0]; m["err"] != "<nil>" {
		t.Errorf("nil pointer error logged as %v", m["err"])
	}
}

func TestClip(t *testing.T) {
	for _, tt := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 5, "short"},
		{"abcdef", 3, "abc…(6 bytes)"},
		{"aé", 2, "a…(3 bytes)"}, // é is 2 bytes; never half of it
		{"日本語", 4, "日…(9 bytes)"},
		{"", 0, ""},
	} {
		if got := Clip(tt.s, tt.n); got != tt.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}

// TestNewLoggerConformance runs the standard library's handler checks on
// the handler NewLogger builds.
func TestNewLoggerConformance(t *testing.T) {
	var buf bytes.Buffer
	slogtest.Run(t, func(*testing.T) slog.Handler {
		buf.Reset()
		return NewLogger("json", "info", &buf).Handler()
	}, func(t *testing.T) map[string]any {
		lines := decode(t, &buf)
		if len(lines) != 1 {
			t.Fatalf("%d lines", len(lines))
		}
		return lines[0]
	})
}
