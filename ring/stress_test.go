package ring

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/spillway-io/spillway/internal/park"
	"github.com/spillway-io/spillway/internal/race"
)

// item encodes a producer id and that producer's sequence number.
func item(producer, seq int) int { return producer<<32 | seq }
func split(v int) (int, int)     { return v >> 32, v & (1<<32 - 1) }

// stressCounts is how many items each producer pushes; make stress raises it.
func stressCount(t *testing.T) int {
	if testing.Short() {
		return 2_000
	}
	return 20_000 * *stressScale
}

// TestStress runs producers and consumers concurrently on each ring kind and
// checks that every pushed item is popped exactly once and that each
// consumer sees each producer's items in order.
func TestStress(t *testing.T) {
	for _, k := range ringKinds {
		for _, capacity := range []int{1, 2, 64} {
			producers, consumers := 3, 3
			if k.producers == 1 {
				producers = 1
			}
			if k.consumers == 1 {
				consumers = 1
			}
			t.Run(fmt.Sprintf("%s/cap=%d/%dx%d", k.name, capacity, producers, consumers), func(t *testing.T) {
				t.Parallel()
				rng := newRand(t)
				stress(t, k.new(capacity), producers, consumers, stressCount(t), rng.Uint64())
			})
		}
	}
}

func stress(t *testing.T, q queue[int], producers, consumers, perProducer int, seed uint64) {
	ctx := context.Background()
	var pwg sync.WaitGroup
	for p := range producers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			rng := newRandFrom(seed + uint64(p))
			for i := 0; i < perProducer; {
				switch rng.IntN(3) {
				case 0:
					if err := q.Push(ctx, item(p, i)); err != nil {
						t.Errorf("Push: %v", err)
						return
					}
					i++
				case 1:
					if q.TryPush(item(p, i)) {
						i++
					}
				case 2:
					vs := make([]int, min(1+rng.IntN(40), perProducer-i))
					for j := range vs {
						vs[j] = item(p, i+j)
					}
					n, err := q.PushBatchWait(ctx, vs)
					if err != nil || n != len(vs) {
						t.Errorf("PushBatchWait = %d, %v; want %d", n, err, len(vs))
						return
					}
					i += n
				}
			}
		}()
	}
	seen := make([][]int, consumers) // items each consumer popped, in order
	var cwg sync.WaitGroup
	for c := range consumers {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			rng := newRandFrom(seed ^ uint64(c+100))
			dst := make([]int, 64)
			for {
				switch rng.IntN(3) {
				case 0:
					v, err := q.Pop(ctx)
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						t.Errorf("Pop: %v", err)
						return
					}
					seen[c] = append(seen[c], v)
				case 1:
					if v, ok := q.TryPop(); ok {
						seen[c] = append(seen[c], v)
					}
				case 2:
					n, err := q.PopBatchWait(ctx, dst[:1+rng.IntN(len(dst))])
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						t.Errorf("PopBatchWait: %v", err)
						return
					}
					seen[c] = append(seen[c], dst[:n]...)
				}
			}
		}()
	}
	pwg.Wait()
	q.Close()
	cwg.Wait()
	checkDelivery(t, seen, producers, perProducer)
}

// checkDelivery checks exactly-once delivery and per-producer order as each
// consumer saw it, for producers that each pushed perProducer items.
func checkDelivery(t *testing.T, seen [][]int, producers, perProducer int) {
	t.Helper()
	accepted := make([]int, producers)
	for p := range accepted {
		accepted[p] = perProducer
	}
	checkAccepted(t, seen, accepted)
}

// checkAccepted checks that each consumer saw each producer's items in
// order and that, together, they popped producer p's items 0 to
// accepted[p]-1 exactly once each, and nothing else.
func checkAccepted(t *testing.T, seen [][]int, accepted []int) {
	t.Helper()
	producers := len(accepted)
	count := make([][]int8, producers)
	for p := range count {
		count[p] = make([]int8, accepted[p])
	}
	for c, vs := range seen {
		last := make([]int, producers)
		for p := range last {
			last[p] = -1
		}
		for _, v := range vs {
			p, s := split(v)
			if p >= producers || s >= accepted[p] {
				t.Fatalf("consumer %d popped %#x, which no push accepted", c, v)
			}
			if s <= last[p] {
				t.Fatalf("consumer %d saw producer %d's item %d after %d", c, p, s, last[p])
			}
			last[p] = s
			count[p][s]++
		}
	}
	for p := range count {
		for s, n := range count[p] {
			if n != 1 {
				t.Fatalf("producer %d's item %d was popped %d times", p, s, n)
			}
		}
	}
}

// TestCloseWakesBlocked blocks producers on a full ring and consumers on an
// empty one, closes both rings, and checks that everyone wakes with the right
// answer.
func TestCloseWakesBlocked(t *testing.T) {
	for _, k := range ringKinds {
		t.Run(k.name, func(t *testing.T) {
			producers, consumers := 3, 3
			if k.producers == 1 {
				producers = 1
			}
			if k.consumers == 1 {
				consumers = 1
			}
			ctx := context.Background()
			full, empty := k.new(1), k.new(4)
			if !full.TryPush(-1) {
				t.Fatal("TryPush on an empty ring failed")
			}
			errs := make(chan error, producers+consumers)
			for range producers {
				go func() { errs <- full.Push(ctx, 7) }()
			}
			for range consumers {
				go func() {
					_, err := empty.Pop(ctx)
					errs <- err
				}()
			}
			waitFor(t, "producers to park", func() bool { p, _ := parked(full); return p == producers })
			waitFor(t, "consumers to park", func() bool { _, c := parked(empty); return c == consumers })
			full.Close()
			empty.Close()
			for range producers + consumers {
				if err := <-errs; !errors.Is(err, ErrClosed) {
					t.Fatalf("blocked call returned %v, want ErrClosed", err)
				}
			}
			if v, err := full.Pop(ctx); err != nil || v != -1 {
				t.Fatalf("Pop after Close = %d, %v; want the item pushed before Close", v, err)
			}
			if _, err := full.Pop(ctx); !errors.Is(err, ErrClosed) {
				t.Fatalf("Pop of a drained closed ring = %v, want ErrClosed", err)
			}
			if err := full.Push(ctx, 1); !errors.Is(err, ErrClosed) {
				t.Fatalf("Push after Close = %v, want ErrClosed", err)
			}
			full.Close() // idempotent
		})
	}
}

