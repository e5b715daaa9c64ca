package spillway

import (
	"context"
	"errors"
	"runtime"
	"time"

	"github.com/spillway-io/spillway/internal/park"
	"github.com/spillway-io/spillway/shard"
)

// Publish sends m to every subscription, waiting when the overflow policy
// says to wait (Block without Dir, or a full spill quota) until there is
// room or ctx ends. It fails with ErrTooLarge, ErrFull (Reject),
// ErrClosed or ctx.Err(). Publish takes ownership of m's slices, which
// every subscription shares (see Message).
func (t *Topic) Publish(ctx context.Context, m Message) error {
	if !m.fits(t.opts.MaxMessageBytes) {
		return m.tooLarge(t.opts.MaxMessageBytes)
	}
	if !m.plain() || t.opts.MessageTTL != 0 {
		return t.publishLife(ctx, m)
	}
	var e [1]tentry
	e[0].set(m.Key, m.Value, m.Headers)
	s := t.lockShard(m.Key, 1)
	_, err := s.publishLocked(ctx, e[:], nil)
	return err
}

// PublishBatch publishes ms in order, as Publish does each; messages for the
// same shard go in with one lock and one publication. On error, the
// messages before the failing one were published and the rest were not:
// the error is a *BatchError, which says how many were published (its
// Queued) and wraps the cause. Messages with lifecycle fields are
// published one at a time, as by Publish.
func (t *Topic) PublishBatch(ctx context.Context, ms []Message) error {
	var buf [64]tentry
	defer clear(buf[:])
	for i := 0; i < len(ms); {
		if m := &ms[i]; !m.plain() || t.opts.MessageTTL != 0 {
			if !m.fits(t.opts.MaxMessageBytes) {
				return &BatchError{Queued: i, Err: m.tooLarge(t.opts.MaxMessageBytes)}
			}
			if err := t.publishLife(ctx, *m); err != nil {
				return &BatchError{Queued: i, Err: err}
			}
			i++
			continue
		}
		key := ms[i].Key
		si := -1
		if len(key) > 0 {
			si = shard.Of(key, t.opts.Shards)
		}
		n := 0
		if si < 0 {
			// The common case first: keyless messages without headers,
			// which need only their value's length checked.
			max := t.opts.MaxMessageBytes
			for i+n < len(ms) && n < len(buf) {
				m := &ms[i+n]
				if len(m.Key)|len(m.Headers) != 0 || len(m.Value) > max || !m.plain() {
					break
				}
				buf[n].set(m.Key, m.Value, m.Headers)
				n++
			}
		}
		for i+n < len(ms) && n < len(buf) {
			m := &ms[i+n]
			if !m.fits(t.opts.MaxMessageBytes) {
				if n == 0 {
					return &BatchError{Queued: i, Err: m.tooLarge(t.opts.MaxMessageBytes)}
				}
				break
			}
			if k := m.Key; len(k) > 0 && shard.Of(k, t.opts.Shards) != si || len(k) == 0 && si >= 0 || !m.plain() {
				break
			}
			buf[n].set(m.Key, m.Value, m.Headers)
			n++
		}
		s := t.lockShard(key, n)
		if k, err := s.publishLocked(ctx, buf[:n], nil); err != nil {
			return &BatchError{Queued: i + k, Err: err}
		}
		i += n
	}
	return nil
}

// lockShard returns the shard for key with its pub held; n is how many
// messages the caller will publish. A keyless message goes to the Topic's
// current keyless shard (stickyRun messages in a row, then the next shard:
// a shared hint, read by every publish and written once per run), or to
// the first free shard after it, so publishers do not queue behind each
// other while another shard is free.
func (t *Topic) lockShard(key []byte, n int) *tshard {
	return t.lockIn(t.shards[:t.opts.Shards], key, n)
}

// lockLaneShard is lockShard in the lane of priority prio (Priorities:
// each level has its own Shards shards).
func (t *Topic) lockLaneShard(key []byte, prio uint8, n int) *tshard {
	shards := t.opts.Shards
	return t.lockIn(t.shards[int(prio)*shards:][:shards], key, n)
}

