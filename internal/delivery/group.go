package delivery

import heraldv1 "github.com/herald-notify/herald/gen/herald/v1"

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
