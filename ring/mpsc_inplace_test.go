package ring

import (
	"runtime"
	"sync"
	"testing"
)

// TestMPSCInPlaceStress: producers that claim, fill and publish slots in
// place, mixed with ones that push batches, and a consumer that peeks, reads
// and releases in place, mixed with batch pops: every item arrives once, in
// each producer's order, and released slots are left zero.
func TestMPSCInPlaceStress(t *testing.T) {
	type item struct {
		producer int
		seq      int
		ref      *int // a reference the ring must not keep
	}
	rng := newRand(t)
	for _, capacity := range []int{1, 2, 16, 256} {
		r := NewMPSC[item](capacity)
		const producers = 3
		perProducer := stressCount(t) / 4
		seeds := [producers]uint64{rng.Uint64(), rng.Uint64(), rng.Uint64()}
		var wg sync.WaitGroup
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				prng := newRandFrom(seeds[p])
				buf := make([]item, 8)
				for i := 0; i < perProducer; {
					want := min(1+prng.IntN(8), perProducer-i)
					if p == 0 { // the batch operation, for comparison
						for j := range want {
							buf[j] = item{p, i + j, new(int)}
						}
						i += r.PushBatch(buf[:want])
						clear(buf)
					} else {
						first, k := r.Claim(want)
						for j := range k {
							*r.At(first + uint64(j)) = item{p, i + j, new(int)}
						}
						if k > 0 {
							r.Publish(first, k)
						}
						i += k
					}
					runtime.Gosched()
				}
			}()
		}
		next := [producers]int{}
		dst := make([]item, 8)
		check := func(it item) {
			if it.ref == nil || it.seq != next[it.producer] {
				t.Fatalf("cap %d: producer %d: got item %d (ref %v), want %d", capacity, it.producer, it.seq, it.ref, next[it.producer])
			}
			next[it.producer]++
		}
		for got := 0; got < producers*perProducer; {
			if rng.IntN(2) == 0 {
				n := r.PopBatch(dst[:1+rng.IntN(len(dst))])
				for _, it := range dst[:n] {
					check(it)
				}
				got += n
			} else {
				h := r.Head()
				k := r.Peek(1 + rng.IntN(8))
				for j := range k {
					s := r.At(h + uint64(j))
					check(*s)
					*s = item{}
				}
				r.Release(k)
				got += k
			}
			if r.Len() == 0 {
				runtime.Gosched()
			}
		}
		wg.Wait()
		for i := range r.slots {
			if r.slots[i].val != (item{}) {
				t.Fatalf("cap %d: slot %d still holds %+v", capacity, i, r.slots[i].val)
			}
		}
		if k := r.Peek(8); k != 0 {
			t.Fatalf("cap %d: Peek on an empty ring = %d", capacity, k)
		}
	}
}

// TestMPSCInPlaceClose: Claim fails after Close; what was published before
// is still peeked and released, and then the ring reports drained.
func TestMPSCInPlaceClose(t *testing.T) {
	r := NewMPSC[int](8)
	first, k := r.Claim(3)
	if k != 3 || first != 0 {
		t.Fatalf("Claim(3) = %d, %d", first, k)
	}
	for j := range k {
		*r.At(first + uint64(j)) = 10 + j
	}
	r.Publish(first, k)
	if _, k := r.Claim(0); k != 0 {
		t.Fatalf("Claim(0) reserved %d", k)
	}
	if _, k := r.Claim(100); k != 5 {
		t.Fatalf("Claim(100) on a ring with 5 free slots reserved %d", k)
	} else {
		r.Publish(3, k) // zero values
	}
	r.Close()
	if _, k := r.Claim(1); k != 0 {
		t.Fatalf("Claim after Close reserved %d", k)
	}
	if n := r.Peek(2); n != 2 {
		t.Fatalf("Peek(2) = %d", n)
	}
	if *r.At(0) != 10 || *r.At(1) != 11 {
		t.Fatalf("slots %d %d", *r.At(0), *r.At(1))
	}
	r.Release(2)
	if n := r.Peek(100); n != 6 {
		t.Fatalf("Peek(100) = %d, want the 6 left", n)
	}
	r.Release(6)
	if _, err := r.Pop(t.Context()); err != ErrClosed {
		t.Fatalf("Pop after draining a closed ring = %v", err)
	}
}

// TestMPSCInFlight: a claim counts as in flight for the consumer's wait
// from the claim until the consumer pops it, published or not.
func TestMPSCInFlight(t *testing.T) {
	r := NewMPSC[int](4)
	if r.inFlight() {
		t.Fatal("inFlight on an empty ring")
	}
	first, k := r.Claim(1)
	if k != 1 || !r.inFlight() {
		t.Fatalf("Claim = %d, %d; inFlight = %v, want true", first, k, r.inFlight())
	}
	if _, ok := r.TryPop(); ok {
		t.Fatal("TryPop took an unpublished claim")
	}
	*r.At(first) = 7
	r.Publish(first, k)
	if !r.inFlight() {
		t.Fatal("inFlight false with a published item not popped")
	}
	if v, ok := r.TryPop(); !ok || v != 7 {
		t.Fatalf("TryPop = %d, %v", v, ok)
	}
	if r.inFlight() {
		t.Fatal("inFlight after the pop")
	}
}
