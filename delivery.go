package spillway

import (
	"fmt"
	"time"
)

// Delivery is a message handed to a receiver, with where it came from and,
// under ManualAck, the lease that must be settled with Ack, Nack or Term
// (or kept with Extend) before it expires.
//
// A Delivery is a small value; copies of it act on the same lease. Its
// methods are safe for concurrent use, and once one of Ack, Nack or Term has
// succeeded, the others return ErrLeaseExpired.
type Delivery struct {
	Message
	Shard   int    // the shard the message went through
	Offset  uint64 // its position in the shard's FIFO order; kept on redelivery
	Attempt int    // 1 for the first delivery, 2 for the first redelivery, ...
	// SentAt is when the message was published, by the topic's Clock, on
	// a Persistent topic (it is kept in the log with the message, and is
	// what AtTime looks for); zero elsewhere.
	SentAt time.Time

	lease *lease // nil under AutoAck
	gen   uint64 // the lease's generation when it was handed out
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
	leasedAt := l.leasedAt
	s.release(l)
	s.inFlight--
	s.acked++
	s.leaseMu.Unlock()
	if leasedAt != 0 {
		s.g.lat.acks.Record(time.Duration(s.g.lat.now() - leasedAt))
	}
	if s.j != nil {
		return s.g.durable()
	}
	return nil
}

// Nack gives the message back: it is redelivered, with Attempt+1, once
// delay has passed (at the first tick of the lease clock after it, never
// before), or dead-lettered if this was its last attempt.
func (d *Delivery) Nack(delay time.Duration) error {
	return d.settle(func(s *ackBook, l *lease) *lease {
		s.wheel.remove(l)
		s.inFlight--
		return s.retryLocked(l, delay)
	})
}

// Extend keeps the lease for another by, counted from now (until the
// first tick of the lease clock after then).
func (d *Delivery) Extend(by time.Duration) error {
	if by < 0 {
		return fmt.Errorf("%w: negative extension %v", ErrInvalidOptions, by)
	}
	return d.settle(func(s *ackBook, l *lease) *lease {
		s.wheel.remove(l)
		l.due = s.g.clock.tickAfter(s.g.lat.now(), by)
		s.wheel.add(l)
		return nil
	})
}

// Term dead-letters the message now, whatever its attempts.
func (d *Delivery) Term() error {
	return d.settle(func(s *ackBook, l *lease) *lease {
		s.wheel.remove(l)
		s.inFlight--
		return s.dying(l, deadTerminated)
	})
}

// clearLifecycle zeroes the lifecycle fields of d's message, which a
// delivery fills only from what its message carries, if a take filled
// them (life): deliveries mostly have none, and one test costs less than
// the stores. (Fields a caller set itself in a Delivery it passes to a
// receive stay; a take overwrites only what it filled.)
func (d *Delivery) clearLifecycle() {
	if d.life {
		d.ID, d.DeliverAt, d.ExpiresAt, d.Priority, d.life = "", time.Time{}, time.Time{}, 0, false
	}
}
