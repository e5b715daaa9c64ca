package spillway

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/spillway-io/spillway/mmap"
	"github.com/spillway-io/spillway/ring"
)

// subShard is one subscription's part of one topic shard: where the
// subscription is in the shard's messages.
//
// Who may do what:
//   - Receivers of the subscription take cons (TryLock) and then read: the
//     ring through r while r is set, the spill through ep and disk while it
//     is not. Messages are delivered from local (popped from the ring),
//     then carry (read from the spill).
//   - r, ep and pos change only under both cons and the shard's pub: the
//     publisher moves ss to the spill (holding pub, it takes cons), and a
//     receiver moves it back (holding cons, it TryLocks pub).
//   - next, the position of the next message to deliver, is stored by the
//     receiver holding cons, for Stats.
type subShard struct {
	ackBook // ManualAck state and counters
	ts      *tshard

	_     pad
	cons  sync.Mutex
	taken uint32               // messages taken since the group's first shard moved here; guarded by cons
	r     *ring.Reader[tentry] // while reading the ring
	ep    *episode             // while reading the spill
	disk  *mmap.Reader         // ep's log, from pos; opened lazily
	hold  *mmap.Reader         // until disk is open: holds back the log's retention
	pos   uint64               // while reading the spill: ring position of the next message to read from it
	carry []entry              // read from the spill: carry[ci:], the first at position carryAt
	ci    int
	// carryAt is the ring position of carry[0].
	carryAt   uint64
	local     [32]tentry // popped from the ring: local[lo:hi], the first at position localHead
	lo, hi    int
	localHead uint64
	gone      bool // unsubscribed or closed; guarded by cons
	// failure is a spill failure met under cons, for the receiver to
	// report (Options.OnError) once it released cons. Guarded by cons.
	failure error
	// skipping: the last spill read met a batch that could not be decoded,
	// and the reader moved past it. Guarded by cons.
	skipping bool

	// delivered counts first deliveries. Guarded by cons: Stats reads it,
	// and the position of the next message to deliver, under cons, rather
	// than receivers storing them with atomics (two locked instructions per
	// receive).
	delivered uint64
	_         pad
}

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
	// takes the ring's cache lines from the publisher (fan-out to three
	// subscriptions, one message at a time: 110 to 85 ns per message). A
	// hint only: receivers sharing the Subscription may race on it.
	caughtUp atomic.Bool
}

// Subscribe creates the named subscription, which then gets every message
// published after Subscribe returns, or, if it exists, attaches another
// competing receiver to it.
func (t *Topic) Subscribe(name string) (*Subscription, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return nil, ErrClosed
	}
	if sub, ok := (*t.subs.Load())[name]; ok {
		return &Subscription{sub: sub, t: t}, nil
	}
	sub := &subscription{name: name, shards: make([]*subShard, len(t.shards))}
	sub.group.opts, sub.group.clock = &t.opts, t.clock
	for i, s := range t.shards {
		ss := &subShard{ts: s}
		ss.ackBook.init(&sub.group, i)
		s.pub.Lock()
		ss.r = s.ring.AddReader()
		s.subs = append(s.subs, ss)
		s.pub.Unlock()
		sub.shards[i] = ss
	}
	next := maps.Clone(*t.subs.Load())
	next[name] = sub
	t.setSubs(next)
	return &Subscription{sub: sub, t: t}, nil
}

// Unsubscribe deletes the named subscription: its backlog is released (and
// counted as dropped in its Stats), its spill files are removed once no
// other subscription reads them, its receivers wake with ErrClosed, and a
// publisher waiting for it goes on.
func (t *Topic) Unsubscribe(name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return ErrClosed
	}
	sub, ok := (*t.subs.Load())[name]
	if !ok {
		return fmt.Errorf("%w: no subscription %q", ErrInvalidOptions, name)
	}
	next := maps.Clone(*t.subs.Load())
	delete(next, name)
	t.setSubs(next)
	sub.closed.Store(true)
	sub.receivers.WakeAll()
	for _, ss := range sub.shards {
		s := ss.ts
		s.pub.Lock()
		s.pub.Slow() // waiting for cons, which a receiver may hold while it reads the spill
		ss.cons.Lock()
		done := ss.detach()
		s.subs = deleteFirst(s.subs, ss)
		ss.cons.Unlock()
		s.pub.Unlock()
		if done != nil {
			done.close()
		}
		s.room.WakeAll()
	}
	t.retrySpills() // what only this subscription held is gone: room for the others' held batches
	return nil
}

// setSubs publishes a new set of subscriptions. REQUIRES: t.mu.
func (t *Topic) setSubs(subs map[string]*subscription) {
	groups := slices.Collect(maps.Values(subs))
	t.subs.Store(&subs)
	t.groups.Store(&groups)
}

