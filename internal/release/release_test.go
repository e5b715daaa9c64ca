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
	var w atomic.Uint64
	for _, v := range []uint64{1, 0, 1 << 63, ^uint64(0)} {
		Store(&w, v)
		if got := w.Load(); got != v {
			t.Fatalf("Load = %#x after Store(%#x)", got, v)
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
