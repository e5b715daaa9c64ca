package ring

import (
	"context"
	"math/bits"
	"sync/atomic"

	"github.com/spillway-io/spillway/internal/park"
	"github.com/spillway-io/spillway/internal/release"
)

// MPMC is a bounded FIFO ring for any number of producer and consumer
// goroutines: Vyukov's array queue with a turn counter in every slot.
//
// Who may call what: every method, from any goroutine.
type MPMC[T any] struct {
	// Invariants:
	//   - The slot of position p is slots[p&mask]; lap(p) = p >> shift. Its turn
	//     is 2*lap(p) while it is free for the producer of p, and 2*lap(p)+1
	//     while it holds the item of p. The consumer of p sets it to
	//     2*lap(p)+2 = 2*lap(p+cap), handing it to the producer of p+cap. Turns
	//     only grow, and every value names one position, so no state is ambiguous
	//     even with a capacity of 1.
	//   - Producers claim positions with a CAS of tail; consumers with a CAS of
	//     head. A batch checks the turns of its k slots first and then claims
	//     them all with one CAS. The CAS is what makes the slots the caller's:
	//     tail (head) only grows, so when the CAS from t succeeds no other
	//     producer (consumer) has claimed any position >= t, and the turns it
	//     checked cannot have moved.
	//   - After the CAS the owner reads or writes the value and publishes it with
	//     one release store (package release) of the slot's turn. Every handoff
	//     is per slot: this ring has no index the other side could cache, and
	//     producers never read head nor consumers tail on the fast path.
	//   - Waking: the CAS is sequentially consistent, the turn store is not, and
	//     a waker's look at the waiter count may be performed before its turn
	//     store is visible. So a waiter that registered and still finds nothing
	//     parks only when no claim of the other side is in flight
	//     (pushesInFlight, popsInFlight; park.AwaitPublished): one made before
	//     it registered shows in tail or head, and one made after it looks at
	//     the count after its CAS and sees the waiter.
	//   - Once closedBit is set in tail no position can be claimed by producers.
	//
	// Why the fast path is correct: a slot is touched only by the one goroutine
	// whose CAS claimed its position and whose turn check found it in the
	// matching state; the turn store releases it to exactly one next owner.

	_        pad
	head     atomic.Uint64 // next position to claim for popping; CAS by consumers
	_        pad
	tail     atomic.Uint64 // next position to claim for pushing, | closedBit
	_        pad
	slots    []mpmcSlot[T]
	mask     uint64
	shift    uint
	notEmpty park.Waiters // consumers parked on an empty ring
	notFull  park.Waiters // producers parked on a full ring
	_        pad
}

type mpmcSlot[T any] struct {
	turn atomic.Uint64
	val  T
}

// NewMPMC returns an MPMC ring holding capacity items, rounded up to a power
// of two (at least 1). It panics if capacity exceeds 2^40.
func NewMPMC[T any](capacity int) *MPMC[T] {
	n := roundCapacity(capacity)
	return &MPMC[T]{
		slots: make([]mpmcSlot[T], n),
		mask:  uint64(n - 1),
		shift: uint(bits.TrailingZeros(uint(n))),
	}
}

// Cap returns the capacity of the ring.
func (r *MPMC[T]) Cap() int { return len(r.slots) }

// Len returns the number of items in the ring, in-flight pushes and pops
// included. Under concurrent use it is a snapshot.
func (r *MPMC[T]) Len() int {
	h := r.head.Load()
	return clampLen(r.tail.Load()&^closedBit, h, len(r.slots))
}

func (r *MPMC[T]) writeTurn(p uint64) uint64 { return (p >> r.shift) << 1 }

// claimPush reserves up to n free positions; 0 means full or closed.
func (r *MPMC[T]) claimPush(n uint64) (uint64, uint64) {
	for {
		t := r.tail.Load()
		if t&closedBit != 0 {
			return 0, 0
		}
		var k uint64
		for k < n && k < uint64(len(r.slots)) {
			p := t + k
			if r.slots[p&r.mask].turn.Load() != r.writeTurn(p) {
				break
			}
			k++
		}
		if k == 0 {
			if r.tail.Load() == t { // the slot at t is not free yet: full
				return 0, 0
			}
			continue
		}
		if r.tail.CompareAndSwap(t, t+k) {
			return t, k
		}
	}
}

// claimPop reserves up to n published positions; 0 means none (and, with
// drained, that the ring is closed and empty).
func (r *MPMC[T]) claimPop(n uint64) (h, k uint64, drained bool) {
	for {
		h = r.head.Load()
		k = 0
		for k < n && k < uint64(len(r.slots)) {
			p := h + k
			if r.slots[p&r.mask].turn.Load() != r.writeTurn(p)+1 {
				break
			}
			k++
		}
		if k == 0 {
			if r.head.Load() == h {
				return h, 0, r.tail.Load() == h|closedBit
			}
			continue
		}
		if r.head.CompareAndSwap(h, h+k) {
			return h, k, false
		}
	}
}

