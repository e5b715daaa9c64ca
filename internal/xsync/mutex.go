package xsync

import (
	"context"
	"runtime"
	"sync/atomic"

	"github.com/spillway-io/spillway/internal/park"
	"github.com/spillway-io/spillway/internal/release"
)

// TryMutex is a mutual-exclusion lock for short critical sections whose
// callers mostly TryLock and go elsewhere when it is taken. Its zero value
// is unlocked.
//
// TryLock is one CAS and Unlock, usually, a release store (internal/release:
// on amd64 a plain store, no locked instruction), where sync.Mutex's Unlock
// is an atomic add: on the hot paths that take such a lock once per
// message, that instruction was a large part of the cost.
//
// The price is paid by Lock. An Unlock by release store cannot look for
// waiters safely (a later load may overtake the store), so while the
// holder is quick, Lock spins briefly and then yields until TryLock
// succeeds. A holder about to wait or do I/O calls Slow first: then Lock
// callers park, and its Unlock, a sequentially consistent store followed
// by a look at the waiters, wakes them.
//
// Invariants:
//   - state is free, held or heldSlow. Only a CAS from free to held takes
//     the lock; while it is not free only the holder writes state (Slow,
//     Unlock), so Unlock's load-then-store cannot lose a change.
//   - Goroutines are parked on waiters only while state is heldSlow: a
//     locker registers and then re-checks state (park.Await), and the
//     holder leaves heldSlow only by Unlock's sequentially consistent store
//     followed by WakeAll, so either the locker sees the store or the holder
//     sees the locker.
//   - The holder's writes happen before the next holder's: they precede the
//     store of free, which precedes the next holder's successful CAS.
//
// Safe for concurrent use. Unlock must be called once per Lock or
// successful TryLock, by the holder or on its behalf.
type TryMutex struct {
	state   atomic.Uint64
	waiters park.Waiters
}

const (
	free     = 0
	held     = 1
	heldSlow = 2
)

// lockSpins is how many failed TryLocks Lock makes on a quick holder
// before it yields between them: a critical section of a hot path is
// shorter than a yield.
const lockSpins = 16

// TryLock takes the lock if it is free and reports whether it did.
func (m *TryMutex) TryLock() bool {
	return m.state.Load() == free && m.state.CompareAndSwap(free, held)
}

// Lock takes the lock: it spins and yields while a quick holder has it,
// and parks while one that called Slow has it.
func (m *TryMutex) Lock() {
	for i := 0; !m.TryLock(); i++ {
		switch {
		case m.state.Load() == heldSlow:
			_ = park.Await(context.Background(), &m.waiters, m.notSlow) // fails only with its ctx
		case i >= lockSpins:
			runtime.Gosched()
		}
	}
}

func (m *TryMutex) notSlow() bool { return m.state.Load() != heldSlow }

// Slow tells Lock callers that the holder may keep the lock a while (it is
// about to wait or do I/O): they park until its Unlock wakes them. Only
// the holder may call it; it lasts until the Unlock.
func (m *TryMutex) Slow() {
	m.state.Store(heldSlow)
}

// Unlock releases the lock. It panics if the lock is not held.
func (m *TryMutex) Unlock() {
	switch m.state.Load() {
	case held:
		release.Store(&m.state, free)
	case heldSlow:
		m.state.Store(free)
		m.waiters.WakeAll()
	default:
		panic("xsync: Unlock of an unlocked TryMutex")
	}
}
