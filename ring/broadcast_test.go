package ring

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestBroadcastStress runs one writer and several readers concurrently: every
// reader must see every item, in order.
func TestBroadcastStress(t *testing.T) {
	for _, capacity := range []int{1, 2, 64} {
		t.Run(fmt.Sprintf("cap=%d", capacity), func(t *testing.T) {
			t.Parallel()
			rng := newRand(t)
			n := stressCount(t) * 2
			b := NewBroadcast[int](capacity)
			const readers = 3
			var wg sync.WaitGroup
			for id := range readers {
				r := b.AddReader()
				seed := rng.Uint64()
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := newRandFrom(seed)
					want := 0
					dst := make([]int, 32)
					for {
						var got []int
						if rng.IntN(2) == 0 {
							v, err := r.Pop(context.Background())
							if errors.Is(err, ErrClosed) {
								break
							}
							got = []int{v}
						} else {
							k, err := r.PopBatchWait(context.Background(), dst[:1+rng.IntN(len(dst))])
							if errors.Is(err, ErrClosed) {
								break
							}
							got = dst[:k]
						}
						for _, v := range got {
							if v != want {
								t.Errorf("reader %d got %d, want %d", id, v, want)
								return
							}
							want++
						}
					}
					if want != n {
						t.Errorf("reader %d saw %d items, want %d", id, want, n)
					}
				}()
			}
			vs := make([]int, 0, 40)
			for i := 0; i < n; {
				if rng.IntN(2) == 0 {
					if err := b.Push(context.Background(), i); err != nil {
						t.Fatal(err)
					}
					i++
					continue
				}
				vs = vs[:0]
				for j := range min(1+rng.IntN(cap(vs)), n-i) {
					vs = append(vs, i+j)
				}
				k, err := b.PushBatchWait(context.Background(), vs)
				if err != nil || k != len(vs) {
					t.Fatalf("PushBatchWait = %d, %v", k, err)
				}
				i += k
			}
			b.Close()
			wg.Wait()
		})
	}
}

// TestBroadcastDetachedReaderStopsGating fills the ring behind a reader that
// never reads, detaches it, and checks that the writer can go on, and that a
// writer parked behind it is woken by the detach.
func TestBroadcastDetachedReaderStopsGating(t *testing.T) {
	ctx := context.Background()
	b := NewBroadcast[int](4)
	slow, fast := b.AddReader(), b.AddReader()
	for i := range 4 {
		if !b.TryPush(i) {
			t.Fatalf("TryPush(%d) failed on a ring with room", i)
		}
	}
	for range 4 {
		fast.TryPop()
	}
	if b.TryPush(4) {
		t.Fatal("TryPush succeeded although the slow reader has 4 unread items in a ring of 4")
	}
	done := make(chan error, 1)
	go func() { done <- b.Push(ctx, 4) }()
	waitFor(t, "writer to park", func() bool { p, _ := parked(b); return p == 1 })
	slow.Close()
	if err := <-done; err != nil {
		t.Fatalf("Push after the slow reader detached = %v", err)
	}
	for i := 5; i < 20; i++ {
		if !b.TryPush(i) {
			t.Fatalf("TryPush(%d) failed with only a keeping-up reader", i)
		}
		if v, ok := fast.TryPop(); !ok || v != i-1 {
			t.Fatalf("fast reader got %d, %v; want %d", v, ok, i-1)
		}
	}
	if _, err := slow.Pop(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Pop on a detached reader = %v, want ErrClosed", err)
	}
	slow.Close() // idempotent
}

// TestBroadcastCloseWakesReaders parks readers on an empty ring and the
// writer behind a slow reader, then closes the ring.
func TestBroadcastCloseWakesReaders(t *testing.T) {
	ctx := context.Background()
	b := NewBroadcast[int](2)
	errs := make(chan error, 3)
	for range 3 {
		r := b.AddReader()
		go func() {
			_, err := r.Pop(ctx)
			errs <- err
		}()
	}
	waitFor(t, "readers to park", func() bool { _, c := parked(b); return c == 3 })
	b.Close()
	for range 3 {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Fatalf("Pop = %v, want ErrClosed", err)
		}
	}

	b = NewBroadcast[int](1)
	r := b.AddReader()
	b.TryPush(1)
	go func() { errs <- b.Push(ctx, 2) }()
	waitFor(t, "writer to park", func() bool { p, _ := parked(b); return p == 1 })
	b.Close()
	if err := <-errs; !errors.Is(err, ErrClosed) {
		t.Fatalf("Push = %v, want ErrClosed", err)
	}
	if v, err := r.Pop(ctx); err != nil || v != 1 {
		t.Fatalf("Pop after Close = %d, %v; want 1", v, err)
	}
	if _, err := r.Pop(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Pop of drained closed ring = %v", err)
	}
	if _, err := b.AddReader().Pop(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Pop of a reader added after Close = %v", err)
	}
}

// TestBroadcastAddReaderWhileWriting adds readers while the writer runs at
// full speed: each reader must see a gap-free, in-order suffix of the
// stream, starting no earlier than the tail it was added at.
func TestBroadcastAddReaderWhileWriting(t *testing.T) {
	b := NewBroadcast[int](8)
	const n = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			if err := b.Push(context.Background(), i); err != nil {
				t.Error(err)
				return
			}
		}
		b.Close()
	}()
	for id := range 8 {
		r := b.AddReader()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			first, err := r.Pop(context.Background())
			if errors.Is(err, ErrClosed) {
				return
			}
			want := first + 1
			for {
				v, err := r.Pop(context.Background())
				if errors.Is(err, ErrClosed) {
					break
				}
				if v != want {
					t.Errorf("reader %d: got %d, want %d", id, v, want)
					return
				}
				want++
				if id%2 == 1 && want-first > 100 {
					return // leave early: detaching must not disturb the others
				}
			}
			if want != n {
				t.Errorf("reader %d stopped at %d, want %d", id, want, n)
			}
		}()
	}
	wg.Wait()
}

