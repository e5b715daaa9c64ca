package spillway

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/spillway-io/spillway/internal/invariants"

	"github.com/spillway-io/spillway/internal/xsync"
)

// ackBook is the ManualAck state of one shard of a group (and the counters
// of what leaves the shard other than by a first delivery): the leases on
// the timing wheel, the ready list of messages due for redelivery, and the
// free leases.
//
// leaseMu guards wheel, ready, free, inFlight and acked (which Ack changes
// under it anyway); the other counters are atomic. A shard's recvMu, when
// held, is taken before leaseMu. leaseMu is an xsync.TryMutex,
// released with a plain store: its holders are quick (a lease out, an
// Ack), except the reaper firing a tick's leases, which calls Slow so that
// the others park behind it.
type ackBook struct {
	g        *group
	idx      int // the shard's index
	leaseMu  xsync.TryMutex
	wheel    wheel
	ready    leaseList // leases waiting for redelivery; guarded by leaseMu
	readyLen atomic.Int64
	free     *lease // recycled leases; guarded by leaseMu
	inFlight int64  // leased deliveries; guarded by leaseMu
	acked    uint64 // guarded by leaseMu
	delayed  atomic.Int64
	// parked counts the leases of a Persistent queue's delayed messages
	// waiting for their DeliverAt (attempt 0, leaseDelayed: see park);
	// parkedTotal those ever parked, firstOut those of them delivered
	// since (Stats.Delivered counts them then, not when parked).
	parked      atomic.Int64
	parkedTotal atomic.Uint64
	firstOut    atomic.Uint64

	redelivered  atomic.Uint64
	deadLettered atomic.Uint64
	dropped      atomic.Uint64
	// expired counts the messages that expired before a delivery;
	// expiredFresh those of them taken for their first delivery (which the
	// shard's Delivered, counted from positions, must leave out).
	expired      atomic.Uint64
	expiredFresh atomic.Uint64

	// Persistent only: j records settles and attempts (journal.go);
	// byOffset lists the unsettled leases in offset order, moved those
	// whose bytes the journal keeps (housekeeping); guarded by leaseMu.
	// All stay nil and empty otherwise.
	j        *journal
	byOffset offsetList
	moved    offsetList
	// track: byOffset is kept without a journal too (a Topic
	// subscription's ManualAck shard, for its Position). Set at init.
	track bool
	prio  uint8 // the priority of the shard's lane (Priorities): its messages'
}

func (b *ackBook) init(g *group, idx int) {
	b.g, b.idx, b.prio = g, idx, uint8(idx/g.opts.Shards)
	if g.opts.Ack == ManualAck || g.opts.Durability == Persistent {
		b.wheel = newWheel(0) // Persistent: delayed messages wait on it (park)
	}
}

// drop counts, as dropped, what the book still holds for (re)delivery.
func (b *ackBook) drop() {
	b.leaseMu.Lock()
	var n uint64
	for l := b.ready.pop(); l != nil; l = b.ready.pop() {
		n++
	}
	b.readyLen.Store(0)
	n += uint64(b.delayed.Swap(0))
	b.leaseMu.Unlock()
	b.dropped.Add(n)
}

// addStats adds the book's part of the shard's statistics.
func (b *ackBook) addStats(st *Stats) {
	redelivered := b.redelivered.Load()
	st.Delivered += redelivered
	st.Redelivered += redelivered
	b.leaseMu.Lock()
	if invariants.Enabled && (b.inFlight < 0 || b.readyLen.Load() < 0 || b.delayed.Load() < 0) {
		invariants.Failf("shard %d: %d leases in flight, %d ready, %d delayed", b.idx, b.inFlight, b.readyLen.Load(), b.delayed.Load())
	}
	st.Acked += b.acked
	st.InFlight += b.inFlight
	b.leaseMu.Unlock()
	st.DeadLettered += b.deadLettered.Load()
	st.Dropped += b.dropped.Load()
	st.Expired += b.expired.Load()
	st.Delayed += b.parked.Load()
	st.Delivered += b.firstOut.Load()
	st.Delivered -= b.parkedTotal.Load()
	st.Depth += b.readyLen.Load() + b.delayed.Load()
}

// leaseOut gives each delivery of ds a lease due AckTimeout from now.
// Those at an offset that is a multiple of the sampling rate are timed
// (their Ack records AckLatency), from now, or a clock read if now is 0.
// REQUIRES: the shard's recvMu (the deliveries are fresh, first
// attempts, in offset order).
func (s *ackBook) leaseOut(ds []Delivery, now int64) {
	g := s.g
	tick := g.clock.now.Load()
	due := tick + g.clock.ticks(g.opts.AckTimeout)
	s.leaseMu.Lock()
	for i := range ds {
		d := &ds[i]
		l := s.free
		if l != nil {
			s.free = l.next
		} else {
			l = &lease{s: s}
		}
		l.msg.set(d.Key, d.Value, d.Headers)
		if d.life && !d.ExpiresAt.IsZero() { // (life: a take filled its lifecycle fields)
			l.msg.exp = d.ExpiresAt.UnixNano()
		}
		l.offset, l.attempt = d.Offset, d.Attempt
		l.firstTick, l.lastTick = tick, tick
		l.sent = 0
		if !d.SentAt.IsZero() {
			l.sent = d.SentAt.UnixNano()
		}
		l.state, l.due = leaseHeld, due
		l.leasedAt = 0
		if every := uint64(g.lat.every); every != 0 && d.Offset&(every-1) == 0 {
			if now == 0 {
				now = g.lat.now()
			}
			l.leasedAt = now
		}
		s.wheel.add(l)
		if s.track {
			s.byOffset.push(l)
		}
		d.lease, d.gen = l, l.gen
	}
	s.inFlight += int64(len(ds))
	s.leaseMu.Unlock()
}

