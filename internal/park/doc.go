// Package park is the waiting strategy shared by Spillway's lock-free
// structures: spin briefly, then park the goroutine until the other side
// wakes it.
//
// # Strategy and its cost
//
// A goroutine whose condition is not met (ring empty, ring full) calls
// [Await], which looks again only after backing off:
//
//  1. it spins for [activeSpins] rounds of [spinRound] (2 µs) each, a PAUSE
//     loop calibrated at start-up, but only when GOMAXPROCS > 1, since on
//     one P the peer cannot run meanwhile;
//  2. it yields its P with runtime.Gosched for up to [passiveSpins] rounds,
//     so that the goroutine it waits for can run on this P;
//  3. it registers on a [Waiters] list, looks once more, and blocks on a
//     channel until a waker or its ctx ends the wait.
//
// Why so patient: each look reads a cache line the peer writes, and the
// peer's next atomic write then stalls for a cross-core round trip. Looking
// rarely lets a streaming peer move hundreds of items per look; looking
// often would tax it on every item.
//
// Latency: an item pushed while its consumer spins is seen within one round
// (2 µs) or one yield; a parked consumer is woken by the scheduler (a few
// µs). A goroutine that stays idle spins about 4 µs and yields for about
// 20 µs per wait, then costs nothing: no timer, no polling.
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
package park
