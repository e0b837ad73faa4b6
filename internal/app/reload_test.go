package app_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/gen/herald/v1/heraldv1connect"
	"github.com/herald-notify/herald/internal/app/apptest"
)

// receiver is a webhook receiver that counts the notifications it took by
// their Idempotency-Key (the notification id), and answers 500 while down.
type receiver struct {
	*httptest.Server
	down     atomic.Bool
	requests atomic.Int64
	mu       sync.Mutex
	took     map[string]int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{took: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		if r.down.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		r.mu.Lock()
		r.took[req.Header.Get("Idempotency-Key")]++
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.took[id]
}

// reloadConfig is a config with client "t" (the harness's), client "ops"
// with opsToken, the given sinks and the default route's chain.
func reloadConfig(opsToken, sinks, chain string) string {
	return fmt.Sprintf(`
auth:
  clients:
    - {name: t, token: tok-app-test}
    - {name: ops, token: %s, scopes: [read]}
dispatch:
  quick_retries: 0
  backoff_initial: 100ms
  backoff_max: 500ms
  breaker: {failures: 1, open_for: 1h}
sinks:
%s
routes: [{name: default, chain: [%s]}]
`, opsToken, sinks, chain)
}

// TestReloadUnderTraffic: while notifications are published without
// pause, herald is reloaded with a new fallback sink, a new token and the
// same failing primary; then with a config it must refuse; then again with
// a valid one. The failing primary's open breaker stays open across the
// reloads, the notifications pending before the first reload go to the
// new fallback, the new token works at once and the old one no longer
// does, the refused config changes nothing, and every notification
// published is delivered exactly once.
func TestReloadUnderTraffic(t *testing.T) {
	a, b := newReceiver(t), newReceiver(t)
	a.down.Store(true)
	hookA := fmt.Sprintf("  - {name: hook-a, webhook: {url: %q}}", a.URL)
	hookB := fmt.Sprintf("  - {name: hook-b, webhook: {url: %q}}", b.URL)
	h := apptest.Start(t, reloadConfig("tok-ops-1", hookA, "hook-a"), apptest.Options{})
	client := h.Client()

	publish := func(key string) string {
		res, err := client.Publish(t.Context(), connect.NewRequest(&heraldv1.PublishRequest{Notification: &heraldv1.Notification{
			Source: "t", Severity: heraldv1.Severity_SEVERITY_CRITICAL, Title: key, IdempotencyKey: key,
		}}))
		if err != nil {
			t.Errorf("publish %s: %v", key, err)
			return ""
		}
		return res.Msg.GetId()
	}
	var ids []string
	for i := range 5 {
		ids = append(ids, publish(fmt.Sprintf("before-%d", i)))
	}
	// The primary fails, its breaker opens, the five wait for a retry.
	deadline := time.Now().Add(20 * time.Second)
	for breaker(t, h, "hook-a") != heraldv1.BreakerState_BREAKER_STATE_OPEN {
		if time.Now().After(deadline) {
			t.Fatal("hook-a's breaker did not open")
		}
		time.Sleep(20 * time.Millisecond)
	}

	var (
		traffic sync.WaitGroup
		stop    atomic.Bool
		tmu     sync.Mutex
	)
	traffic.Go(func() {
		for i := 0; !stop.Load(); i++ {
			id := publish(fmt.Sprintf("during-%d", i))
			tmu.Lock()
			ids = append(ids, id)
			tmu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	})

	if err := h.Reload(t.Context(), reloadConfig("tok-ops-2", hookA+"\n"+hookB, "hook-a, hook-b")); err != nil {
		t.Fatalf("valid reload refused: %v", err)
	}
	if got := breaker(t, h, "hook-a"); got != heraldv1.BreakerState_BREAKER_STATE_OPEN {
		t.Errorf("hook-a's breaker after the reload: %v, want it still open", got)
	}
	if got := reloadOK(h); got != 1 {
		t.Errorf("herald_config_last_reload_successful = %v after a valid reload", got)
	}
	if code := listAs(t, h, "tok-ops-2"); code != 0 {
		t.Errorf("the new token: %v", code)
	}
	if code := listAs(t, h, "tok-ops-1"); code != connect.CodeUnauthenticated {
		t.Errorf("the old token after the reload: %v, want unauthenticated", code)
	}

	err := h.Reload(t.Context(), reloadConfig("tok-ops-3", hookA, "hook-a, nope"))
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("reload with an unknown sink in a chain: %v, want an error naming it", err)
	}
	if got := reloadOK(h); got != 0 {
		t.Errorf("herald_config_last_reload_successful = %v after a refused reload", got)
	}
	if code := listAs(t, h, "tok-ops-2"); code != 0 {
		t.Errorf("the refused reload changed the tokens: %v", code)
	}
	// The same config again: nothing changes, the metric recovers.
	if err := h.Reload(t.Context(), reloadConfig("tok-ops-2", hookA+"\n"+hookB, "hook-a, hook-b")); err != nil {
		t.Fatalf("valid reload refused: %v", err)
	}
	if got := reloadOK(h); got != 1 {
		t.Errorf("herald_config_last_reload_successful = %v after a valid reload", got)
	}
	time.Sleep(200 * time.Millisecond)
	stop.Store(true)
	traffic.Wait()

	tmu.Lock()
	defer tmu.Unlock()
	if len(ids) < 10 {
		t.Fatalf("only %d notifications published", len(ids))
	}
	for _, id := range ids {
		if id == "" {
			continue // its publish failed, reported above
		}
		rec := h.WaitDelivered(t, id, heraldv1.DeliveryState_DELIVERY_STATE_DELIVERED, 30*time.Second)
		if by := rec.GetDelivery().GetDeliveredBy(); by != "hook-b" {
			t.Errorf("%s delivered by %q, want hook-b", id, by)
		}
		if n := b.count(id); n != 1 {
			t.Errorf("%s reached hook-b %d times, want once", id, n)
		}
	}
	if n := a.requests.Load(); n == 0 {
		t.Error("hook-a was never tried")
	}
}

func breaker(t *testing.T, h *apptest.Herald, sink string) heraldv1.BreakerState {
	t.Helper()
	res, err := h.Client().ListSinks(t.Context(), connect.NewRequest(&heraldv1.ListSinksRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Msg.GetSinks() {
		if s.GetName() == sink {
			return s.GetBreaker()
		}
	}
	t.Fatalf("no sink %q in ListSinks", sink)
	return 0
}

func reloadOK(h *apptest.Herald) float64 {
	mfs, _ := h.Registry.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "herald_config_last_reload_successful" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// listAs calls ListSinks with tok and returns the error code (0: none).
func listAs(t *testing.T, h *apptest.Herald, tok string) connect.Code {
	c := heraldv1connect.NewNotificationServiceClient(http.DefaultClient, h.URL)
	req := connect.NewRequest(&heraldv1.ListSinksRequest{})
	req.Header().Set("Authorization", "Bearer "+tok)
	if _, err := c.ListSinks(t.Context(), req); err != nil {
		return connect.CodeOf(err)
	}
	return 0
}

// TestReloadWithoutConfigFile: a herald on the built-in defaults has no
// file to re-read; a reload says so and does not count as refused.
func TestReloadWithoutConfigFile(t *testing.T) {
	h := apptest.Start(t, logOnly, apptest.Options{NoConfigFile: true})
	err := h.Reload(t.Context(), logOnly)
	if err == nil || !strings.Contains(err.Error(), "without a config file") {
		t.Errorf("reload without a file: %v", err)
	}
	if got := reloadOK(h); got != 1 {
		t.Errorf("herald_config_last_reload_successful = %v, want 1: nothing was refused", got)
	}
}
