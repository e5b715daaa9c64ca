package park

import (
	"runtime"
	"time"
)

const (
	// passiveSpins is how many rounds Await yields its P (runtime.Gosched)
	// before it parks. A yield lets the peer goroutine run on this P, which
	// matters when goroutines outnumber Ps.
	passiveSpins = 64
	// minLook is the shortest time between two looks of a spinning waiter,
	// and maxLevel bounds its doubling: looks come every minLook<<level,
	// from 0.25 µs to 16 µs. Every look at the peer's index pulls its cache
	// line away from the peer, stalling the peer's next atomic write for a
	// cross-core round trip: looking rarely lets a streaming peer move
	// hundreds of items per look, looking often answers a lone item soon.
	minLook  = 250 * time.Nanosecond
	maxLevel = 6
	// activeBudget is how long Await spins on the CPU, looking, before it
	// starts yielding.
	activeBudget = 4 * time.Microsecond
	// growAt and shrinkAt adapt a Waiters' level to what its waits find:
	// a wait that ends with at least growAt items available doubles the
	// next look interval (the peer streams: look less often); one that ends
	// with at most shrinkAt halves it (items come one at a time: answer
	// sooner).
	growAt   = 8
	shrinkAt = 1
)

var (
	multicore = runtime.GOMAXPROCS(0) > 1
	// pausesPerLook is minLook expressed in pause instructions, calibrated
	// once at start-up: PAUSE takes 10 to 140 cycles depending on the core.
	pausesPerLook = calibrate()
)

// calibrate measures PAUSE (best of three runs of 1000) and returns how many
// make up minLook, once per process.
func calibrate() uint32 {
	const probe = 1000
	best := time.Duration(1 << 62)
	for range 3 {
		t0 := time.Now()
		procyield(probe)
		best = min(best, time.Since(t0))
	}
	if best <= 0 {
		best = 1
	}
	n := int64(minLook) * probe / int64(best)
	return uint32(max(1, min(n, 1<<14)))
}

// activeLooks is how many looks a waiter at level makes while spinning: no
// active spinning on a single P, where the peer cannot make progress while
// we spin.
func activeLooks(level int32) int {
	if !multicore {
		return 0
	}
	return max(1, int(activeBudget/(minLook<<level)))
}

// backoff waits before look number round: a spin of minLook<<level while
// active, a yield after.
func backoff(round, active int, level int32) {
	if round < active {
		procyield(pausesPerLook << level)
		return
	}
	runtime.Gosched()
}
