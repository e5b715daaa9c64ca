package spillway

import (
	"context"
	"fmt"
	"sync/atomic"
)

// Subscription is one receiver attached to a named subscription of a
// Topic. Receivers of the same subscription compete for its messages.
// Closing a Subscription detaches that receiver only: the subscription
// keeps its backlog, and keeps receiving what is published, until the
// topic's Unsubscribe deletes it.
//
// A Subscription is safe for concurrent use.
type Subscription struct {
	sub    *subscription
	t      *Topic
	closed atomic.Bool
	// caughtUp: the last ReceiveBatch took fewer messages than it asked
	// for, so there were no more. The next one then waits a look interval
	// (park.AwaitN) before it looks, as a ring consumer does: looking at
	// once would find the few messages published since, and every look
	// takes the ring's cache lines from the publisher. A hint only:
	// receivers sharing the Subscription may race on it.
	caughtUp atomic.Bool
}

// subscription is one named subscription: a group of competing receivers,
// with one subShard per topic shard.
type subscription struct {
	group
	name     string
	start    StartAt // where it was created
	shards   []*subShard
	attached atomic.Int64 // Subscription handles open
}

// Close detaches this receiver: its blocked Receive calls return
// ErrClosed, and so do later ones. The subscription and its backlog stay.
// Close is idempotent: later calls return ErrClosed.
func (r *Subscription) Close() error {
	if r.closed.Swap(true) {
		return ErrClosed
	}
	r.sub.attached.Add(-1)
	r.sub.receivers.WakeAll()
	return nil
}

// Name returns the subscription's name.
func (r *Subscription) Name() string { return r.sub.name }

func (r *Subscription) done() bool {
	return r.closed.Load() || r.sub.closed.Load()
}

// Receive returns the subscription's next message, waiting until there is
// one or ctx ends. It fails with ErrClosed (the receiver, the subscription
// or the topic was closed) or ctx.Err().
func (r *Subscription) Receive(ctx context.Context) (Delivery, error) {
	var d [1]Delivery
	_, err := r.ReceiveBatch(ctx, d[:])
	return d[0], err
}

// ReceiveBatch fills dst with up to len(dst) messages, from one shard,
// waiting until there is at least one. It returns how many it filled, and
// fails like Receive. After a call that filled fewer than it asked for
// (the subscription was empty), the next one first waits as a ring
// consumer does, 0.25 to 16 µs as messages come one at a time or stream,
// so that it takes the messages published meanwhile in one go.
func (r *Subscription) ReceiveBatch(ctx context.Context, dst []Delivery) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	if r.done() {
		return 0, ErrClosed
	}
	n := 0
	var err error
	if !r.caughtUp.Load() {
		n = r.sub.tryReceive(dst)
	}
	if n == 0 {
		n, err = r.sub.awaitLight(ctx, func() (int, int) { return r.sub.takeSome(dst, lookWaiting) }, r.done)
	}
	if caughtUp := n > 0 && n < len(dst); caughtUp != r.caughtUp.Load() {
		r.caughtUp.Store(caughtUp)
	}
	return n, err
}

// TryReceive returns the subscription's next message if it can take one
// without waiting for one to arrive or for another receiver. It fails with
// ErrEmpty when it could not: nothing is published past the subscription's
// position, or the shards that hold messages are being taken from by other
// receivers of the subscription at that moment, or the next spilled batch
// is still being decoded. It fails with ErrClosed once the subscription or
// its Topic is closed. Like Receive, it may hand the spill's last, partly
// filled batch to the disk so as to read it back: that waits for its
// compression, not for a publisher.
func (r *Subscription) TryReceive() (Delivery, error) {
	var d [1]Delivery
	_, err := r.TryReceiveBatch(d[:])
	return d[0], err
}

// TryReceiveBatch fills dst with up to len(dst) messages, from one shard,
// that it can take without waiting, and returns how many. It fails like
// TryReceive (ErrEmpty, ErrClosed) when it took none; an empty dst takes
// nothing and fails with nothing.
func (r *Subscription) TryReceiveBatch(dst []Delivery) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	if r.done() {
		return 0, ErrClosed
	}
	if n := r.sub.tryReceive(dst); n > 0 {
		return n, nil
	}
	if r.done() {
		return 0, ErrClosed
	}
	return 0, ErrEmpty
}

func (sub *subscription) tryReceive(dst []Delivery) int {
	n, _ := sub.takeSome(dst, lookOnce)
	return n
}

// takeSome is tryReceive that also reports how many messages it found: those
// it took and those the subShard still holds popped or read back, and,
// for a waiting receiver (lookWaiting) whose dst is full, those left in the ring for it (see
// Queue.takeSome: why a waiting batch receiver must count them).
func (sub *subscription) takeSome(dst []Delivery, how look) (n, seen int) {
	shards := sub.opts.Shards
	if shards == len(sub.shards) {
		return sub.takeLane(dst, how, 0) // one priority level
	}
	for base := len(sub.shards) - shards; base >= 0; base -= shards {
		if n, seen = sub.takeLane(dst, how, base); n > 0 {
			return n, seen
		}
	}
	return 0, 0
}

