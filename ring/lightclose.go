package ring

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/spillway-io/spillway/internal/release"
)

// lightClose is the closing protocol of a ring whose single producer
// publishes tail with a light store (release.StoreLight) instead of a CAS
// that Close could fail: SPSC and Broadcast.
//
// Invariants:
//   - state goes open -> closing -> closed, each step by close alone.
//   - Only the producer stores announced. A push of n items from position
//     t stores announced = t+n (begin) before it loads state, then either
//     publishes with its store of tail = t+n, or, having found the ring
//     not open, stores announced = t back and adds nothing. So announced >
//     tail exactly while a push is in progress.
//   - close stores closing, makes every thread pass a full barrier
//     (release.Heavy), waits until announced <= tail, then stores closed. A
//     push whose load of state came after the barrier reached its thread
//     sees closing and adds nothing; one whose load came before had stored
//     announced before the barrier too, so close sees it and waits it out.
//     Hence once state is closed tail never changes, and a consumer that
//     loads state (closed) and then tail has seen every item.
//
// Who may call what: begin from the producer; close from any goroutine;
// the loads from anyone.
type lightClose struct {
	state     atomic.Uint32 // stateOpen, stateClosing or stateClosed; stored by close
	announced *atomic.Uint64
	tail      *atomic.Uint64
}

// The states of a lightClose.
const (
	stateOpen uint32 = iota
	stateClosing
	stateClosed
)

// begin marks a push of n items from position t in progress and reports
// whether the ring is open; if it is not, it takes the mark back.
// REQUIRES: producer.
func (c *lightClose) begin(t, n uint64) bool {
	release.StoreLight(c.announced, t+n)
	if c.state.Load() != stateOpen {
		release.StoreLight(c.announced, t)
		return false
	}
	return true
}

// open reports whether pushes may still succeed.
func (c *lightClose) open() bool { return c.state.Load() == stateOpen }

// closed reports whether tail is final: load it after this.
func (c *lightClose) closed() bool { return c.state.Load() == stateClosed }

// close runs the protocol and reports whether this call closed the ring
// (false: another call did or does). It waits for a push in progress.
func (c *lightClose) close() bool {
	if !c.state.CompareAndSwap(stateOpen, stateClosing) {
		return false
	}
	heavyBarrier()
	for c.announced.Load() > c.tail.Load() {
		// A push that began before the barrier: it adds its items, or none.
		if testHookCloseWaits != nil {
			testHookCloseWaits()
		}
		runtime.Gosched()
	}
	c.state.Store(stateClosed)
	return true
}

// heavyBarrier makes every thread of the process pass a full memory barrier
// (release.Heavy).
func heavyBarrier() {
	if release.Heavy() {
		return
	}
	// membarrier(2) fails only for an invalid command or a process that did
	// not register, neither of which happens after release's init succeeded.
	// Should it fail anyway: a store leaves the store buffer within
	// microseconds while its thread runs, and a thread that stops running
	// drains it then; 10 ms outlasts either.
	time.Sleep(10 * time.Millisecond)
}

// testHookCloseWaits, set by tests, is called each time close finds a push
// in progress.
var testHookCloseWaits func()
