package ring

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// fifoInput is one operation on the ring: a push of value, or a pop.
type fifoInput struct {
	push  bool
	value int
}

// fifoOutput is what the operation returned.
type fifoOutput struct {
	ok    bool
	value int
}

// fifoModel is a bounded FIFO queue. Successful pushes and pops must be
// explained by one sequential order consistent with real time; failed Try
// operations may return false whenever the ring is in the middle of a
// hand-off (a claimed but unpublished slot), so the model allows them in any
// state. That is the documented contract: Try operations may report full or
// empty early, never late, and never lose or reorder an item.
func fifoModel(capacity int) porcupine.Model {
	return porcupine.Model{
		Init: func() any { return []int{} },
		Step: func(state, input, output any) (bool, any) {
			s := state.([]int)
			in, out := input.(fifoInput), output.(fifoOutput)
			switch {
			case !out.ok:
				return true, s
			case in.push:
				if len(s) >= capacity {
					return false, s
				}
				return true, append(s[:len(s):len(s)], in.value)
			default:
				if len(s) == 0 || s[0] != out.value {
					return false, s
				}
				return true, s[1:]
			}
		},
		Equal: func(a, b any) bool {
			x, y := a.([]int), b.([]int)
			if len(x) != len(y) {
				return false
			}
			for i := range x {
				if x[i] != y[i] {
					return false
				}
			}
			return true
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(fifoInput), output.(fifoOutput)
			if in.push {
				return fmt.Sprintf("push(%d) -> %v", in.value, out.ok)
			}
			return fmt.Sprintf("pop() -> %d, %v", out.value, out.ok)
		},
	}
}

// TestMPMCLinearizable records small concurrent histories of TryPush, TryPop
// and blocking Push/Pop on small MPMC rings and checks each against the FIFO
// model with porcupine.
func TestMPMCLinearizable(t *testing.T) {
	rng := newRand(t)
	histories := 300
	if testing.Short() {
		histories = 50
	}
	for h := range histories {
		capacity := 1 << rng.IntN(3)
		q := NewMPMC[int](capacity)
		var (
			clock atomic.Int64
			mu    sync.Mutex
			ops   []porcupine.Operation
			wg    sync.WaitGroup
			value atomic.Int64
		)
		for client := range 4 {
			seed := rng.Uint64()
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := newRandFrom(seed)
				// Blocking calls are bounded by a short deadline so that a
				// history never hangs on a ring nobody will drain or fill;
				// one that times out is recorded as a failed operation.
				bounded := func() (context.Context, context.CancelFunc) {
					return context.WithTimeout(context.Background(), 200*time.Microsecond)
				}
				for range 6 {
					var in fifoInput
					var out fifoOutput
					call := clock.Add(1)
					switch rng.IntN(4) {
					case 0:
						in = fifoInput{push: true, value: int(value.Add(1))}
						out.ok = q.TryPush(in.value)
					case 1:
						in = fifoInput{push: true, value: int(value.Add(1))}
						ctx, cancel := bounded()
						out.ok = q.Push(ctx, in.value) == nil
						cancel()
					case 2:
						out.value, out.ok = q.TryPop()
					case 3:
						ctx, cancel := bounded()
						v, err := q.Pop(ctx)
						cancel()
						out = fifoOutput{ok: err == nil, value: v}
					}
					ret := clock.Add(1)
					mu.Lock()
					ops = append(ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		res := porcupine.CheckOperationsTimeout(fifoModel(capacity), ops, 10*time.Second)
		if res != porcupine.Ok {
			for _, op := range ops {
				t.Logf("client %d [%d,%d] %s", op.ClientId, op.Call, op.Return,
					fifoModel(capacity).DescribeOperation(op.Input, op.Output))
			}
			t.Fatalf("history %d (capacity %d) is not linearizable: %v", h, capacity, res)
		}
	}
}
