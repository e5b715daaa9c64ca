package spillway

import (
	"context"
	"errors"

	"github.com/spillway-io/spillway/internal/park"
	"github.com/spillway-io/spillway/shard"
)

// Send queues m, waiting when the overflow policy says to wait (Block, or
// SpillToDisk past MaxDiskBytes) until there is room or ctx ends. It fails
// with ErrTooLarge, ErrFull (Reject), ErrDiskFull, ErrClosed, ErrStorage
// (Persistent) or ctx.Err(). Send takes ownership of m's slices (see
// Message). On a Persistent queue m is in its shard's log when Send
// returns nil, and under SyncAlways synced.
func (q *Queue) Send(ctx context.Context, m Message) error {
	if !m.fits(q.opts.MaxMessageBytes) {
		return m.tooLarge(q.opts.MaxMessageBytes)
	}
	if !m.plain() || q.opts.MessageTTL != 0 {
		return q.sendLife(ctx, m, true)
	}
	if q.persistent {
		ms := [1]Message{m}
		_, err := q.sendDurable(ctx, q.durableShard(m.Key), ms[:], true, 0)
		return err
	}
	s := q.shards[shard.Of(m.Key, q.opts.Shards)]
	e := newEntry(m.Key, m.Value, m.Headers)
	if every := q.lat.every; every != 0 && s.ring.Pushed()&uint64(every-1) == 0 {
		e.at = q.lat.now() // push's test, written out: this is the one-at-a-time path
	}
	if !s.spilling.Load() && s.ring.TryPush(e) {
		q.receivers.Wake(1)
		return nil
	}
	return q.sendSlow(ctx, s, e)
}

// TrySend queues m if it can without waiting for room: where Send would
// wait it fails with ErrFull (ring full under Block) or ErrDiskFull (spill
// quota reached). Under SyncAlways it still waits for the sync that makes
// m durable.
func (q *Queue) TrySend(m Message) error {
	if !m.fits(q.opts.MaxMessageBytes) {
		return m.tooLarge(q.opts.MaxMessageBytes)
	}
	if !m.plain() || q.opts.MessageTTL != 0 {
		return q.sendLife(context.Background(), m, false)
	}
	if q.persistent {
		ms := [1]Message{m}
		_, err := q.sendDurable(context.Background(), q.durableShard(m.Key), ms[:], false, 0)
		return err
	}
	s := q.shards[shard.Of(m.Key, q.opts.Shards)]
	return q.trySend(s, newEntry(m.Key, m.Value, m.Headers))
}

// SendBatch queues ms in order, as Send does each. Messages for the same
// shard (all keyless ones of the batch go to one shard) go into its ring
// in place, with one claim and one publication for as many as it has room
// for; under Block the rest waits, and goes in a run at a time as
// receivers make room. On error, the messages before the failing one were
// queued and the rest were not: the error is a *BatchError, which says how
// many were queued and wraps the cause. Messages with lifecycle fields
// (and all of them under MessageTTL) are sent one at a time, as by Send;
// duplicates within the batch are caught as across batches.
func (q *Queue) SendBatch(ctx context.Context, ms []Message) error {
	shards := q.opts.Shards
	keyless := shard.Random(shards)
	if q.always {
		keyless = int(q.sy.keylessShard.Load()) & (shards - 1)
	}
	ttl := q.opts.MessageTTL != 0
	for i := 0; i < len(ms); {
		if ttl || !ms[i].plain() {
			m := &ms[i]
			if !m.fits(q.opts.MaxMessageBytes) {
				return &BatchError{Queued: i, Err: m.tooLarge(q.opts.MaxMessageBytes)}
			}
			if err := q.sendLife(ctx, *m, true); err != nil {
				return &BatchError{Queued: i, Err: err}
			}
			i++
			continue
		}
		// A run of plain messages for one shard.
		si := keyless
		if len(ms[i].Key) > 0 {
			si = shard.Of(ms[i].Key, shards)
		}
		n := 0
		if si == keyless {
			// The common case first: keyless messages without headers,
			// which need only their value's length checked.
			max := q.opts.MaxMessageBytes
			for i+n < len(ms) {
				m := &ms[i+n]
				if len(m.Key)|len(m.Headers) != 0 || len(m.Value) > max || !m.plain() {
					break
				}
				n++
			}
		}
		for i+n < len(ms) {
			m := &ms[i+n]
			if !m.fits(q.opts.MaxMessageBytes) {
				if n == 0 {
					return &BatchError{Queued: i, Err: m.tooLarge(q.opts.MaxMessageBytes)}
				}
				break
			}
			if k := m.Key; len(k) > 0 && shard.Of(k, shards) != si || len(k) == 0 && si != keyless || !m.plain() {
				break
			}
			n++
		}
		s := q.shards[si]
		if q.persistent {
			// One append (and one sync) per run.
			if k, err := q.sendDurable(ctx, s, ms[i:i+n], true, 0); err != nil {
				return &BatchError{Queued: i + k, Err: err}
			}
			i += n
			continue
		}
		done := 0
		if !s.spilling.Load() {
			done = s.pushInPlace(ms[i:i+n], false)
			q.receivers.Wake(done)
		}
		if done < n {
			if k, err := q.sendRestOf(ctx, s, ms[i+done:i+n]); err != nil {
				return &BatchError{Queued: i + done + k, Err: err}
			}
		}
		i += n
	}
	return nil
}

