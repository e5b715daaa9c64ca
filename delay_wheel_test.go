package spillway

import (
	"slices"
	"testing"
)

// TestDelayWheel: messages due from one tick to years ahead, added while
// the wheel advances by steps of one tick to months, each fire in the
// advance that passes its tick, never before, in tick order, and every one
// fires.
func TestDelayWheel(t *testing.T) {
	rng := newRand(t)
	w := newDelayWheel(0)
	type due struct {
		tick int64
		id   int
	}
	var pending []due
	dues := map[int]int64{}
	id := 0
	add := func() {
		// Spans of every level, and beyond the last's reach.
		span := []int64{2, 300, 70_000, 20_000_000, 5_000_000_000, 1 << 42}[rng.IntN(6)]
		tk := w.now + 1 + rng.Int64N(span)
		m := Message{Value: []byte{byte(id)}, Priority: uint8(id % 7)}
		w.add(&m, tk*10, tk, int64(id))
		dues[id] = tk
		pending = append(pending, due{tk, id})
		id++
	}
	var fired []int32
	for round := 0; round < 3000 || len(dues) > 0; round++ {
		if round < 3000 {
			for range rng.IntN(4) {
				add()
			}
		}
		step := []int64{1, 1, 7, 255, 256, 65_536, 1 << 24, 1 << 33}[rng.IntN(8)]
		if round >= 3000 {
			step = 1 << 40
		}
		from := w.now
		to := from + step
		fired = w.advance(to, fired[:0])
		last := int64(-1)
		for _, i := range fired {
			n := w.nodes.at(i)
			got := int(n.exp)
			tk, ok := dues[got]
			switch {
			case !ok:
				t.Fatalf("node %d fired twice or never added", got)
			case tk != n.tick:
				t.Fatalf("node %d: tick %d, added for %d", got, n.tick, tk)
			case tk <= from || tk > to:
				t.Fatalf("node %d due at tick %d fired advancing from %d to %d", got, tk, from, to)
			case tk < last:
				t.Fatalf("node %d due at %d fired after one due at %d", got, tk, last)
			case n.prio != uint8(got%7) || n.message().Value[0] != byte(got):
				t.Fatalf("node %d: message %v priority %d", got, n.message().Value, n.prio)
			}
			last = tk
			delete(dues, got)
			w.nodes.release(i)
		}
		for _, d := range pending {
			if _, ok := dues[d.id]; ok && d.tick <= to {
				t.Fatalf("node %d due at %d did not fire by %d", d.id, d.tick, to)
			}
		}
		pending = slices.DeleteFunc(pending, func(d due) bool { _, ok := dues[d.id]; return !ok })
		if w.len() != len(dues) {
			t.Fatalf("wheel holds %d, %d pending", w.len(), len(dues))
		}
	}
	if id < 3000 {
		t.Fatalf("only %d added", id)
	}
}
