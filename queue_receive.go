package spillway

import (
	"context"
	"time"

	"github.com/spillway-io/spillway/internal/invariants"
)

// Receive returns the next message, waiting until there is one or ctx ends.
// It fails with ErrClosed or ctx.Err(). Receivers take from all shards in
// turn, up to 16 messages from one before the next (skipping empty ones),
// so no shard starves.
func (q *Queue) Receive(ctx context.Context) (Delivery, error) {
	var d [1]Delivery
	if q.tryReceive(d[:]) > 0 {
		return d[0], nil
	}
	_, err := q.receiveSlow(ctx, d[:])
	return d[0], err
}

// ReceiveBatch fills dst with up to len(dst) messages, from one shard,
// waiting until there is at least one. It returns how many it filled, and
// fails like Receive.
func (q *Queue) ReceiveBatch(ctx context.Context, dst []Delivery) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	if n := q.tryReceive(dst); n > 0 {
		return n, nil
	}
	return q.receiveSlow(ctx, dst)
}

// TryReceive returns the next message if it can take one without waiting
// for one to arrive or for another receiver. It fails with ErrEmpty when it
// could not: no message is queued, or the shards that hold some are being
// taken from by other receivers at that moment, or the next spilled batch
// is still being decoded, or a sender has yet to finish publishing a
// shard's next message (what that shard spilled since waits behind it).
// It fails with ErrClosed once the queue is closed. Like Receive, it may
// hand a spill's last, partly filled batch to the disk so as to read it
// back: that waits for its compression, not for a sender.
func (q *Queue) TryReceive() (Delivery, error) {
	var d [1]Delivery
	_, err := q.TryReceiveBatch(d[:])
	return d[0], err
}

// TryReceiveBatch fills dst with up to len(dst) messages, from one shard,
// that it can take without waiting, and returns how many. It fails like
// TryReceive (ErrEmpty, ErrClosed) when it took none; an empty dst takes
// nothing and fails with nothing.
func (q *Queue) TryReceiveBatch(dst []Delivery) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	if q.closed.Load() {
		return 0, ErrClosed
	}
	if n := q.tryReceive(dst); n > 0 {
		return n, nil
	}
	if q.closed.Load() {
		return 0, ErrClosed
	}
	return 0, ErrEmpty
}

func (q *Queue) receiveSlow(ctx context.Context, dst []Delivery) (int, error) {
	return q.group.awaitPublished(ctx, func() (int, int) { return q.takeSome(dst, lookWaiting) }, q.closed.Load, q.inFlight)
}

// inFlight reports whether a shard's ring holds messages no receiver has
// popped: published ones a receiver holding the shard kept this one from
// taking, or claimed ones whose publication (a release store, see
// ring.MPSC) this receiver may not have seen. A receiver that found
// nothing does not park while it reports true (park.AwaitPublished): a
// sender whose claim came before the receiver registered may have looked
// for waiters before its publication was visible, and woken nobody.
func (q *Queue) inFlight() bool {
	for _, s := range q.shards {
		if s.ring.Pushed() != s.ring.Head() {
			return true
		}
	}
	return false
}

// tryReceive takes up to len(dst) messages from the first shard, from the
// group's first shard (takeAt) on, that has any and whose recvMu is
// free.
func (q *Queue) tryReceive(dst []Delivery) int {
	n, _ := q.takeSome(dst, lookOnce)
	return n
}

// takeSome is tryReceive that also reports how many messages it found,
// which tells a waiting receiver whether messages stream in or come one at
// a time: those it took and those the shard's local buffer still holds,
// and, for a waiting receiver (lookWaiting) whose dst is full, those left in the ring. A batch
// receiver takes at most len(dst) a look; without the ring's rest, one
// that looked too late, after a sender had filled the ring and stopped,
// would count a mere batch and look later still (park.AwaitN: a look that
// finds half the capacity or more looks sooner next time).
//
// With priorities, it looks at the lanes from the highest down, each in
// the same round robin.
func (q *Queue) takeSome(dst []Delivery, how look) (n, seen int) {
	if len(q.shards) == q.opts.Shards {
		return q.takeLane(dst, how, 0)
	}
	return q.takeLanes(dst, how)
}

