package ring

import "github.com/spillway-io/spillway/internal/invariants"

// checkSpan fails, in builds with the invariants tag, unless positions from
// to to are a span a ring of capacity can hold: from <= to <= from+capacity.
// Each side checks the span it owns against the other side's index, which
// only moves toward it.
func checkSpan(what string, from, to uint64, capacity int) {
	if to-from > uint64(capacity) { // to < from wraps to a huge difference
		invariants.Failf("ring: %s: positions %d to %d in a ring of %d", what, from, to, capacity)
	}
}
