package spillway

import (
	"fmt"
	"time"
)

// leaseOut gives each delivery of ds a lease due AckTimeout from now.
// REQUIRES: the shard's consumer lock (the deliveries are fresh, first
// attempts, in offset order).
func (s *ackBook) leaseOut(ds []Delivery) {
	g := s.g
	due := g.clock.now.Load() + g.clock.ticks(g.opts.AckTimeout)
	s.leaseMu.Lock()
	for i := range ds {
		d := &ds[i]
		l := s.free
		if l != nil {
			s.free = l.next
		} else {
			l = &lease{s: s}
		}
		l.msg, l.offset, l.attempt = d.Message, d.Offset, d.Attempt
		l.state, l.due = leaseHeld, due
		s.wheel.add(l)
		if s.j != nil {
			s.byOffset.push(l)
		}
		d.lease, d.gen = l, l.gen
	}
	s.inFlight += int64(len(ds))
	s.leaseMu.Unlock()
}

// takeReady fills dst with messages waiting for redelivery, each with a new
// lease (or, on a Persistent queue reopened in AutoAck after a ManualAck
// run, settled as it is handed out). REQUIRES: the shard's consumer lock.
func (s *ackBook) takeReady(dst []Delivery) int {
	g := s.g
	due := g.clock.now.Load() + g.clock.ticks(g.opts.AckTimeout)
	auto := g.opts.Ack == AutoAck
	n := 0
	s.leaseMu.Lock()
	for n < len(dst) {
		l := s.ready.pop()
		if l == nil {
			break
		}
		l.gen++
		l.attempt++
		if s.j != nil {
			// Before the receiver has it: a crash from here on counts
			// this attempt.
			s.persist(s.j.attempt(l.offset, uint32(l.attempt), 0))
		}
		dst[n] = Delivery{Message: l.msg, Shard: s.idx, Offset: l.offset, Attempt: l.attempt, lease: l, gen: l.gen}
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
	s.redelivered.Add(uint64(n))
	return n
}

// settleLocked records, on a Persistent queue, that l's message is settled
// for good. REQUIRES: s.leaseMu.
func (s *ackBook) settleLocked(l *lease) {
	if s.j == nil {
		return
	}
	s.persist(s.j.settle(l.offset))
	unlinkOffset(l)
}

// persist hands a failure to write the journal to the group: the disk
// under the queue failed, and every later call says so.
func (s *ackBook) persist(err error) {
	if err != nil && s.g.fail != nil {
		s.g.fail(err)
	}
}

// settle checks that d still holds its lease and runs fn on it under the
// shard's leaseMu. fn returns the lease if its message must be
// dead-lettered, which is done after the lock is released.
func (d *Delivery) settle(fn func(s *ackBook, l *lease) (dying *lease)) error {
	l := d.lease
	if l == nil {
		return ErrNoLease
	}
	s := l.s
	if s.g.closed.Load() {
		return ErrClosed
	}
	s.leaseMu.Lock()
	if l.gen != d.gen || l.state != leaseHeld {
		s.leaseMu.Unlock()
		return ErrLeaseExpired
	}
	dying := fn(s, l)
	s.leaseMu.Unlock()
	if dying != nil {
		s.deadLetter(dying)
	}
	return s.g.durable()
}

// release ends l's life as a message holder and recycles it.
// REQUIRES: s.leaseMu.
func (s *ackBook) release(l *lease) {
	l.gen++
	l.state = leaseFree
	l.msg = Message{}
	l.next, l.prev = s.free, nil
	s.free = l
}

// Ack settles the delivery: the message is done. It fails with
// ErrLeaseExpired if the lease ran out (the message is being redelivered)
// or the delivery was settled already, ErrNoLease under AutoAck. On a
// Persistent queue the ack is in the shard's journal when Ack returns, and
// under SyncAlways synced: a crash never brings the message back.
func (d *Delivery) Ack() error {
	// settle's work, written out: Ack is the per-message path of ManualAck.
	l := d.lease
	if l == nil {
		return ErrNoLease
	}
	s := l.s
	if s.g.closed.Load() {
		return ErrClosed
	}
	s.leaseMu.Lock()
	if l.gen != d.gen || l.state != leaseHeld {
		s.leaseMu.Unlock()
		return ErrLeaseExpired
	}
	s.wheel.remove(l)
	if s.j != nil {
		s.settleLocked(l)
	}
	s.release(l)
	s.inFlight--
	s.acked++
	s.leaseMu.Unlock()
	if s.j != nil {
		return s.g.durable()
	}
	return nil
}

// Nack gives the message back: it is redelivered, with Attempt+1, after
// delay (at the lease clock's resolution), or dead-lettered if this was its
// last attempt.
func (d *Delivery) Nack(delay time.Duration) error {
	return d.settle(func(s *ackBook, l *lease) *lease {
		s.wheel.remove(l)
		s.inFlight--
		return s.retryLocked(l, delay)
	})
}

// Extend keeps the lease for another by, counted from now.
func (d *Delivery) Extend(by time.Duration) error {
	if by < 0 {
		return fmt.Errorf("%w: negative extension %v", ErrInvalidOptions, by)
	}
	return d.settle(func(s *ackBook, l *lease) *lease {
		s.wheel.remove(l)
		l.due = s.g.clock.now.Load() + s.g.clock.ticks(by)
		s.wheel.add(l)
		return nil
	})
}

// Term dead-letters the message now, whatever its attempts.
func (d *Delivery) Term() error {
	return d.settle(func(s *ackBook, l *lease) *lease {
		s.wheel.remove(l)
		s.inFlight--
		return s.dying(l)
	})
}

// dying takes l out of every list, for the dead-letter queue: no delivery
// can settle it any more. REQUIRES: s.leaseMu; l is in no list but
// byOffset.
func (s *ackBook) dying(l *lease) *lease {
	l.gen++
	l.state = leaseDying
	return l
}

// retryLocked sends l back for redelivery after delay, or returns it,
// dying, for the dead-letter queue if it has used its attempts.
// REQUIRES: s.leaseMu; l is in no list but byOffset.
func (s *ackBook) retryLocked(l *lease, delay time.Duration) *lease {
	if l.attempt >= s.g.opts.MaxAttempts {
		return s.dying(l)
	}
	l.gen++ // the old delivery can no longer settle it
	if t := s.g.clock.ticks(delay); t > 0 {
		l.state, l.due = leaseDelayed, s.g.clock.now.Load()+t
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
	s.deadLettered.Add(1)
	dlq := s.g.opts.DeadLetter
	if dlq == nil || dlq.TrySend(l.msg) != nil {
		s.dropped.Add(1)
	}
	s.leaseMu.Lock()
	s.settleLocked(l)
	s.release(l)
	s.leaseMu.Unlock()
}

// reap advances the lease wheels of the books that each returns, once per
// tick of the clock: expired leases come back for redelivery (or go to the
// dead-letter queue), and delayed messages become ready. It runs until stop
// is closed.
func (c *leaseClock) reap(tickC <-chan time.Time, stopTicker func(), stop <-chan struct{}, each func(func(*ackBook))) {
	defer stopTicker()
	var dead []*lease
	for {
		select {
		case <-stop:
			return
		case <-tickC:
			// The clock, not the tick, says what time it is: a tick that
			// waited in the channel may be stale.
			t := int64(c.clock.Now().Sub(c.epoch) / c.tick)
			c.now.Store(t)
			each(func(s *ackBook) {
				dead = s.expire(t, dead[:0])
				for _, l := range dead {
					s.deadLetter(l)
				}
				clear(dead)
			})
			c.reaped.Store(t)
		}
	}
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
			if l := s.retryLocked(l, 0); l != nil {
				dead = append(dead, l)
			}
		case leaseDelayed:
			s.delayed.Add(-1)
			l.state = leaseReady
			s.ready.push(l)
			s.readyLen.Add(1)
			s.g.receivers.Wake(1)
		}
	})
	return dead
}
