package park

import (
	"context"
	"sync"
	"sync/atomic"
)

// Waiters is a FIFO list of goroutines parked until a condition may have
// become true. Its zero value is ready to use.
//
// Invariants:
//   - count is the number of goroutines registered on the list and not yet
//     woken. It is changed only while mu is held and is read without mu by
//     wakers, on their fast path: count == 0 means there is nobody to wake.
//   - A registered waiter is on the list until a waker unlinks it (setting
//     woken and sending one token on its channel) or it unlinks itself
//     (cancel). Exactly one of the two happens, decided under mu.
//   - A waiter's channel holds at most one token; a waiter back on the free
//     list holds none.
//
// Safe for concurrent use by any number of wakers and waiters.
type Waiters struct {
	count atomic.Int32
	mu    sync.Mutex
	head  *waiter // oldest registered waiter; guarded by mu
	tail  *waiter // newest registered waiter; guarded by mu
	free  *waiter // waiters kept for reuse, so parking does not allocate; guarded by mu
}

type waiter struct {
	wake       chan struct{} // capacity 1: the token of a wake-up
	prev, next *waiter       // list links; guarded by Waiters.mu
	woken      bool          // unlinked by a waker; guarded by Waiters.mu
}

// Pending reports whether any goroutine is registered. It is the wakers' fast
// path: one atomic load of a word that is only written when somebody parks.
func (q *Waiters) Pending() bool { return q.count.Load() != 0 }

// Wake wakes up to n registered waiters, oldest first.
func (q *Waiters) Wake(n int) {
	if q.count.Load() == 0 {
		return
	}
	q.wakeSlow(n)
}

// WakeAll wakes every registered waiter.
func (q *Waiters) WakeAll() {
	if q.count.Load() == 0 {
		return
	}
	q.wakeSlow(-1)
}

func (q *Waiters) wakeSlow(n int) {
	q.mu.Lock()
	for w := q.head; w != nil && n != 0; w = q.head {
		q.unlink(w)
		w.woken = true
		w.wake <- struct{}{} // never blocks: the token slot is empty while linked
		n--
	}
	q.mu.Unlock()
}

// register links a waiter at the tail and counts it.
func (q *Waiters) register() *waiter {
	q.mu.Lock()
	w := q.free
	if w != nil {
		q.free = w.next
		w.next = nil
	} else {
		w = &waiter{wake: make(chan struct{}, 1)}
	}
	w.woken = false
	w.prev = q.tail
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
	q.count.Add(1) // sequentially consistent: ordered before the caller's re-check
	q.mu.Unlock()
	return w
}

// unlink removes w from the list. REQUIRES: q.mu held, w linked.
func (q *Waiters) unlink(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.prev, w.next = nil, nil
	q.count.Add(-1)
}

// leave ends w's registration without waiting and recycles it. It reports
// whether a waker had already picked w, in which case the wake-up was spent
// on a goroutine that no longer waits and must be passed on.
func (q *Waiters) leave(w *waiter) (wasWoken bool) {
	q.mu.Lock()
	if w.woken {
		<-w.wake // the waker sent the token before setting woken under mu
		wasWoken = true
	} else {
		q.unlink(w)
	}
	w.next = q.free
	q.free = w
	q.mu.Unlock()
	return wasWoken
}

// recycle returns a woken waiter whose token was received to the free list.
func (q *Waiters) recycle(w *waiter) {
	q.mu.Lock()
	w.next = q.free
	q.free = w
	q.mu.Unlock()
}

// Await returns nil as soon as cond reports true, or ctx.Err() if ctx ends
// first. The caller has just found cond false; Await backs off before each
// new look (see the package doc). cond must be safe to call repeatedly and
// may have effects (such as popping an item) only when it reports true;
// whoever makes it true must call Wake or WakeAll on q afterwards. When cond
// becomes true and ctx ends at about the same time, Await may return either.
// Await allocates nothing once q has a recycled waiter.
func Await(ctx context.Context, q *Waiters, cond func() bool) error {
	if err := ctx.Err(); err != nil {
		if cond() {
			return nil
		}
		return err
	}
	for i := 0; ; i++ {
		// Back off before looking again: a peer that is busy producing (or
		// consuming) gets a whole round to move many items, which the next
		// look then takes in one go instead of one cache-line transfer each.
		if i < spinRounds() {
			backoff(i)
			if cond() {
				return nil
			}
			continue
		}
		w := q.register()
		if cond() {
			if q.leave(w) {
				q.Wake(1)
			}
			return nil
		}
		select {
		case <-w.wake:
			q.recycle(w)
			if cond() {
				return nil
			}
			i = activeSpins // a wake-up that found nothing: yield a while before parking again
		case <-ctx.Done():
			if q.leave(w) {
				q.Wake(1)
			}
			if cond() { // a last look: the condition may have become true meanwhile
				return nil
			}
			return ctx.Err()
		}
	}
}

// Len returns the number of registered waiters: a snapshot, for tests and
// statistics.
func (q *Waiters) Len() int { return int(q.count.Load()) }
