package delivery

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// GroupKey is the group a notification is delivered in: its group key,
// with the route of a fan-out copy (heraldv1.Notification.route), so that
// each route's copies of a group keep their own order, wait for no other
// route, and have their own message in chat. Empty for a notification
// without a group.
func GroupKey(n *heraldv1.Notification) string {
	gk := n.GetGroupKey()
	if gk == "" || n.GetRoute() == "" {
		return gk
	}
	return gk + "\x00" + n.GetRoute()
}

// Content is a digest of what a notification says about its group: its
// status and title, each alert's identity (Alertmanager's fingerprint, else
// its labels) and status, in any order, how many alerts were left out, and
// for a notification without alerts its text.
// Two notifications of a group with the same Content differ only in time:
// the second is a reminder.
func Content(n *heraldv1.Notification) string {
	alerts := make([]string, 0, len(n.GetAlerts()))
	for _, a := range n.GetAlerts() {
		id := a.GetFingerprint()
		if id == "" {
			keys := slices.Sorted(maps.Keys(a.GetLabels()))
			var b strings.Builder
			for _, k := range keys {
				fmt.Fprintf(&b, "%q=%q,", k, a.GetLabels()[k])
			}
			id = b.String()
		}
		alerts = append(alerts, id+"\x00"+a.GetStatus().String())
	}
	slices.Sort(alerts)
	h := sha256.New()
	// A notification without alerts (from the API) is its text; one from
	// Alertmanager is its alerts, whose annotations may carry values that
	// change at every evaluation.
	text := n.GetText()
	if len(alerts) > 0 {
		text = ""
	}
	fmt.Fprintf(h, "%s\x00%d\x00%s\x00%s\x00", n.GetStatus(), n.GetTruncatedAlerts(), n.GetTitle(), text)
	for _, a := range alerts {
		h.Write([]byte(a))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
