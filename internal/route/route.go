// Package route decides, from a notification's labels, which channel it goes
// to in each sink and in which order the sinks are tried. It is pure: no I/O.
package route

import (
	heraldv1 "github.com/herald-notify/herald/gen/herald/v1"
)

// Step is one sink of a chain with the channel the route chose for it.
type Step struct {
	Sink    string
	Channel string
}

// Decision is where one notification goes.
type Decision struct {
	// Route is the name of the route that matched.
	Route string
	// Chain is the ordered sink chain: primary first, then fallbacks. It is
	// never empty.
	Chain []Step
	// Templates maps a sink name to a template file that overrides the sink's
	// default for this route.
	Templates map[string]string
}

// Router routes notifications. Every notification gets a decision: the
// config requires a last route that matches everything.
type Router interface {
	Route(n *heraldv1.Notification) Decision
}
