package spillway

import (
	"sync"

	"github.com/spillway-io/spillway/mmap"
	"github.com/spillway-io/spillway/ring"
)

// subShard is one subscription's part of one topic shard: where the
// subscription is in the shard's messages.
//
// Who may do what:
//   - Receivers of the subscription take cons (TryLock) and then read: the
//     ring through r while r is set, the spill through ep and disk while it
//     is not. Messages are delivered from local (popped from the ring),
//     then carry (read from the spill).
//   - r, ep and pos change only under both cons and the shard's pub: the
//     publisher moves ss to the spill (holding pub, it takes cons), and a
//     receiver moves it back (holding cons, it TryLocks pub).
//   - next, the position of the next message to deliver, is stored by the
//     receiver holding cons, for Stats.
type subShard struct {
	ackBook // ManualAck state and counters
	ts      *tshard

	_     pad
	cons  sync.Mutex
	taken uint32               // messages taken since the group's first shard moved here; guarded by cons
	r     *ring.Reader[tentry] // while reading the ring
	ep    *episode             // while reading the spill
	disk  *mmap.Reader         // ep's log, from pos; opened lazily
	hold  *mmap.Reader         // until disk is open: holds back the log's retention
	pos   uint64               // while reading the spill: ring position of the next message to read from it
	carry []entry              // read from the spill: carry[ci:], the first at position carryAt
	ci    int
	// carryAt is the ring position of carry[0].
	carryAt   uint64
	local     [32]tentry // popped from the ring: local[lo:hi], the first at position localHead
	lo, hi    int
	localHead uint64
	gone      bool // unsubscribed or closed; guarded by cons
	// failure is a spill failure met under cons, for the receiver to
	// report (Options.OnError) once it released cons. Guarded by cons.
	failure error
	// skipping: the last spill read met a batch that could not be decoded,
	// and the reader moved past it. Guarded by cons.
	skipping bool

	// delivered counts first deliveries. Guarded by cons: Stats reads it,
	// and the position of the next message to deliver, under cons, rather
	// than receivers storing them with atomics (two locked instructions per
	// receive).
	delivered uint64
	_         pad
}

func deleteFirst(ss []*subShard, x *subShard) []*subShard {
	for i, v := range ss {
		if v == x {
			return append(ss[:i:i], ss[i+1:]...)
		}
	}
	return ss
}

// detach takes ss out of its shard for good: what it had not delivered is
// counted as dropped. It returns an episode to close if ss was its last
// reader. REQUIRES: s.pub and ss.cons.
func (ss *subShard) detach() *episode {
	if ss.gone {
		return nil
	}
	ss.gone = true
	ss.dropped.Add(ss.ts.ring.Tail() - ss.nextPosition())
	ss.ackBook.drop()
	clear(ss.local[:])
	ss.lo, ss.hi = 0, 0
	ss.carry, ss.ci = nil, 0
	var done *episode
	if ss.r != nil {
		ss.r.Close()
		ss.r = nil
	} else if ss.ep != nil {
		done = ss.leaveSpill()
	}
	return done
}

// nextPosition is the position of the next message ss will deliver.
// REQUIRES: ss.cons.
func (ss *subShard) nextPosition() uint64 {
	switch {
	case ss.lo < ss.hi:
		return ss.localHead + uint64(ss.lo)
	case ss.ci < len(ss.carry):
		return ss.carryAt + uint64(ss.ci)
	case ss.r != nil:
		return ss.r.Cursor()
	}
	return ss.pos
}

// take fills dst: redeliveries first, then what was popped from the ring,
// then what was read from the spill, then more from the ring or the spill.
// REQUIRES: ss.cons.
func (ss *subShard) take(dst []Delivery) int {
	if ss.gone {
		return 0
	}
	n := 0
	if ss.readyLen.Load() > 0 {
		n = ss.takeReady(dst)
	}
	first := n
	for n < len(dst) {
		switch {
		case ss.lo < ss.hi:
			m := min(len(dst)-n, ss.hi-ss.lo)
			for j := range m {
				ss.local[ss.lo+j].deliver(&dst[n+j], ss.idx, ss.localHead+uint64(ss.lo+j))
				ss.local[ss.lo+j] = tentry{}
			}
			ss.lo += m
			n += m
		case ss.ci < len(ss.carry):
			m := min(len(dst)-n, len(ss.carry)-ss.ci)
			for j := range m {
				ss.carry[ss.ci+j].deliver(&dst[n+j], ss.idx, ss.carryAt+uint64(ss.ci+j))
				ss.carry[ss.ci+j] = entry{}
			}
			ss.ci += m
			n += m
		case ss.r != nil:
			head := ss.r.Cursor()
			k := ss.r.PopBatch(ss.local[:])
			if k == 0 {
				goto out
			}
			ss.lo, ss.hi, ss.localHead = 0, k, head
		default:
			if !ss.readDisk() {
				goto out
			}
		}
	}
out:
	if ss.r == nil && ss.ep != nil && ss.ci == len(ss.carry) && ss.ts.ring.Tail()-ss.pos <= uint64(ss.ts.ring.Cap()/2) {
		// Caught up with the spill and close to the publisher: rejoin the
		// ring now, so that the spill's files go as soon as its last
		// reader is done, not at that reader's next call.
		ss.rejoin(nil)
	}
	if n > first {
		ss.delivered += uint64(n - first)
		if ss.g.opts.Ack == ManualAck {
			ss.leaseOut(dst[first:n])
		}
	}
	return n
}

// dropOldest drops the oldest message ss has yet to deliver, freeing one
// ring slot for the publisher (DropOldest). Messages popped into local are
// older than any in the ring: the first of them goes, and the reader's
// next message moves in behind the others. REQUIRES: ss.cons.
func (ss *subShard) dropOldest() {
	if ss.r == nil {
		return
	}
	if ss.lo == ss.hi {
		ss.dropped.Add(uint64(ss.r.Skip(1)))
		return
	}
	ss.lo, ss.hi, ss.localHead = dropFirst(ss.local[:], ss.lo, ss.hi, ss.localHead)
	ss.dropped.Add(1)
	ss.hi += ss.r.PopBatch(ss.local[ss.hi : ss.hi+1]) // at position localHead+hi
}