func deleteFirst(ss []*subShard, x *subShard) []*subShard {
	for i, v := range ss {
		if v == x {
			return append(ss[:i:i], ss[i+1:]...)
		}
	}
	return ss
}

// detach takes ss out of its shard for good: what it had not delivered is
// counted as dropped. It returns an episode to close if ss was its last
// reader. REQUIRES: s.pub and ss.cons.
func (ss *subShard) detach() *episode {
	if ss.gone {
		return nil
	}
	ss.gone = true
	ss.dropped.Add(ss.ts.ring.Tail() - ss.nextPosition())
	ss.ackBook.drop()
	clear(ss.local[:])
	ss.lo, ss.hi = 0, 0
	ss.carry, ss.ci = nil, 0
	var done *episode
	if ss.r != nil {
		ss.r.Close()
		ss.r = nil
	} else if ss.ep != nil {
		done = ss.leaveSpill()
	}
	return done
}

// Close detaches this receiver: its blocked Receive calls return
// ErrClosed, and so do later ones. The subscription and its backlog stay.
// Close is idempotent: later calls return ErrClosed.
func (r *Subscription) Close() error {
	if r.closed.Swap(true) {
		return ErrClosed
	}
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
		n, err = r.sub.await(ctx, func() (int, int) { return r.sub.takeSome(dst, true) }, r.done, nil, true)
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
	n, _ := sub.takeSome(dst, false)
	return n
}

