package park

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spillway-io/spillway/internal/race"
	"github.com/spillway-io/spillway/internal/testwait"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitFor is testwait.For: it synchronizes on state, with a deadline only
// as a safety net.
var waitFor = testwait.For

// TestWakeOrder parks three waiters and wakes them one at a time, oldest
// first.
func TestWakeOrder(t *testing.T) {
	var q Waiters
	var flags [3]atomic.Bool
	order := make(chan int, 3)
	for i := range flags {
		go func() {
			if err := Await(context.Background(), &q, flags[i].Load); err != nil {
				t.Error(err)
			}
			order <- i
		}()
		waitFor(t, "waiter to park", func() bool { return q.Len() == i+1 })
	}
	for i := range flags {
		flags[i].Store(true)
		q.Wake(1)
		if got := <-order; got != i {
			t.Fatalf("woke waiter %d, want %d", got, i)
		}
	}
	if q.Len() != 0 {
		t.Fatalf("Len = %d after all woke", q.Len())
	}
}

// TestCanceledWaiterPassesWakeOn: a waiter that is woken but leaves without
// using the wake-up (its context ended) must report it, so that Await hands
// the wake-up to the next waiter, or that one would sleep through a true
// condition.
func TestCanceledWaiterPassesWakeOn(t *testing.T) {
	var q Waiters
	var ready, checked atomic.Bool
	first := q.register() // stands for a waiter whose ctx is about to end
	second := make(chan error, 1)
	go func() {
		second <- Await(context.Background(), &q, func() bool {
			if ready.Load() {
				return true
			}
			// Registered: this is the look Await takes before it blocks,
			// so ready must not become true before it (the second waiter
			// would leave on its own instead of waiting to be woken).
			checked.Store(q.Len() == 2)
			return false
		})
	}()
	waitFor(t, "second waiter", checked.Load)

	ready.Store(true)
	q.Wake(1) // picks the oldest: the one that is leaving
	if q.Len() != 1 {
		t.Fatalf("Len = %d after waking one of two", q.Len())
	}
	if !q.leave(first) {
		t.Fatal("leave did not report the wake-up it swallowed")
	}
	q.Wake(1) // what Await does when leave reports true
	if err := <-second; err != nil {
		t.Fatalf("second waiter: %v", err)
	}
	// A waiter that leaves before anyone woke it reports false and unlinks.
	w := q.register()
	if q.leave(w) || q.Len() != 0 {
		t.Fatalf("leave of an unwoken waiter: Len = %d", q.Len())
	}
}