// TryPush adds v if there is room and the ring is open, and reports whether
// it did.
func (r *MPMC[T]) TryPush(v T) bool {
	t, k := r.claimPush(1)
	if k == 0 {
		return false
	}
	s := &r.slots[t&r.mask]
	s.val = v
	release.Store(&s.turn, r.writeTurn(t)+1)
	r.notEmpty.Wake(1)
	return true
}

// PushBatch adds as many items from the front of vs as fit, claiming them
// with one CAS, and returns how many it added.
func (r *MPMC[T]) PushBatch(vs []T) int {
	if len(vs) == 0 {
		return 0
	}
	t, k := r.claimPush(uint64(len(vs)))
	for j := range k {
		p := t + j
		s := &r.slots[p&r.mask]
		s.val = vs[j]
		release.Store(&s.turn, r.writeTurn(p)+1)
	}
	r.notEmpty.Wake(int(k))
	return int(k)
}

// TryPop removes and returns the oldest item, if there is one published.
func (r *MPMC[T]) TryPop() (T, bool) {
	v, ok, _ := r.pop()
	return v, ok
}

func (r *MPMC[T]) pop() (v T, ok, drained bool) {
	h, k, drained := r.claimPop(1)
	if k == 0 {
		return v, false, drained
	}
	s := &r.slots[h&r.mask]
	v = s.val
	var zero T
	s.val = zero
	release.Store(&s.turn, r.writeTurn(h)+2)
	r.notFull.Wake(1)
	return v, true, false
}

// PopBatch moves up to len(dst) of the oldest published items into dst,
// claiming them with one CAS, and returns how many it moved.
func (r *MPMC[T]) PopBatch(dst []T) int {
	n, _ := r.popBatch(dst)
	return n
}

func (r *MPMC[T]) popBatch(dst []T) (int, bool) {
	if len(dst) == 0 {
		return 0, false
	}
	h, k, drained := r.claimPop(uint64(len(dst)))
	var zero T
	for j := range k {
		p := h + j
		s := &r.slots[p&r.mask]
		dst[j] = s.val
		s.val = zero
		release.Store(&s.turn, r.writeTurn(p)+2)
	}
	r.notFull.Wake(int(k))
	return int(k), drained
}

// pushesInFlight reports whether producers claimed positions no consumer
// has claimed: a consumer that found nothing published asks it before it
// parks (park.AwaitPublished), since a producer publishes with a release
// store that its look for waiters may overtake.
func (r *MPMC[T]) pushesInFlight() bool { return r.tail.Load()&^closedBit != r.head.Load() }

// popsInFlight reports whether consumers claimed positions whose slots the
// producers need next (the ring is full only by claims not all released):
// a producer that found no free slot asks it before it parks, for the same
// reason.
func (r *MPMC[T]) popsInFlight() bool {
	h := r.head.Load()
	return (r.tail.Load()&^closedBit)-h < uint64(len(r.slots))
}

// Push adds v, waiting while the ring is full. It returns ErrClosed if the
// ring is closed before v is added, or ctx.Err() if ctx ends first; in both
// cases v was not added.
func (r *MPMC[T]) Push(ctx context.Context, v T) error {
	if r.TryPush(v) {
		return nil
	}
	return pushWait(ctx, &r.notFull, r.Cap(), func() bool { return r.TryPush(v) }, r.isClosed, r.free, waitPolicy{inFlight: r.popsInFlight})
}

// free is how many more items the ring has room for: a snapshot.
func (r *MPMC[T]) free() int { return r.Cap() - r.Len() }

// PushBatchWait adds all of vs, in order, waiting for room as needed. It
// returns how many items it added and, if that is fewer than len(vs),
// ErrClosed or ctx.Err().
func (r *MPMC[T]) PushBatchWait(ctx context.Context, vs []T) (int, error) {
	return pushAll(ctx, vs, r.PushBatch, &r.notFull, r.Cap(), r.isClosed, r.free, waitPolicy{inFlight: r.popsInFlight})
}

func (r *MPMC[T]) isClosed() bool { return r.tail.Load()&closedBit != 0 }

// Pop removes and returns the oldest item, waiting while the ring is empty.
// After Close it returns the remaining items, then ErrClosed.
func (r *MPMC[T]) Pop(ctx context.Context) (T, error) {
	if v, ok, _ := r.pop(); ok {
		return v, nil
	}
	return popSlow(ctx, &r.notEmpty, r.Cap(), r.pop, r.Len, waitPolicy{inFlight: r.pushesInFlight})
}

// PopBatchWait moves up to len(dst) items into dst, waiting until at least
// one is available. After Close it returns the remaining items, then
// (0, ErrClosed).
func (r *MPMC[T]) PopBatchWait(ctx context.Context, dst []T) (int, error) {
	return popSome(ctx, dst, &r.notEmpty, r.Cap(), r.popBatch, r.Len, waitPolicy{inFlight: r.pushesInFlight})
}

// Close closes the ring: later pushes fail, pops drain what is left and then
// fail, and every blocked caller wakes up. Close is idempotent and may be
// called from any goroutine.
func (r *MPMC[T]) Close() {
	closeTail(&r.tail)
	r.notEmpty.WakeAll()
	r.notFull.WakeAll()
}
