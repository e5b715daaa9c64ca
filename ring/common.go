package ring

import (
	"context"
	"sync/atomic"

	"github.com/spillway-io/spillway/internal/park"
)

// closeTail sets closedBit in tail; it returns false if it was already set.
func closeTail(tail *atomic.Uint64) bool {
	for {
		t := tail.Load()
		if t&closedBit != 0 {
			return false
		}
		if tail.CompareAndSwap(t, t|closedBit) {
			return true
		}
	}
}

// copyIn copies vs into buf starting at slot i, wrapping around the end.
// len(buf) is a power of two, as every ring's is.
func copyIn[T any](buf []T, i uint64, vs []T) {
	if len(vs) <= smallCopy {
		mask := uint64(len(buf) - 1)
		for j, v := range vs {
			buf[(i+uint64(j))&mask] = v
		}
		return
	}
	if end := i + uint64(len(vs)); end <= uint64(len(buf)) {
		copy(buf[i:end], vs) // no wrap: one copy
		return
	}
	n := copy(buf[i:], vs)
	copy(buf, vs[n:])
}

// copyOut copies len(dst) slots of buf starting at slot i into dst,
// wrapping; len(buf) is a power of two.
func copyOut[T any](dst []T, buf []T, i uint64) {
	if len(dst) <= smallCopy {
		mask := uint64(len(buf) - 1)
		for j := range dst {
			dst[j] = buf[(i+uint64(j))&mask]
		}
		return
	}
	if end := i + uint64(len(dst)); end <= uint64(len(buf)) {
		copy(dst, buf[i:end]) // no wrap: one copy
		return
	}
	n := copy(dst, buf[i:])
	copy(dst[n:], buf)
}

// smallCopy is the most items copyIn and copyOut move one assignment at a
// time. For a T holding pointers, copy is two calls of the runtime's
// typedslicecopy (one for each side of the wrap), whose fixed cost shows
// when a Topic publishes one message at a time: the loop made fan-out to
// three subscriptions faster (docs/MEASUREMENTS.md).
const smallCopy = 8

// clearRange zeroes n slots of buf starting at slot i, wrapping, so that the
// ring keeps no references to popped items.
func clearRange[T any](buf []T, i, n uint64) {
	end := i + n
	if end <= uint64(len(buf)) {
		clear(buf[i:end])
		return
	}
	clear(buf[i:])
	clear(buf[:end-uint64(len(buf))])
}

// waitPolicy says how a ring's blocking calls keep clear of lost wake-ups,
// which depends on how the other side publishes what the wait is for
// (package park):
//   - the zero value: with a sequentially consistent atomic (park.AwaitN);
//   - inFlight: with a sequentially consistent claim followed by a release
//     store; inFlight reports a claim not yet seen published
//     (park.AwaitPublished);
//   - light: with a light store (release.StoreLight) and nothing else
//     (park.AwaitLight).
type waitPolicy struct {
	inFlight func() bool
	light    bool
}

func (w waitPolicy) await(ctx context.Context, q *park.Waiters, capacity int, cond func() int) error {
	if w.light {
		return park.AwaitLight(ctx, q, capacity, cond)
	}
	return park.AwaitPublished(ctx, q, capacity, cond, w.inFlight)
}

// popSlow is the waiting part of Pop, shared by all ring kinds. pop reports an
// item, or that the ring is closed and drained; left is how many items the
// ring still holds for this consumer (Len), which tells the wait how many
// it found; wait is how the producers publish.
func popSlow[T any](ctx context.Context, q *park.Waiters, capacity int, pop func() (T, bool, bool), left func() int, wait waitPolicy) (T, error) {
	var (
		v           T
		ok, drained bool
	)
	err := wait.await(ctx, q, capacity, func() int {
		v, ok, drained = pop()
		switch {
		case ok:
			return 1 + left()
		case drained:
			return -1
		}
		return 0
	})
	if ok {
		return v, nil
	}
	var zero T
	if err != nil {
		return zero, err
	}
	return zero, ErrClosed
}

// popSome waits until popBatch moves at least one item into dst, or the ring
// is closed and drained; left and wait are as for popSlow.
func popSome[T any](ctx context.Context, dst []T, q *park.Waiters, capacity int, popBatch func([]T) (int, bool), left func() int, wait waitPolicy) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	if n, _ := popBatch(dst); n > 0 {
		return n, nil
	}
	var (
		n       int
		drained bool
	)
	err := wait.await(ctx, q, capacity, func() int {
		n, drained = popBatch(dst)
		switch {
		case n > 0:
			return n + left()
		case drained:
			return -1
		}
		return 0
	})
	if n > 0 {
		return n, nil
	}
	if err != nil {
		return 0, err
	}
	return 0, ErrClosed
}

// pushWait is the waiting part of Push, shared by all ring kinds: it waits
// on q until tryPush succeeds or the ring is closed. free is how many more
// items the ring has room for (Cap - Len), which tells the wait how much
// room it found. wait is how the consumers release slots (as for popSlow:
// inFlight then reports room claimed but maybe not yet seen released).
func pushWait(ctx context.Context, q *park.Waiters, capacity int, tryPush, closed func() bool, free func() int, wait waitPolicy) error {
	var isClosed bool
	err := wait.await(ctx, q, capacity, func() int {
		if tryPush() {
			return 1 + free()
		}
		if isClosed = closed(); isClosed {
			return -1
		}
		return 0
	})
	if err != nil {
		return err
	}
	if isClosed {
		return ErrClosed
	}
	return nil
}

// pushAll pushes all of vs with pushBatch, waiting on q whenever the ring is
// full; free and wait are as for pushWait.
func pushAll[T any](ctx context.Context, vs []T, pushBatch func([]T) int, q *park.Waiters, capacity int, closed func() bool, free func() int, wait waitPolicy) (int, error) {
	done := pushBatch(vs)
	if done == len(vs) {
		return done, nil
	}
	var isClosed bool
	err := wait.await(ctx, q, capacity, func() int {
		n := pushBatch(vs[done:])
		done += n
		switch {
		case done == len(vs):
			return n + free()
		case n > 0:
			return 0 // room for some, not all: keep waiting, and do not adapt
		}
		if isClosed = closed(); isClosed {
			return -1
		}
		return 0
	})
	switch {
	case done == len(vs):
		return done, nil
	case err != nil:
		return done, err
	default:
		return done, ErrClosed
	}
}
