package spillway

import (
	"context"

	"github.com/spillway-io/spillway/internal/park"
	"github.com/spillway-io/spillway/shard"
)

// Receive returns the next message, waiting until there is one or ctx ends.
// It fails with ErrClosed or ctx.Err(). Receivers take from all shards, from
// a random starting shard each time, so no shard starves.
func (q *Queue) Receive(ctx context.Context) (Delivery, error) {
	var d [1]Delivery
	if q.tryReceive(d[:]) > 0 {
		return d[0], nil
	}
	_, err := q.receiveSlow(ctx, d[:])
	return d[0], err
}

// ReceiveBatch fills dst with up to len(dst) messages, from one shard,
// waiting until there is at least one. It returns how many it filled, and
// fails like Receive.
func (q *Queue) ReceiveBatch(ctx context.Context, dst []Delivery) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	if n := q.tryReceive(dst); n > 0 {
		return n, nil
	}
	return q.receiveSlow(ctx, dst)
}

func (q *Queue) receiveSlow(ctx context.Context, dst []Delivery) (int, error) {
	var n int
	err := park.Await(ctx, &q.receivers, func() bool {
		n = q.tryReceive(dst)
		return n > 0 || q.closed.Load()
	})
	switch {
	case n > 0:
		return n, nil
	case err != nil:
		return 0, err
	default:
		return 0, ErrClosed
	}
}

// tryReceive takes up to len(dst) messages from the first shard, from a
// random start, that has any and whose consumer lock is free.
func (q *Queue) tryReceive(dst []Delivery) int {
	n := len(q.shards)
	start := shard.Random(n)
	for i := range n {
		s := q.shards[(start+i)&(n-1)]
		if !s.cons.TryLock() {
			continue
		}
		if q.closed.Load() {
			s.cons.Unlock()
			return 0
		}
		k := s.take(dst)
		more := k == len(dst) && !s.emptyLocked()
		s.cons.Unlock()
		if k > 0 {
			s.senders.Wake(k)
			if more {
				// Receivers that found this shard locked may have parked.
				q.receivers.Wake(1)
			}
			return k
		}
	}
	return 0
}

// emptyLocked reports whether s has nothing to deliver right now.
// REQUIRES: s.cons.
func (s *qshard) emptyLocked() bool {
	return s.ring.Len() == 0 && s.readyLen.Load() == 0 && !s.spilling.Load()
}

// take fills dst from s: redeliveries first, then the ring, refilled from
// the spill when it runs dry. REQUIRES: s.cons.
func (s *qshard) take(dst []Delivery) int {
	n := 0
	if s.readyLen.Load() > 0 {
		n = s.takeReady(dst)
	}
	first := n
	for n < len(dst) {
		head := s.ring.Head()
		want := min(len(dst)-n, len(s.scratch))
		var k int
		if want == 1 {
			if e, ok := s.ring.TryPop(); ok {
				s.scratch[0], k = e, 1
			}
		} else {
			k = s.ring.PopBatch(s.scratch[:want])
		}
		if k == 0 {
			if s.spilling.Load() && s.refill() {
				continue
			}
			break
		}
		for j, e := range s.scratch[:k] {
			dst[n+j] = Delivery{
				Message: Message{Key: e.key, Value: e.value, Headers: e.headers},
				Shard:   s.idx,
				Offset:  head + uint64(j),
				Attempt: 1,
			}
		}
		clear(s.scratch[:k])
		n += k
	}
	if n > 0 && s.spilling.Load() && len(s.carry) == 0 && s.ring.Len() == 0 {
		// The ring ran dry while spilling: refill it now, or, if the spill
		// is drained, go back to memory and remove its files right away.
		s.refill()
	}
	if s.q.opts.Ack == ManualAck && n > first {
		s.leaseOut(dst[first:n])
	}
	return n
}
