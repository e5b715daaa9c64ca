package release

import "sync/atomic"

// Asymmetric fences.
//
// Two goroutines that each store a word and then load the other's (a ring's
// producer publishing tail and then looking for a parked consumer, the
// consumer registering as a waiter and then looking at tail) need a full
// fence between the store and the load on both sides, or both may miss the
// other (store-load reordering, the "store buffer" litmus test). When one
// side runs on every item and the other rarely (a goroutine about to park),
// the fence can be split unevenly: the frequent side stores with StoreLight
// (a plain store) and the rare side, after its own sequentially consistent
// store, calls Heavy, which makes every thread of the process pass a full
// barrier (Linux membarrier(2), MEMBARRIER_CMD_PRIVATE_EXPEDITED). Then, of a
// light store followed by a load on one side and an SC store, Heavy and a
// load on the other, at least one of the loads sees the other side's store:
// either the light store was issued before the barrier reached its thread,
// and Heavy returns after it is visible, or it was issued after, and so was
// the load behind it, which is then performed after the SC store.
//
// Where the kernel offers no such barrier (other systems, old kernels,
// sandboxes that filter the call), on other architectures and compilers
// than amd64 and gc, and under the race detector, Asymmetric is false: StoreLight is then sync/atomic's sequentially consistent Store
// and Heavy does nothing, which keeps the same guarantee at the frequent
// side's expense.

// asymmetric is set once, by init, before any goroutine uses the package.
var asymmetric bool

// Asymmetric reports whether StoreLight is a plain store ordered by Heavy.
func Asymmetric() bool { return asymmetric }

// StoreLight writes v to *p: a release store (Store) when Asymmetric, and a
// sequentially consistent one otherwise. Pair it with Heavy on the side that
// must not miss it.
func StoreLight(p *atomic.Uint64, v uint64) {
	if asymmetric {
		Store(p, v)
		return
	}
	p.Store(v)
}

// Heavy is the rare side of an asymmetric fence: when it returns true,
// every thread of the process has passed a full memory barrier since the
// call began, so a StoreLight issued before that point is visible to the
// caller, and a load that follows a StoreLight issued after it sees every
// store the caller made before calling Heavy. It costs a system call that
// interrupts the CPUs running this process's threads, so it belongs only
// on paths that are about to block anyway. It reports false
// if the barrier failed, in which case the caller must not rely on it: it
// is then free to retry, or to wait without parking.
func Heavy() bool {
	if !asymmetric {
		return true // StoreLight is sequentially consistent: nothing to order
	}
	return heavy()
}
