// Package ring provides generic, bounded, lock-free rings: the in-memory
// layer of Spillway.
//
//   - [SPSC]: one producer, one consumer. Lamport's ring with cached indices,
//     published with plain stores.
//   - [MPSC]: many producers, one consumer. Producers claim runs of slots with
//     one CAS and publish each run with one store; the consumer reads runs.
//   - [MPMC]: many producers, many consumers. Vyukov's array queue with a
//     turn counter per slot.
//   - [Broadcast]: one writer, many readers each with its own cursor (the
//     Disruptor's multicast). The slowest reader gates the writer. A reader
//     popping one item at a time reads up to 8 ahead, with one store.
//
// Every ring has non-blocking operations (TryPush, TryPop, PushBatch,
// PopBatch) that report what they did, and blocking ones (Push, Pop,
// PushBatchWait, PopBatchWait) that take a context. Capacities are rounded
// up to a power of two. Rings hold values of T, so a ring of non-pointer
// values allocates nothing after construction.
//
// # Memory ordering
//
// Go's sync/atomic operations are sequentially consistent. On amd64 a store
// is an XCHG (a full barrier) and a load is a plain MOV, so publishing costs
// a locked instruction and observing costs nothing. Every ring therefore
// publishes once per call, batches included, and each side keeps a private
// copy of the other side's index, re-reading it only when its copy says
// "full" or "empty". Hot indices sit on their own cache lines, fenced by
// golang.org/x/sys/cpu.CacheLinePad on both sides.
//
// Where a slot is claimed by a CAS first (MPSC producers, both sides of
// MPMC), the word that then publishes it needs only release order, which
// every plain store has on amd64: those rings publish with
// internal/release's Store (a plain store the gc compiler keeps in program
// order; sync/atomic's under the race detector and on other
// architectures), about twice as fast per item as an XCHG there. A release
// store does not order the waker's later look for parked waiters, so their
// waiters do not park while a claim is in flight (park.AwaitPublished).
//
// Where one goroutine owns the index it publishes (both sides of SPSC, the
// Broadcast writer), there is no claim to look at: those publish with a
// light store (release.StoreLight, the same plain store on amd64 Linux)
// and execute no locked instruction per call. What orders them against a
// waiter is an asymmetric fence: a waiter that has been registered for 1
// ms and still finds nothing makes every thread of the process pass a
// full barrier (membarrier(2), 1-20 µs) and looks once more before it
// waits for good (park.AwaitLight). Where that barrier is missing (other
// systems, the race detector) the light stores are sequentially consistent
// instead.
//
// # Closing
//
// Close may be called from any goroutine, any number of times. After Close,
// pushes fail (ErrClosed, or false for the non-blocking ones), pops return
// what is left and then ErrClosed, and every blocked caller wakes up. A push
// that reported success is never lost to a concurrent Close. In MPSC and
// MPMC, Close sets a flag inside the producers' index with a CAS, and every
// push claims its slots with a CAS of the same word, so each claim lands
// wholly before Close or fails; a claim made before Close is published and
// drained. SPSC's producer and Broadcast's writer announce each push with a
// plain store before they look at the ring's state; Close marks the ring
// closing, passes the barrier, waits out a push it caught in progress, and
// only then lets pops report ErrClosed.
//
// Popped slots are zeroed so that the ring keeps no references for the
// garbage collector (for [Broadcast], once every reader has passed them; see
// its invariants).
//
// # Waiting
//
// A blocked call spins briefly, yields its P a few times, then parks on a
// channel until the other side wakes it (see internal/park). While it spins
// it looks at the other side every 0.25 to 16 µs: the interval adapts to
// what its waits find, long while the other side streams (each look steals
// the cache line the other side writes), short while items come one at a
// time. So a spinning peer sees a lone item within about 0.25 µs and an
// item of a stream within at most 16 µs; waking a parked one costs a
// scheduler wake-up, about 1–5 µs. An idle goroutine blocked in Pop burns no
// CPU at all once parked: there is no timer and no polling. The waker's cost
// when nobody is parked is one atomic load per call.
package ring
