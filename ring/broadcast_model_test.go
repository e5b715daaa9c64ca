package ring

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// TestBroadcastModel drives a Broadcast ring and its readers from one
// goroutine with random operations and compares them with a model: a log of
// every pushed item and, per reader, the index of its next item and of the
// next item it takes from the ring (a single-item pop reads up to readAhead
// items ahead, releasing their slots).
func TestBroadcastModel(t *testing.T) {
	for _, capacity := range []int{1, 2, 8, 32} {
		t.Run(fmt.Sprintf("cap=%d", capacity), func(t *testing.T) {
			rng := newRand(t)
			for round := range 30 {
				b := NewBroadcast[int](capacity)
				var (
					log      []int
					readers  []*Reader[int]
					cursors  []int // per reader: index into log, -1 once detached
					gates    []int // per reader: index of the next item it takes from the ring
					closed   bool
					history  []string
					canceled context.Context
				)
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				canceled = ctx
				fail := func(format string, args ...any) {
					t.Helper()
					t.Fatalf("round %d, after %v: %s", round, history, fmt.Sprintf(format, args...))
				}
				room := func() int {
					free := b.Cap()
					for i, c := range cursors {
						if c >= 0 {
							free = min(free, b.Cap()-(len(log)-gates[i]))
						}
					}
					return free
				}
				// popOne moves reader i past one item; with none read ahead,
				// it takes up to readAhead from the ring.
				popOne := func(i int) {
					if gates[i] == cursors[i] {
						gates[i] += min(len(log)-cursors[i], readAhead)
					}
					cursors[i]++
				}
				for range 500 {
					if len(history) > 12 {
						history = history[1:]
					}
					op := rng.IntN(100)
					switch {
					case op < 8:
						history = append(history, "AddReader")
						readers = append(readers, b.AddReader())
						cursors = append(cursors, len(log))
						gates = append(gates, len(log))
					case op < 35:
						v := len(log)
						history = append(history, fmt.Sprintf("TryPush(%d)", v))
						want := !closed && room() > 0
						if got := b.TryPush(v); got != want {
							fail("TryPush = %v, want %v", got, want)
						}
						if want {
							log = append(log, v)
						}
					case op < 45:
						vs := make([]int, rng.IntN(2*b.Cap()+2))
						for i := range vs {
							vs[i] = len(log) + i
						}
						history = append(history, fmt.Sprintf("PushBatch(%d)", len(vs)))
						want := 0
						if !closed {
							want = min(len(vs), room())
						}
						if got := b.PushBatch(vs); got != want {
							fail("PushBatch = %d, want %d", got, want)
						}
						log = append(log, vs[:want]...)
					case op < 50:
						history = append(history, "Push(canceled)")
						v := len(log)
						err := b.Push(canceled, v)
						switch {
						case closed:
							if !errors.Is(err, ErrClosed) {
								fail("Push = %v, want ErrClosed", err)
							}
						case room() > 0:
							if err != nil {
								fail("Push = %v, want nil", err)
							}
							log = append(log, v)
						default:
							if !errors.Is(err, context.Canceled) {
								fail("Push = %v, want context.Canceled", err)
							}
						}
					case op < 97 && len(readers) > 0:
						i := rng.IntN(len(readers))
						r, c := readers[i], cursors[i]
						switch rng.IntN(4) {
						case 0:
							history = append(history, fmt.Sprintf("r%d.TryPop", i))
							v, ok := r.TryPop()
							wantOK := c >= 0 && c < len(log)
							if ok != wantOK || ok && v != log[c] {
								fail("r%d.TryPop = %d, %v; cursor %d of %d", i, v, ok, c, len(log))
							}
							if ok {
								popOne(i)
							}
						case 1:
							dst := make([]int, rng.IntN(2*b.Cap()+2))
							history = append(history, fmt.Sprintf("r%d.PopBatch(%d)", i, len(dst)))
							n := r.PopBatch(dst)
							want := 0
							if c >= 0 {
								want = min(len(dst), len(log)-c)
							}
							if n != want || want > 0 && !slices.Equal(dst[:n], log[c:c+want]) {
								fail("r%d.PopBatch = %v, want %d items from %d", i, dst[:n], want, c)
							}
							if c >= 0 {
								cursors[i] += n
								gates[i] = max(gates[i], cursors[i])
							}
						case 2:
							history = append(history, fmt.Sprintf("r%d.Pop(canceled)", i))
							v, err := r.Pop(canceled)
							switch {
							case c >= 0 && c < len(log):
								if err != nil || v != log[c] {
									fail("r%d.Pop = %d, %v; want %d", i, v, err, log[c])
								}
								popOne(i)
							case c < 0 || closed:
								if !errors.Is(err, ErrClosed) {
									fail("r%d.Pop = %v, want ErrClosed", i, err)
								}
							default:
								if !errors.Is(err, context.Canceled) {
									fail("r%d.Pop = %v, want context.Canceled", i, err)
								}
							}
						case 3:
							if rng.IntN(4) == 0 {
								history = append(history, fmt.Sprintf("r%d.Close", i))
								r.Close()
								cursors[i] = -1
							} else {
								history = append(history, fmt.Sprintf("r%d.Len", i))
								want := 0
								if c >= 0 {
									want = len(log) - c
								}
								if got := r.Len(); c >= 0 && got != want {
									fail("r%d.Len = %d, want %d", i, got, want)
								}
							}
						}
					case op < 99:
						history = append(history, "Len")
						want := b.Cap() - room()
						if got := b.Len(); got != want {
							fail("Len = %d, want %d", got, want)
						}
					default:
						history = append(history, "Close")
						b.Close()
						closed = true
					}
				}
			}
		})
	}
}