// pushInPlace puts as many of ms as its ring has room for into s's ring,
// writing each entry straight into its slot (the timed ones with their
// send time; with life, those with an ExpiresAt with it, those with a
// DeliverAt (Persistent: only future ones get here) delayed), and returns
// how many.
func (s *qshard) pushInPlace(ms []Message, life bool) int {
	done := 0
	for done < len(ms) {
		first, k := s.ring.Claim(len(ms) - done)
		if k == 0 {
			break
		}
		for j := range k {
			m := &ms[done+j]
			s.ring.At(first+uint64(j)).set(m.Key, m.Value, m.Headers)
		}
		// The timed ones, after: no per-message test in the loop above.
		st := s.g.lat.stampsAt(first, k)
		for j := st.next; j < k; j += st.every {
			s.ring.At(first + uint64(j)).at = st.at
		}
		if life {
			for j := range k {
				m, e := &ms[done+j], s.ring.At(first+uint64(j))
				if !m.ExpiresAt.IsZero() {
					e.exp = m.ExpiresAt.UnixNano()
				}
				if !m.DeliverAt.IsZero() {
					e.at = -m.DeliverAt.UnixNano()
				}
			}
		}
		s.ring.Publish(first, k)
		done += k
	}
	return done
}

// push puts e into s's ring if it has room, and reports whether it did.
// e is timed if the ring's tail, read just before, is at a position the
// timing picks (see timing.stampsAt): about 1 in every, as another sender
// may claim between the read and push's own claim. The read costs nothing
// the claim does not: it is the line the claim's CAS takes.
func (s *qshard) push(e entry) bool {
	if every := s.g.lat.every; every != 0 && s.ring.Pushed()&uint64(every-1) == 0 {
		e.at = s.g.lat.now()
	}
	return s.ring.TryPush(e)
}

// pushBatch is push for as many of es as the ring has room for, with one
// claim and one publication; it returns how many it pushed.
func (s *qshard) pushBatch(es []entry) int {
	first, k := s.ring.Claim(len(es))
	if k == 0 {
		return 0
	}
	st := s.g.lat.stampsAt(first, k)
	for j := range k {
		slot := s.ring.At(first + uint64(j))
		*slot = es[j]
		if at := st.take(); at != 0 {
			slot.at = at
		}
	}
	s.ring.Publish(first, k)
	return k
}

// sendRestOf is sendRest for messages, converted 64 at a time.
func (q *Queue) sendRestOf(ctx context.Context, s *qshard, ms []Message) (int, error) {
	var buf [64]entry
	defer clear(buf[:])
	queued := 0
	for queued < len(ms) {
		n := min(len(ms)-queued, len(buf))
		for j := range n {
			m := &ms[queued+j]
			buf[j].set(m.Key, m.Value, m.Headers)
		}
		k, err := q.sendRest(ctx, s, buf[:n])
		queued += k
		if err != nil {
			return queued, err
		}
	}
	return queued, nil
}

// sendRest queues what the ring did not take of a SendBatch run: in one
// write to disk when the shard spills, otherwise (or for what a full disk
// refuses) one by one, waiting as the policy says. It returns how many of
// es it queued, all of them unless it fails.
func (q *Queue) sendRest(ctx context.Context, s *qshard, es []entry) (int, error) {
	if q.opts.Overflow == Block {
		return q.sendBlocked(ctx, s, es)
	}
	queued := 0
	if q.opts.Overflow == SpillToDisk {
		k, err := q.spillMany(s, es)
		if k > 0 {
			q.receivers.Wake(k)
		}
		if err != nil && !errors.Is(err, ErrDiskFull) {
			return k, err
		}
		queued = k
	}
	for _, e := range es[queued:] {
		if err := q.sendSlow(ctx, s, e); err != nil {
			return queued, err
		}
		queued++
	}
	return queued, nil
}

