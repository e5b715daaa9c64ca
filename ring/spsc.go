package ring

import (
	"context"
	"sync/atomic"

	"github.com/spillway-io/spillway/internal/park"
)

// SPSC is a bounded FIFO ring for one producer goroutine and one consumer
// goroutine.
//
// Who may call what: TryPush, PushBatch, Push and PushBatchWait from one
// producer goroutine at a time; TryPop, PopBatch, Pop and PopBatchWait from
// one consumer goroutine at a time; Close, Len and Cap from any goroutine.
// Two concurrent producers (or consumers) are a data race.
//
// Invariants:
//   - head and tail are positions; head <= tail&^closedBit <= head+cap.
//   - Slots at positions [head, tail) hold items and belong to the consumer;
//     the others are empty (zero) and belong to the producer.
//   - The producer publishes slots by a CAS of tail (one per call, batches
//     included); the consumer returns them by a store of head (one per call).
//     Both are sequentially consistent atomics, so a slot written before the
//     publishing atomic is visible to whoever loads the atomic afterwards.
//   - tailCache (consumer-only) <= tail and headCache (producer-only) <= head:
//     each side re-reads the other's index only when its cached view says
//     empty (consumer) or full (producer). In steady state only slot data
//     crosses cores.
//   - Once closedBit is set in tail, tail never changes again.
//
// Why the fast path is correct: the producer alone writes slots outside
// [head, tail) and the consumer alone reads slots inside it; a stale cache
// only under-estimates what the other side has released, which makes an
// operation report full or empty early, never touch a slot it does not own.
type SPSC[T any] struct {
	_         pad
	head      atomic.Uint64 // next position to pop; stored by the consumer
	tailCache uint64        // consumer's view of tail, without closedBit
	_         pad
	tail      atomic.Uint64 // next position to push, | closedBit; CAS by the producer and Close
	headCache uint64        // producer's view of head
	_         pad
	buf       []T
	mask      uint64
	notEmpty  park.Waiters // the consumer, parked on an empty ring
	notFull   park.Waiters // the producer, parked on a full ring
	_         pad
}

// NewSPSC returns an SPSC ring holding capacity items, rounded up to a power
// of two (at least 1). It panics if capacity exceeds 2^40.
func NewSPSC[T any](capacity int) *SPSC[T] {
	n := roundCapacity(capacity)
	return &SPSC[T]{buf: make([]T, n), mask: uint64(n - 1)}
}

// Cap returns the capacity of the ring.
func (r *SPSC[T]) Cap() int { return len(r.buf) }

// Len returns the number of items in the ring. Under concurrent use it is a
// snapshot that may be out of date by the time it returns.
func (r *SPSC[T]) Len() int {
	h := r.head.Load()
	return clampLen(r.tail.Load()&^closedBit, h, len(r.buf))
}

// TryPush adds v if there is room and the ring is open, and reports whether
// it did.
func (r *SPSC[T]) TryPush(v T) bool {
	t := r.tail.Load()
	if t&closedBit != 0 {
		return false
	}
	if t-r.headCache >= uint64(len(r.buf)) {
		r.headCache = r.head.Load()
		if t-r.headCache >= uint64(len(r.buf)) {
			return false
		}
	}
	i := t & r.mask
	r.buf[i] = v
	if !r.tail.CompareAndSwap(t, t+1) { // only Close changes tail under us
		var zero T
		r.buf[i] = zero
		return false
	}
	r.notEmpty.Wake(1)
	return true
}

// PushBatch adds as many items from the front of vs as fit, publishing them
// with one atomic operation, and returns how many it added (0 when full or
// closed).
func (r *SPSC[T]) PushBatch(vs []T) int {
	t := r.tail.Load()
	if t&closedBit != 0 || len(vs) == 0 {
		return 0
	}
	size := uint64(len(r.buf))
	free := size - (t - r.headCache)
	if free < uint64(len(vs)) {
		r.headCache = r.head.Load()
		free = size - (t - r.headCache)
	}
	n := min(free, uint64(len(vs)))
	if n == 0 {
		return 0
	}
	copyIn(r.buf, t&r.mask, vs[:n])
	if !r.tail.CompareAndSwap(t, t+n) {
		clearRange(r.buf, t&r.mask, n)
		return 0
	}
	r.notEmpty.Wake(1)
	return int(n)
}

