package ring

import "slices"

// The methods in this file let the owner of a Broadcast's writer role move
// readers between the ring and another store (a spill log): see how far the
// ring still holds its items, copy them out, and attach a reader at a past
// position. "REQUIRES: writer" means the caller holds the writer role (no
// push runs concurrently); a reader's methods need that reader's role.

// Tail returns the position the next pushed item will get: how many items
// have been pushed.
func (b *Broadcast[T]) Tail() uint64 { return b.tail.Load() }

// Oldest returns the lowest position whose item the ring still holds: items
// at positions in [Oldest(), Tail()) can be read with At and a reader can be
// attached there. REQUIRES: writer.
func (b *Broadcast[T]) Oldest() uint64 {
	t := b.Tail()
	low := b.cleared
	if t > uint64(len(b.buf)) {
		low = max(low, t-uint64(len(b.buf)))
	}
	return low
}

// At returns the item at position p, which must be in [Oldest(), Tail()).
// REQUIRES: writer, so that the slot is not reused while it is read.
func (b *Broadcast[T]) At(p uint64) (T, bool) {
	if p < b.Oldest() || p >= b.Tail() {
		var zero T
		return zero, false
	}
	return b.buf[p&b.mask], true
}

// Room returns how many items, up to want, the writer could push now
// without overwriting an item an attached reader has not read. It looks at
// the readers' cursors only when its cached view of them allows fewer than
// want. REQUIRES: writer.
func (b *Broadcast[T]) Room(want int) int {
	if !b.lc.open() || want <= 0 {
		return 0
	}
	return int(min(b.room(b.tail.Load(), uint64(want)), uint64(want)))
}

// AddReaderAt attaches a reader whose first item is at position p, and
// reports false (attaching nothing) unless p is in [Oldest(), Tail()].
// REQUIRES: writer: the writer's gate is lowered to p before it pushes
// again, so the slots from p on are not reused under the new reader.
func (b *Broadcast[T]) AddReaderAt(p uint64) (*Reader[T], bool) {
	if p < b.Oldest() || p > b.Tail() {
		return nil, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r := &Reader[T]{b: b}
	r.cursor.Store(p)
	r.tailCache = p
	old := *b.readers.Load()
	next := append(slices.Clip(old), r)
	b.readers.Store(&next)
	b.gateCache = min(b.gateCache, p)
	return r, true
}

// KeepPassed sets whether the writer keeps the items every reader has
// passed instead of zeroing them: while it does, the ring holds the last
// Cap() items (and their references, for the GC), so Oldest() stays at
// Tail()-Cap() and AddReaderAt can attach there. REQUIRES: writer.
func (b *Broadcast[T]) KeepPassed(keep bool) { b.keep = keep }

// Cursor returns the position of the next item the reader takes from the
// ring; items a single-item pop read ahead (at most 8, see Reader)
// count as taken. Any goroutine may call it; from others than the reader's
// it is a snapshot.
func (r *Reader[T]) Cursor() uint64 { return r.cursor.Load() }

// Skip moves the reader past up to n of its unread items without reading
// them, and returns how many it skipped.
func (r *Reader[T]) Skip(n int) int {
	if r.detached || n <= 0 {
		return 0
	}
	if r.ai < r.an {
		k := min(n, r.an-r.ai)
		clear(r.ahead[r.ai : r.ai+k])
		r.ai += k
		return k
	}
	c := r.cursor.Load()
	r.tailCache = r.b.Tail() // the reader's view of tail must stay at or past its cursor
	avail := r.tailCache - c
	k := min(avail, uint64(n))
	if k > 0 {
		r.cursor.Store(c + k)
		r.b.notFull.Wake(1)
	}
	return int(k)
}
