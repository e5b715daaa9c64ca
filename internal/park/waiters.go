package park

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-io/spillway/internal/release"
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
//   - level is in [0, maxLevel], a hint shared by the spinning waiters: each
//     loads it when its wait starts and moves it by at most one step, with a
//     CAS from the value it loaded, when the wait ends (adapt). It is stored
//     only when it changes: it shares the cache line that every waker
//     reads.
//   - settled is the number of AwaitLight waiters between their look after
//     settle (which found nothing, with the barrier done) and the end of
//     their wait; each adds and removes itself once.
//
// Safe for concurrent use by any number of wakers and waiters.
type Waiters struct {
	count atomic.Int32
	level atomic.Int32 // look interval of spinning waiters: minLook<<level (see AwaitN)
	// settled counts AwaitLight waiters past their settle look, which only
	// a wake-up ends now (Settled, for tests). Changed on that slow path
	// only.
	settled atomic.Int32
	mu      sync.Mutex
	head    *waiter // oldest registered waiter; guarded by mu
	tail    *waiter // newest registered waiter; guarded by mu
	free    *waiter // waiters kept for reuse, so parking does not allocate; guarded by mu
}

type waiter struct {
	wake       chan struct{} // capacity 1: the token of a wake-up
	timer      *time.Timer   // AwaitLight's settle timer, made at its first use
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
	return await(ctx, q, 0, func() int {
		if cond() {
			return -1
		}
		return 0
	}, nil, false)
}

// AwaitN is Await for a cond that reports how many items it found when it
// succeeds (and 0 when it does not), out of capacity (the most there can
// be): the count tunes how soon the next waits on q look again, so that
// waiters on a streaming peer look rarely, waiters on items that come one
// at a time answer soon, and a waiter that found half the capacity or more
// (the peer may have been stopped by a full ring, or an empty one, waiting
// for this look) looks sooner.
func AwaitN(ctx context.Context, q *Waiters, capacity int, cond func() int) error {
	return await(ctx, q, capacity, cond, nil, false)
}

// AwaitPublished is AwaitN for a cond that wakers make true in two steps: a
// sequentially consistent claim (a CAS of a ring's tail), then a release
// store that publishes what they claimed (package release), then Wake. A
// release store may become visible to other cores after the waker's load
// of the waiter count, so a waiter that registered and then found cond
// false can miss both the store and the wake-up. inFlight closes that
// window: it reports whether a claim exists that cond may not have seen
// published (it must read the claim with a sequentially consistent load).
// While it does, the waiter does not park: it yields and looks again. A
// claim made after the waiter registered loads the count after its CAS and
// sees the waiter, so a waiter that found neither may park.
func AwaitPublished(ctx context.Context, q *Waiters, capacity int, cond func() int, inFlight func() bool) error {
	return await(ctx, q, capacity, cond, inFlight, false)
}

// AwaitLight is AwaitN for a cond that wakers make true with a light store
// (release.StoreLight: on amd64 Linux a plain store, with no locked
// instruction at all) before they look at the waiter count, which that
// look may overtake. A registered waiter that still finds nothing waits
// for a wake-up for at most settle (1 ms), then calls release.Heavy and
// looks once more before it waits for good: a light store issued before
// the barrier is visible to that look, and a waker that stores after the
// barrier loads the count after it, and sees the waiter. The barrier is a
// system call that interrupts the other CPUs running this process's
// threads, so it is paid only by waits that outlast settle; a store
// overtaken as above is visible long before, so the most a lost wake-up
// can cost is settle. If the barrier fails, the waiter yields and looks
// again instead of waiting for good.
func AwaitLight(ctx context.Context, q *Waiters, capacity int, cond func() int) error {
	return await(ctx, q, capacity, cond, nil, true)
}