// TestBroadcastReadAhead: a single-item pop that finds several items takes
// up to readAhead of them from the ring at once; the writer gets their
// slots back, and the reader's Len, PopBatch, Skip and Close account for
// them.
func TestBroadcastReadAhead(t *testing.T) {
	b := NewBroadcast[int](16)
	r := b.AddReader()
	for i := range 16 {
		if !b.TryPush(i) {
			t.Fatalf("push %d refused", i)
		}
	}
	if b.TryPush(16) {
		t.Fatal("push into a full ring accepted")
	}
	if v, ok := r.TryPop(); !ok || v != 0 {
		t.Fatalf("TryPop = %d, %v", v, ok)
	}
	if got, want := r.Cursor(), uint64(readAhead); got != want {
		t.Fatalf("Cursor after one pop = %d, want %d (read ahead)", got, want)
	}
	if got, want := r.Len(), 15; got != want {
		t.Fatalf("Len = %d, want %d", got, want)
	}
	for i := range readAhead {
		if !b.TryPush(16 + i) {
			t.Fatalf("push %d refused: the read-ahead slots were not released", 16+i)
		}
	}
	if n := r.Skip(2); n != 2 {
		t.Fatalf("Skip(2) = %d", n)
	}
	dst := make([]int, 4)
	if n := r.PopBatch(dst); n != 4 || dst[0] != 3 || dst[3] != 6 {
		t.Fatalf("PopBatch = %v", dst[:n])
	}
	// One item is left ahead (7); the batch goes on into the ring.
	dst = make([]int, 3)
	if n := r.PopBatch(dst); n != 3 || dst[0] != 7 || dst[1] != 8 || dst[2] != 9 {
		t.Fatalf("PopBatch = %v, want [7 8 9]", dst[:n])
	}
	if v, ok := r.TryPop(); !ok || v != 10 {
		t.Fatalf("TryPop = %d, %v", v, ok)
	}
	r.Close()
	if _, ok := r.TryPop(); ok {
		t.Fatal("TryPop after Close returned a read-ahead item")
	}
}

// TestBroadcastReadAheadKeepsNoReferences: the items a reader read ahead
// are dropped from its buffer as they are handed out, and all of them on
// Close, so that the buffer keeps nothing alive for the GC but the items
// still to be returned.
func TestBroadcastReadAheadKeepsNoReferences(t *testing.T) {
	b := NewBroadcast[*int](16)
	r := b.AddReader()
	for range 5 {
		b.TryPush(new(int))
	}
	held := func() int {
		n := 0
		for _, p := range r.ahead {
			if p != nil {
				n++
			}
		}
		return n
	}
	if _, ok := r.TryPop(); !ok {
		t.Fatal("TryPop found nothing")
	}
	if got := held(); got != 4 {
		t.Fatalf("read-ahead buffer holds %d references after one pop of five, want 4", got)
	}
	r.TryPop()
	if got := held(); got != 3 {
		t.Fatalf("read-ahead buffer holds %d references after two pops, want 3", got)
	}
	r.PopBatch(make([]*int, 1))
	if got := held(); got != 2 {
		t.Fatalf("read-ahead buffer holds %d references after PopBatch(1), want 2", got)
	}
	r.Close()
	if got := held(); got != 0 {
		t.Fatalf("read-ahead buffer holds %d references after Close", got)
	}
}

func TestBroadcastAt(t *testing.T) {
	const start = 1<<40 + 5
	b := NewBroadcastAt[int](4, start)
	if b.Tail() != start || b.Oldest() != start {
		t.Fatalf("Tail %d, Oldest %d; want both %d", b.Tail(), b.Oldest(), start)
	}
	r := b.AddReader()
	if got := r.Cursor(); got != start {
		t.Fatalf("a new reader's cursor is %d, want %d", got, start)
	}
	b.KeepPassed(true)
	for i := range 6 {
		if i < 4 && !b.TryPush(i) {
			t.Fatalf("push %d found no room", i)
		}
		if i >= 4 {
			if v, ok := r.TryPop(); !ok || v != i-4 {
				t.Fatalf("pop: %d, %v; want %d", v, ok, i-4)
			}
			if !b.TryPush(i) {
				t.Fatalf("push %d found no room after a pop", i)
			}
		}
	}
	if b.Tail() != start+6 || b.Oldest() != start+2 {
		t.Fatalf("Tail %d, Oldest %d; want %d and %d", b.Tail(), b.Oldest(), start+6, start+2)
	}
	late, ok := b.AddReaderAt(start + 2)
	if !ok {
		t.Fatal("AddReaderAt(Oldest) attached nothing")
	}
	for want := 2; want < 6; want++ {
		if v, ok := late.TryPop(); !ok || v != want {
			t.Fatalf("late reader: %d, %v; want %d", v, ok, want)
		}
	}
	if _, ok := b.AddReaderAt(start + 1); ok {
		t.Fatal("AddReaderAt below Oldest attached a reader")
	}
}