// takeReady fills dst with messages waiting for redelivery, each with a new
// lease (or, on a Persistent queue reopened in AutoAck after a ManualAck
// run, settled as it is handed out). REQUIRES: the shard's recvMu.
func (s *ackBook) takeReady(dst []Delivery) int {
	g := s.g
	due := g.clock.now.Load() + g.clock.ticks(g.opts.AckTimeout)
	auto := g.opts.Ack == AutoAck
	n := 0
	var now int64 // read at the first message with an expiry
	var expired []*lease
	firsts := 0 // first deliveries: parked delayed messages
	s.leaseMu.Lock()
	for n < len(dst) {
		l := s.ready.pop()
		if l == nil {
			break
		}
		first := l.attempt == 0 // a parked delayed message, now due
		if l.msg.exp != 0 {
			if now == 0 {
				now = g.lat.now()
			}
			if l.msg.exp <= now {
				s.readyLen.Add(-1)
				expired = append(expired, s.dying(l, deadExpired))
				continue
			}
		}
		l.gen++
		l.attempt++
		l.leasedAt = 0 // redeliveries are not timed
		l.lastTick = g.clock.now.Load()
		if first {
			l.firstTick = l.lastTick
			firsts++
		}
		if s.j != nil {
			// Before the receiver has it: a crash from here on counts
			// this attempt.
			s.persist(s.j.attempt(l.offset, uint32(l.attempt), 0))
		}
		d := &dst[n]
		l.msg.deliver(d, s.idx, l.offset)
		d.clearLifecycle()
		if l.msg.exp != 0 {
			d.ExpiresAt = time.Unix(0, l.msg.exp)
		}
		d.Priority, d.life = s.prio, true // the next take clears them
		d.Attempt, d.lease, d.gen = l.attempt, l, l.gen
		if l.sent != 0 {
			d.SentAt = time.Unix(0, l.sent)
		}
		if auto {
			dst[n].lease, dst[n].gen = nil, 0
			s.settleLocked(l)
			s.release(l)
		} else {
			l.state, l.due = leaseHeld, due
			s.wheel.add(l)
			s.inFlight++
		}
		n++
	}
	s.leaseMu.Unlock()
	s.readyLen.Add(-int64(n))
	s.redelivered.Add(uint64(n - firsts))
	s.firstOut.Add(uint64(firsts))
	for _, l := range expired {
		s.deadLetter(l)
	}
	return n
}

// settleLocked records, on a Persistent queue, that l's message is settled
// for good, and unlists it from byOffset. REQUIRES: s.leaseMu.
func (s *ackBook) settleLocked(l *lease) {
	if !s.track {
		return
	}
	if s.j != nil {
		s.persist(s.j.settle(l.offset))
	}
	unlinkOffset(l)
}

// persist hands a failure to write the journal to the group: the disk
// under the queue failed, and every later call says so.
func (s *ackBook) persist(err error) {
	if err != nil && s.g.fail != nil {
		s.g.fail(err)
	}
}

// release ends l's life as a message holder and recycles it.
// REQUIRES: s.leaseMu.
func (s *ackBook) release(l *lease) {
	l.gen++
	l.state = leaseFree
	l.msg = entry{}
	l.next, l.prev = s.free, nil
	s.free = l
}

// dying takes l out of every list, for the dead-letter queue: no delivery
// can settle it any more. REQUIRES: s.leaseMu; l is in no list but
// byOffset.
func (s *ackBook) dying(l *lease, why deadReason) *lease {
	l.gen++
	l.state, l.why = leaseDying, why
	return l
}

// retryLocked sends l back for redelivery after delay, or returns it,
// dying, for the dead-letter queue if it has used its attempts.
// REQUIRES: s.leaseMu; l is in no list but byOffset.
func (s *ackBook) retryLocked(l *lease, delay time.Duration) *lease {
	if l.attempt >= s.g.opts.MaxAttempts {
		return s.dying(l, deadMaxAttempts)
	}
	l.gen++ // the old delivery can no longer settle it
	if delay > 0 {
		l.state, l.due = leaseDelayed, s.g.clock.tickAfter(s.g.lat.now(), delay)
		s.wheel.add(l)
		s.delayed.Add(1)
		if s.j != nil {
			s.persist(s.j.attempt(l.offset, uint32(l.attempt), s.g.clock.wall(l.due)))
		}
		return nil
	}
	l.state = leaseReady
	s.ready.push(l)
	s.readyLen.Add(1)
	s.g.receivers.Wake(1)
	return nil
}

