package spillway

import (
	"math/bits"
	"sync/atomic"

	"github.com/spillway-io/spillway/internal/invariants"
)

// topicStamps is a Topic shard's table of publish times, by ring position,
// for the timed positions (multiples of Options.LatencySampling): a
// tentry has no room for a send time, and one table serves every
// subscription.
//
// Who may do what:
//   - The holder of the shard's pub stores the times of the positions a
//     push is about to fill, before the push publishes them (stamp); the
//     ring's publication then carries them to the readers.
//   - A receiver holding a subShard's recvMu reads the times of positions
//     it took from the ring (at) while the subShard reads the ring. The
//     table spans at least 2×cap+128 positions: the publisher stamps at
//     most 64 positions past the tail, and cannot fill a slot past a
//     ring reader's cursor+cap, so a position a ring reader holds (at
//     most 32 before its cursor) keeps its time until it is delivered.
//     A subShard moved to the spill reads times from the records.
type topicStamps struct {
	at    []atomic.Int64 // unix ns, by (position >> shift) & mask
	shift uint
	mask  uint64
	span  uint64 // positions the table covers
}

// init sizes the table for a ring of ringCap slots timing 1 in every.
func (ts *topicStamps) init(ringCap int, every uint32) {
	if every == 0 {
		return
	}
	need := (2*uint64(ringCap) + 128 + uint64(every) - 1) / uint64(every)
	n := uint64(1) << bits.Len64(need-1)
	ts.at = make([]atomic.Int64, n)
	ts.shift = uint(bits.TrailingZeros32(every))
	ts.mask = n - 1
	ts.span = n * uint64(every)
}

// firstTimed returns the first timed position at or after p.
func (ts *topicStamps) firstTimed(p uint64) uint64 {
	every := uint64(1) << ts.shift
	return (p + every - 1) &^ (every - 1)
}

// stamp stores now as the publish time of the timed positions in
// [from, from+n). REQUIRES: the shard's pub; n ≤ 64.
func (s *tshard) stamp(from uint64, n int) {
	ts := &s.stamps
	if ts.at == nil {
		return
	}
	if invariants.Enabled && n > 64 {
		invariants.Failf("shard %d: stamping %d positions past the tail; the table's span allows 64", s.idx, n)
	}
	p := ts.firstTimed(from)
	if p >= from+uint64(n) {
		return
	}
	now := s.t.lat.now()
	for ; p < from+uint64(n); p += 1 << ts.shift {
		ts.at[(p>>ts.shift)&ts.mask].Store(now)
	}
}

// get returns the publish time of timed position p (see topicStamps for
// when it is valid).
func (ts *topicStamps) get(p uint64) int64 {
	return ts.at[(p>>ts.shift)&ts.mask].Load()
}

// timeOf returns the publish time of position p if p is timed, else 0.
// REQUIRES: the shard's pub, p stamped (see stamp) and not yet reused.
func (ts *topicStamps) timeOf(p uint64) int64 {
	if ts.at == nil || p&(1<<ts.shift-1) != 0 {
		return 0
	}
	return ts.get(p)
}

// recordRingWaits records the waits of the timed positions among the m
// delivered from the ring's side (local) from position from on.
// REQUIRES: ss.recvMu, ss reads the ring.
func (ss *subShard) recordRingWaits(from uint64, m int, now *int64) {
	ts := &ss.ts.stamps
	for p := ts.firstTimed(from); p < from+uint64(m); p += 1 << ts.shift {
		if at := ts.get(p); at != 0 {
			ss.g.lat.waited(now, at)
		}
	}
}

// oldestLocked returns the publish time of the oldest timed message ss has
// yet to deliver for the first time, or 0 if none is known. For a subShard
// reading a spill more than the table's span behind the tail, whose next
// timed message is on disk, it is the oldest time the table holds: a lower
// bound of its age. REQUIRES: ss.recvMu.
func (ss *subShard) oldestLocked() int64 {
	ts := &ss.ts.stamps
	if ts.at == nil || ss.detached {
		return 0
	}
	for i := ss.carryNext; i < len(ss.carry) && i < ss.carryNext+oldestLimit; i++ {
		if at := ss.carry[i].at; at != 0 {
			return at
		}
	}
	tail := ss.ts.ring.Tail()
	p := ts.firstTimed(ss.nextPosition())
	if p >= tail {
		return 0
	}
	if tail-p > ts.span-128 {
		p = ts.firstTimed(tail - (ts.span - 128)) // older ones were overwritten
	}
	if ss.r == nil && ss.lo < ss.hi && p < ss.localHead+uint64(ss.hi) {
		// Popped from the ring before the subShard moved to the spill:
		// their slots may have been reused. Untimed.
		p = ts.firstTimed(ss.localHead + uint64(ss.hi))
		if p >= tail {
			return 0
		}
	}
	return ts.get(p)
}
