package ring

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/spillway-io/spillway/internal/invariants"

	"github.com/spillway-io/spillway/internal/park"
	"github.com/spillway-io/spillway/internal/release"
)

// Broadcast is a bounded ring with one writer and any number of readers,
// each with its own cursor (the Disruptor's multicast). Every reader sees
// every item pushed after it was added, in order; items are stored once and
// never copied per reader. The slowest reader gates the writer: TryPush
// reports false while the writer would overwrite an item some reader has not
// read yet, which lets callers spill instead of blocking.
//
// Who may call what: TryPush, PushBatch, Push and PushBatchWait from one
// writer goroutine at a time; AddReader, Close, Len and Cap from any
// goroutine; each Reader's methods from one goroutine at a time per reader.
type Broadcast[T any] struct {
	// Invariants:
	//   - The writer publishes positions [old tail, new tail) with one light
	//     store of tail per call (release.StoreLight: on amd64 Linux a plain
	//     store, in release order), after writing their slots. A reader that
	//     waits registers, and before it waits for good passes release.Heavy
	//     and looks again (park.AwaitLight), so the writer's look at the
	//     waiter count, which may overtake that store, costs no reader more
	//     than AwaitLight's first wait (1 ms) and loses none.
	//   - A reader reads the slots of positions [c, c+n) only while its cursor
	//     is c and c+n <= tail, and releases them with one atomic store of
	//     cursor = c+n (n = 1 for a single item without read-ahead).
	//   - gateCache (writer-only) is at most the minimum cursor of the attached
	//     readers, or at most tail when there are none. The writer writes
	//     position p only when p < gateCache+cap, so it never overwrites a slot
	//     some attached reader has still to read.
	//   - The set of readers changes, and gateCache is recomputed, only under mu.
	//     AddReader sets the new cursor to tail under mu; any gate computed
	//     earlier was at most the tail of that moment, so the new reader's first
	//     slot cannot have been handed to the writer. Detached readers stop
	//     counting at the next recomputation.
	//   - Slots below gateCache are passed by every reader. The writer zeroes
	//     them when it recomputes the gate (at the latest every half ring of
	//     pushes, or when it finds the ring full), so the ring retains at most
	//     half a ring plus the unread items for the GC.
	//   - Closing follows lightClose: every push announces itself before it
	//     looks at the ring's state, and Close waits out a push its barrier
	//     caught in progress. Once the state is closed tail never changes.
	//   - Goroutines other than the writer that load tail under mu (AddReader)
	//     see every position the writer's gate was computed from: refreshGate
	//     computes it under mu, whose unlock follows the stores of tail before.

	_         pad
	tail      atomic.Uint64 // next position to write; light stores by the writer
	_         pad
	announced atomic.Uint64 // writer-only stores: tail once the push in progress is done (lightClose)
	gateCache uint64        // writer-only: lower bound of every attached reader's cursor
	gateAt    uint64        // writer-only: tail when gateCache was computed
	cleared   uint64        // writer-only: slots below this position have been zeroed
	keep      bool          // writer-only: do not zero passed slots (KeepPassed)
	_         pad
	buf       []T
	mask      uint64
	lc        lightClose
	mu        sync.Mutex                   // guards changes to readers and gate recomputation
	readers   atomic.Pointer[[]*Reader[T]] // copy-on-write set of attached readers
	notFull   park.Waiters                 // the writer, parked behind the slowest reader
	notEmpty  park.Waiters                 // readers parked on an empty ring
	_         pad
}

// Reader is one cursor over a Broadcast. Its methods, Close included, must
// be called from one goroutine at a time: the reader's own.
//
// A single-item pop (Pop, TryPop) that finds several items takes up to
// 8 of them at once: it copies them into the reader's own ahead
// buffer and releases their slots with one store of cursor, then hands
// them out one per call. Between its stores of cursor a reader costs the
// writer nothing, which is what makes readers popping one at a time cheap
// for the writer. Items read ahead
// are this reader's alone: the writer may reuse their slots, PopBatch,
// Skip and Len count them first, and Close drops them with the reader.
type Reader[T any] struct {
	_         pad
	cursor    atomic.Uint64 // next position to read; stored by the reader, loaded by the writer
	tailCache uint64        // reader-only: its view of tail
	detached  bool          // reader-only: Close was called
	_         pad
	b         *Broadcast[T]
	ai, an    int // reader-only: ahead[ai:an] were read ahead by pop, not yet returned
	ahead     [readAhead]T
}

// readAhead is how many items a single-item pop takes from the ring at once
// when they are there: one cursor store for all of them.
const readAhead = 8

// NewBroadcast returns a Broadcast ring holding capacity items, rounded up to
// a power of two (at least 1). It panics if capacity exceeds 2^40.
func NewBroadcast[T any](capacity int) *Broadcast[T] { return NewBroadcastAt[T](capacity, 0) }

