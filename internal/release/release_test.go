package release

import (
	"runtime"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestStoreIsSeen: a released word reads back.
func TestStoreIsSeen(t *testing.T) {
	var w struct { // neighbours: Store writes atomic.Uint64's word and nothing else
		before uint64
		word   atomic.Uint64
		after  uint64
	}
	for _, v := range []uint64{1, 0, 1 << 63, ^uint64(0)} {
		Store(&w.word, v)
		if got := w.word.Load(); got != v || w.before != 0 || w.after != 0 {
			t.Fatalf("Load = %#x after Store(%#x); neighbours %#x, %#x", got, v, w.before, w.after)
		}
		StoreLight(&w.word, ^v)
		if got := w.word.Load(); got != ^v {
			t.Fatalf("Load = %#x after StoreLight(%#x)", got, ^v)
		}
	}
}

// TestMessagePassing is the litmus test a release store exists for: a
// writer fills a slot with plain stores and then releases its sequence
// number; a reader that loads the number must find the slot filled.
func TestMessagePassing(t *testing.T) {
	const rounds = 200_000
	type slot struct {
		seq  atomic.Uint64
		a, b uint64
	}
	var slots [8]slot
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(1); i <= rounds; i++ {
			s := &slots[i%8]
			for s.seq.Load() != 0 { // wait for the reader to hand the slot back
				runtime.Gosched()
			}
			s.a, s.b = i, ^i
			Store(&s.seq, i)
		}
	}()
	for i := uint64(1); i <= rounds; i++ {
		s := &slots[i%8]
		for s.seq.Load() != i {
			runtime.Gosched()
		}
		if s.a != i || s.b != ^i {
			t.Fatalf("round %d: slot holds %d, %#x after its release", i, s.a, s.b)
		}
		s.seq.Store(0)
	}
	<-done
}

// TestAsymmetricStoreBuffer is the store-buffer litmus test with an
// asymmetric fence: one goroutine stores x with StoreLight and then loads y,
// the other stores y with sync/atomic and calls Heavy before it loads x. In
// no round may both loads miss the other side's store (a plain store and a
// load on each side allow exactly that outcome on amd64).
func TestAsymmetricStoreBuffer(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		// Both sides spin without yielding, as a litmus test must, to run
		// at the same time: one P would take turns at each preemption.
		t.Skip("needs two Ps running at once")
	}
	const rounds = 3000
	var start, x, y, seenY, answered atomic.Uint64
	done := make(chan struct{})
	go func() { // the light side
		defer close(done)
		for r := uint64(1); r <= rounds; r++ {
			for start.Load() < r {
			}
			StoreLight(&x, r)
			seenY.Store(y.Load())
			answered.Store(r)
		}
	}()
	defer func() { start.Store(rounds); <-done }()
	for r := uint64(1); r <= rounds; r++ { // the heavy side
		start.Store(r)
		y.Store(r)
		if !Heavy() {
			t.Fatal("Heavy failed")
		}
		sawX := x.Load()
		for answered.Load() < r {
		}
		if sawX < r && seenY.Load() < r {
			t.Fatalf("round %d: both sides missed the other's store (asymmetric fences: %v)", r, Asymmetric())
		}
	}
	t.Logf("asymmetric fences: %v", Asymmetric())
}
