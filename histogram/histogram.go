package histogram

import (
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	subBits    = 6
	subCount   = 1 << subBits // buckets per power of two above linear
	linear     = 2 * subCount // values below this have a bucket each
	maxBits    = 43           // values of 2^maxBits ns and more go in the last bucket
	numBuckets = (maxBits-subBits)*subCount + subCount
)

// MaxValue is the largest value with a bucket of its own width; larger
// values count in the last bucket (Max keeps them exactly).
const MaxValue = time.Duration(1<<maxBits - 1)

// bucketOf returns the bucket of v nanoseconds.
func bucketOf(v uint64) int {
	if v < linear {
		return int(v)
	}
	if v > uint64(MaxValue) {
		v = uint64(MaxValue)
	}
	e := bits.Len64(v) - (subBits + 1) // v>>e is in [subCount, 2*subCount)
	return e<<subBits + int(v>>e)
}

// bounds returns bucket i's lowest value and width.
func bounds(i int) (lower, width uint64) {
	if i < linear {
		return uint64(i), 1
	}
	e := i>>subBits - 1
	m := uint64(i - e<<subBits)
	return m << e, 1 << e
}

// Histogram counts durations. The zero value is empty and ready; it must not
// be copied after first use.
//
// Invariants: any goroutine may call Record and Snapshot at any time. Each
// counter only grows (until Reset, which the owner calls only when nobody
// records); max only grows, by CAS.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	sum    atomic.Uint64 // nanoseconds, modulo 2^64
	max    atomic.Int64
}

// Record counts d; a negative d counts as 0.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(uint64(v))].Add(1)
	h.sum.Add(uint64(v))
	for m := h.max.Load(); v > m; m = h.max.Load() {
		if h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// Snapshot copies h into dst (overwriting it) and returns dst.
func (h *Histogram) Snapshot(dst *Snapshot) *Snapshot {
	dst.count = 0
	for i := range h.counts {
		c := h.counts[i].Load()
		dst.counts[i] = c
		dst.count += c
	}
	dst.sum = h.sum.Load()
	dst.max = time.Duration(h.max.Load())
	return dst
}

// Reset empties h. REQUIRES: nobody records meanwhile.
func (h *Histogram) Reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.sum.Store(0)
	h.max.Store(0)
}
