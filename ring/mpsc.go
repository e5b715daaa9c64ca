package ring

import (
	"context"
	"sync/atomic"

	"github.com/spillway-io/spillway/internal/invariants"

	"github.com/spillway-io/spillway/internal/park"
	"github.com/spillway-io/spillway/internal/release"
)

// MPSC is a bounded FIFO ring for any number of producer goroutines and one
// consumer goroutine. Items from one producer keep their order.
//
// Who may call what: TryPush, PushBatch, Push and PushBatchWait from any
// goroutine; TryPop, PopBatch, Pop and PopBatchWait from one consumer
// goroutine at a time; Close, Len and Cap from any goroutine.
type MPSC[T any] struct {
	// Invariants:
	//   - Producers claim positions [t, t+k) with one CAS of tail from t to t+k,
	//     after checking against headCache (and, if that says full, head) that
	//     the k slots are free. A claimed range is a run: its producer writes the
	//     k values, writes run=k into the first slot, and then publishes the run
	//     with one release store (package release) of seq=t+1 in the first
	//     slot. Runs partition the positions in claim order.
	//   - The consumer alone reads slots and head. At position h it knows the run
	//     ending at readyUntil is published; when h reaches readyUntil, h is the
	//     start of the next run, which is published iff its first slot holds
	//     seq == h+1 (earlier laps left only values <= h+1-cap there, and slots
	//     inside a run keep stale values that the consumer never consults).
	//   - The consumer zeroes the slots it pops and returns them with one atomic
	//     store of head per call; producers load head only when headCache says
	//     full. headCache <= head always, so a stale headCache only reports full
	//     early.
	//   - Once closedBit is set in tail no new run can be claimed; runs claimed
	//     before are still published and drained.
	//   - Waking the consumer: a producer's claim (the CAS) is sequentially
	//     consistent, its publication only a release store, and its look at
	//     notEmpty's count may be performed before that store is visible. So
	//     the consumer, once registered as a waiter and still finding nothing
	//     published at head, parks only if no claim is in flight either
	//     (inFlight, park.AwaitPublished): a claim before its registration it
	//     then sees in tail, and a claim after it is followed by a look at the
	//     count that sees the waiter.
	//
	// Why the fast path is correct: a producer writes only slots inside the run
	// its CAS won, which the consumer released (head) before the CAS; the
	// consumer reads only slots of runs whose publishing store it has observed.
	// A producer that stalls between its CAS and its publishing store delays the
	// consumer at that run (items behind it wait), but never corrupts it.

	_          pad
	head       atomic.Uint64 // next position to pop; stored by the consumer
	readyUntil uint64        // consumer-only: end of the published run being consumed
	_          pad
	tail       atomic.Uint64 // next position to claim, | closedBit; CAS by producers and Close
	headCache  atomic.Uint64 // producers' shared view of head, never ahead of it
	_          pad
	slots      []mpscSlot[T]
	mask       uint64
	notEmpty   park.Waiters // the consumer, parked on an empty ring
	notFull    park.Waiters // producers, parked on a full ring
	_          pad
}

type mpscSlot[T any] struct {
	seq atomic.Uint64 // position+1 once the run starting here is published
	run uint64        // length of the run starting here; written before seq
	val T
}

// NewMPSC returns an MPSC ring holding capacity items, rounded up to a power
// of two (at least 1). It panics if capacity exceeds 2^40.
func NewMPSC[T any](capacity int) *MPSC[T] {
	n := roundCapacity(capacity)
	return &MPSC[T]{slots: make([]mpscSlot[T], n), mask: uint64(n - 1)}
}

// Cap returns the capacity of the ring.
func (r *MPSC[T]) Cap() int { return len(r.slots) }

// Len returns the number of items in the ring, claimed but unpublished ones
// included. Under concurrent use it is a snapshot.
func (r *MPSC[T]) Len() int {
	h := r.head.Load()
	return clampLen(r.tail.Load()&^closedBit, h, len(r.slots))
}

// claim reserves up to n positions and returns the first one and how many it
// reserved; 0 means full or closed.
func (r *MPSC[T]) claim(n uint64) (uint64, uint64) {
	size := uint64(len(r.slots))
	for {
		t := r.tail.Load()
		if t&closedBit != 0 {
			return 0, 0
		}
		free := int64(size) - int64(t-r.headCache.Load())
		if free < int64(n) {
			h := r.head.Load()
			r.headCache.Store(h)
			// h may be ahead of a stale t; the CAS below then fails.
			free = int64(size) - int64(t-h)
		}
		if free <= 0 {
			if r.tail.Load() == t {
				return 0, 0
			}
			continue
		}
		k := min(uint64(free), n)
		if r.tail.CompareAndSwap(t, t+k) {
			return t, k
		}
	}
}

// TryPush adds v if there is room and the ring is open, and reports whether
// it did.
func (r *MPSC[T]) TryPush(v T) bool {
	t, k := r.claim(1)
	if k == 0 {
		return false
	}
	s := &r.slots[t&r.mask]
	s.val = v
	s.run = 1
	release.Store(&s.seq, t+1)
	r.notEmpty.Wake(1)
	return true
}