// TryPop removes and returns the oldest item, if there is one.
func (r *SPSC[T]) TryPop() (T, bool) {
	v, ok, _ := r.pop()
	return v, ok
}

// pop is TryPop that also reports whether the ring is closed and drained.
func (r *SPSC[T]) pop() (v T, ok, drained bool) {
	h := r.head.Load()
	if h == r.tailCache {
		t := r.tail.Load()
		r.tailCache = t &^ closedBit
		if h == r.tailCache {
			return v, false, t&closedBit != 0
		}
	}
	i := h & r.mask
	v = r.buf[i]
	var zero T
	r.buf[i] = zero
	r.head.Store(h + 1)
	r.notFull.Wake(1)
	return v, true, false
}

// PopBatch moves up to len(dst) of the oldest items into dst, releasing their
// slots with one atomic store, and returns how many it moved.
func (r *SPSC[T]) PopBatch(dst []T) int {
	n, _ := r.popBatch(dst)
	return n
}

func (r *SPSC[T]) popBatch(dst []T) (n int, drained bool) {
	h := r.head.Load()
	avail := r.tailCache - h
	if avail < uint64(len(dst)) {
		t := r.tail.Load()
		r.tailCache = t &^ closedBit
		avail = r.tailCache - h
		if avail == 0 {
			return 0, t&closedBit != 0
		}
	}
	m := min(avail, uint64(len(dst)))
	if m == 0 {
		return 0, false
	}
	copyOut(dst[:m], r.buf, h&r.mask)
	clearRange(r.buf, h&r.mask, m)
	r.head.Store(h + m)
	r.notFull.Wake(1)
	return int(m), false
}

// Push adds v, waiting while the ring is full. It returns ErrClosed if the
// ring is closed before v is added, or ctx.Err() if ctx ends first; in both
// cases v was not added.
func (r *SPSC[T]) Push(ctx context.Context, v T) error {
	if r.TryPush(v) {
		return nil
	}
	return r.pushSlow(ctx, v)
}

func (r *SPSC[T]) pushSlow(ctx context.Context, v T) error {
	return pushWait(ctx, &r.notFull, r.Cap(), func() bool { return r.TryPush(v) }, r.isClosed, r.free, nil)
}

// free is how many more items the ring has room for: a snapshot.
func (r *SPSC[T]) free() int { return len(r.buf) - r.Len() }

// PushBatchWait adds all of vs, in order, waiting for room as needed. It
// returns how many items it added and, if that is fewer than len(vs),
// ErrClosed or ctx.Err().
func (r *SPSC[T]) PushBatchWait(ctx context.Context, vs []T) (int, error) {
	return pushAll(ctx, vs, r.PushBatch, &r.notFull, r.Cap(), r.isClosed, r.free, nil)
}

func (r *SPSC[T]) isClosed() bool { return r.tail.Load()&closedBit != 0 }

// Pop removes and returns the oldest item, waiting while the ring is empty.
// After Close it returns the remaining items, then ErrClosed.
func (r *SPSC[T]) Pop(ctx context.Context) (T, error) {
	if v, ok, _ := r.pop(); ok {
		return v, nil
	}
	return popSlow(ctx, &r.notEmpty, r.Cap(), r.pop, r.Len, nil)
}

// PopBatchWait moves up to len(dst) items into dst, waiting until at least
// one is available. After Close it returns the remaining items, then
// (0, ErrClosed).
func (r *SPSC[T]) PopBatchWait(ctx context.Context, dst []T) (int, error) {
	return popSome(ctx, dst, &r.notEmpty, r.Cap(), r.popBatch, r.Len, nil)
}

// Close closes the ring: later pushes fail, pops drain what is left and then
// fail, and every blocked caller wakes up. Close is idempotent and may be
// called from any goroutine.
func (r *SPSC[T]) Close() {
	closeTail(&r.tail)
	r.notEmpty.WakeAll()
	r.notFull.WakeAll()
}