// deadLetter hands a dying lease's message to the dead-letter queue,
// without waiting; if there is none, or it is full or closed, the message
// is dropped. Either way it is counted, and only then settled (on a
// Persistent queue, recorded settled: a crash in between delivers it
// again rather than losing it). REQUIRES: not s.leaseMu.
func (s *ackBook) deadLetter(l *lease) {
	dropped := false
	if l.why == deadExpired {
		// Expired messages without a dead-letter queue are counted in
		// Expired only: they were meant to go.
		s.expired.Add(1)
		if s.g.opts.DeadLetter != nil {
			s.deadLettered.Add(1)
			dropped = !s.g.sendDead(s.deadMessage(l))
		}
	} else {
		s.deadLettered.Add(1)
		dropped = s.g.opts.DeadLetter == nil || !s.g.sendDead(s.deadMessage(l))
	}
	if dropped {
		s.dropped.Add(1)
	}
	s.g.event(slog.LevelDebug, EventDeadLetter, slog.Int("shard", s.idx), slog.Uint64("offset", l.offset), slog.Int("attempts", l.attempt), slog.Bool("dropped", dropped))
	s.leaseMu.Lock()
	s.settleLocked(l)
	s.release(l)
	s.leaseMu.Unlock()
}

// expire fires the leases due by tick t and returns the dying ones, for the
// dead-letter queue.
func (s *ackBook) expire(t int64, dead []*lease) []*lease {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	s.leaseMu.Slow() // a tick may fire many leases: Ack and receivers park meanwhile
	s.wheel.advance(t, func(l *lease) {
		switch l.state {
		case leaseHeld:
			s.inFlight--
			s.g.event(slog.LevelDebug, EventLeaseExpired, slog.Int("shard", s.idx), slog.Uint64("offset", l.offset), slog.Int("attempt", l.attempt))
			if l := s.retryLocked(l, 0); l != nil {
				dead = append(dead, l)
			}
		case leaseDelayed:
			if l.attempt == 0 {
				s.parked.Add(-1)
			} else {
				s.delayed.Add(-1)
			}
			l.state = leaseReady
			s.ready.push(l)
			s.readyLen.Add(1)
			s.g.receivers.Wake(1)
		}
	})
	return dead
}

// notBefore returns the time before which l is not redelivered (a nack's
// delay), in unix ns, or 0. REQUIRES: s.leaseMu.
func (s *ackBook) notBefore(l *lease) int64 {
	if l.state == leaseDelayed {
		return s.g.clock.wall(l.due)
	}
	return 0
}

// park holds d, a fresh delivery of a Persistent queue's delayed message
// taken before it is due, on the wheel until its DeliverAt (to the lease
// clock's tick), as a lease of attempt 0 in the offset list: the journal
// records it with its DeliverAt, so that a reopen holds it again (restore).
// When due it is ready, and its first delivery is takeReady's.
// REQUIRES: the shard's recvMu (d is fresh: offsets in order).
func (s *ackBook) park(d *Delivery) {
	g := s.g
	at := d.DeliverAt.UnixNano()
	s.leaseMu.Lock()
	l := s.free
	if l != nil {
		s.free = l.next
	} else {
		l = &lease{s: s}
	}
	// Its own bytes: it may wait for days, and what it was read into
	// from the log holds its neighbours too.
	m := detached(d.Message)
	l.msg, l.offset, l.attempt = leaseEntry(&m), d.Offset, 0
	l.firstTick, l.lastTick, l.leasedAt, l.sent = -1, 0, 0, 0
	l.state, l.due = leaseDelayed, g.clock.tickAfter(at, 0)
	s.wheel.add(l)
	if s.track {
		s.byOffset.push(l)
	}
	if s.j != nil {
		s.persist(s.j.attempt(l.offset, 0, at))
	}
	s.leaseMu.Unlock()
	s.parked.Add(1)
	s.parkedTotal.Add(1)
}

// givePriority gives ds, fresh deliveries from the shard, its lane's
// priority (a lease's redeliveries get it in takeReady).
func (s *ackBook) givePriority(ds []Delivery) {
	if s.prio == 0 {
		return
	}
	for i := range ds {
		ds[i].Priority, ds[i].life = s.prio, true
	}
}

// dropParked lets go of the parked delayed messages (park): a Seek moved
// the subscription, which reads again those at or after where it went
// (parking them again) and skips those before. They were never
// delivered. REQUIRES: the shard's recvMu.
func (s *ackBook) dropParked() {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	for _, list := range [2]*offsetList{&s.byOffset, &s.moved} {
		for l := list.head; l != nil; {
			next := l.onext
			if l.state == leaseDelayed && l.attempt == 0 {
				s.wheel.remove(l)
				unlinkOffset(l)
				s.release(l)
				s.parked.Add(-1)
			}
			l = next
		}
	}
}