// takeSome is tryReceive that also reports how many messages it found: those
// it took and those the subShard still holds popped or read back, and,
// when count is set and dst is full, those left in the ring for it (see
// Queue.takeSome: why a waiting batch receiver must count them).
func (sub *subscription) takeSome(dst []Delivery, count bool) (n, seen int) {
	shards := len(sub.shards)
	start := int(sub.takeAt.Load())
	skipped := false // a shard was skipped because another receiver held it
	for i := range shards {
		idx := (start + i) & (shards - 1)
		ss := sub.shards[idx]
		if !ss.cons.TryLock() {
			skipped = true
			continue
		}
		k := ss.take(dst)
		if k > 0 {
			sub.tookFrom(idx, k, &ss.taken, k < len(dst), i > 0 && !skipped)
		}
		more := k == len(dst) && sub.receivers.Pending()
		held := ss.hi - ss.lo + len(ss.carry) - ss.ci
		if count && k == len(dst) && ss.r != nil {
			held += ss.r.Len() // the publisher's side: only when waiting
		}
		fail := ss.failure
		ss.failure = nil
		ss.cons.Unlock()
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

// nextPosition is the position of the next message ss will deliver.
// REQUIRES: ss.cons.
func (ss *subShard) nextPosition() uint64 {
	switch {
	case ss.lo < ss.hi:
		return ss.localHead + uint64(ss.lo)
	case ss.ci < len(ss.carry):
		return ss.carryAt + uint64(ss.ci)
	case ss.r != nil:
		return ss.r.Cursor()
	}
	return ss.pos
}

// take fills dst: redeliveries first, then what was popped from the ring,
// then what was read from the spill, then more from the ring or the spill.
// REQUIRES: ss.cons.
func (ss *subShard) take(dst []Delivery) int {
	if ss.gone {
		return 0
	}
	n := 0
	if ss.readyLen.Load() > 0 {
		n = ss.takeReady(dst)
	}
	first := n
	for n < len(dst) {
		switch {
		case ss.lo < ss.hi:
			m := min(len(dst)-n, ss.hi-ss.lo)
			for j := range m {
				ss.local[ss.lo+j].deliver(&dst[n+j], ss.idx, ss.localHead+uint64(ss.lo+j))
				ss.local[ss.lo+j] = tentry{}
			}
			ss.lo += m
			n += m
		case ss.ci < len(ss.carry):
			m := min(len(dst)-n, len(ss.carry)-ss.ci)
			for j := range m {
				ss.carry[ss.ci+j].deliver(&dst[n+j], ss.idx, ss.carryAt+uint64(ss.ci+j))
				ss.carry[ss.ci+j] = entry{}
			}
			ss.ci += m
			n += m
		case ss.r != nil:
			head := ss.r.Cursor()
			k := ss.r.PopBatch(ss.local[:])
			if k == 0 {
				goto out
			}
			ss.lo, ss.hi, ss.localHead = 0, k, head
		default:
			if !ss.readDisk() {
				goto out
			}
		}
	}
out:
	if ss.r == nil && ss.ep != nil && ss.ci == len(ss.carry) && ss.ts.ring.Tail()-ss.pos <= uint64(ss.ts.ring.Cap()/2) {
		// Caught up with the spill and close to the publisher: rejoin the
		// ring now, so that the spill's files go as soon as its last
		// reader is done, not at that reader's next call.
		ss.rejoin(nil)
	}
	if n > first {
		ss.delivered += uint64(n - first)
		if ss.g.opts.Ack == ManualAck {
			ss.leaseOut(dst[first:n])
		}
	}
	return n
}

// dropOldest drops the oldest message ss has yet to deliver, freeing one
// ring slot for the publisher (DropOldest). Messages popped into local are
// older than any in the ring: the first of them goes, and the reader's
// next message moves in behind the others. REQUIRES: ss.cons.
func (ss *subShard) dropOldest() {
	if ss.r == nil {
		return
	}
	if ss.lo == ss.hi {
		ss.dropped.Add(uint64(ss.r.Skip(1)))
		return
	}
	ss.lo, ss.hi, ss.localHead = dropFirst(ss.local[:], ss.lo, ss.hi, ss.localHead)
	ss.dropped.Add(1)
	ss.hi += ss.r.PopBatch(ss.local[ss.hi : ss.hi+1]) // at position localHead+hi
}

// Stats returns the subscription's statistics: Delivered, Acked,
// Redelivered, DeadLettered and Dropped count its messages; Depth is its
// backlog (in memory, on disk, or waiting for redelivery), InFlight its
// unsettled ManualAck deliveries. Like Queue.Stats it takes each shard's
// receiver lock for a moment: call it for monitoring, not per message.
func (r *Subscription) Stats() Stats {
	var st Stats
	r.sub.addStats(&st)
	return st
}

func (sub *subscription) addStats(st *Stats) {
	for _, ss := range sub.shards {
		ss.cons.Lock()
		next, gone := ss.nextPosition(), ss.gone // before the tail: Depth never goes negative
		delivered := ss.delivered
		held := ss.hi - ss.lo + len(ss.carry) - ss.ci
		if ss.ts.t.statsHook != nil {
			ss.ts.t.statsHook()
		}
		ss.cons.Unlock()
		tail := ss.ts.ring.Tail()
		if !gone && (held > 0 || next < tail) && sub.receivers.Pending() {
			// A receiver may have found ss locked, skipped it and gone to
			// wait: wake one, as a receiver releasing cons does.
			sub.receivers.Wake(1)
		}
		st.Delivered += delivered
		if !gone && next < tail {
			st.Depth += int64(tail - next)
		}
		ss.ackBook.addStats(st)
	}
}

// Stats returns the topic's statistics: Sent counts published messages and
// Spilled those written to spill logs (once, however many subscriptions
// read them); DiskBytes and DataBytes describe the spill files; the other
// counters and gauges add up those of every subscription. It takes each
// shard's publisher lock and each subscription's receiver locks for a
// moment: call it for monitoring, not per message.
func (t *Topic) Stats() Stats {
	var st Stats
	for _, s := range t.shards {
		st.Sent += s.ring.Tail()
		s.pub.Lock()
		st.Spilled += s.spilled
		if s.ep != nil {
			ls := s.ep.log.Stats()
			st.DiskBytes += ls.DiskBytes
			st.DataBytes += ls.DataBytes
		}
		s.pub.Unlock()
	}
	for _, sub := range *t.subs.Load() {
		sub.addStats(&st)
	}
	return st
}

// Close closes the topic. Blocked publishers and receivers wake with
// ErrClosed, and so does every later call; what subscriptions had not
// received is dropped (and counted), and the spill files are removed.
// Close is idempotent: later calls return ErrClosed. It joins every
// goroutine the topic started.
func (t *Topic) Close() error {
	t.mu.Lock()
	if t.closed.Swap(true) {
		t.mu.Unlock()
		return ErrClosed
	}
	subs := *t.subs.Load()
	t.mu.Unlock()
	close(t.stop)
	t.wg.Wait()
	for _, sub := range subs {
		sub.closed.Store(true)
		sub.receivers.WakeAll()
	}
	for _, s := range t.shards {
		s.pub.Lock()
		s.pub.Slow() // waiting for each cons
		s.closed = true
		var eps []*episode
		for _, ss := range s.subs {
			ss.cons.Lock()
			if ep := ss.detach(); ep != nil {
				eps = append(eps, ep)
			}
			ss.cons.Unlock()
		}
		s.ring.Close()
		s.pub.Unlock()
		for _, ep := range eps {
			ep.close()
		}
		s.room.WakeAll()
	}
	var err error
	if t.dir.lock != nil {
		err = t.dir.closeDir(&t.opts)
	}
	return err
}
