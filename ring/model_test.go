package ring

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// TestModel drives each ring kind from one goroutine with random operation
// sequences and compares every result with a slice model.
func TestModel(t *testing.T) {
	for _, k := range ringKinds {
		for _, capacity := range []int{1, 2, 3, 8, 64} {
			t.Run(fmt.Sprintf("%s/cap=%d", k.name, capacity), func(t *testing.T) {
				rng := newRand(t)
				for round := range 50 {
					checkModel(t, rng.Uint64(), k.new(capacity), round)
					if t.Failed() {
						return
					}
				}
			})
		}
	}
}

type sliceModel struct {
	items  []int
	cap    int
	closed bool
}

func (m *sliceModel) room() int { return m.cap - len(m.items) }

func checkModel(t *testing.T, seed uint64, q queue[int], round int) {
	t.Helper()
	rng := newRandFrom(seed)
	m := &sliceModel{cap: roundCapacity(q.Cap())}
	if q.Cap() != m.cap {
		t.Fatalf("Cap() = %d, want %d", q.Cap(), m.cap)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	next := 0
	batch := func() []int {
		vs := make([]int, rng.IntN(2*m.cap+2))
		for i := range vs {
			vs[i] = next
			next++
		}
		return vs
	}
	var history []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("round %d, after %v: %s", round, history, fmt.Sprintf(format, args...))
	}
	for range 400 {
		switch op := rng.IntN(100); {
		case op < 25:
			v := next
			next++
			history = append(history, fmt.Sprintf("TryPush(%d)", v))
			want := !m.closed && m.room() > 0
			if got := q.TryPush(v); got != want {
				fail("TryPush = %v, want %v", got, want)
			}
			if want {
				m.items = append(m.items, v)
			}
		case op < 35:
			vs := batch()
			history = append(history, fmt.Sprintf("PushBatch(%d)", len(vs)))
			want := 0
			if !m.closed {
				want = min(len(vs), m.room())
			}
			if got := q.PushBatch(vs); got != want {
				fail("PushBatch = %d, want %d", got, want)
			}
			m.items = append(m.items, vs[:want]...)
		case op < 60:
			history = append(history, "TryPop")
			v, ok := q.TryPop()
			if ok != (len(m.items) > 0) || ok && v != m.items[0] {
				fail("TryPop = %d, %v; model %v", v, ok, m.items)
			}
			if ok {
				m.items = m.items[1:]
			}
		case op < 70:
			dst := make([]int, rng.IntN(2*m.cap+2))
			history = append(history, fmt.Sprintf("PopBatch(%d)", len(dst)))
			n := q.PopBatch(dst)
			want := min(len(dst), len(m.items))
			if n != want || !slices.Equal(dst[:n], m.items[:want]) {
				fail("PopBatch = %v, want %v", dst[:n], m.items[:want])
			}
			m.items = m.items[want:]
		case op < 76:
			v := next
			next++
			history = append(history, fmt.Sprintf("Push(canceled, %d)", v))
			err := q.Push(canceled, v)
			switch {
			case m.room() > 0 && !m.closed:
				if err != nil {
					fail("Push = %v, want nil", err)
				}
				m.items = append(m.items, v)
			case m.closed:
				if !errors.Is(err, ErrClosed) {
					fail("Push = %v, want ErrClosed", err)
				}
			default:
				if !errors.Is(err, context.Canceled) {
					fail("Push = %v, want context.Canceled", err)
				}
			}
		case op < 82:
			history = append(history, "Pop(canceled)")
			v, err := q.Pop(canceled)
			switch {
			case len(m.items) > 0:
				if err != nil || v != m.items[0] {
					fail("Pop = %d, %v; want %d", v, err, m.items[0])
				}
				m.items = m.items[1:]
			case m.closed:
				if !errors.Is(err, ErrClosed) {
					fail("Pop = %v, want ErrClosed", err)
				}
			default:
				if !errors.Is(err, context.Canceled) {
					fail("Pop = %v, want context.Canceled", err)
				}
			}
		case op < 86:
			vs := batch()
			history = append(history, fmt.Sprintf("PushBatchWait(canceled, %d)", len(vs)))
			n, err := q.PushBatchWait(canceled, vs)
			want := 0
			if !m.closed {
				want = min(len(vs), m.room())
			}
			var wantErr error
			switch {
			case want == len(vs):
			case m.closed:
				wantErr = ErrClosed
			default:
				wantErr = context.Canceled
			}
			if n != want || !errors.Is(err, wantErr) {
				fail("PushBatchWait = %d, %v; want %d, %v", n, err, want, wantErr)
			}
			m.items = append(m.items, vs[:want]...)
		case op < 90:
			dst := make([]int, 1+rng.IntN(2*m.cap+1))
			history = append(history, fmt.Sprintf("PopBatchWait(canceled, %d)", len(dst)))
			n, err := q.PopBatchWait(canceled, dst)
			want := min(len(dst), len(m.items))
			var wantErr error
			switch {
			case want > 0:
			case m.closed:
				wantErr = ErrClosed
			default:
				wantErr = context.Canceled
			}
			if n != want || !errors.Is(err, wantErr) || !slices.Equal(dst[:n], m.items[:want]) {
				fail("PopBatchWait = %v, %v; want %v, %v", dst[:n], err, m.items[:want], wantErr)
			}
			m.items = m.items[want:]
		case op < 99:
			history = append(history, "Len")
			if got := q.Len(); got != len(m.items) {
				fail("Len = %d, want %d", got, len(m.items))
			}
		default:
			history = append(history, "Close")
			q.Close()
			m.closed = true
		}
		if len(history) > 12 {
			history = history[1:]
		}
	}
}
