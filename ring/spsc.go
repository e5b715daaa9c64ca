package ring

import (
	"context"
	"sync/atomic"

	"github.com/spillway-io/spillway/internal/invariants"

	"github.com/spillway-io/spillway/internal/park"
	"github.com/spillway-io/spillway/internal/release"
)

// SPSC is a bounded FIFO ring for one producer goroutine and one consumer
// goroutine.
//
// Who may call what: TryPush, PushBatch, Push and PushBatchWait from one
// producer goroutine at a time; TryPop, PopBatch, Pop and PopBatchWait from
// one consumer goroutine at a time; Close, Len and Cap from any goroutine.
// Two concurrent producers (or consumers) are a data race.
type SPSC[T any] struct {
	// Invariants:
	//   - head and tail are positions; head <= tail <= head+cap.
	//   - Slots at positions [head, tail) hold items and belong to the consumer;
	//     the others are empty (zero) and belong to the producer.
	//   - Only the producer stores tail and only the consumer stores head, each
	//     with a light store (release.StoreLight: on amd64 Linux a plain MOV, no
	//     locked instruction), one per call, batches included. A store becomes
	//     visible after every earlier store of its goroutine (release order),
	//     so a slot written before the store that publishes it is visible to
	//     whoever loads the new index.
	//   - tailCache (consumer-only) <= tail and headCache (producer-only) <= head:
	//     each side re-reads the other's index only when its cached view says
	//     empty (consumer) or full (producer). In steady state only slot data
	//     crosses cores.
	//   - Closing follows lightClose: every push announces itself (begin)
	//     before it looks at the ring's state, and Close waits out a push its
	//     barrier caught in progress. Once the state is closed tail never
	//     changes, and a consumer that loads closed and then tail has seen
	//     every item.
	//   - Waking: a side's look at the other's waiter count may be performed
	//     before its light store of its index is visible. A waiter therefore
	//     registers (a sequentially consistent add) and, before it waits for
	//     good, calls release.Heavy and looks once more (park.AwaitLight,
	//     which first waits at most 1 ms for a wake-up): a store issued before
	//     the barrier is visible to that look, and a waker that stores after
	//     it loads the count after it and sees the waiter.
	//
	// Why the fast path is correct: the producer alone writes slots outside
	// [head, tail) and the consumer alone reads slots inside it; a stale cache
	// only under-estimates what the other side has released, which makes an
	// operation report full or empty early, never touch a slot it does not own.
	// Neither side executes a locked instruction: where no asymmetric barrier
	// exists (release.Asymmetric false: other systems, the race detector) the
	// light stores are sequentially consistent instead, and the same argument
	// holds without the barrier.

	_         pad
	head      atomic.Uint64 // next position to pop; light stores by the consumer
	tailCache uint64        // consumer's view of tail
	_         pad
	tail      atomic.Uint64 // next position to push; light stores by the producer
	_         pad
	headCache uint64        // producer's view of head
	announced atomic.Uint64 // tail once the push in progress is done (lightClose)
	_         pad
	buf       []T
	mask      uint64
	lc        lightClose
	notEmpty  park.Waiters // the consumer, parked on an empty ring
	notFull   park.Waiters // the producer, parked on a full ring
	_         pad
}

// NewSPSC returns an SPSC ring holding capacity items, rounded up to a power
// of two (at least 1). It panics if capacity exceeds 2^40.
func NewSPSC[T any](capacity int) *SPSC[T] {
	n := roundCapacity(capacity)
	r := &SPSC[T]{buf: make([]T, n), mask: uint64(n - 1)}
	r.lc.announced, r.lc.tail = &r.announced, &r.tail
	return r
}

// Cap returns the capacity of the ring.
func (r *SPSC[T]) Cap() int { return len(r.buf) }

// Len returns the number of items in the ring. Under concurrent use it is a
// snapshot that may be out of date by the time it returns.
func (r *SPSC[T]) Len() int {
	h := r.head.Load()
	return clampLen(r.tail.Load(), h, len(r.buf))
}

// TryPush adds v if there is room and the ring is open, and reports whether
// it did.
func (r *SPSC[T]) TryPush(v T) bool {
	t := r.tail.Load()
	if t-r.headCache >= uint64(len(r.buf)) {
		r.headCache = r.head.Load()
		if t-r.headCache >= uint64(len(r.buf)) {
			return false
		}
	}
	if !r.lc.begin(t, 1) {
		return false
	}
	r.buf[t&r.mask] = v
	release.StoreLight(&r.tail, t+1)
	if invariants.Enabled {
		checkSpan("SPSC push", r.head.Load(), t+1, len(r.buf))
	}
	r.notEmpty.Wake(1)
	return true
}

