package spillway

import (
	"context"
	"sync/atomic"
)

// The Topic's side of the message lifecycle (lifecycle.go). What applies
// where:
//   - Deduplication is at publish: a message whose ID the topic saw within
//     DedupWindow is not published again (Publish returns nil); no
//     subscription gets it twice. A Persistent topic's log keeps the ID
//     (dedup_durable.go), for the window to survive a reopen.
//   - Delay, Ephemeral: at publish. A message with a DeliverAt in the
//     future is held by the topic and published when due, to every
//     subscription there is then (a subscription created meanwhile gets
//     it: it was not published yet).
//   - Delay, Persistent: per subscription. The message goes to its log at
//     once, with its DeliverAt (durable as any publish), at the position
//     its publish gives it: the subscriptions that read that position get
//     it (those that start later, from Latest, do not). Each one that
//     comes to it before it is due holds it on its lease wheel (park, as a
//     Persistent queue's receiver does), recorded in its shard's journal,
//     and delivers it when due; a reopen holds it again. Until then the
//     subscription delivers what follows it.
//   - Expiry (ExpiresAt, MessageTTL) is per delivery: each subscription
//     skips a message past its expiry when it comes to it (dead-letters
//     it, with the subscription as source, or drops it), counted in its
//     Stats.Expired. The expiry travels beside the message: in a shard's
//     expiry table by ring position (made at the first message with
//     one), in the record on disk (spill, log).
//   - Priorities are per subscription: with Options.Priorities n > 1 a
//     topic has n lanes of Shards shards (t.shards[lane*Shards:]), a
//     message goes to its Priority's lane, and each subscription takes
//     from the highest lane that has a message for it (takeSome), FIFO per
//     key within a level. A slow subscription's low-priority backlog does
//     not hold back another's high-priority messages.

type topicLife struct {
	life
	// expiring is set before the first message with an expiry is
	// published; subscriptions made after copy it.
	expiring atomic.Bool
}

func (t *Topic) initLife() {
	t.life.init(&t.opts, t.publishDue)
	if t.opts.MessageTTL > 0 || t.opts.Durability == Persistent {
		// A Persistent topic's log may hold expiring messages from
		// before: its subscriptions look from the start.
		t.expiring.Store(true)
	}
}

// expTable is a topic shard's expiry table: the expiry (unix ns, 0:
// none) of each position the ring holds, at position & mask (a Persistent
// topic's table of DeliverAt, tshard.dues, is one too). Written by
// the publisher (under pub) before it pushes the positions, read by
// subscriptions after they popped them: the ring's publication orders
// the two. Made at the shard's first message with an expiry; from then on
// every publish writes it.
type expTable struct {
	exp  []atomic.Int64
	mask uint64
}

// noteExps records the expiries of the n positions from from (exps nil:
// none). REQUIRES: s.pub; the positions are within the ring's room.
func (s *tshard) noteExps(from uint64, n int, exps []int64) {
	tab := s.exps.Load()
	if tab == nil {
		if exps == nil {
			return
		}
		c := s.ring.Cap()
		tab = &expTable{exp: make([]atomic.Int64, c), mask: uint64(c - 1)}
		s.exps.Store(tab)
	}
	for j := range n {
		var e int64
		if exps != nil {
			e = exps[j]
		}
		tab.exp[(from+uint64(j))&tab.mask].Store(e)
	}
}

// publishLife is Publish for a message with lifecycle fields.
func (t *Topic) publishLife(ctx context.Context, m Message) error {
	if err := checkLife(&m, &t.opts); err != nil {
		return err
	}
	if t.closed.Load() {
		return ErrClosed
	}
	now := t.life.now(&m, &t.opts, &t.lat)
	due, exp := lifeTimes(&m, t.opts.MessageTTL, now)
	if m.ID == "" || t.dedup == nil {
		return t.publishTimed(ctx, &m, due, exp, now)
	}
	dup, tk, err := t.dedup.begin(ctx, m.ID, now, true)
	if err != nil {
		return err
	}
	if dup {
		t.deduplicated.Add(1)
		return nil
	}
	err = t.publishTimed(ctx, &m, due, exp, now)
	t.dedup.end(m.ID, tk, err == nil, now)
	return err
}

// publishTimed publishes m, expiring at exp (0: never), or holds it until
// due (0: now).
func (t *Topic) publishTimed(ctx context.Context, m *Message, due, exp, now int64) error {
	if t.sy != nil {
		return t.publishDurableLife(m, due, exp, now)
	}
	if due != 0 {
		return t.delay.add(m, due, exp, now)
	}
	if exp != 0 {
		t.noteExpiring()
	}
	var e [1]tentry
	e[0].set(m.Key, m.Value, m.Headers)
	s := t.lockLaneShard(m.Key, m.Priority, 1)
	_, err := s.publishLocked(ctx, e[:], oneExp(exp))
	return err
}

// publishDurableLife appends m to a Persistent topic's log with its
// lifecycle: due (0: now), its expiry exp (0: never) and, if the topic
// keeps a duplicate window, its ID, sent at now.
func (t *Topic) publishDurableLife(m *Message, due, exp, now int64) error {
	if exp != 0 {
		t.noteExpiring()
	}
	lf := &recordLife{due: due}
	if m.ID != "" && t.dedup != nil {
		lf.id, lf.idAt = m.ID, now
		if !t.idsUsed.Load() {
			t.idsUsed.Store(true)
		}
	}
	var e [1]tentry
	e[0].set(m.Key, m.Value, m.Headers)
	s := t.lockLaneShard(m.Key, m.Priority, 1)
	_, err := s.publishDurable(e[:], oneExp(exp), lf)
	return err
}

// noteDue records the DeliverAt of the n positions from from in the
// shard's table of them: lf's due for the first (lf nil: none), none for
// the others. REQUIRES: s.pub; a Persistent topic.
func (s *tshard) noteDue(from uint64, n int, lf *recordLife) {
	var due int64
	if lf != nil {
		due = lf.due
	}
	tab := s.dues.Load()
	if tab == nil {
		if due == 0 {
			return
		}
		c := s.ring.Cap()
		tab = &expTable{exp: make([]atomic.Int64, c), mask: uint64(c - 1)}
		s.dues.Store(tab)
	}
	for j := range n {
		tab.exp[(from+uint64(j))&tab.mask].Store(due)
		due = 0
	}
}

// oneExp returns exp as the expiries of one message: nil for none, so that
// a message without one never makes its shard an expiry table.
func oneExp(exp int64) []int64 {
	if exp == 0 {
		return nil
	}
	return []int64{exp}
}

// noteExpiring tells every subscription, now and to come, to look for
// expired messages: before the first one with an expiry is published.
func (t *Topic) noteExpiring() {
	if !t.expiring.Load() {
		t.expiring.Store(true)
		for _, sub := range *t.groups.Load() {
			sub.noteExpiring()
		}
	}
}

// publishDue publishes delayed messages that came due (the delayer's
// send), as Publish would, waiting for room as the policy says (until
// Close); what the policy refuses (Reject) is dropped and counted.
func (t *Topic) publishDue(ms []dueMessage) {
	for i := range ms {
		m := &ms[i].m
		if ms[i].exp != 0 {
			t.noteExpiring()
		}
		var e [1]tentry
		e[0].set(m.Key, m.Value, m.Headers)
		s := t.lockLaneShard(m.Key, m.Priority, 1)
		if _, err := s.publishLocked(t.lifeCtx, e[:], oneExp(ms[i].exp)); err != nil {
			t.unqueued.Add(1)
			t.lifeDropped.Add(1)
		}
	}
}