// takeLanes is takeSome with priorities: the lanes from the highest down.
// A lane that gave nothing while one of its shards has spilled messages
// not yet read back holds the lower ones back: their batch is still being
// decoded (the decode wakes a receiver when done), and a lower priority
// must not pass them. (A Persistent shard reads its log as it goes; under
// SyncAlways a message waits for its sync, which wakes receivers too, and
// a lower priority may pass it meanwhile.)
func (q *Queue) takeLanes(dst []Delivery, how look) (n, seen int) {
	for base := len(q.shards) - q.opts.Shards; base >= 0; base -= q.opts.Shards {
		if n, seen = q.takeLane(dst, how, base); n > 0 {
			return n, seen
		}
		if q.closed.Load() {
			return 0, 0
		}
		for _, s := range q.shards[base : base+q.opts.Shards] {
			if sp := s.spill.Load(); s.d == nil && sp != nil && sp.pending.Load() > 0 {
				return 0, 0
			}
		}
	}
	return 0, 0
}

// takeLane is takeSome in the lane of shards q.shards[base:][:Shards].
func (q *Queue) takeLane(dst []Delivery, how look, base int) (n, seen int) {
	shards := q.opts.Shards
	start := int(q.takeAt.Load())
	skipped := false // a shard was skipped because another receiver held it
	for i := range shards {
		idx := base + (start+i)&(shards-1)
		s := q.shards[idx]
		if !s.recvMu.TryLock() {
			skipped = true
			continue
		}
		if q.closed.Load() {
			s.recvMu.Unlock()
			return 0, 0
		}
		k := s.take(dst)
		if k > 0 {
			q.tookFrom(idx, k, &s.taken, k < len(dst), i > 0 && !skipped)
		}
		// Receivers that found this shard locked may have parked: if it
		// still has messages, wake one. (Only then look at the ring's
		// producer side, whose cache line a look takes from the senders.)
		more := k == len(dst) && q.receivers.Pending() && !s.emptyLocked()
		seen := k + s.hi - s.lo
		if how == lookWaiting && k == len(dst) {
			seen += s.ring.Len() // the senders' side: only when waiting
		}
		fail := s.failure
		s.failure = nil
		s.recvMu.Unlock()
		if fail != nil {
			q.group.report(fail)
		}
		if k > 0 {
			s.senders.Wake(k)
			if more {
				q.receivers.Wake(1)
			}
			return k, seen
		}
	}
	return 0, 0
}

// emptyLocked reports whether s has nothing to deliver right now.
// REQUIRES: s.recvMu.
func (s *qshard) emptyLocked() bool {
	if s.d != nil {
		return s.lo == s.hi && s.ring.Len() == 0 && s.readyLen.Load() == 0 && (!s.spilling.Load() || s.carryNext == len(s.carry) && !s.logPending())
	}
	return s.lo == s.hi && s.ring.Len() == 0 && s.readyLen.Load() == 0 && !s.spilling.Load()
}

// take fills dst from s: redeliveries first, then the ring, then what was
// read back from the spill (carry); when both run dry while the shard
// spills, it loads carry from disk. The ring goes first even then: a sender
// that saw the shard not spilling may push into it after the shard turned
// spilling (and after the ring was found empty), and then spill its next
// message, which the refill may already have read into carry.
//
// A dst with room for the shard's local buffer is filled straight from the
// ring's slots; a smaller one (one-by-one receivers) from the local buffer,
// which the ring fills a batch at a time, so that such receivers too
// publish the ring's head (and wait for the cache lines of the slots they
// clear) once per batch.
//
// A message's offset is the number of messages delivered (or dropped)
// before it: its ring position plus direct. Expired and parked messages
// are taken out (lifeTaken) and more taken in their place.
// REQUIRES: s.recvMu.
func (s *qshard) take(dst []Delivery) int {
	n, first, now := s.fill(dst)
	if !s.simple || s.g.expiring.Load() {
		return s.takeLife(dst, n, first, now)
	}
	return n
}