// lockIn is lockShard among the shards of lane.
func (t *Topic) lockIn(lane []*tshard, key []byte, n int) *tshard {
	shards := len(lane)
	if len(key) > 0 {
		s := lane[shard.Of(key, shards)]
		s.pub.Lock()
		return s
	}
	start := int(t.sticky.Load())
	for i := range shards {
		if s := lane[(start+i)&(shards-1)]; s.pub.TryLock() {
			return t.tookKeyless(s, n)
		}
	}
	s := lane[start&(shards-1)]
	s.pub.Lock()
	return t.tookKeyless(s, n)
}

// tookKeyless counts n keyless messages into s and, at the end of a run,
// moves the Topic's sticky shard on to the next one (the same in every
// lane: the lanes' shard counts are the same power of two). REQUIRES:
// s.pub.
func (t *Topic) tookKeyless(s *tshard, n int) *tshard {
	if s.keylessRun += uint64(n); s.keylessRun >= stickyRun {
		s.keylessRun = 0
		t.sticky.Store(uint32(s.idx + 1))
	}
	return s
}

// stickyRun is how many keyless messages a shard takes in a row.
const stickyRun = 64

// publishLocked pushes es, in order, with their expiries exps (nil: none),
// and releases pub. It returns how many it published. REQUIRES: s.pub,
// which it releases.
func (s *tshard) publishLocked(ctx context.Context, es []tentry, exps []int64) (int, error) {
	if s.d != nil {
		return s.publishDurable(es, exps, nil)
	}
	done := 0
	for done < len(es) {
		if s.closed {
			s.pub.Unlock()
			return done, ErrClosed
		}
		if s.spill == nil {
			// No spill: push what fits, and deal with a full ring if
			// nothing does.
			if pushed := s.push(es[done:], sub(exps, done, len(es)), true); pushed > 0 {
				done += pushed
				continue
			}
		}
		k := s.ring.Room(len(es) - done)
		if k == 0 {
			if err := s.makeRoom(ctx); err != nil {
				s.pub.Unlock()
				return done, err
			}
			continue
		}
		s.stamp(s.ring.Tail(), k)
		if s.spill != nil {
			// Written to the log before the ring: the log must hold every
			// position a subscription reading it will ask for.
			n, err := s.spill.write(s, es[done:done+k], sub(exps, done, done+k))
			if n < k {
				k = n
			}
			if err != nil && !errors.Is(err, ErrDiskFull) {
				s.pub.Unlock()
				return done, err
			}
			if k == 0 {
				// The quota is full: wait for the lagging subscriptions to
				// read (which frees segments), not holding pub.
				reads := s.diskReads.Load()
				if err := s.waitUnlocked(ctx, func() bool { return s.diskReads.Load() != reads }); err != nil {
					s.pub.Unlock()
					return done, err
				}
				continue
			}
		}
		pushed := s.push(es[done:done+k], sub(exps, done, done+k), false) // stamped above
		done += pushed
		if s.spill != nil {
			s.spill.pinTo(s, s.ring.Tail(), s.lazyPinStep())
		}
	}
	s.pub.Unlock()
	s.t.wakeReceivers(len(es))
	return done, nil
}

// push records es's expiries (and, with stamp, their timing stamps) and
// pushes as many as the ring has room for; it returns how many.
// REQUIRES: s.pub.
func (s *tshard) push(es []tentry, exps []int64, stamp bool) int {
	if exps == nil && s.exps.Load() == nil {
		// No expiry ever: what the ring takes needs no room computed first.
		if stamp {
			s.stamp(s.ring.Tail(), len(es))
		}
		return s.ring.PushBatch(es)
	}
	k := s.ring.Room(len(es))
	if k == 0 {
		return 0
	}
	if stamp {
		s.stamp(s.ring.Tail(), k)
	}
	s.noteExps(s.ring.Tail(), k, exps)
	return s.ring.PushBatch(es[:k])
}

// sub returns exps[i:j], or nil if exps is.
func sub(exps []int64, i, j int) []int64 {
	if exps == nil {
		return nil
	}
	return exps[i:j]
}

