package ring

import (
	"math/bits"

	"golang.org/x/sys/cpu"
)

// Positions are 64-bit counters that never wrap in practice (2^63 items at
// 10^9 per second take 292 years). A slot index is position & mask.
//
// In MPSC and MPMC the producers' position word (tail) carries the closed
// flag in its top bit. Setting it with a CAS freezes tail: every claim is a
// CAS on tail from a value without the flag, so a push either lands before
// Close (and is drained by consumers) or fails. That is what lets Close
// never lose an item that a push reported as accepted. SPSC and Broadcast,
// whose single producer stores tail without a CAS, close by lightClose
// instead.
const closedBit = uint64(1) << 63

// maxCapacity bounds capacities so that positions, their differences and the
// MPMC turn counters (2 per lap) never overflow.
const maxCapacity = 1 << 40

// pad separates fields written by different goroutines onto different cache
// lines. Go does not align heap objects to cache lines, so every hot group is
// fenced by a pad on both sides. It is one line (64 bytes on amd64), so
// two groups may still share an aligned 128-byte pair, which some cores'
// adjacent-line prefetchers fetch together; pads of two lines were no
// faster (docs/MEASUREMENTS.md).
type pad = cpu.CacheLinePad

// roundCapacity rounds n up to a power of two, at least 1.
func roundCapacity(n int) int {
	if n <= 1 {
		return 1
	}
	if n > maxCapacity {
		panic("spillway/ring: capacity too large")
	}
	return 1 << bits.Len(uint(n-1))
}

// clampLen turns tail-head (loaded in that order: head first) into a length
// in [0, capacity].
func clampLen(tail, head uint64, capacity int) int {
	n := int64(tail - head)
	if n < 0 {
		return 0
	}
	if n > int64(capacity) {
		return capacity
	}
	return int(n)
}