// sendBlocked queues es in s's ring under Block: as many at a time as the
// ring has room for, each run with one claim and one publication, waiting
// for room in between. (Receivers free slots a batch at a time; a sender
// that waited for each message in turn would pay a wait, and a claim, per
// message once it outpaced them.) It returns how many it queued, all of
// them unless it fails with ErrClosed or ctx.Err().
func (q *Queue) sendBlocked(ctx context.Context, s *qshard, es []entry) (int, error) {
	queued := 0
	push := func() int {
		k := s.pushBatch(es[queued:])
		if k > 0 {
			queued += k
			q.receivers.Wake(k)
		}
		return k
	}
	for queued < len(es) {
		if q.closed.Load() {
			return queued, ErrClosed
		}
		if push() > 0 {
			continue
		}
		err := park.AwaitN(ctx, &s.senders, s.ring.Cap(), func() int {
			if k := push(); k > 0 {
				return k + s.ring.Cap() - s.ring.Len() // the room it found
			}
			if q.closed.Load() {
				return -1
			}
			return 0
		})
		if err != nil {
			return queued, err
		}
	}
	return queued, nil
}

// trySend queues e in shard s without waiting.
func (q *Queue) trySend(s *qshard, e entry) error {
	if q.closed.Load() {
		return ErrClosed
	}
	if !s.spilling.Load() && s.push(e) {
		q.receivers.Wake(1)
		return nil
	}
	switch q.opts.Overflow {
	case SpillToDisk:
		if err := q.spillOne(s, e); err != nil {
			return err
		}
		q.receivers.Wake(1)
		return nil
	case DropOldest:
		for {
			if s.push(e) {
				q.receivers.Wake(1)
				return nil
			}
			if q.closed.Load() {
				return ErrClosed
			}
			s.dropOldest()
		}
	}
	if q.closed.Load() {
		return ErrClosed
	}
	return ErrFull
}

// sendSlow is Send after the fast path failed: the policy decides, and
// where it says wait, the sender parks on the shard until a receiver makes
// room.
func (q *Queue) sendSlow(ctx context.Context, s *qshard, e entry) error {
	err := q.trySend(s, e)
	if !q.mayWait(err) {
		return err
	}
	werr := park.AwaitN(ctx, &s.senders, s.ring.Cap(), func() int {
		err = q.trySend(s, e)
		switch {
		case err == nil:
			return 1 + s.ring.Cap() - s.ring.Len() // the room it found
		case !q.mayWait(err):
			return -1
		}
		return 0
	})
	if werr != nil {
		return werr
	}
	return err
}

// mayWait reports whether a failed send should wait for room.
func (q *Queue) mayWait(err error) bool {
	return err != nil && (errors.Is(err, ErrFull) && q.opts.Overflow == Block || errors.Is(err, ErrDiskFull))
}

// dropOldest drops the oldest message of s to make room in its ring
// (DropOldest): one message, and one slot of the ring freed.
func (s *qshard) dropOldest() {
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	if s.lo == s.hi {
		if _, ok := s.ring.TryPop(); ok {
			s.ringDropped.Add(1)
		}
		return
	}
	// The messages taken out of the ring for one-at-a-time receivers are
	// older than anything in it: drop the first of them, and move the
	// ring's oldest in behind the others to free its slot.
	s.lo, s.hi, s.localHead = dropFirst(s.local[:], s.lo, s.hi, s.localHead)
	s.ringDropped.Add(1)
	if e, ok := s.ring.TryPop(); ok { // at ring position localHead+hi
		s.local[s.hi] = e
		s.hi++
		return
	}
}

// durableShard is the shard of a message with key on a Persistent queue:
// by key, and for a keyless one, under SyncAlways, the shard the current
// sync round gathers keyless messages in (syncer.keyless), else any.
func (q *Queue) durableShard(key []byte) *qshard {
	if len(key) == 0 && q.always {
		return q.shards[int(q.sy.keylessShard.Load())&(q.opts.Shards-1)]
	}
	return q.shards[shard.Of(key, q.opts.Shards)]
}