// PushBatch adds as many items from the front of vs as fit, publishing them
// with one store, and returns how many it added (0 when full or closed).
func (r *SPSC[T]) PushBatch(vs []T) int {
	if len(vs) == 0 {
		return 0
	}
	t := r.tail.Load()
	size := uint64(len(r.buf))
	free := size - (t - r.headCache)
	if free < uint64(len(vs)) {
		r.headCache = r.head.Load()
		free = size - (t - r.headCache)
	}
	n := min(free, uint64(len(vs)))
	if n == 0 || !r.lc.begin(t, n) {
		return 0
	}
	copyIn(r.buf, t&r.mask, vs[:n])
	release.StoreLight(&r.tail, t+n)
	if invariants.Enabled {
		checkSpan("SPSC push", r.head.Load(), t+n, len(r.buf))
	}
	r.notEmpty.Wake(1)
	return int(n)
}

// TryPop removes and returns the oldest item, if there is one.
func (r *SPSC[T]) TryPop() (T, bool) {
	v, ok, _ := r.pop()
	return v, ok
}

// refresh reloads tailCache when the consumer has caught up with it and
// returns how many items are available from h; drained reports that none
// are and none will come.
func (r *SPSC[T]) refresh(h uint64) (avail uint64, drained bool) {
	closed := r.lc.closed() // before tail: closed means tail is final
	r.tailCache = r.tail.Load()
	avail = r.tailCache - h
	return avail, avail == 0 && closed
}

// pop is TryPop that also reports whether the ring is closed and drained.
func (r *SPSC[T]) pop() (v T, ok, drained bool) {
	h := r.head.Load()
	if h == r.tailCache {
		if avail, drained := r.refresh(h); avail == 0 {
			return v, false, drained
		}
	}
	i := h & r.mask
	v = r.buf[i]
	var zero T
	r.buf[i] = zero
	release.StoreLight(&r.head, h+1)
	if invariants.Enabled {
		checkSpan("SPSC pop", h+1, r.tail.Load(), len(r.buf))
	}
	r.notFull.Wake(1)
	return v, true, false
}

// PopBatch moves up to len(dst) of the oldest items into dst, releasing their
// slots with one store, and returns how many it moved.
func (r *SPSC[T]) PopBatch(dst []T) int {
	n, _ := r.popBatch(dst)
	return n
}

func (r *SPSC[T]) popBatch(dst []T) (n int, drained bool) {
	h := r.head.Load()
	avail := r.tailCache - h
	if avail < uint64(len(dst)) {
		if avail, drained = r.refresh(h); avail == 0 {
			return 0, drained
		}
	}
	m := min(avail, uint64(len(dst)))
	if m == 0 {
		return 0, false
	}
	copyOut(dst[:m], r.buf, h&r.mask)
	clearRange(r.buf, h&r.mask, m)
	release.StoreLight(&r.head, h+m)
	if invariants.Enabled {
		checkSpan("SPSC pop", h+m, r.tail.Load(), len(r.buf))
	}
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
	return pushWait(ctx, &r.notFull, r.Cap(), func() bool { return r.TryPush(v) }, r.isClosed, r.free, waitPolicy{light: true})
}

// free is how many more items the ring has room for: a snapshot.
func (r *SPSC[T]) free() int { return len(r.buf) - r.Len() }

// PushBatchWait adds all of vs, in order, waiting for room as needed. It
// returns how many items it added and, if that is fewer than len(vs),
// ErrClosed or ctx.Err().
func (r *SPSC[T]) PushBatchWait(ctx context.Context, vs []T) (int, error) {
	n := r.PushBatch(vs)
	if n == len(vs) {
		return n, nil
	}
	m, err := pushAll(ctx, vs[n:], r.PushBatch, &r.notFull, r.Cap(), r.isClosed, r.free, waitPolicy{light: true})
	return n + m, err
}

func (r *SPSC[T]) isClosed() bool { return !r.lc.open() }

// Pop removes and returns the oldest item, waiting while the ring is empty.
// After Close it returns the remaining items, then ErrClosed.
func (r *SPSC[T]) Pop(ctx context.Context) (T, error) {
	if v, ok, _ := r.pop(); ok {
		return v, nil
	}
	return popSlow(ctx, &r.notEmpty, r.Cap(), r.pop, r.Len, waitPolicy{light: true})
}

// PopBatchWait moves up to len(dst) items into dst, waiting until at least
// one is available. After Close it returns the remaining items, then
// (0, ErrClosed).
func (r *SPSC[T]) PopBatchWait(ctx context.Context, dst []T) (int, error) {
	if n, _ := r.popBatch(dst); n > 0 {
		return n, nil
	}
	return popSome(ctx, dst, &r.notEmpty, r.Cap(), r.popBatch, r.Len, waitPolicy{light: true})
}

// Close closes the ring: later pushes fail, pops drain what is left and then
// fail, and every blocked caller wakes up. Close is idempotent and may be
// called from any goroutine; it waits for a push in progress to finish.
func (r *SPSC[T]) Close() {
	if r.lc.close() {
		r.notEmpty.WakeAll()
		r.notFull.WakeAll()
	}
}