// takeLane is takeSome in the lane of shards sub.shards[base:][:Shards]
// (Priorities: each level has its own).
func (sub *subscription) takeLane(dst []Delivery, how look, base int) (n, seen int) {
	shards := sub.opts.Shards
	start := int(sub.takeAt.Load())
	skipped := false // a shard was skipped because another receiver held it
	for i := range shards {
		idx := base + (start+i)&(shards-1)
		ss := sub.shards[idx]
		if !ss.recvMu.TryLock() {
			skipped = true
			continue
		}
		k := ss.take(dst)
		if k > 0 {
			sub.tookFrom(idx, k, &ss.taken, k < len(dst), i > 0 && !skipped)
		}
		more := k == len(dst) && sub.receivers.Pending()
		held := ss.hi - ss.lo + len(ss.carry) - ss.carryNext
		if how == lookWaiting && k == len(dst) && ss.r != nil {
			held += ss.r.Len() // the publisher's side: only when waiting
		}
		fail := ss.failure
		ss.failure = nil
		ss.recvMu.Unlock()
		if fail != nil {
			sub.group.report(fmt.Errorf("subscription %q: %w", sub.name, fail))
		}
		if k > 0 {
			ss.ts.room.Wake(1) // a publisher waiting for this subscription (Block)
			if more {
				sub.receivers.Wake(1)
			}
			return k, k + held
		}
	}
	return 0, 0
}

// Stats returns the subscription's statistics: Delivered, Acked,
// Redelivered, DeadLettered and Dropped count its messages; Depth is its
// backlog (in memory, on disk, or waiting for redelivery), InFlight its
// unsettled ManualAck deliveries. Like Queue.Stats it takes each shard's
// receiver lock for a moment: call it for monitoring, not per message.
//
// Its OldestAge is the subscription's lag in time: the age of the oldest
// timed message it has yet to deliver (Depth is the lag in messages);
// SpillingShards counts the shards it reads from a spill, Receivers the
// receivers attached.
func (r *Subscription) Stats() Stats { return r.StatsWith(StatsOptions{}) }

// StatsWith is Stats with what o asks for besides: the subscription's part
// of each shard.
func (r *Subscription) StatsWith(o StatsOptions) Stats { return r.sub.stats(o) }

func (sub *subscription) stats(o StatsOptions) Stats {
	var st Stats
	var parts []Stats
	var olds []int64
	if o.Shards {
		parts, olds = make([]Stats, len(sub.shards)), make([]int64, len(sub.shards))
	}
	oldest := sub.addStats(&st, parts, olds)
	if o.Shards {
		st.Shards = shardParts(parts, olds, &sub.lat)
	}
	sub.finishTiming(&st, oldest, o.Histograms)
	return st
}

// addStats adds the subscription's counters and gauges to st, and returns
// the publish time of its oldest timed message waiting (0: none known).
// With parts and olds (one per shard), it adds each shard's part to
// parts[i] and sets olds[i] to that shard's oldest.
func (sub *subscription) addStats(st *Stats, parts []Stats, olds []int64) (oldest int64) {
	st.Receivers += sub.attached.Load()
	for i, ss := range sub.shards {
		var part Stats
		ss.recvMu.Lock()
		next, gone := ss.nextPosition(), ss.detached // before the tail: Depth never goes negative
		delivered := ss.delivered
		at := ss.oldestLocked()
		if ss.spill != nil && !gone {
			part.SpillingShards = 1
		}
		held := ss.hi - ss.lo + len(ss.carry) - ss.carryNext
		if ss.ts.t.statsHook != nil {
			ss.ts.t.statsHook()
		}
		ss.recvMu.Unlock()
		tail := ss.ts.ring.Tail()
		if !gone && (held > 0 || next < tail) && sub.receivers.Pending() {
			// A receiver may have found ss locked, skipped it and gone to
			// wait: wake one, as a receiver releasing recvMu does.
			sub.receivers.Wake(1)
		}
		// The book takes the parked ones off Delivered (a Queue counts them
		// there by position); take did not count them.
		part.Delivered += delivered + ss.parkedTotal.Load()
		part.Trimmed += ss.trimmed.Load()
		if !gone && next < tail {
			part.Depth += int64(tail - next)
		}
		ss.ackBook.addStats(&part)
		st.add(&part)
		oldest = older(oldest, at)
		if parts != nil {
			parts[i].add(&part)
			olds[i] = older(olds[i], at)
		}
	}
	return oldest
}