// PushBatch adds as many items from the front of vs as fit, claiming and
// publishing them with one atomic operation each, and returns how many it
// added.
func (r *MPSC[T]) PushBatch(vs []T) int {
	if len(vs) == 0 {
		return 0
	}
	t, k := r.claim(uint64(len(vs)))
	if k == 0 {
		return 0
	}
	for j, v := range vs[:k] {
		r.slots[(t+uint64(j))&r.mask].val = v
	}
	s := &r.slots[t&r.mask]
	s.run = k
	release.Store(&s.seq, t+1)
	r.notEmpty.Wake(1)
	return int(k)
}

// Head returns the position of the next item the consumer will pop: the
// number of items popped so far. Positions count every item pushed, in FIFO
// order, from 0. Consumer only.
func (r *MPSC[T]) Head() uint64 { return r.head.Load() }

// Pushed returns how many items have been claimed by pushes so far (a
// snapshot: pushes in flight included).
func (r *MPSC[T]) Pushed() uint64 { return r.tail.Load() &^ closedBit }

// TryPop removes and returns the oldest item, if there is one published.
func (r *MPSC[T]) TryPop() (T, bool) {
	v, ok, _ := r.pop()
	return v, ok
}

// ready makes sure the run containing h is known published and reports
// whether it is. REQUIRES: consumer.
func (r *MPSC[T]) ready(h uint64) bool {
	if h != r.readyUntil {
		if invariants.Enabled {
			checkSpan("MPSC published run", h, r.readyUntil, len(r.slots))
		}
		return true
	}
	s := &r.slots[h&r.mask]
	if s.seq.Load() != h+1 {
		return false
	}
	r.readyUntil = h + s.run
	if invariants.Enabled && s.run == 0 {
		invariants.Failf("ring: MPSC: a run of no slots published at %d", h)
	}
	return true
}

func (r *MPSC[T]) pop() (v T, ok, drained bool) {
	h := r.head.Load()
	if !r.ready(h) {
		return v, false, r.tail.Load() == h|closedBit
	}
	s := &r.slots[h&r.mask]
	v = s.val
	var zero T
	s.val = zero
	r.head.Store(h + 1)
	r.notFull.Wake(1)
	return v, true, false
}

// PopBatch moves up to len(dst) of the oldest published items into dst,
// releasing their slots with one atomic store, and returns how many it moved.
func (r *MPSC[T]) PopBatch(dst []T) int {
	n, _ := r.popBatch(dst)
	return n
}

func (r *MPSC[T]) popBatch(dst []T) (int, bool) {
	h0 := r.head.Load()
	h := h0
	var zero T
	for n := range dst {
		if !r.ready(h) {
			break
		}
		s := &r.slots[h&r.mask]
		dst[n] = s.val
		s.val = zero
		h++
	}
	if h == h0 {
		return 0, len(dst) > 0 && r.tail.Load() == h|closedBit
	}
	r.head.Store(h)
	r.notFull.Wake(int(h - h0))
	return int(h - h0), false
}

// inFlight reports whether producers claimed positions the consumer has not
// popped. The consumer's wait asks it after finding nothing published at
// head (park.AwaitPublished): a claim it reports is one whose publishing
// store the consumer has not seen. REQUIRES: consumer.
func (r *MPSC[T]) inFlight() bool { return r.tail.Load()&^closedBit != r.head.Load() }

// Push adds v, waiting while the ring is full. It returns ErrClosed if the
// ring is closed before v is added, or ctx.Err() if ctx ends first; in both
// cases v was not added.
func (r *MPSC[T]) Push(ctx context.Context, v T) error {
	if r.TryPush(v) {
		return nil
	}
	return pushWait(ctx, &r.notFull, r.Cap(), func() bool { return r.TryPush(v) }, r.isClosed, r.free, waitPolicy{})
}

// free is how many more items the ring has room for: a snapshot.
func (r *MPSC[T]) free() int { return r.Cap() - r.Len() }

// PushBatchWait adds all of vs, in order, waiting for room as needed. It
// returns how many items it added and, if that is fewer than len(vs),
// ErrClosed or ctx.Err(). Items of one call stay in order, but other
// producers' items may be interleaved between its batches.
func (r *MPSC[T]) PushBatchWait(ctx context.Context, vs []T) (int, error) {
	return pushAll(ctx, vs, r.PushBatch, &r.notFull, r.Cap(), r.isClosed, r.free, waitPolicy{})
}

func (r *MPSC[T]) isClosed() bool { return r.tail.Load()&closedBit != 0 }

// Pop removes and returns the oldest item, waiting while the ring is empty.
// After Close it returns the remaining items, then ErrClosed.
func (r *MPSC[T]) Pop(ctx context.Context) (T, error) {
	if v, ok, _ := r.pop(); ok {
		return v, nil
	}
	return popSlow(ctx, &r.notEmpty, r.Cap(), r.pop, r.Len, waitPolicy{inFlight: r.inFlight})
}

// PopBatchWait moves up to len(dst) items into dst, waiting until at least
// one is available. After Close it returns the remaining items, then
// (0, ErrClosed).
func (r *MPSC[T]) PopBatchWait(ctx context.Context, dst []T) (int, error) {
	return popSome(ctx, dst, &r.notEmpty, r.Cap(), r.popBatch, r.Len, waitPolicy{inFlight: r.inFlight})
}

// Close closes the ring: later pushes fail, pops drain what is left and then
// fail, and every blocked caller wakes up. Close is idempotent and may be
// called from any goroutine.
func (r *MPSC[T]) Close() {
	closeTail(&r.tail)
	r.notEmpty.WakeAll()
	r.notFull.WakeAll()
}
