package ring

import (
	"context"
	"flag"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/spillway-io/spillway/internal/testwait"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: pick one and print it)")

// newRand returns a seeded generator and makes sure a failing test prints the
// seed that reproduces it.
func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reproduce with: go test ./ring -run '^%s$' -seed %d", t.Name(), seed)
		}
	})
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// queue is what SPSC, MPSC and MPMC have in common.
type queue[T any] interface {
	TryPush(T) bool
	TryPop() (T, bool)
	PushBatch([]T) int
	PopBatch([]T) int
	Push(context.Context, T) error
	Pop(context.Context) (T, error)
	PushBatchWait(context.Context, []T) (int, error)
	PopBatchWait(context.Context, []T) (int, error)
	Close()
	Len() int
	Cap() int
}

var (
	_ queue[int] = (*SPSC[int])(nil)
	_ queue[int] = (*MPSC[int])(nil)
	_ queue[int] = (*MPMC[int])(nil)
)

type ringKind struct {
	name      string
	new       func(capacity int) queue[int]
	producers int // how many producers the kind allows at once (0: any)
	consumers int // how many consumers it allows at once (0: any)
}

var ringKinds = []ringKind{
	{"SPSC", func(c int) queue[int] { return NewSPSC[int](c) }, 1, 1},
	{"MPSC", func(c int) queue[int] { return NewMPSC[int](c) }, 0, 1},
	{"MPMC", func(c int) queue[int] { return NewMPMC[int](c) }, 0, 0},
}

// waitFor is testwait.For: it synchronizes on state, with a deadline only
// as a safety net.
var waitFor = testwait.For

// parked reports how many goroutines are parked on each side of a ring.
func parked(q any) (producers, consumers int) {
	switch r := q.(type) {
	case *SPSC[int]:
		return r.notFull.Len(), r.notEmpty.Len()
	case *MPSC[int]:
		return r.notFull.Len(), r.notEmpty.Len()
	case *MPMC[int]:
		return r.notFull.Len(), r.notEmpty.Len()
	case *Broadcast[int]:
		return r.notFull.Len(), r.notEmpty.Len()
	}
	panic("unknown ring")
}

func newRandFrom(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

var stressScale = flag.Int("stress.scale", 1, "multiplies the work of stress tests (make stress raises it)")