// await is AwaitN; a cond that returns a negative count succeeded without
// telling how many items it found, which leaves the level alone. inFlight
// is AwaitPublished's, or nil; light is AwaitLight's.
func await(ctx context.Context, q *Waiters, capacity int, cond func() int, inFlight func() bool, light bool) error {
	if err := ctx.Err(); err != nil {
		if cond() != 0 {
			return nil
		}
		return err
	}
	level := q.level.Load()
	active := activeLooks(level)
	i := 0
	if eager.Load() {
		i = active + passiveSpins
	}
	for ; ; i++ {
		// Back off before looking again: a peer that is busy producing (or
		// consuming) gets a while to move many items, which the next look
		// then takes in one go instead of one cache-line transfer each.
		if i < active+passiveSpins {
			backoff(i, active, level)
			if n := cond(); n != 0 {
				q.adapt(level, n, capacity)
				return nil
			}
			continue
		}
		w := q.register()
		if cond() != 0 {
			if q.leave(w) {
				q.Wake(1)
			}
			return nil
		}
		if inFlight != nil && inFlight() {
			// A waker claimed and has yet to publish, or published and
			// its store is on its way: no wake-up may come for it. It
			// publishes within a few instructions of its claim, unless
			// the scheduler stopped it there; yield so that it can run.
			if q.leave(w) {
				q.Wake(1)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			runtime.Gosched()
			continue
		}
		// Wakers that publish with a light store may have looked at the
		// count before their store became visible to the look above: such
		// a store is visible microseconds later. So the first part of the
		// wait is at most settle long; if no wake-up came by then, a heavy
		// barrier makes sure (AwaitLight) before the waiter parks for good.
		// Most waits end before settle, and pay no barrier.
		var settled <-chan time.Time
		if light {
			settled = w.arm(settle)
		}
		sealed := false // past the settle look: counted in q.settled
		for parked := true; parked; {
			select {
			case <-w.wake:
				w.disarm(settled)
				q.recycle(w)
				if sealed {
					q.settled.Add(-1)
				}
				if cond() != 0 {
					return nil
				}
				i = active // a wake-up that found nothing: yield a while before parking again
				parked = false
			case <-ctx.Done():
				w.disarm(settled)
				if sealed {
					q.settled.Add(-1)
				}
				if q.leave(w) {
					q.Wake(1)
				}
				if cond() != 0 { // a last look: the condition may have become true meanwhile
					return nil
				}
				return ctx.Err()
			case <-settled:
				settled = nil
				fenced := release.Heavy()
				if cond() != 0 {
					if q.leave(w) {
						q.Wake(1)
					}
					return nil
				}
				if !fenced {
					// The barrier failed: no look can be trusted to have
					// seen every store. Yield and look again, as for a
					// claim in flight.
					if q.leave(w) {
						q.Wake(1)
					}
					runtime.Gosched()
					parked = false
				} else {
					sealed = true
					q.settled.Add(1)
				}
			}
		}
	}
}

// settle is how long a waiter on light stores waits for a wake-up before
// it makes sure with a heavy barrier (see await): far longer than a store
// takes to leave a store buffer, short enough that the wait a lost
// wake-up costs stays below a scheduler time slice.
const settle = time.Millisecond

// arm starts w's timer for d and returns its channel.
func (w *waiter) arm(d time.Duration) <-chan time.Time {
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		w.timer.Reset(d)
	}
	return w.timer.C
}

// disarm stops w's timer if c, what arm returned, is still pending.
func (w *waiter) disarm(c <-chan time.Time) {
	if c != nil {
		w.timer.Stop()
	}
}

// eager makes every wait skip spinning and yielding (SetEager).
var eager atomic.Bool

// SetEager, for tests, makes every wait that starts afterwards register
// and park at once, without spinning or yielding first, so that the
// parking path (registration, the last looks, AwaitLight's first wait and
// barrier, parking, waking) runs on every wait instead of on the rare
// long one; SetEager(false) restores the strategy. It does not force the
// window a lost wake-up needs (a waker's look at the waiter count
// overtaking its publication, a few nanoseconds wide): nothing from
// outside can.
func SetEager(on bool) { eager.Store(on) }

// adapt moves q's level after a wait at level that ended finding n items
// out of capacity. It stores only changes: wakers read count, on the same
// cache line, on every push.
func (q *Waiters) adapt(level int32, n, capacity int) {
	switch {
	case n <= 0: // uncounted
	case 2*n >= capacity || n <= shrinkAt:
		if level > 0 {
			q.level.CompareAndSwap(level, level-1)
		}
	case n >= growAt && level < maxLevel:
		q.level.CompareAndSwap(level, level+1)
	}
}

// Settled returns the number of AwaitLight waiters that made their look
// after settle and now wait for a wake-up alone: a snapshot, for tests
// that must know a store without a Wake would not be seen.
func (q *Waiters) Settled() int { return int(q.settled.Load()) }

// Len returns the number of registered waiters: a snapshot, for tests and
// statistics.
func (q *Waiters) Len() int { return int(q.count.Load()) }
