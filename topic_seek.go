package spillway

import "fmt"

// Position returns the subscription's position: in every shard, the
// offset of the first message it has not settled (under AutoAck, not
// been handed; under ManualAck, not acked, terminated or dead-lettered).
// AtPosition(p) resumes exactly there.
func (r *Subscription) Position() Position {
	sub := r.sub
	offs := make([]uint64, len(sub.shards))
	for i, ss := range sub.shards {
		ss.recvMu.Lock()
		offs[i] = ss.nextPosition()
		ss.recvMu.Unlock()
		if ss.track {
			ss.leaseMu.Lock()
			for _, l := range [2]*lease{ss.byOffset.head, ss.moved.head} {
				if l != nil {
					offs[i] = min(offs[i], l.offset)
				}
			}
			ss.leaseMu.Unlock()
		}
	}
	return newPosition(offs)
}

// Seek moves the subscription, and so every receiver of it, to start:
// the next message each shard delivers is the one start names there
// (see StartAt), whether before or after where the subscription was.
// What the subscription held popped or read back, or parked (delayed
// messages not due yet), is let go (it is still in the log: a parked one
// at or after the new position is read, and parked, again). On a Persistent topic the new position is on disk when
// Seek returns. Seek needs a Persistent topic (ErrInvalidOptions
// otherwise), and fails with ErrClosed once the receiver, the
// subscription or the topic is closed.
func (r *Subscription) Seek(start StartAt) error {
	if r.done() {
		return ErrClosed
	}
	t, sub := r.t, r.sub
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() || sub.closed.Load() {
		return ErrClosed
	}
	if t.sy == nil {
		return fmt.Errorf("%w: Seek needs a Persistent topic (an Ephemeral one keeps no history)", ErrInvalidOptions)
	}
	if err := t.storageErr(); err != nil {
		return err
	}
	offs, err := t.startOffsets(start)
	if err != nil {
		return err
	}
	for i, ss := range sub.shards {
		s := ss.ts
		s.pub.Lock()
		s.pub.Slow() // it waits for recvMu
		ss.recvMu.Lock()
		clear(ss.local[:])
		ss.lo, ss.hi = 0, 0
		clear(ss.carry)
		ss.carry, ss.carryNext, ss.carryDue = ss.carry[:0], 0, ss.carryDue[:0]
		if ss.r != nil {
			ss.r.Close()
			ss.r = nil
		} else {
			ss.closeLogReader()
		}
		ss.pos = offs[i]
		ss.spill = s.spill
		s.spill.readers++
		ss.cur.rewind(offs[i])
		ss.saved.Store(offs[i])
		ss.dropParked()
		if ss.j != nil {
			err = ss.newGeneration()
		}
		ss.recvMu.Unlock()
		s.pub.Unlock()
		if err != nil {
			return t.failStorage(err)
		}
	}
	if err := t.sy.wait(needCursor | needJournal); err != nil {
		return err
	}
	sub.receivers.WakeAll()
	return nil
}

// PositionAt resolves start into the Position a subscription created at
// it now would start at, without creating one: for example the Position
// of the first message published at or after a time (AtTime), to store
// or compare. It needs a Persistent topic (ErrInvalidOptions otherwise)
// and fails with ErrClosed after Close.
func (t *Topic) PositionAt(start StartAt) (Position, error) {
	if t.closed.Load() {
		return Position{}, ErrClosed
	}
	if t.sy == nil {
		return Position{}, fmt.Errorf("%w: PositionAt needs a Persistent topic (an Ephemeral one keeps no history)", ErrInvalidOptions)
	}
	offs, err := t.startOffsets(start)
	if err != nil {
		return Position{}, err
	}
	return newPosition(offs), nil
}
