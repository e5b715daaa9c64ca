package spillway

import (
	"sync"
	"sync/atomic"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/internal/park"
	"github.com/spillway-io/spillway/ring"
)

// qshard is one shard of a Queue.
//
// Who may do what:
//   - Any sender pushes into ring (MPSC: lock-free for senders), when the
//     shard is not spilling. spilling is set and cleared only under
//     spillMu, and every spilled message is written under spillMu, so a
//     sender that finds the shard spilling, or turns it spilling, appends
//     behind every message already spilled.
//   - One receiver at a time pops from ring: whoever holds recvMu. Receivers
//     take recvMu with TryLock and move on to the next shard when it is held.
//     The refill from disk (carry, the reading side of spill) happens under
//     recvMu too, and only when ring is empty, so messages read back follow
//     every message that was in the ring. They are delivered straight from
//     carry, never pushed through ring, and only while ring is empty, not
//     even a slot claimed (a claim not yet published holds back its
//     message and those published behind it, which came before what the
//     shard spilled since; TestSpillWaitsForAClaimInFlight): a
//     sender that saw the shard not spilling may still push into ring
//     after it turned spilling, and what that sender spills next may
//     already be in carry. Spilling ends (under recvMu, in refill) only when
//     carry is empty, so nothing pushed afterwards can overtake carry.
//   - The embedded ackBook holds the ManualAck state, under its leaseMu.
//
// Lock order: recvMu, then spillMu or leaseMu; never the other way.
type qshard struct {
	ackBook  // ManualAck state and counters
	q        *Queue
	d        *durable // Persistent only: the shard's log, cursor and journal
	simple   bool     // AutoAck, Ephemeral, priority 0: a take ends with no more than its fill (see take)
	ring     *ring.MPSC[entry]
	spilling atomic.Bool
	senders  park.Waiters // senders waiting for room in this shard

	_      pad
	recvMu sync.Mutex
	taken  uint32 // messages taken since the group's first shard moved here; guarded by recvMu
	// carry[carryNext:] was read back from disk and waits for receivers: the
	// records of the spill reader's current batch, valid until its next
	// Next (which refill calls only once carry is used up), pointing into
	// memory the queue owns (the reader was told to Detach). carryHdrs[carryHdrNext:]
	// holds their headers, converted, in order. direct counts the messages
	// delivered from carry: a message's offset is its ring position plus
	// the direct deliveries before it. Guarded by recvMu.
	carry        []codec.Record
	carryNext    int
	carryHdrs    []Header
	carryHdrNext int
	direct       uint64
	// local holds messages popped from ring and not yet delivered:
	// local[lo:hi], the first at ring position localHead. Guarded by recvMu.
	// Stats reads these under recvMu rather than receivers keeping atomic
	// counts of them: an atomic add is a locked instruction on every
	// one-at-a-time receive.
	local     [32]entry
	lo, hi    int
	localHead uint64
	// failure is a spill failure met under recvMu, for the receiver to
	// report (Options.OnError) once it released recvMu. Guarded by recvMu.
	failure error

	_       pad
	spillMu sync.Mutex
	spill   atomic.Pointer[spill] // nil unless spilling; changed under spillMu (and recvMu, to clear)
	spills  atomic.Uint64         // spills so far

	_ pad

	// Counters (see Stats): written on slow paths only. The fast paths are
	// counted by the ring's own positions.
	spilled     atomic.Uint64 // messages written to disk
	ringDropped atomic.Uint64 // messages popped from ring to drop (DropOldest)
	_           pad
}

func newShard(q *Queue, idx int) *qshard {
	s := &qshard{q: q, ring: ring.NewMPSC[entry](q.opts.RingSize)}
	s.ackBook.init(&q.group, idx)
	return s
}

func (s *qshard) addStats(st *Stats) (oldest int64) {
	// What receivers hold (the local buffer, carry) and have delivered
	// changes under recvMu: take it for one consistent look. A receiver that
	// found the shard locked meanwhile may have gone to wait: if the shard
	// has messages, wake one, as a receiver releasing recvMu does.
	s.recvMu.Lock()
	head := s.ring.Head() // load the consumer's position before the producers'
	local := int64(s.hi - s.lo)
	carry := int64(len(s.carry) - s.carryNext)
	direct := s.direct
	oldest = s.oldestLocked()
	if s.q.statsHook != nil {
		s.q.statsHook()
	}
	wake := s.q.receivers.Pending() && !s.emptyLocked()
	s.recvMu.Unlock()
	if wake {
		s.q.receivers.Wake(1)
	}
	pushed := s.ring.Pushed()
	spilled, ringDropped := s.spilled.Load(), s.ringDropped.Load()
	st.Sent += pushed + spilled
	st.Delivered += head - uint64(local) - ringDropped + direct - s.expiredFresh.Load()
	st.Dropped += ringDropped
	st.Spilled += spilled
	st.Depth += int64(pushed-head) + local + carry
	s.ackBook.addStats(st)
	if sp := s.spill.Load(); sp != nil {
		st.Depth += sp.pending.Load()
		ls := sp.log.Stats()
		st.DiskBytes += ls.DiskBytes
		st.DataBytes += ls.DataBytes
	}
	return oldest
}

// close drops what the shard still holds, counting it, and removes its
// spill. REQUIRES: the queue and the shard's ring are closed.
func (s *qshard) close() error {
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	popped := uint64(s.hi - s.lo)
	clear(s.local[:])
	s.lo, s.hi = 0, 0
	var other uint64
	for {
		if _, ok := s.ring.TryPop(); !ok {
			break
		}
		popped++
	}
	s.ringDropped.Add(popped) // pops to drop: Delivered stays what receivers got
	other += uint64(len(s.carry) - s.carryNext)
	s.carry, s.carryNext, s.carryHdrs, s.carryHdrNext = nil, 0, nil, 0
	s.spillMu.Lock()
	var err error
	if sp := s.spill.Load(); sp != nil {
		other += uint64(sp.pending.Load())
		err = sp.close()
		s.spill.Store(nil)
		s.spilling.Store(false)
	}
	s.spillMu.Unlock()
	s.dropped.Add(other)
	s.ackBook.drop()
	return err
}
