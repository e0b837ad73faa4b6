package queue

import (
	"fmt"
	"slices"
	"testing"
)

func TestAssignSpreadsEvenly(t *testing.T) {
	for _, tc := range []struct{ parts, replicas int }{
		{16, 1}, {16, 2}, {16, 3}, {16, 5}, {4, 3}, {3, 4}, {64, 7},
	} {
		t.Run(fmt.Sprintf("%d over %d", tc.parts, tc.replicas), func(t *testing.T) {
			var ids []string
			for i := range tc.replicas {
				ids = append(ids, fmt.Sprintf("replica-%d", i))
			}
			owners := assign(tc.parts, ids)
			load := map[string]int{}
			for p, o := range owners {
				if !slices.Contains(ids, o) {
					t.Fatalf("partition %d owned by %q, not a member", p, o)
				}
				load[o]++
			}
			base := tc.parts / tc.replicas
			for id, n := range load {
				if n < base || n > base+1 {
					t.Errorf("%s owns %d partitions, want %d or %d", id, n, base, base+1)
				}
			}
			if want := min(tc.parts, tc.replicas); len(load) != want {
				t.Errorf("%d replicas own partitions, want %d", len(load), want)
			}
			// Every replica computes the same from the members in any order.
			rev := slices.Clone(ids)
			slices.Reverse(rev)
			if got := assign(tc.parts, rev); !slices.Equal(got, owners) {
				t.Errorf("assignment depends on the order of the members")
			}
		})
	}
}

// A replica joining or leaving moves few partitions: the members that stay
// keep most of theirs, so few partitions pay a takeover.
func TestAssignMovesFew(t *testing.T) {
	const parts = 16
	ids := []string{"a1f3", "9c02", "77be"}
	before := assign(parts, ids)
	after := assign(parts, append(slices.Clone(ids), "d4e5"))
	moved := 0
	for p := range parts {
		if before[p] != after[p] {
			moved++
		}
	}
	// The newcomer takes its share (4); bounded load may move a few more.
	if moved > parts/2 {
		t.Errorf("a fourth replica moved %d of %d partitions", moved, parts)
	}
	left := assign(parts, ids[:2])
	for p := range parts {
		if before[p] != ids[2] && left[p] != before[p] {
			// Bounded load can move a partition whose owner stays, but
			// rarely; count them.
			moved++
		}
	}
	t.Logf("join and leave moved %d partition owners", moved)
}
