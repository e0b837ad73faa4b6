package alertmanager_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
	"github.com/herald-notify/herald/internal/app/apptest"
	"github.com/herald-notify/herald/internal/shim"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/sinks/rocketchat/rocketchattest"
)

// TestAlertmanagerRepeatsAreReminders: an HA pair whose gossip lags (both
// peers send every notification) with repeat_interval 1m, in front of a
// herald with its default duplicate_window, delivering to Rocket.Chat.
// Each peer's copy is stored once, and each repeat is stored and delivered
// as a reminder in the group's thread: one message for the group, no
// repeat dropped, no copy doubled, every drop answered as a duplicate.
func TestAlertmanagerRepeatsAreReminders(t *testing.T) {
	bin := alertmanagerBinary(t)
	rc := rocketchattest.NewServer(rocketchattest.WithRooms("alerts"))
	t.Cleanup(rc.Close)
	h := apptest.Start(t, fmt.Sprintf(`
auth:
  clients: [{name: alertmanager, token: %s}]
sinks:
  - name: rocketchat
    rocketchat: {url: %s, mode: rest, user_id: %s, token: %q, channel: "#alerts", mentions: {critical: "@here"}}
routes: [{name: default, chain: [rocketchat]}]
`, heraldToken, rc.URL, rc.UserID(), rc.Token()), apptest.Options{})
	proxyURL, deliveries := recordDeliveries(t, h.URL)

	clusterA, clusterB := testutil.FreeAddr(t), testutil.FreeAddr(t)
	opts := amOptions{webhookURL: proxyURL + shim.Path, repeatInterval: "1m"}
	optsA, optsB := opts, opts
	optsA.cluster, optsA.peers = clusterA, []string{clusterB}
	optsB.cluster, optsB.peers = clusterB, []string{clusterA}
	peers := []*alertmanager{startAlertmanager(t, bin, optsA), startAlertmanager(t, bin, optsB)}
	for _, p := range peers {
		testutil.Eventually(t, waitLimit, "the cluster to form at "+p.url, func() bool { return p.clusterPeers(t) == 2 })
	}
	// Alerts posted without an end stay firing for resolve_timeout (5m),
	// longer than the test.
	startsAt := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	for _, p := range peers {
		p.postAlerts(t, testAlerts("HeraldRepeat", startsAt, time.Time{}))
	}
	reminders := func() []rocketchattest.Message {
		var out []rocketchattest.Message
		for _, m := range rc.Messages("alerts") {
			if strings.Contains(m.Text, "🔁 Still firing") {
				out = append(out, m)
			}
		}
		return out
	}
	// The first notification, then a repeat a minute later, and another.
	testutil.Eventually(t, 4*time.Minute, "two reminders", func() bool { return len(reminders()) >= 2 })

	// What Alertmanager sent, by full notification (both alerts firing):
	// how many webhooks, and how many herald stored.
	var sent, stored, dup int
	for _, d := range deliveries() {
		var body shim.Response
		if d.status != 200 || json.Unmarshal(d.response, &body) != nil || len(body.Notifications) != 1 {
			t.Errorf("a webhook answered %d %s", d.status, d.response)
			continue
		}
		sent++
		if body.Notifications[0].Duplicate {
			dup++
		} else {
			stored++
		}
	}
	top := rc.TopLevel("alerts")
	if len(top) != 1 {
		t.Errorf("%d top-level messages, want the group's one: %+v", len(top), top)
	}
	// Whether both peers sent depends on gossip timing; a copy of the last
	// webhook, sent now as a late peer would, is certain to be one.
	ds := deliveries()
	last := ds[len(ds)-1]
	if code, dupNow := post(t, h.URL, last.request); code != 200 || !dupNow {
		t.Errorf("a peer's copy of the last webhook, seconds later: %d, duplicate %v; want 200 and a duplicate", code, dupNow)
	}
	// A peer may flush between taking the two alerts of one POST and
	// notify about the first alone: that notification is distinct (an
	// update follows it). The notifications with both alerts are the
	// first full one and its repeats, each a minute from the last: no
	// peer's copy was stored beside one of them.
	var full []time.Time
	halves := 0
	res, err := h.Client().ListNotifications(context.Background(), connect.NewRequest(&heraldv1.ListNotificationsRequest{PageSize: 500}))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Msg.GetNotifications() {
		if len(s.GetNotification().GetAlerts()) == 2 {
			full = append(full, s.GetNotification().GetReceivedAt().AsTime())
		} else {
			halves++
		}
	}
	slices.SortFunc(full, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(full); i++ {
		if gap := full[i].Sub(full[i-1]); gap < 30*time.Second {
			t.Errorf("notifications stored %v apart: an HA copy was stored as a repeat (received %v)", gap, full)
		}
	}
	if len(full) < 3 {
		t.Errorf("%d full notifications stored, want the first and two repeats", len(full))
	}
	// Only a change edits the group's message: the full notification after
	// a half one; never a repeat.
	if n := rc.Count("chat.update"); n > halves {
		t.Errorf("%d chat.update calls after %d half notifications: a repeat changed the group's message", n, halves)
	}
	t.Logf("Alertmanager sent %d webhooks: %d stored (the first and the repeats), %d copies answered as duplicates; %d reminders",
		sent, stored, dup, len(reminders()))
}

// post sends an Alertmanager webhook body to herald and returns the status
// and whether herald took it for a duplicate.
func post(t *testing.T, base string, body []byte) (int, bool) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+shim.Path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+heraldToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r shim.Response
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Notifications) != 1 {
		return resp.StatusCode, false
	}
	return resp.StatusCode, r.Notifications[0].Duplicate
}
