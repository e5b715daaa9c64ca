package spillway

import (
	"fmt"
	"time"
)

// leaseOut gives each delivery of ds a lease due AckTimeout from now.
// REQUIRES: the shard's consumer lock (the deliveries are fresh).
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
		d.lease, d.gen = l, l.gen
	}
	s.inFlight += int64(len(ds))
	s.leaseMu.Unlock()
}

// takeReady fills dst with messages waiting for redelivery, each with a new
// lease. REQUIRES: the shard's consumer lock.
func (s *ackBook) takeReady(dst []Delivery) int {
	g := s.g
	due := g.clock.now.Load() + g.clock.ticks(g.opts.AckTimeout)
	n := 0
	s.leaseMu.Lock()
	for n < len(dst) {
		l := s.ready.pop()
		if l == nil {
			break
		}
		l.gen++
		l.attempt++
		l.state, l.due = leaseHeld, due
		s.wheel.add(l)
		dst[n] = Delivery{Message: l.msg, Shard: s.idx, Offset: l.offset, Attempt: l.attempt, lease: l, gen: l.gen}
		n++
	}
	s.inFlight += int64(n)
	s.leaseMu.Unlock()
	s.readyLen.Add(-int64(n))
	s.redelivered.Add(uint64(n))
	return n
}

// settle checks that d still holds its lease and runs fn on it under the
// shard's leaseMu. fn returns a message to dead-letter, if any, which is
// sent after the lock is released.
func (d *Delivery) settle(fn func(s *ackBook, l *lease) (deadLetter *Message)) error {
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
	dl := fn(s, l)
	s.leaseMu.Unlock()
	if dl != nil {
		s.deadLetter(*dl)
	}
	return nil
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
// or the delivery was settled already, ErrNoLease under AutoAck.
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
	s.release(l)
	s.inFlight--
	s.acked++
	s.leaseMu.Unlock()
	return nil
}

// Nack gives the message back: it is redelivered, with Attempt+1, after
// delay (at the lease clock's resolution), or dead-lettered if this was its
// last attempt.
func (d *Delivery) Nack(delay time.Duration) error {
	return d.settle(func(s *ackBook, l *lease) *Message {
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
	return d.settle(func(s *ackBook, l *lease) *Message {
		s.wheel.remove(l)
		l.due = s.g.clock.now.Load() + s.g.clock.ticks(by)
		s.wheel.add(l)
		return nil
	})
}

// Term dead-letters the message now, whatever its attempts.
func (d *Delivery) Term() error {
	return d.settle(func(s *ackBook, l *lease) *Message {
		s.wheel.remove(l)
		s.inFlight--
		m := l.msg
		s.release(l)
		return &m
	})
}

// retryLocked sends l back for redelivery after delay, or returns its
// message for the dead-letter queue if it has used its attempts.
// REQUIRES: s.leaseMu; l is in no list.
func (s *ackBook) retryLocked(l *lease, delay time.Duration) *Message {
	if l.attempt >= s.g.opts.MaxAttempts {
		m := l.msg
		s.release(l)
		return &m
	}
	l.gen++ // the old delivery can no longer settle it
	if t := s.g.clock.ticks(delay); t > 0 {
		l.state, l.due = leaseDelayed, s.g.clock.now.Load()+t
		s.wheel.add(l)
		s.delayed.Add(1)
		return nil
	}
	l.state = leaseReady
	s.ready.push(l)
	s.readyLen.Add(1)
	s.g.receivers.Wake(1)
	return nil
}

// deadLetter hands m to the dead-letter queue, without waiting; if there is
// none, or it is full or closed, m is dropped. Either way it is counted.
func (s *ackBook) deadLetter(m Message) {
	s.deadLettered.Add(1)
	dlq := s.g.opts.DeadLetter
	if dlq == nil || dlq.TrySend(m) != nil {
		s.dropped.Add(1)
	}
}

// reap advances the lease wheels of the books that each returns, once per
// tick of the clock: expired leases come back for redelivery (or go to the
// dead-letter queue), and delayed messages become ready. It runs until stop
// is closed.
func (c *leaseClock) reap(tickC <-chan time.Time, stopTicker func(), stop <-chan struct{}, each func(func(*ackBook))) {
	defer stopTicker()
	var dead []Message
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
				for _, m := range dead {
					s.deadLetter(m)
				}
				clear(dead)
			})
			c.reaped.Store(t)
		}
	}
}

// expire fires the leases due by tick t and returns the messages to
// dead-letter.
func (s *ackBook) expire(t int64, dead []Message) []Message {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	s.leaseMu.Slow() // a tick may fire many leases: Ack and receivers park meanwhile
	s.wheel.advance(t, func(l *lease) {
		switch l.state {
		case leaseHeld:
			s.inFlight--
			if m := s.retryLocked(l, 0); m != nil {
				dead = append(dead, *m)
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
