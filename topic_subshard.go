package spillway

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-io/spillway/codec"

	"github.com/spillway-io/spillway/internal/invariants"

	"github.com/spillway-io/spillway/mmap"
	"github.com/spillway-io/spillway/ring"
)

// subShard is one subscription's part of one topic shard: where the
// subscription is in the shard's messages.
//
// Who may do what:
//   - Receivers of the subscription take recvMu (TryLock) and then read: the
//     ring through r while r is set, the spill through the fields spill and disk while it
//     is not. Messages are delivered from local (popped from the ring),
//     then carry (read from the spill).
//   - r, spill and pos change only under both recvMu and the shard's pub: the
//     publisher moves ss to the spill (holding pub, it takes recvMu), and a
//     receiver moves it back (holding recvMu, it TryLocks pub).
//   - next, the position of the next message to deliver, is stored by the
//     receiver holding recvMu, for Stats.
type subShard struct {
	ackBook // ManualAck state and counters
	ts      *tshard

	_         pad
	recvMu    sync.Mutex
	taken     uint32               // messages taken since the group's first shard moved here; guarded by recvMu
	r         *ring.Reader[tentry] // while reading the ring
	spill     *tspill              // while reading the spill
	disk      *mmap.Reader         // sp's log, from pos; opened lazily
	pin       *mmap.Reader         // until disk is open: holds back the log's retention
	pos       uint64               // while reading the spill: ring position of the next message to read from it
	carry     []entry              // read from the spill: carry[carryNext:], the first at position carryAt
	carryNext int
	// carryAt is the ring position of carry[0].
	carryAt uint64
	local   [32]tentry // popped from the ring: local[lo:hi], the first at position localHead
	// localAt, on a Persistent topic, holds local's publish times, read
	// from the shard's table as they are popped (tdurable.sent); nil
	// otherwise.
	localAt []int64
	// localExp holds local's expiries (0: none), copied from the shard's
	// expiry table as they are popped; nil until the table exists.
	localExp []int64
	// localDue and carryDue hold, on a Persistent topic, the DeliverAt
	// (0: none) of local's and carry's messages: localDue copied from the
	// shard's table of them as they are popped (nil until it exists),
	// carryDue from the records read (empty when none has one).
	localDue  []int64
	carryDue  []int64
	lo, hi    int
	localHead uint64
	detached  bool // unsubscribed or closed; guarded by recvMu
	// failure is a spill failure met under recvMu, for the receiver to
	// report (Options.OnError) once it released recvMu. Guarded by recvMu.
	failure error
	// skipping: the last spill read met a batch that could not be decoded,
	// and the reader moved past it. Guarded by recvMu.
	skipping bool

	// Persistent only: cur is the subscription's cursor file for this
	// shard, saved the offset it holds (stored under recvMu, loaded by
	// retention); recs is scratch for reading the log, diskSkipped what
	// disk.Skipped() said last.
	cur         *cursorFile
	saved       atomic.Uint64
	recs        []codec.Record
	diskSkipped uint64
	trimmed     atomic.Uint64 // messages retention removed before ss read them

	// delivered counts first deliveries. Guarded by recvMu: Stats reads it,
	// and the position of the next message to deliver, under recvMu, rather
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
// counted as dropped. It returns a spill to close if ss was its last
// reader. REQUIRES: s.pub and ss.recvMu.
func (ss *subShard) detach() *tspill {
	if ss.detached {
		return nil
	}
	ss.detached = true
	if ss.ts.d == nil { // a Persistent topic keeps it in the log
		ss.dropped.Add(ss.ts.ring.Tail() - ss.nextPosition())
	}
	ss.ackBook.drop()
	clear(ss.local[:])
	ss.lo, ss.hi = 0, 0
	ss.carry, ss.carryNext, ss.carryDue = nil, 0, nil
	var done *tspill
	if ss.r != nil {
		ss.r.Close()
		ss.r = nil
	} else if ss.spill != nil && ss.spill.permanent {
		ss.closeLogReader()
	} else if ss.spill != nil {
		done = ss.leaveSpill()
	}
	return done
}

// nextPosition is the position of the next message ss will deliver.
// REQUIRES: ss.recvMu.
func (ss *subShard) nextPosition() uint64 {
	switch {
	case ss.lo < ss.hi:
		return ss.localHead + uint64(ss.lo)
	case ss.carryNext < len(ss.carry):
		return ss.carryAt + uint64(ss.carryNext)
	case ss.r != nil:
		return ss.r.Cursor()
	}
	return ss.pos
}

// take fills dst: redeliveries first, then what was popped from the ring,
// then what was read from the spill, then more from the ring or the spill.
// Expired messages are taken out (lifeTaken) and more taken in their
// place. REQUIRES: ss.recvMu.
func (ss *subShard) take(dst []Delivery) int {
	n := 0
	for {
		k, first, now := ss.fill(dst[n:])
		got := dst[n : n+k]
		ss.givePriority(got[first:])
		kept := k
		if k > first && ss.g.expiring.Load() {
			kept = first + ss.lifeTaken(got[first:])
		}
		if kept > first {
			ss.delivered += uint64(kept - first)
			if ss.g.opts.Ack == ManualAck {
				ss.leaseOut(got[first:kept], now)
			}
		}
		if k > first && ss.cur != nil {
			ss.saveCursor()
		}
		n += kept
		if kept == k || n == len(dst) {
			return n
		}
	}
}

// fill is take's work but for expiry, leases and the cursor: it returns
// how many deliveries it filled dst with, how many of them first are
// redeliveries, and the time it read, if it read one (0 otherwise).
// REQUIRES: ss.recvMu.
func (ss *subShard) fill(dst []Delivery) (n, first int, now int64) {
	if ss.detached {
		return 0, 0, 0
	}
	if ss.readyLen.Load() > 0 {
		n = ss.takeReady(dst)
	}
	first = n
	for n < len(dst) {
		switch {
		case ss.lo < ss.hi:
			m := min(len(dst)-n, ss.hi-ss.lo)
			for j := range m {
				ss.local[ss.lo+j].deliver(&dst[n+j], ss.idx, ss.localHead+uint64(ss.lo+j))
				dst[n+j].clearLifecycle()
				ss.local[ss.lo+j] = tentry{}
			}
			if ss.localAt != nil {
				for j := range m {
					dst[n+j].SentAt = time.Unix(0, ss.localAt[ss.lo+j])
				}
			}
			if ss.localExp != nil {
				for j := range m {
					if e := ss.localExp[ss.lo+j]; e != 0 {
						dst[n+j].ExpiresAt, dst[n+j].life = time.Unix(0, e), true
					}
				}
			}
			if ss.localDue != nil {
				for j := range m {
					if e := ss.localDue[ss.lo+j]; e != 0 {
						dst[n+j].DeliverAt, dst[n+j].life = time.Unix(0, e), true
					}
				}
			}
			if ss.r != nil && ss.ts.stamps.at != nil {
				ss.recordRingWaits(ss.localHead+uint64(ss.lo), m, &now)
			}
			ss.lo += m
			n += m
		case ss.carryNext < len(ss.carry):
			m := min(len(dst)-n, len(ss.carry)-ss.carryNext)
			for j := range m {
				e := &ss.carry[ss.carryNext+j]
				pos := ss.carryAt + uint64(ss.carryNext+j)
				// A spill's entries carry times only where timed; a
				// Persistent topic's log, every message's publish time.
				if e.at != 0 && (ss.localAt == nil || ss.g.lat.timed(pos)) {
					ss.g.lat.waited(&now, e.at)
				}
				e.deliver(&dst[n+j], ss.idx, pos)
				e.deliverLife(&dst[n+j])
				if ss.localAt != nil {
					dst[n+j].SentAt = time.Unix(0, e.at)
				}
				*e = entry{}
			}
			if len(ss.carryDue) > 0 {
				for j := range m {
					if e := ss.carryDue[ss.carryNext+j]; e != 0 {
						dst[n+j].DeliverAt, dst[n+j].life = time.Unix(0, e), true
					}
				}
			}
			ss.carryNext += m
			n += m
		case ss.r != nil:
			head := ss.r.Cursor()
			k := ss.r.PopBatch(ss.local[:])
			if k == 0 {
				goto out
			}
			if d := ss.ts.d; d != nil {
				for j := range k {
					ss.localAt[j] = d.sent[(head+uint64(j))&d.sentMask].Load()
				}
			}
			ss.popExps(head, 0, k)
			ss.lo, ss.hi, ss.localHead = 0, k, head
		default:
			if !ss.readDisk() {
				goto out
			}
		}
	}
out:
	if ss.r == nil && ss.spill != nil && !ss.spill.permanent && ss.carryNext == len(ss.carry) && ss.ts.ring.Tail()-ss.pos <= uint64(ss.ts.ring.Cap()/2) {
		// Caught up with the spill and close to the publisher: rejoin the
		// ring now, so that the spill's files go as soon as its last
		// reader is done, not at that reader's next call.
		ss.rejoin(nil)
	}
	if invariants.Enabled && !ss.detached && (ss.r == nil) == (ss.spill == nil) {
		invariants.Failf("subscription shard %d reads the ring (%v) and the spill (%v)", ss.idx, ss.r != nil, ss.spill != nil)
	}
	return n, first, now
}

// popExps copies the expiries of the k positions from head, just popped
// into local[at:], from the shard's expiry table (if it has one): the
// publisher may reuse their slots once they are popped.
// REQUIRES: ss.recvMu.
func (ss *subShard) popExps(head uint64, at, k int) {
	if tab := ss.ts.exps.Load(); tab != nil { // else no position ever had an expiry (localExp, if made, is all zero)
		ss.localExp = tab.copyOut(ss.localExp, len(ss.local), head, at, k)
	}
	if tab := ss.ts.dues.Load(); tab != nil {
		ss.localDue = tab.copyOut(ss.localDue, len(ss.local), head, at, k)
	}
}

// copyOut copies the times of the k positions from head into local[at:],
// local made of size n if nil, and returns local.
func (tab *expTable) copyOut(local []int64, n int, head uint64, at, k int) []int64 {
	if local == nil {
		local = make([]int64, n)
	}
	for j := range k {
		local[at+j] = tab.exp[(head+uint64(j))&tab.mask].Load()
	}
	return local
}

// dropOldest drops the oldest message ss has yet to deliver, freeing one
// ring slot for the publisher (DropOldest). Messages popped into local are
// older than any in the ring: the first of them goes, and the reader's
// next message moves in behind the others. REQUIRES: ss.recvMu.
func (ss *subShard) dropOldest() {
	if ss.r == nil {
		return
	}
	if ss.lo == ss.hi {
		ss.dropped.Add(uint64(ss.r.Skip(1)))
		return
	}
	lo, hi, head := ss.lo, ss.hi, ss.localHead
	ss.lo, ss.hi, ss.localHead = dropFirst(ss.local[:], lo, hi, head)
	if ss.localExp != nil {
		dropFirst(ss.localExp, lo, hi, head)
	}
	if ss.localDue != nil {
		dropFirst(ss.localDue, lo, hi, head)
	}
	ss.dropped.Add(1)
	k := ss.r.PopBatch(ss.local[ss.hi : ss.hi+1]) // at position localHead+hi
	ss.popExps(ss.localHead+uint64(ss.hi), ss.hi, k)
	ss.hi += k
}
