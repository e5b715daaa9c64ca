package ring

import "testing"

// TestBroadcastControl: the writer-side controls. A reader detached by its
// owner stops gating; At reads what the ring still holds; a reader attached
// at a past position sees exactly the items from there; Skip drops unread
// items.
func TestBroadcastControl(t *testing.T) {
	b := NewBroadcast[int](8)
	slow := b.AddReader()
	for i := range 8 {
		if !b.TryPush(i) {
			t.Fatalf("push %d refused", i)
		}
	}
	if b.Room(1) != 0 || b.TryPush(8) {
		t.Fatal("the slow reader does not gate the writer")
	}
	if b.Oldest() != 0 || b.Tail() != 8 {
		t.Fatalf("window [%d, %d), want [0, 8)", b.Oldest(), b.Tail())
	}
	if v, ok := b.At(3); !ok || v != 3 {
		t.Fatalf("At(3) = %d, %v", v, ok)
	}
	if _, ok := b.At(8); ok {
		t.Fatal("At(Tail) succeeded")
	}
	if slow.Skip(2) != 2 || slow.Cursor() != 2 {
		t.Fatalf("Skip(2) left the cursor at %d", slow.Cursor())
	}
	slow.Close()
	for i := 8; i < 12; i++ {
		if !b.TryPush(i) {
			t.Fatalf("push %d refused after the slow reader left", i)
		}
	}
	// With no reader left, everything up to the tail of the last gate
	// refresh was zeroed: the ring holds [8, 12).
	if b.Oldest() != 8 {
		t.Fatalf("Oldest = %d, want 8", b.Oldest())
	}
	if _, ok := b.AddReaderAt(7); ok {
		t.Fatal("attached below the window")
	}
	r, ok := b.AddReaderAt(9)
	if !ok {
		t.Fatal("AddReaderAt(9) refused")
	}
	dst := make([]int, 16)
	n := r.PopBatch(dst)
	if n != 3 || dst[0] != 9 || dst[2] != 11 {
		t.Fatalf("reader at 9 read %v", dst[:n])
	}
	// The new reader gates from its position on.
	for i := 12; i < 20; i++ {
		if !b.TryPush(i) {
			t.Fatalf("push %d refused", i)
		}
	}
	if b.TryPush(20) {
		t.Fatal("the attached reader does not gate the writer")
	}
	if r.Skip(3) != 3 {
		t.Fatal("Skip(3) did not skip 3")
	}
	if n := r.PopBatch(dst); n != 5 || dst[0] != 15 || dst[4] != 19 {
		t.Fatalf("after skipping 3, read %v", dst[:n])
	}
	if !b.TryPush(20) || r.Skip(100) != 1 || b.Room(100) != 8 {
		t.Fatalf("after skipping everything: cursor %d, room %d", r.Cursor(), b.Room(100))
	}
}

// TestBroadcastKeepPassed: while the writer keeps passed items, a reader can
// be attached a whole ring back; once it stops, passed slots are zeroed
// again, and never a slot an attached reader still has to read.
func TestBroadcastKeepPassed(t *testing.T) {
	b := NewBroadcast[*int](8)
	b.KeepPassed(true)
	vals := make([]int, 40)
	for i := range 20 {
		vals[i] = i
		if !b.TryPush(&vals[i]) {
			t.Fatalf("push %d refused with no reader", i)
		}
	}
	if b.Oldest() != 12 {
		t.Fatalf("Oldest = %d while keeping, want 12", b.Oldest())
	}
	r, ok := b.AddReaderAt(12)
	if !ok {
		t.Fatal("AddReaderAt(12) refused while keeping")
	}
	b.KeepPassed(false)
	dst := make([]*int, 8)
	if n := r.PopBatch(dst[:4]); n != 4 || *dst[0] != 12 {
		t.Fatalf("read %d from 12", n)
	}
	for i := 20; i < 24; i++ {
		vals[i] = i
		if !b.TryPush(&vals[i]) {
			t.Fatalf("push %d refused", i)
		}
	}
	// The push that refreshed the gate zeroed what everyone passed, and
	// only that: the reader still sees 16..23.
	n := r.PopBatch(dst)
	if n != 8 {
		t.Fatalf("read %d, want 8", n)
	}
	for i, p := range dst[:n] {
		if p == nil || *p != 16+i {
			t.Fatalf("item %d is %v, want %d", i, p, 16+i)
		}
	}
	for i := range b.buf {
		if p := b.buf[i]; p != nil && *p < 16 {
			t.Fatalf("slot %d still holds passed item %d", i, *p)
		}
	}
}