// TestPoppedSlotsAreZeroed checks that a ring keeps no reference to an item
// once it has been popped (for Broadcast: once every reader has passed it and
// the writer has recomputed its gate).
func TestPoppedSlotsAreZeroed(t *testing.T) {
	rng := newRand(t)
	check := func(name string, slots func() []*int, live int) {
		t.Helper()
		nonNil := 0
		for _, p := range slots() {
			if p != nil {
				nonNil++
			}
		}
		if nonNil != live {
			t.Fatalf("%s: %d slots hold references, want %d (the live items)", name, nonNil, live)
		}
	}
	spsc, mpsc, mpmc := NewSPSC[*int](16), NewMPSC[*int](16), NewMPMC[*int](16)
	rings := []struct {
		name  string
		q     queue[*int]
		slots func() []*int
	}{
		{"SPSC", spsc, func() []*int { return spsc.buf }},
		{"MPSC", mpsc, func() []*int {
			var out []*int
			for i := range mpsc.slots {
				out = append(out, mpsc.slots[i].val)
			}
			return out
		}},
		{"MPMC", mpmc, func() []*int {
			var out []*int
			for i := range mpmc.slots {
				out = append(out, mpmc.slots[i].val)
			}
			return out
		}},
	}
	for _, r := range rings {
		live := 0
		for range 300 {
			if rng.IntN(2) == 0 {
				vs := make([]*int, 1+rng.IntN(10))
				for i := range vs {
					vs[i] = new(int)
				}
				live += r.q.PushBatch(vs)
			} else {
				live -= r.q.PopBatch(make([]*int, 1+rng.IntN(10)))
			}
			check(r.name, r.slots, live)
		}
	}

	b := NewBroadcast[*int](16)
	r1, r2 := b.AddReader(), b.AddReader()
	for range 100 {
		vs := make([]*int, 1+rng.IntN(6))
		for i := range vs {
			vs[i] = new(int)
		}
		n := b.PushBatch(vs)
		r1.PopBatch(make([]*int, 16))
		if n > 0 {
			r2.PopBatch(make([]*int, rng.IntN(n+1)))
		}
	}
	r1.PopBatch(make([]*int, 16))
	r2.PopBatch(make([]*int, 16))
	b.TryPush(nil) // the writer recomputes its gate at least every half ring
	for range b.Cap() / 2 {
		b.TryPush(nil)
		r1.TryPop()
		r2.TryPop()
	}
	check("Broadcast", func() []*int { return b.buf }, 0)
}
