package rocketchattest

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// StormTitle is the title of notification i of a storm that CheckStorm
// reads back.
func StormTitle(i int) string { return fmt.Sprintf("storm-%03d", i) }

var stormTitle = regexp.MustCompile(`storm-\d{3}`)

// StormResult is what CheckStorm found.
type StormResult struct {
	// Posts are the webhook requests, in the order the hook's rate
	// limiter counted them.
	Posts []Request
	// Digests counts the messages that carried more than one notification.
	Digests int
}

// CheckStorm checks what a storm of total notifications, titled
// StormTitle(i) and grouped by i % groups, left in channel: each arrived
// exactly once, no digest left one out, each group arrived in the order of
// i, every webhook request was answered 200, and none was sent before the
// reset of a window whose last post it followed.
func CheckStorm(t testing.TB, s *Server, channel string, total, groups int) StormResult {
	t.Helper()
	var res StormResult
	count := map[string]int{}
	order := map[int][]int{}
	for _, m := range s.Messages(channel) {
		found := stormTitle.FindAllString(m.Text, -1)
		if len(found) > 1 {
			res.Digests++
		}
		if strings.Contains(m.Text, "more notifications") {
			t.Errorf("a digest left notifications out: %q", m.Text)
		}
		for _, id := range found {
			count[id]++
			var i int
			fmt.Sscanf(id, "storm-%d", &i)
			order[i%groups] = append(order[i%groups], i)
		}
	}
	for i := range total {
		if n := count[StormTitle(i)]; n != 1 {
			t.Errorf("%s received %d times, want once", StormTitle(i), n)
		}
	}
	for g, got := range order {
		if !slices.IsSorted(got) {
			t.Errorf("group %d arrived in the order %v", g, got)
		}
	}

	for _, r := range s.Requests() {
		if r.Endpoint == "webhook" {
			res.Posts = append(res.Posts, r)
		}
	}
	// The server records a request once it has answered it, so requests
	// answered at once may be recorded in another order than its rate
	// limiter counted them. Put them back in the limiter's order: by the
	// window they fell in (its reset), then by falling
	// X-RateLimit-Remaining.
	slices.SortStableFunc(res.Posts, func(a, b Request) int {
		if c := a.RateLimitReset().Compare(b.RateLimitReset()); c != 0 {
			return c
		}
		return cmp.Compare(remaining(t, b), remaining(t, a))
	})
	for i, r := range res.Posts {
		if r.Status != 200 {
			t.Errorf("webhook request %d at %v answered %d", i, r.At, r.Status)
		}
		if i > 0 && res.Posts[i-1].Header.Get("X-RateLimit-Remaining") == "0" && r.At.Before(res.Posts[i-1].RateLimitReset()) {
			t.Errorf("webhook request %d sent at %v, before the reset at %v", i, r.At, res.Posts[i-1].RateLimitReset())
		}
	}
	return res
}

func remaining(t testing.TB, r Request) int {
	n, err := strconv.Atoi(r.Header.Get("X-RateLimit-Remaining"))
	if err != nil {
		t.Fatalf("webhook answer at %v without X-RateLimit-Remaining: %v", r.At, err)
	}
	return n
}
