package park

import (
	"runtime"
	"time"
)

const (
	// activeSpins is how many rounds Await spins on the CPU before it starts
	// yielding.
	activeSpins = 2
	// passiveSpins is how many rounds Await yields its P (runtime.Gosched)
	// before it parks. A yield lets the peer goroutine run on this P, which
	// matters when goroutines outnumber Ps; one costs 0.1–0.3 µs.
	passiveSpins = 64
	// spinRound is how long one active round spins before the condition is
	// checked again. Every look at the peer's index pulls its cache line
	// away from the peer, stalling the peer's next atomic write for a
	// cross-core round trip (0.05 µs on a desktop, 0.25 µs on the 2-vCPU VMs
	// Spillway is measured on). Looking every 2 µs keeps that tax near 10%
	// while the peer streams, and lets it move hundreds of items per look.
	spinRound = 2 * time.Microsecond
)

var (
	multicore = runtime.GOMAXPROCS(0) > 1
	// pausesPerRound is spinRound expressed in pause instructions, calibrated
	// once at start-up: PAUSE takes 10 to 140 cycles depending on the core.
	pausesPerRound = calibrate()
)

// calibrate measures PAUSE (best of three runs of 1000) and returns how many
// make up spinRound. It costs about 60 µs once per process.
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
	n := int64(spinRound) * probe / int64(best)
	return uint32(max(1, min(n, 1<<16)))
}

// spinRounds is the number of rounds before parking: no active spinning on a
// single P, where the peer cannot make progress while we spin.
func spinRounds() int {
	if multicore {
		return activeSpins + passiveSpins
	}
	return passiveSpins
}

func backoff(round int) {
	if multicore && round < activeSpins {
		procyield(pausesPerRound)
		return
	}
	runtime.Gosched()
}