// NewBroadcastAt is NewBroadcast for a ring whose first item gets position
// start (Tail() is start until the first push): for an owner whose
// positions continue a sequence of its own, such as a log's offsets.
func NewBroadcastAt[T any](capacity int, start uint64) *Broadcast[T] {
	n := roundCapacity(capacity)
	b := &Broadcast[T]{buf: make([]T, n), mask: uint64(n - 1)}
	b.lc.announced, b.lc.tail = &b.announced, &b.tail
	b.tail.Store(start)
	b.announced.Store(start)
	b.gateCache, b.gateAt, b.cleared = start, start, start
	b.readers.Store(new([]*Reader[T]))
	return b
}

// Cap returns the capacity of the ring.
func (b *Broadcast[T]) Cap() int { return len(b.buf) }

// Len returns the number of items the slowest attached reader has yet to
// read. Under concurrent use it is a snapshot.
func (b *Broadcast[T]) Len() int {
	t := b.tail.Load()
	low := t
	for _, r := range *b.readers.Load() {
		low = min(low, r.cursor.Load())
	}
	return clampLen(t, low, len(b.buf))
}

// AddReader attaches a reader that sees every item pushed from now on.
// Readers added after Close see nothing and return ErrClosed.
func (b *Broadcast[T]) AddReader() *Reader[T] {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := &Reader[T]{b: b}
	t := b.tail.Load()
	r.cursor.Store(t)
	r.tailCache = t
	old := *b.readers.Load()
	next := append(slices.Clip(old), r)
	b.readers.Store(&next)
	return r
}

// refreshGate recomputes gateCache and zeroes the slots every reader has
// passed. REQUIRES: writer.
func (b *Broadcast[T]) refreshGate(t uint64) {
	b.mu.Lock()
	g := t
	for _, r := range *b.readers.Load() {
		c := r.cursor.Load()
		if invariants.Enabled {
			checkSpan("Broadcast reader at the gate", c, t, len(b.buf))
		}
		g = min(g, c)
	}
	b.mu.Unlock()
	b.gateCache, b.gateAt = g, t
	// Positions in [cleared, g) are read by everyone. Those of them at or
	// past t-cap still hold their own items (slots below were reused by
	// newer positions, which happens only while KeepPassed held cleared
	// back): zero those.
	if g > b.cleared && !b.keep {
		from := b.cleared
		if size := uint64(len(b.buf)); t > size {
			from = max(from, t-size)
		}
		if g > from {
			clearRange(b.buf, from&b.mask, g-from)
		}
		b.cleared = g
	}
}

// room returns how many positions from t the writer may write, refreshing the
// gate when the cached one allows fewer than want or when half a ring has been
// written since the last refresh. REQUIRES: writer.
func (b *Broadcast[T]) room(t, want uint64) uint64 {
	size := uint64(len(b.buf))
	free := size - (t - b.gateCache)
	if free < want || t-b.gateAt > size/2 {
		b.refreshGate(t)
		free = size - (t - b.gateCache)
	}
	return free
}

// TryPush adds v if no attached reader would lose an unread item and the ring
// is open, and reports whether it did.
func (b *Broadcast[T]) TryPush(v T) bool {
	t := b.tail.Load()
	if b.room(t, 1) == 0 || !b.lc.begin(t, 1) {
		return false
	}
	b.buf[t&b.mask] = v
	release.StoreLight(&b.tail, t+1)
	b.notEmpty.WakeAll()
	return true
}

// PushBatch adds as many items from the front of vs as fit, publishing them
// with one store, and returns how many it added.
func (b *Broadcast[T]) PushBatch(vs []T) int {
	if len(vs) == 0 {
		return 0
	}
	t := b.tail.Load()
	n := min(b.room(t, uint64(len(vs))), uint64(len(vs)))
	if n == 0 || !b.lc.begin(t, n) {
		return 0
	}
	copyIn(b.buf, t&b.mask, vs[:n])
	release.StoreLight(&b.tail, t+n)
	b.notEmpty.WakeAll()
	return int(n)
}

func (b *Broadcast[T]) isClosed() bool { return !b.lc.open() }

// Push adds v, waiting while the slowest reader has not made room. It
// returns ErrClosed if the ring is closed before v is added, or ctx.Err() if
// ctx ends first; in both cases v was not added.
func (b *Broadcast[T]) Push(ctx context.Context, v T) error {
	if b.TryPush(v) {
		return nil
	}
	return pushWait(ctx, &b.notFull, b.Cap(), func() bool { return b.TryPush(v) }, b.isClosed, b.free, waitPolicy{})
}

// free is how many more items the ring has room for: a snapshot.
func (b *Broadcast[T]) free() int { return b.Cap() - b.Len() }

// PushBatchWait adds all of vs, in order, waiting for room as needed. It
// returns how many items it added and, if that is fewer than len(vs),
// ErrClosed or ctx.Err().
func (b *Broadcast[T]) PushBatchWait(ctx context.Context, vs []T) (int, error) {
	n := b.PushBatch(vs)
	if n == len(vs) {
		return n, nil
	}
	m, err := pushAll(ctx, vs[n:], b.PushBatch, &b.notFull, b.Cap(), b.isClosed, b.free, waitPolicy{})
	return n + m, err
}

