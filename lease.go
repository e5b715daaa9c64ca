package spillway

import (
	"sync/atomic"
	"time"
)

// lease tracks a message that has left the ring under ManualAck: leased to
// a receiver, waiting out a Nack delay, or ready for redelivery. Leases are
// recycled through a per-shard free list; gen grows at every change of
// hands, so a Delivery holding an older gen can no longer touch it.
//
// All fields are guarded by the shard's leaseMu.
type lease struct {
	s       *ackBook
	msg     entry // the message's parts and expiry (its priority is the book's)
	offset  uint64
	attempt int
	gen     uint64
	state   leaseState
	due     int64 // tick at which a leased or delayed lease fires
	// leasedAt is when a timed lease (see ackBook.leaseOut) was handed
	// out on its first delivery (unix ns), for its Ack to record
	// AckLatency; 0 otherwise.
	leasedAt int64
	sent     int64 // Delivery.SentAt, unix ns; 0: zero
	// firstTick and lastTick are the lease clock's ticks of the first and
	// the latest delivery (firstTick -1: before a reopen, unknown); why
	// says why a dying lease dies. For the dead-letter headers.
	firstTick, lastTick int64
	why                 deadReason
	prev                *lease // list links: a wheel slot, the ready list, or the free list
	next                *lease
	// Persistent only: the links of the shard's offsetList that holds the
	// lease from its message's first delivery until it is settled: the
	// byOffset list, or the moved one once its bytes were copied to the
	// journal so that its segment of the log could go.
	oprev, onext *lease
	olist        *offsetList
}

type leaseState uint8

const (
	leaseFree    leaseState = iota
	leaseHeld               // handed to a receiver, due when the lease runs out
	leaseDelayed            // nacked with a delay, due when it may be redelivered
	leaseReady              // waiting in the ready list for redelivery
	leaseDying              // out of attempts or terminated: on its way to the dead-letter queue
)

// wheel is a hashed timing wheel of leases: O(1) to add, move or remove a
// lease however many are in flight, and O(due leases) per tick. A lease due
// at tick t sits in slot t % len(slots); a slot may also hold leases due in
// later turns of the wheel, which advance skips until their turn.
//
// Not safe for concurrent use: the shard's leaseMu guards it.
type wheel struct {
	slots []*lease
	now   int64 // last tick advanced to
}

const wheelSlots = 4096

func newWheel(now int64) wheel { return wheel{slots: make([]*lease, wheelSlots), now: now} }

func (w *wheel) add(l *lease) {
	i := int(uint64(l.due) % wheelSlots)
	l.prev, l.next = nil, w.slots[i]
	if l.next != nil {
		l.next.prev = l
	}
	w.slots[i] = l
}

func (w *wheel) remove(l *lease) {
	if l.prev != nil {
		l.prev.next = l.next
	} else {
		w.slots[int(uint64(l.due)%wheelSlots)] = l.next
	}
	if l.next != nil {
		l.next.prev = l.prev
	}
	l.prev, l.next = nil, nil
}

// advance moves the wheel to tick now and calls fire for every lease due by
// then, removed from the wheel. A jump of more than a full turn visits every
// slot once.
func (w *wheel) advance(now int64, fire func(*lease)) {
	if now <= w.now {
		return
	}
	from := w.now + 1
	if now-from >= wheelSlots {
		from = now - wheelSlots + 1
	}
	for t := from; t <= now; t++ {
		i := int(uint64(t) % wheelSlots)
		for l := w.slots[i]; l != nil; {
			next := l.next
			if l.due <= now {
				w.remove(l)
				fire(l)
			}
			l = next
		}
	}
	w.now = now
}

// leaseList is a FIFO of leases linked through prev/next.
type leaseList struct{ head, tail *lease }

func (q *leaseList) push(l *lease) {
	l.next, l.prev = nil, q.tail
	if q.tail != nil {
		q.tail.next = l
	} else {
		q.head = l
	}
	q.tail = l
}

func (q *leaseList) pop() *lease {
	l := q.head
	if l == nil {
		return nil
	}
	q.head = l.next
	if q.head != nil {
		q.head.prev = nil
	} else {
		q.tail = nil
	}
	l.prev, l.next = nil, nil
	return l
}

// offsetList holds a Persistent shard's unsettled leases in offset order,
// linked through oprev and onext: its head is the oldest unsettled message,
// before which the shard's log may be trimmed. First deliveries come in
// offset order, so appending keeps it sorted in O(1); after a Topic
// subscription's Seek back they come before leases still held, and push
// walks back from the tail to where they go. Guarded by the shard's
// leaseMu.
type offsetList struct {
	head, tail *lease
	n          int
}

func (q *offsetList) push(l *lease) {
	after := q.tail // l goes right after it
	for after != nil && after.offset > l.offset {
		after = after.oprev
	}
	l.oprev, l.olist = after, q
	if after == nil {
		l.onext, q.head = q.head, l
	} else {
		l.onext, after.onext = after.onext, l
	}
	if l.onext != nil {
		l.onext.oprev = l
	} else {
		q.tail = l
	}
	q.n++
}

// remove takes l out of the list that holds it, if any.
func unlinkOffset(l *lease) {
	if l.olist != nil {
		l.olist.remove(l)
	}
}

func (q *offsetList) remove(l *lease) {
	if l.oprev != nil {
		l.oprev.onext = l.onext
	} else {
		q.head = l.onext
	}
	if l.onext != nil {
		l.onext.oprev = l.oprev
	} else {
		q.tail = l.oprev
	}
	l.oprev, l.onext, l.olist = nil, nil, nil
	q.n--
}

// leaseClock times leases and delays in ticks of tick, counted from epoch.
// One reaper goroutine stores now once per tick, then reaped once it has
// fired what was due by then; everyone else loads them.
type leaseClock struct {
	clock  Clock
	tick   time.Duration
	epoch  time.Time
	now    atomic.Int64
	reaped atomic.Int64 // the last tick whose expirations are done (tests wait on it)
}

func newLeaseClock(c Clock, ackTimeout time.Duration) *leaseClock {
	return &leaseClock{clock: c, tick: min(max(ackTimeout/256, time.Millisecond), time.Second), epoch: c.Now()}
}

// wall returns the time of tick t, in unix ns.
func (c *leaseClock) wall(t int64) int64 { return c.epoch.Add(time.Duration(t) * c.tick).UnixNano() }

// tickAt returns the first tick whose time is at or after at (unix ns):
// the reaper fires it only once the clock has passed at. (Now's tick plus
// the ticks until at would not do: the reaper's now is up to a tick
// stale.)
func (c *leaseClock) tickAt(at int64) int64 {
	d := at - c.epoch.UnixNano()
	if d <= 0 {
		return 0
	}
	return (d + int64(c.tick) - 1) / int64(c.tick)
}

// tickAfter returns the tick at which a lease waiting until d after at
// (unix ns) fires: the first whose time is at or after then, and never
// the current one (the reaper may have fired it already).
func (c *leaseClock) tickAfter(at int64, d time.Duration) int64 {
	return max(c.tickAt(at+int64(d)), c.now.Load()+1)
}

// ticks converts a duration into whole ticks, rounding up.
func (c *leaseClock) ticks(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + c.tick - 1) / c.tick)
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
