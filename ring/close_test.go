package ring

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spillway-io/spillway/internal/release"
)

// TestStressCloseDuringPushes closes rings while producers push into them and
// consumers pop: every push that reported success must be popped exactly
// once before the consumers see ErrClosed, each producer's items in order,
// and every push must fail once Close has returned. It checks the closing
// semantics under load for every ring kind; it seldom catches Close in the
// few instructions of a push in progress (with Close's wait removed it
// still passed at -stress.scale=20), which TestSPSCCloseWaitsOutAPush
// arranges deterministically.
func TestStressCloseDuringPushes(t *testing.T) {
	rounds := 100 * *stressScale
	if testing.Short() {
		rounds = 20
	}
	for _, k := range ringKinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			rng := newRand(t)
			producers, consumers := 2, 2
			if k.producers == 1 {
				producers = 1
			}
			if k.consumers == 1 {
				consumers = 1
			}
			for round := range rounds {
				capacity := 1 << rng.IntN(7)
				closeAfter := rng.IntN(4 * capacity)
				t.Run(fmt.Sprintf("round=%d/cap=%d/close-after=%d", round, capacity, closeAfter), func(t *testing.T) {
					closeDuringPushes(t, k.new(capacity), producers, consumers, closeAfter, rng.Uint64())
				})
				if t.Failed() {
					return
				}
			}
		})
	}
}

func closeDuringPushes(t *testing.T, q queue[int], producers, consumers, closeAfter int, seed uint64) {
	ctx := context.Background()
	accepted := make([]int, producers) // producer p's items 0..accepted[p]-1 were accepted
	var (
		pushed   atomic.Int64
		closeNow = make(chan struct{})
		once     sync.Once
		closed   = make(chan struct{})
		wg       sync.WaitGroup
	)
	go func() {
		<-closeNow
		q.Close()
		close(closed)
	}()
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := newRandFrom(seed + uint64(p))
			buf := make([]int, 8)
			for i := 0; ; {
				var n int
				var err error
				switch rng.IntN(3) {
				case 0:
					if q.TryPush(item(p, i)) {
						n = 1
						break
					}
					fallthrough
				case 1:
					if err = q.Push(ctx, item(p, i)); err == nil {
						n = 1
					}
				case 2:
					vs := buf[:1+rng.IntN(len(buf))]
					for j := range vs {
						vs[j] = item(p, i+j)
					}
					n, err = q.PushBatchWait(ctx, vs)
				}
				i += n
				accepted[p] = i
				if pushed.Add(int64(n)) >= int64(closeAfter) {
					once.Do(func() { close(closeNow) })
				}
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("producer %d: %v", p, err)
					}
					<-closed
					if q.TryPush(item(p, i)) || q.PushBatch([]int{item(p, i)}) != 0 {
						t.Errorf("producer %d: a push succeeded after Close", p)
					}
					return
				}
			}
		}()
	}
	seen := make([][]int, consumers)
	for c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := newRandFrom(seed ^ uint64(c+100))
			dst := make([]int, 16)
			for {
				var err error
				switch rng.IntN(3) {
				case 0:
					if v, ok := q.TryPop(); ok {
						seen[c] = append(seen[c], v)
						continue
					}
					fallthrough
				case 1:
					var v int
					if v, err = q.Pop(ctx); err == nil {
						seen[c] = append(seen[c], v)
					}
				case 2:
					var n int
					n, err = q.PopBatchWait(ctx, dst[:1+rng.IntN(len(dst))])
					seen[c] = append(seen[c], dst[:n]...)
				}
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("consumer %d: %v", c, err)
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := q.Len(); n != 0 {
		t.Errorf("Len = %d after the consumers saw ErrClosed", n)
	}
	checkAccepted(t, seen, accepted)
}

// TestSPSCCloseWaitsOutAPush stops a push after it announced itself and
// found the ring open, closes the ring, and checks that Close waits for the
// push to publish its item, which the consumer then gets before ErrClosed.
func TestSPSCCloseWaitsOutAPush(t *testing.T) {
	r := NewSPSC[int](4)
	waiting := make(chan struct{}, 1)
	testHookCloseWaits = func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	defer func() { testHookCloseWaits = nil }()
	if !r.lc.begin(0, 1) { // TryPush(42), stopped between its look at state and its slot
		t.Fatal("announce on an open ring failed")
	}
	closed := make(chan struct{})
	go func() {
		r.Close()
		close(closed)
	}()
	select {
	case <-waiting:
	case <-closed:
		t.Fatal("Close returned while a push was in progress")
	case <-time.After(time.Minute):
		t.Fatal("Close never waited for the push in progress")
	}
	r.buf[0] = 42 // the stopped push goes on
	release.StoreLight(&r.tail, 1)
	<-closed
	ctx := context.Background()
	if v, err := r.Pop(ctx); err != nil || v != 42 {
		t.Fatalf("Pop = %d, %v; want the item of the push Close waited for", v, err)
	}
	if _, err := r.Pop(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Pop of the drained ring = %v, want ErrClosed", err)
	}
}