// Close closes the ring: later pushes fail, readers drain what is left and
// then fail, and every blocked caller wakes up. Close is idempotent and may
// be called from any goroutine; it waits for a push in progress.
func (b *Broadcast[T]) Close() {
	if b.lc.close() {
		b.notEmpty.WakeAll()
		b.notFull.WakeAll()
	}
}

// Len returns the number of items this reader has yet to read.
func (r *Reader[T]) Len() int {
	c := r.cursor.Load()
	return clampLen(r.b.tail.Load(), c, len(r.b.buf)) + r.an - r.ai
}

// takeAhead moves up to len(dst) of the items pop read ahead into dst and
// returns how many.
func (r *Reader[T]) takeAhead(dst []T) int {
	n := copy(dst, r.ahead[r.ai:r.an])
	clear(r.ahead[r.ai : r.ai+n])
	r.ai += n
	return n
}

// TryPop returns the next item for this reader, if there is one.
func (r *Reader[T]) TryPop() (T, bool) {
	v, ok, _ := r.pop()
	return v, ok
}

func (r *Reader[T]) pop() (v T, ok, done bool) {
	if r.detached {
		return v, false, true
	}
	if r.ai < r.an {
		v = r.ahead[r.ai]
		var zero T
		r.ahead[r.ai] = zero
		r.ai++
		return v, true, false
	}
	// Nothing read ahead: take up to readAhead items, looking at tail when
	// the cached view shows fewer (once per read-ahead, not per item).
	c := r.cursor.Load()
	if r.tailCache-c < readAhead {
		closed := r.b.lc.closed() // before tail: closed means tail is final
		r.tailCache = r.b.tail.Load()
		if c == r.tailCache {
			return v, false, closed
		}
	}
	m := min(r.tailCache-c, readAhead)
	if m == 1 {
		v = r.b.buf[c&r.b.mask]
	} else {
		copyOut(r.ahead[:m], r.b.buf, c&r.b.mask)
		v = r.ahead[0]
		var zero T
		r.ahead[0] = zero
		r.ai, r.an = 1, int(m)
	}
	r.cursor.Store(c + m)
	r.b.notFull.Wake(1)
	return v, true, false
}

// PopBatch copies up to len(dst) of this reader's next items into dst,
// releasing them with one atomic store, and returns how many it copied.
func (r *Reader[T]) PopBatch(dst []T) int {
	n, _ := r.popBatch(dst)
	return n
}

func (r *Reader[T]) popBatch(dst []T) (int, bool) {
	if r.detached {
		return 0, true
	}
	ahead := 0
	if r.ai < r.an {
		ahead = r.takeAhead(dst)
		dst = dst[ahead:]
	}
	c := r.cursor.Load()
	avail := r.tailCache - c
	if avail < uint64(len(dst)) {
		closed := r.b.lc.closed() // before tail: closed means tail is final
		r.tailCache = r.b.tail.Load()
		avail = r.tailCache - c
		if avail == 0 {
			return ahead, ahead == 0 && closed
		}
	}
	m := min(avail, uint64(len(dst)))
	if m == 0 {
		return ahead, false
	}
	copyOut(dst[:m], r.b.buf, c&r.b.mask)
	r.cursor.Store(c + m)
	if invariants.Enabled {
		checkSpan("Broadcast read", c+m, r.b.tail.Load(), len(r.b.buf))
	}
	r.b.notFull.Wake(1)
	return ahead + int(m), false
}

// Pop returns this reader's next item, waiting while there is none. After
// the ring is closed it returns the remaining items, then ErrClosed; after
// the reader is closed, ErrClosed.
func (r *Reader[T]) Pop(ctx context.Context) (T, error) {
	if v, ok, _ := r.pop(); ok {
		return v, nil
	}
	return popSlow(ctx, &r.b.notEmpty, r.b.Cap(), r.pop, r.Len, waitPolicy{light: true})
}

// PopBatchWait copies up to len(dst) items into dst, waiting until at least
// one is available; it ends like Pop.
func (r *Reader[T]) PopBatchWait(ctx context.Context, dst []T) (int, error) {
	if n, _ := r.popBatch(dst); n > 0 {
		return n, nil
	}
	return popSome(ctx, dst, &r.b.notEmpty, r.b.Cap(), r.popBatch, r.Len, waitPolicy{light: true})
}

// Close detaches the reader: it stops gating the writer, and its later pops
// return ErrClosed. Close is idempotent. Like the reader's other methods it
// must not run concurrently with them (the writer may reuse the slots the
// reader was about to read); to stop a reader blocked in Pop, cancel the
// context given to Pop.
func (r *Reader[T]) Close() {
	if r.detached {
		return
	}
	r.detached = true
	clear(r.ahead[:])
	r.ai, r.an = 0, 0
	b := r.b
	b.mu.Lock()
	old := *b.readers.Load()
	next := slices.DeleteFunc(slices.Clone(old), func(x *Reader[T]) bool { return x == r })
	b.readers.Store(&next)
	b.mu.Unlock()
	b.notFull.WakeAll() // the writer may have been waiting for this reader
}