// waitUnlocked releases pub, parks until cond holds (checked without pub)
// or ctx ends, and takes pub again: it returns holding pub either way.
// REQUIRES: s.pub.
func (s *tshard) waitUnlocked(ctx context.Context, cond func() bool) error {
	s.pub.Unlock()
	err := park.AwaitN(ctx, &s.room, s.ring.Cap(), func() int {
		switch {
		case cond():
			return 1 + s.ring.Cap() - s.ring.Len() // the room it found
		case s.t.closed.Load():
			return -1
		}
		return 0
	})
	s.pub.Lock()
	return err
}

// makeRoom deals with a full ring, as the overflow policy says: the
// subscriptions a whole ring behind move to the spill (SpillToDisk), lose
// their oldest message (DropOldest), or the publisher waits for them
// (Block) or fails (Reject). REQUIRES: s.pub, which it holds again when
// it returns, whatever it returns.
func (s *tshard) makeRoom(ctx context.Context) error {
	s.pub.Slow() // it may wait for receivers, or open a spill
	switch s.t.opts.Overflow {
	case Reject:
		return ErrFull
	case Block:
		return s.waitUnlocked(ctx, func() bool { return s.ring.Len() < s.ring.Cap() })
	case DropOldest:
		for _, ss := range s.gating(1) {
			ss.recvMu.Lock()
			ss.dropOldest()
			ss.recvMu.Unlock()
		}
		return nil
	}
	// SpillToDisk. The subscriptions a ring behind get lagGrace to make
	// room for a quarter of the ring: one that does keeps up well enough,
	// and moving it to the spill would only slow it down (the publisher
	// then goes at its pace, at least Cap/4 messages per lagGrace). Those
	// that do not are slow: they move to the spill.
	want := s.ring.Cap() / 4
	if s.graceRoom(ctx, want) {
		return nil
	}
	for _, ss := range s.gating(want) {
		if err := s.evict(ss); err != nil {
			if errors.Is(err, ErrDiskFull) {
				// No room to spill: wait for the slowest, or for a spill
				// reader to free some.
				reads := s.diskReads.Load()
				return s.waitUnlocked(ctx, func() bool { return s.ring.Len() < s.ring.Cap() || s.diskReads.Load() != reads })
			}
			return err
		}
	}
	return nil
}

// lagGrace is how long a publisher that found the ring full waits for the
// subscriptions behind to make room (for a quarter of the ring) before it
// moves them to the spill: a scheduler time slice, so that a subscription
// that is keeping up but was not scheduled for a moment is not taken for a
// slow one.
const lagGrace = 10 * time.Millisecond

// graceRoom waits up to lagGrace for room for want messages in the ring,
// and reports whether it came. It yields the processor for the first
// microseconds, then parks (receivers wake it as they take messages).
// REQUIRES: s.pub, which it keeps.
func (s *tshard) graceRoom(ctx context.Context, want int) bool {
	want = max(want, 1)
	enough := func() bool { return s.ring.Room(want) >= want || s.closed }
	start := time.Now()
	for !enough() {
		if time.Since(start) > 50*time.Microsecond {
			wctx, cancel := context.WithDeadline(ctx, start.Add(lagGrace))
			err := park.Await(wctx, &s.room, enough)
			cancel()
			return err == nil && s.ring.Room(want) >= want
		}
		runtime.Gosched()
	}
	return true
}

// gating returns the subShards reading the ring that keep the writer from
// having room for want messages. REQUIRES: s.pub.
func (s *tshard) gating(want int) []*subShard {
	tail, size, w := s.ring.Tail(), uint64(s.ring.Cap()), uint64(max(want, 1))
	if tail+w <= size {
		return nil // room for want whatever the cursors
	}
	// Room for want messages needs every reader at limit or past it.
	limit := tail + w - size
	var out []*subShard
	for _, ss := range s.subs {
		if ss.r != nil && ss.r.Cursor() < limit {
			out = append(out, ss)
		}
	}
	return out
}

// wakeReceivers wakes up to n receivers of every subscription.
func (t *Topic) wakeReceivers(n int) {
	for _, sub := range *t.groups.Load() {
		sub.receivers.Wake(n)
	}
}
