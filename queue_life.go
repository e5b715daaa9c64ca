package spillway

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/spillway-io/spillway/shard"
)

// The Queue's side of the message lifecycle (lifecycle.go): priority
// lanes, the lifecycle send path, delayed messages coming due, and expiry
// at the take.
//
// Priorities: with Options.Priorities p > 1 the queue has p lanes of
// Options.Shards shards each, q.shards[lane*Shards:][:Shards]; a message of
// priority k goes to lane k's shard for its key, and receivers look at
// the lanes from the highest down (takeSome). With p = 1 there is one lane:
// the queue as it was.

// laneShard returns the shard of a message with key and priority prio.
func (q *Queue) laneShard(key []byte, prio uint8) *qshard {
	n := q.opts.Shards
	return q.shards[int(prio)*n+shard.Of(key, n)]
}

// sendLife is Send (wait) or TrySend (!wait) for a message with lifecycle
// fields, or any message of a queue with MessageTTL.
func (q *Queue) sendLife(ctx context.Context, m Message, wait bool) error {
	if err := checkLife(&m, &q.opts); err != nil {
		return err
	}
	if q.closed.Load() {
		return ErrClosed
	}
	now := q.life.now(&m, &q.opts, &q.lat)
	due, exp := lifeTimes(&m, q.opts.MessageTTL, now)
	if m.ID != "" && q.dedup != nil {
		dup, tk, err := q.dedup.begin(ctx, m.ID, now, wait)
		if err != nil {
			return err
		}
		if dup {
			q.deduplicated.Add(1)
			return nil
		}
		err = q.sendTimed(ctx, &m, due, exp, now, wait)
		q.dedup.end(m.ID, tk, err == nil, now)
		return err
	}
	return q.sendTimed(ctx, &m, due, exp, now, wait)
}

// sendTimed queues m, due at due (0: now), expiring at exp (0: never).
func (q *Queue) sendTimed(ctx context.Context, m *Message, due, exp, now int64, wait bool) error {
	switch {
	case due != 0 && !q.persistent:
		return q.delay.add(m, due, exp, now)
	case exp != 0 && exp <= now:
		// Expired on arrival: accepted, and expired at once.
		q.expireSent(m)
		return nil
	}
	if exp != 0 || due != 0 {
		q.noteExpiring()
	}
	s := q.laneShard(m.Key, m.Priority)
	if q.persistent {
		if q.dedup == nil {
			m.ID = "" // no window to rebuild
		} else if !q.idsUsed.Load() {
			q.idsUsed.Store(true)
		}
		// The message goes to its log now, with its times (and its ID): a
		// receiver that comes to it before it is due parks it (lifeTaken)
		// until then.
		m.ExpiresAt, m.DeliverAt = time.Time{}, time.Time{}
		if exp != 0 {
			m.ExpiresAt = time.Unix(0, exp)
		}
		if due != 0 {
			m.DeliverAt = time.Unix(0, due)
		}
		ms := [1]Message{*m}
		_, err := q.sendDurable(ctx, s, ms[:], wait, now)
		return err
	}
	e := newEntry(m.Key, m.Value, m.Headers)
	e.exp = exp
	if !wait {
		return q.trySend(s, e)
	}
	if !s.spilling.Load() && s.push(e) {
		q.receivers.Wake(1)
		return nil
	}
	return q.sendSlow(ctx, s, e)
}

// sendDue queues delayed messages that came due (the delayer's send): as
// Send would, waiting for room under Block (until Close), expiring those
// past their expiry, and dead-lettering (DeadRejected) those the policy
// refuses (Reject, a full disk quota).
func (q *Queue) sendDue(ms []dueMessage) {
	now := q.lat.now()
	for i := range ms {
		d := &ms[i]
		if d.exp != 0 && d.exp <= now {
			q.expireSent(&d.m)
			continue
		}
		if d.exp != 0 {
			q.noteExpiring()
		}
		s := q.laneShard(d.m.Key, d.m.Priority)
		e := newEntry(d.m.Key, d.m.Value, d.m.Headers)
		e.exp = d.exp
		var err error
		if !s.spilling.Load() && s.push(e) {
			q.receivers.Wake(1)
		} else {
			err = q.sendSlow(q.lifeCtx, s, e)
		}
		switch {
		case err == nil:
		case q.closed.Load():
			q.unqueued.Add(1)
			q.lifeDropped.Add(1)
		default:
			q.deadLetterSent(&d.m, deadRejected)
		}
	}
}

// expireSent expires m, which no shard holds (it expired before it got to
// one): to the dead-letter queue if there is one, counted either way.
func (q *Queue) expireSent(m *Message) {
	q.unqueued.Add(1)
	q.lifeExpired.Add(1)
	if q.opts.DeadLetter != nil {
		q.deadLetterSent(m, deadExpired)
	}
}

// deadLetterSent hands m, never delivered, to the dead-letter queue for
// why, counting it (and, if the dead-letter queue refuses it or there is
// none, as dropped).
func (q *Queue) deadLetterSent(m *Message, why deadReason) {
	if why != deadExpired {
		q.unqueued.Add(1)
	}
	q.lifeDeadLettered.Add(1)
	if !q.group.sendDead(q.group.deadMessage(*m, why, 0, 0, 0, false)) {
		q.lifeDropped.Add(1)
	}
}

// lifeTaken removes from ds, fresh deliveries just taken from s's shard,
// those past their expiry, which go to the dead-letter queue
// (DeadExpired) or are dropped, counted either way, and those not due yet
// (a Persistent queue's delayed messages), which it parks until they are;
// it returns how many are left, in order at the front of ds.
// REQUIRES: the shard's recvMu.
func (s *ackBook) lifeTaken(ds []Delivery) int {
	now := s.g.lat.now()
	kept := 0
	for i := range ds {
		d := &ds[i]
		if !d.DeliverAt.IsZero() {
			if d.DeliverAt.UnixNano() > now {
				s.park(d)
				continue
			}
			d.DeliverAt = time.Time{}
		}
		if d.ExpiresAt.IsZero() || d.ExpiresAt.UnixNano() > now {
			if kept != i {
				ds[kept] = *d
			}
			kept++
			continue
		}
		s.expired.Add(1)
		s.expiredFresh.Add(1)
		if s.g.opts.DeadLetter != nil {
			s.deadLettered.Add(1)
			if !s.g.sendDead(s.g.deadMessage(d.Message, deadExpired, 0, 0, 0, false)) {
				s.dropped.Add(1)
			}
		}
	}
	clear(ds[kept:])
	return kept
}

// queueLife is the Queue's lifecycle state.
type queueLife struct {
	life
	lifeExpired      atomic.Uint64 // expired before reaching a shard
	lifeDeadLettered atomic.Uint64 // of those and the refused, dead-lettered
}

// initLife sets up q's lifecycle state from q.opts.
func (q *Queue) initLife() {
	q.life.init(&q.opts, q.sendDue)
	if q.opts.MessageTTL > 0 {
		q.noteExpiring()
	}
}

// addLifeStats adds the queue-wide lifecycle counters to st.
func (q *Queue) addLifeStats(st *Stats) {
	q.life.addStats(st)
	st.Expired += q.lifeExpired.Load()
	st.DeadLettered += q.lifeDeadLettered.Load()
}