// takeLife is take's end for every shard but a simple one (AutoAck,
// Ephemeral, lowest priority) whose messages cannot expire: dst[:n] was
// filled, first of them redeliveries. It takes out the expired and the
// parked ones (lifeTaken), and more in their place, leases the fresh ones
// (ManualAck), gives them the shard's priority and moves the cursor
// (Persistent).
func (s *qshard) takeLife(dst []Delivery, n, first int, now int64) int {
	done := 0
	for {
		got := dst[done : done+n]
		s.givePriority(got[first:])
		kept := n
		if n > first && s.g.expiring.Load() {
			kept = first + s.lifeTaken(got[first:])
		}
		if s.g.opts.Ack == ManualAck && kept > first {
			s.leaseOut(got[first:kept], now)
		}
		if s.d != nil && n > 0 {
			s.noteDelivered()
		}
		done += kept
		if kept == n || done == len(dst) {
			return done
		}
		n, first, now = s.fill(dst[done:])
	}
}

// fill is take's work but for expiry, leases and the cursor: it returns
// how many deliveries it filled dst with, how many of them first are
// redeliveries (the rest are fresh, in offset order), and the time it
// read, if it read one (0 otherwise). REQUIRES: s.recvMu.
func (s *qshard) fill(dst []Delivery) (n, first int, now int64) {
	if s.readyLen.Load() > 0 {
		n = s.takeReady(dst)
	}
	first = n
	for n < len(dst) {
		if s.lo < s.hi {
			m := min(len(dst)-n, s.hi-s.lo)
			base := s.localHead + s.direct
			for j := range m {
				e := &s.local[s.lo+j]
				if e.at > 0 {
					s.g.lat.waited(&now, e.at)
				}
				e.deliver(&dst[n+j], s.idx, base+uint64(s.lo+j))
				e.deliverLife(&dst[n+j])
				*e = entry{}
			}
			s.lo += m
			n += m
			continue
		}
		var k int
		room := len(s.local)
		if len(dst)-n >= room {
			room = len(dst) - n
		}
		if s.d != nil && s.spilling.Load() {
			room = s.durableRingRoom(room)
		}
		switch {
		case room == 0:
		case len(dst)-n >= len(s.local):
			// Room for a whole local buffer: deliver straight from the
			// ring's slots.
			k = s.takeInPlace(dst[n:n+room], &now)
			n += k
		default:
			head := s.ring.Head()
			k = s.ring.PopBatch(s.local[:room])
			s.lo, s.hi, s.localHead = 0, k, head
		}
		if k > 0 {
			continue
		}
		if s.q.emptyRingHook != nil {
			s.q.emptyRingHook()
		}
		carried := s.carryNext < len(s.carry)
		if !carried && !s.spilling.Load() {
			break // nothing on the spill's side (and no look at the senders' tail)
		}
		if s.d != nil && !carried && s.durableRingRoom(1) > 0 {
			// Since the ring was found empty, senders filled it and the
			// shard began to spill: the ring's run comes before the log's
			// (refillDurable would read past it).
			continue
		}
		if s.d == nil && s.ring.Len() != 0 {
			// A sender claimed the ring's next slot and has yet to publish
			// it: nothing behind it can be read, and it and the messages
			// behind it came before anything the shard spilled since
			// (a sender's next message spills only after its claim was
			// published). carry waits for them.
			break
		}
		if carried {
			n += s.takeCarry(dst[n:], &now)
			continue
		}
		if s.refill() {
			continue
		}
		break
	}
	if n > 0 && s.spilling.Load() && s.lo == s.hi && s.carryNext == len(s.carry) && (s.d == nil && s.ring.Len() == 0 || s.d != nil && s.durableRingRoom(1) == 0) {
		// Everything read back is delivered: load the next batch now, or,
		// if the spill is drained, go back to memory and remove its files
		// right away.
		s.refill()
	}
	if invariants.Enabled {
		s.checkBuffers()
	}
	return n, first, now
}