// TestContextCancelWhileParked checks that a parked call returns ctx.Err()
// when its context ends and that the ring still works afterwards.
func TestContextCancelWhileParked(t *testing.T) {
	for _, k := range ringKinds {
		t.Run(k.name, func(t *testing.T) {
			q := k.new(1)
			ctx, cancel := context.WithCancel(context.Background())
			errs := make(chan error, 1)
			go func() {
				_, err := q.Pop(ctx)
				errs <- err
			}()
			waitFor(t, "consumer to park", func() bool { _, c := parked(q); return c == 1 })
			cancel()
			if err := <-errs; !errors.Is(err, context.Canceled) {
				t.Fatalf("Pop = %v, want context.Canceled", err)
			}
			if _, c := parked(q); c != 0 {
				t.Fatalf("%d consumers still registered after cancel", c)
			}
			if !q.TryPush(5) {
				t.Fatal("TryPush failed")
			}
			if v, err := q.Pop(context.Background()); err != nil || v != 5 {
				t.Fatalf("Pop = %d, %v", v, err)
			}
		})
	}
}

// TestWakeAfterPark checks that a consumer parked on an empty ring is woken
// by a push (no lost wake-up) and a producer parked on a full ring by a pop.
func TestWakeAfterPark(t *testing.T) {
	for _, k := range ringKinds {
		t.Run(k.name, func(t *testing.T) {
			ctx := context.Background()
			q := k.new(1)
			got := make(chan int, 1)
			for round := range 50 {
				go func() {
					v, err := q.Pop(ctx)
					if err != nil {
						t.Errorf("Pop: %v", err)
					}
					got <- v
				}()
				waitFor(t, "consumer to park", func() bool { _, c := parked(q); return c == 1 })
				if err := q.Push(ctx, round); err != nil {
					t.Fatal(err)
				}
				if v := <-got; v != round {
					t.Fatalf("Pop = %d, want %d", v, round)
				}
			}
			q.TryPush(0)
			done := make(chan error, 1)
			go func() { done <- q.Push(ctx, 1) }()
			waitFor(t, "producer to park", func() bool { p, _ := parked(q); return p == 1 })
			if v, ok := q.TryPop(); !ok || v != 0 {
				t.Fatalf("TryPop = %d, %v", v, ok)
			}
			if err := <-done; err != nil {
				t.Fatalf("Push = %v", err)
			}
			if v, ok := q.TryPop(); !ok || v != 1 {
				t.Fatalf("TryPop = %d, %v", v, ok)
			}
		})
	}
}

// TestPingPongNoLostWakeup passes one item back and forth through two rings
// of each kind, so that each side waits on an empty ring round after round:
// a lost wake-up leaves both sides waiting, and the deadline fails the test.
// With spinning, a round trip (about 1 µs) seldom reaches the parking path;
// with eager waits (park.SetEager) every wait that finds nothing registers
// at once, so that the parking path (registration, the barrier of
// park.AwaitLight, the last look, parking, waking) runs round after round.
// The window a lost wake-up needs, a waker whose look at the waiter count
// overtakes its publication, is a few nanoseconds wide and is not forced
// here: release's TestAsymmetricStoreBuffer shows the barrier closes it
// (and fails without it), and park's TestAwaitPublishedWaitsOutAClaim the
// in-flight check.
func TestPingPongNoLostWakeup(t *testing.T) {
	rounds := 20_000
	if race.Enabled {
		rounds = 2_000
	}
	for _, eager := range []bool{false, true} {
		for _, k := range ringKinds {
			t.Run(fmt.Sprintf("%s/eager=%v", k.name, eager), func(t *testing.T) {
				if eager {
					park.SetEager(true)
					defer park.SetEager(false)
				}
				pingPong(t, k.new(1), k.new(1), rounds)
			})
		}
	}
}

func pingPong(t *testing.T, ping, pong queue[int], rounds int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	echoed := make(chan error, 1)
	go func() {
		for range rounds {
			v, err := ping.Pop(ctx)
			if err == nil {
				err = pong.Push(ctx, v+1)
			}
			if err != nil {
				echoed <- err
				return
			}
		}
		echoed <- nil
	}()
	for i := range rounds {
		if err := ping.Push(ctx, 2*i); err != nil {
			t.Fatalf("round %d: Push: %v", i, err)
		}
		v, err := pong.Pop(ctx)
		if err != nil {
			t.Fatalf("round %d: Pop: %v (a lost wake-up?)", i, err)
		}
		if v != 2*i+1 {
			t.Fatalf("round %d: got %d, want %d", i, v, 2*i+1)
		}
	}
	if err := <-echoed; err != nil {
		t.Fatal(err)
	}
}
