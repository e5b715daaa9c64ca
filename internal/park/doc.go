// Package park is the waiting strategy shared by Spillway's lock-free
// structures: spin briefly, then park the goroutine until the other side
// wakes it.
//
// # Strategy and its cost
//
// A goroutine whose condition is not met (ring empty, ring full) calls
// [Await] or [AwaitN], which looks again only after backing off:
//
//  1. it spins, looking every minLook<<level (0.25 µs to 16 µs; see below)
//     for about [activeBudget] (4 µs, at least one look), in a PAUSE loop
//     calibrated at start-up, but only when GOMAXPROCS > 1, since on one P
//     the peer cannot run meanwhile;
//  2. it yields its P with runtime.Gosched for up to [passiveSpins] rounds,
//     so that the goroutine it waits for can run on this P;
//  3. it registers on a [Waiters] list, looks once more, and blocks on a
//     channel until a waker or its ctx ends the wait.
//
// How often to look is a trade. Each look reads a cache line the peer
// writes, and the peer's next atomic write then stalls for a cross-core
// round trip: against a streaming peer, looking rarely lets it move
// hundreds of items per look, and looking often taxes it on every item.
// Against a peer that sends one item and waits for the answer, looking
// often is what makes the answer fast. So the interval adapts, per
// [Waiters]: a wait that ends finding at least [growAt] items (AwaitN's
// cond reports how many) doubles it for the next waits, up to 16 µs; one
// that finds a single item halves it, down to [minLook]. Await, whose cond
// does not count, leaves it as it is.
//
// Latency: an item pushed while its consumer spins is seen within one
// interval, or within one yield; a parked consumer is woken by the
// scheduler (a few µs). The interval is 0.25 µs for items that come one at
// a time, and up to 16 µs after waits that each found a batch, which is
// the delay a streaming peer's items may wait in the ring (lone items
// after a stream wait at most 16, 8, 4, ... µs: each wait that finds one
// item halves the interval). A ping-pong of one item through two SPSC
// rings is slower than through channels, whose runtime hands the woken
// receiver the sender's P (README, Rings). A goroutine that stays idle
// spins 4 to 16 µs and yields for about 20 µs per wait, then costs
// nothing: no timer, no polling.
//
// # No lost wake-up
//
// The waiter increments [Waiters]' count with a sequentially consistent
// atomic add and only then re-checks its condition; the waker publishes its
// change with a sequentially consistent atomic store or CAS and only then
// loads the count. By the total order of Go's sync/atomic operations, either
// the waiter's re-check sees the change or the waker sees the waiter. A
// waiter that was woken but leaves without using the wake-up (its ctx ended)
// passes the wake-up on to the next waiter.
//
// A waker that publishes with a release store instead (internal/release:
// on amd64 a plain store, which a later load may overtake) keeps the
// guarantee only with [AwaitPublished]: its claim of the slot it then
// publishes must be sequentially consistent, and the waiter, after
// registering, yields instead of parking while a claim is in flight. A
// waker that claims nothing and publishes with a light store alone
// (release.StoreLight) keeps it with [AwaitLight]: the waiter waits at
// most 1 ms before it makes every thread pass a barrier
// (release.Heavy, membarrier(2)) and looks once more, then waits for good.
package park