// takeCarry delivers into dst what carry holds, up to len(dst), and
// returns how many, recording the waits of timed ones (timing.waited).
// REQUIRES: s.recvMu, nothing in local nor in ring.
func (s *qshard) takeCarry(dst []Delivery, now *int64) int {
	m := min(len(dst), len(s.carry)-s.carryNext)
	base := s.ring.Head() + s.direct // every ring position before Head was delivered or dropped
	for j := range m {
		r, d := &s.carry[s.carryNext+j], &dst[j]
		d.Key, d.Value, d.Headers = owned(r.Key), owned(r.Value), nil
		if nh := len(r.Headers); nh > 0 {
			keep := len(withoutID(r.Headers)) // a Persistent queue's ID header stays on disk
			d.Headers = s.carryHdrs[s.carryHdrNext : s.carryHdrNext+keep : s.carryHdrNext+keep]
			if keep == 0 {
				d.Headers = nil
			}
			s.carryHdrNext += nh
		}
		d.clearLifecycle()
		if r.ExpiresAt != 0 {
			d.ExpiresAt, d.life = time.Unix(0, r.ExpiresAt), true
			s.g.noteExpiring()
		}
		if r.DeliverAt != 0 {
			d.DeliverAt, d.life = time.Unix(0, r.DeliverAt), true
			s.g.noteExpiring()
		}
		d.Shard, d.Offset, d.Attempt = s.idx, base+uint64(j), 1
		d.lease, d.gen = nil, 0
		d.SentAt = time.Time{}
		if r.Timestamp != 0 {
			s.g.lat.waited(now, r.Timestamp)
		}
	}
	s.carryNext += m
	s.direct += uint64(m)
	return m
}

// takeInPlace delivers into dst what the ring has published, reading and
// zeroing each slot in place, and releases the slots with one store. It
// returns how many, recording the waits of timed ones (timing.waited).
// REQUIRES: s.recvMu, nothing in local.
func (s *qshard) takeInPlace(dst []Delivery, now *int64) int {
	head := s.ring.Head()
	k := s.ring.Peek(len(dst))
	base := head + s.direct
	for j := range k {
		e := s.ring.At(head + uint64(j))
		if e.at > 0 {
			s.g.lat.waited(now, e.at)
		}
		e.deliver(&dst[j], s.idx, base+uint64(j))
		e.deliverLife(&dst[j])
		*e = entry{}
	}
	s.ring.Release(k)
	return k
}

// checkBuffers fails, in builds with the invariants tag, unless what the
// receivers hold is in bounds: local[lo:hi] within local, carry[carryNext:]
// within carry, and nothing carried without a spill (carry is read back
// from one). REQUIRES: s.recvMu.
func (s *qshard) checkBuffers() {
	if !(0 <= s.lo && s.lo <= s.hi && s.hi <= len(s.local)) {
		invariants.Failf("shard %d: local[%d:%d] of %d", s.idx, s.lo, s.hi, len(s.local))
	}
	if !(0 <= s.carryNext && s.carryNext <= len(s.carry)) || s.carryHdrNext > len(s.carryHdrs) {
		invariants.Failf("shard %d: carry at %d of %d, headers at %d of %d", s.idx, s.carryNext, len(s.carry), s.carryHdrNext, len(s.carryHdrs))
	}
	if s.carryNext < len(s.carry) && !s.spilling.Load() {
		invariants.Failf("shard %d: %d messages carried from a spill while not spilling", s.idx, len(s.carry)-s.carryNext)
	}
}
