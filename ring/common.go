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
func copyIn[T any](buf []T, i uint64, vs []T) {
	n := copy(buf[i:], vs)
	copy(buf, vs[n:])
}

// copyOut copies len(dst) slots of buf starting at slot i into dst, wrapping.
func copyOut[T any](dst []T, buf []T, i uint64) {
	n := copy(dst, buf[i:])
	copy(dst[n:], buf)
}

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

// popSlow is the waiting part of Pop, shared by all ring kinds. pop reports an
// item, or that the ring is closed and drained.
func popSlow[T any](ctx context.Context, q *park.Waiters, pop func() (T, bool, bool)) (T, error) {
	var (
		v           T
		ok, drained bool
	)
	err := park.Await(ctx, q, func() bool {
		v, ok, drained = pop()
		return ok || drained
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
// is closed and drained.
func popSome[T any](ctx context.Context, dst []T, q *park.Waiters, popBatch func([]T) (int, bool)) (int, error) {
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
	err := park.Await(ctx, q, func() bool {
		n, drained = popBatch(dst)
		return n > 0 || drained
	})
	if n > 0 {
		return n, nil
	}
	if err != nil {
		return 0, err
	}
	return 0, ErrClosed
}

// pushAll pushes all of vs with pushBatch, waiting on q whenever the ring is
// full.
func pushAll[T any](ctx context.Context, vs []T, pushBatch func([]T) int, q *park.Waiters, closed func() bool) (int, error) {
	done := pushBatch(vs)
	if done == len(vs) {
		return done, nil
	}
	var isClosed bool
	err := park.Await(ctx, q, func() bool {
		done += pushBatch(vs[done:])
		if done == len(vs) {
			return true
		}
		isClosed = closed()
		return isClosed
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