// TestNoLostWakeup has a waker publish a counter and wake, and a waiter wait
// for each value in turn, many times: a lost wake-up hangs the test.
func TestNoLostWakeup(t *testing.T) {
	var q Waiters
	var published atomic.Int64
	const rounds = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := int64(1); i <= rounds; i++ {
			if err := Await(context.Background(), &q, func() bool { return published.Load() >= i }); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := int64(1); i <= rounds; i++ {
		published.Store(i)
		q.Wake(1)
		if i%64 == 0 {
			runtime.Gosched() // let the waiter fall behind and park now and then
		}
	}
	wg.Wait()
}

// TestAwaitContext checks both context paths: already done, and ending
// while parked.
func TestAwaitContext(t *testing.T) {
	var q Waiters
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Await(ctx, &q, func() bool { return false }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Await with a done ctx = %v", err)
	}
	if err := Await(ctx, &q, func() bool { return true }); err != nil {
		t.Fatalf("Await with a done ctx and a true condition = %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Await(ctx, &q, func() bool { return false }) }()
	waitFor(t, "waiter to park", func() bool { return q.Len() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Await = %v", err)
	}
	if q.Len() != 0 {
		t.Fatalf("Len = %d after cancel", q.Len())
	}
}

// TestWakeAll wakes every parked waiter at once.
func TestWakeAll(t *testing.T) {
	var q Waiters
	var ready atomic.Bool
	const n = 8
	done := make(chan error, n)
	for range n {
		go func() { done <- Await(context.Background(), &q, ready.Load) }()
	}
	waitFor(t, "waiters to park", func() bool { return q.Len() == n })
	ready.Store(true)
	q.WakeAll()
	for range n {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestAwaitAllocs parks and wakes repeatedly and checks that the recycled
// waiters keep it allocation-free: fewer than one allocation per ten round
// trips, where allocating a waiter per park would cost two per round trip.
// The slack is for the runtime's own: a GC empties its sudog caches, which
// blocking on a channel then refills (a CI run saw 30 over 190 round trips).
// (make test runs the Allocs tests without -race, which distorts allocation
// counts.)
func TestAwaitAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts are distorted under -race")
	}
	var q Waiters
	var turn atomic.Int64
	const rounds = 2000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := int64(1); i <= 2*rounds; i += 2 {
			if err := Await(context.Background(), &q, func() bool { return turn.Load() == i }); err != nil {
				t.Error(err)
				return
			}
			turn.Store(i + 1)
			q.Wake(1)
		}
	}()
	pingPong := func(from, to int64) {
		for i := from; i < to; i += 2 {
			turn.Store(i + 1)
			q.Wake(1)
			if err := Await(context.Background(), &q, func() bool { return turn.Load() == i+2 }); err != nil {
				t.Fatal(err)
			}
		}
	}
	pingPong(0, 20) // warm up: the two waiters get created
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	pingPong(20, 2*rounds)
	runtime.ReadMemStats(&after)
	<-done
	if n := after.Mallocs - before.Mallocs; n > rounds/10 {
		t.Fatalf("%d allocations for %d park/wake round trips", n, rounds-10)
	}
}

// TestAwaitNAdapts: waits that end finding many items lengthen the look
// interval one step at a time, up to maxLevel; waits that find one item,
// or half the capacity or more, shorten it, down to 0; waits whose cond
// does not count (Await), or that find a middling number, leave it.
func TestAwaitNAdapts(t *testing.T) {
	var q Waiters
	ctx := context.Background()
	wait := func(found int) {
		t.Helper()
		looks := 0
		if err := AwaitN(ctx, &q, 1024, func() int {
			if looks++; looks < 2 {
				return 0 // the first look finds nothing
			}
			return found
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range maxLevel + 2 {
		wait(growAt)
		if got, want := q.level.Load(), int32(min(i+1, maxLevel)); got != want {
			t.Fatalf("after %d streaming waits: level %d, want %d", i+1, got, want)
		}
	}
	wait(growAt - 1)
	if err := Await(ctx, &q, func() bool { return true }); err != nil {
		t.Fatal(err)
	}
	if got := q.level.Load(); got != maxLevel {
		t.Fatalf("a middling wait and an uncounted one moved the level to %d", got)
	}
	for i := range maxLevel + 2 {
		wait(1)
		if got, want := q.level.Load(), int32(max(maxLevel-i-1, 0)); got != want {
			t.Fatalf("after %d one-item waits: level %d, want %d", i+1, got, want)
		}
	}
	// Finding half the capacity or more means the look came late (the
	// peer may have been waiting for it): never a reason to look later.
	wait(growAt)
	wait(512)
	if got := q.level.Load(); got != 0 {
		t.Fatalf("a wait that found half the capacity left level %d, want 0", got)
	}
	wait(512)
	if got := q.level.Load(); got != 0 {
		t.Fatalf("a wait that found half the capacity at level 0 moved it to %d", got)
	}
}

// TestAwaitPublishedWaitsOutAClaim: a waker that claimed (inFlight true) and
// then publishes without a wake-up, as one whose load of the waiter count
// came before its release store became visible, must not leave the waiter
// parked: AwaitPublished yields while the claim is in flight instead of
// parking, and returns once the publication shows.
func TestAwaitPublishedWaitsOutAClaim(t *testing.T) {
	var q Waiters
	var published atomic.Bool
	var looks atomic.Int64 // inFlight calls: each follows a registration that found nothing
	done := make(chan error, 1)
	go func() {
		done <- AwaitPublished(context.Background(), &q, 16, func() int {
			if published.Load() {
				return 1
			}
			return 0
		}, func() bool {
			looks.Add(1)
			return true
		})
	}()
	waitFor(t, "the waiter to register and find the claim", func() bool { return looks.Load() > 0 })
	published.Store(true) // and no Wake
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("AwaitPublished = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter parked on an in-flight claim and missed its publication")
	}
	if q.Len() != 0 {
		t.Fatalf("%d waiters still registered", q.Len())
	}
}

// TestAwaitPublishedParksWithoutAClaim: with nothing in flight the waiter
// parks as AwaitN's does, and a Wake ends the wait; a canceled one returns
// its context's error.
func TestAwaitPublishedParksWithoutAClaim(t *testing.T) {
	var q Waiters
	var published atomic.Bool
	done := make(chan error, 1)
	go func() {
		done <- AwaitPublished(context.Background(), &q, 16, func() int {
			if published.Load() {
				return 1
			}
			return 0
		}, func() bool { return false })
	}()
	waitFor(t, "the waiter to park", func() bool { return q.Len() == 1 })
	published.Store(true)
	q.Wake(1)
	if err := <-done; err != nil {
		t.Fatalf("AwaitPublished = %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var looks atomic.Int64
	go func() {
		done <- AwaitPublished(ctx, &q, 16, func() int { return 0 }, func() bool {
			looks.Add(1)
			return true
		})
	}()
	waitFor(t, "the waiter to find the claim", func() bool { return looks.Load() > 0 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("AwaitPublished = %v, want context.Canceled", err)
	}
}

// TestAwaitLightSettlesWithoutAWakeUp is the case AwaitLight exists for: a
// waker's light store whose look at the waiter count came before the
// store was visible, so that no Wake follows. The waiter, registered and
// past its last look, must still see the store: after settle it passes
// the heavy barrier and looks once more. Without that step it would park
// until a Wake that never comes.
func TestAwaitLightSettlesWithoutAWakeUp(t *testing.T) {
	SetEager(true) // register and park on the first look: no spinning
	defer SetEager(false)
	var q Waiters
	var stored atomic.Bool
	var looks atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- AwaitLight(context.Background(), &q, 16, func() int {
			v := stored.Load()
			looks.Add(1) // after the load: looks == 1 means look 1 found nothing
			if v {
				return 1
			}
			return 0
		})
	}()
	// One look, after registering, that found nothing: the waiter is on its
	// way to park, and only a wake-up, settle or ctx can end its wait.
	waitFor(t, "the waiter to register and look", func() bool { return q.Len() == 1 && looks.Load() == 1 })
	stored.Store(true) // and no Wake
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("AwaitLight = %v", err)
		}
	case <-time.After(10 * time.Second): // settle is 1 ms: a deadline, not a wait
		q.Wake(1)
		t.Fatalf("the waiter parked for good without seeing the store (then woken: %v)", <-done)
	}
	if n := looks.Load(); n != 2 {
		t.Fatalf("%d looks, want 2 (after registering, after the barrier)", n)
	}
	if q.Len() != 0 {
		t.Fatalf("%d waiters still registered", q.Len())
	}
}

// TestAwaitLightWakeAndCancel: a Wake ends an AwaitLight, and a canceled
// one (on the same Waiters, so on the waiter the first one left for reuse)
// returns its context's error and leaves no waiter registered.
func TestAwaitLightWakeAndCancel(t *testing.T) {
	SetEager(true)
	defer SetEager(false)
	var q Waiters
	var stored atomic.Bool
	cond := func() int {
		if stored.Load() {
			return 1
		}
		return 0
	}
	done := make(chan error, 1)
	go func() { done <- AwaitLight(context.Background(), &q, 16, cond) }()
	waitFor(t, "the waiter to register", func() bool { return q.Len() == 1 })
	stored.Store(true)
	q.Wake(1)
	if err := <-done; err != nil {
		t.Fatalf("AwaitLight after Wake = %v", err)
	}

	stored.Store(false)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- AwaitLight(ctx, &q, 16, cond) }()
	waitFor(t, "the waiter to register again", func() bool { return q.Len() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled AwaitLight = %v", err)
	}
	if q.Len() != 0 {
		t.Fatalf("%d waiters still registered after cancel", q.Len())
	}
}

// TestSettledCountsWaitersPastSettle: an AwaitLight waiter that found
// nothing at its settle look shows in Settled until a wake-up or its
// context ends its wait; a waiter of AwaitN never does.
func TestSettledCountsWaitersPastSettle(t *testing.T) {
	SetEager(true)
	defer SetEager(false)
	var q Waiters
	var stored atomic.Bool
	cond := func() int {
		if stored.Load() {
			return 1
		}
		return 0
	}
	done := make(chan error, 1)
	go func() { done <- AwaitLight(context.Background(), &q, 16, cond) }()
	waitFor(t, "the waiter to pass its settle look", func() bool { return q.Settled() == 1 })
	stored.Store(true)
	q.Wake(1)
	if err := <-done; err != nil {
		t.Fatalf("AwaitLight = %v", err)
	}
	if n := q.Settled(); n != 0 {
		t.Fatalf("Settled = %d after the wake-up, want 0", n)
	}

	stored.Store(false)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- AwaitLight(ctx, &q, 16, cond) }()
	waitFor(t, "the second waiter to pass its settle look", func() bool { return q.Settled() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled AwaitLight = %v", err)
	}
	if n := q.Settled(); n != 0 {
		t.Fatalf("Settled = %d after the cancel, want 0", n)
	}

	go func() { done <- AwaitN(ctx, &q, 16, cond) }() // ctx is canceled: no wait at all
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("AwaitN with a canceled ctx = %v", err)
	}
	go func() { done <- AwaitN(context.Background(), &q, 16, cond) }()
	waitFor(t, "an AwaitN waiter to register", func() bool { return q.Len() == 1 })
	if n := q.Settled(); n != 0 {
		t.Fatalf("Settled = %d with an AwaitN waiter, want 0", n)
	}
	stored.Store(true)
	q.Wake(1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
