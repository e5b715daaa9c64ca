package spillway

import (
	"context"
	"fmt"
	"sync/atomic"
)

// The Topic's side of the message lifecycle (lifecycle.go). What applies
// where:
//   - Deduplication is at publish: a message whose ID the topic saw within
//     DedupWindow is not published again (Publish returns nil); no
//     subscription gets it twice.
//   - Delay is at publish: a message with a DeliverAt in the future is
//     held by the topic and published when due, to every subscription
//     there is then (a subscription created meanwhile gets it: it was not
//     published yet).
//   - Expiry (ExpiresAt, MessageTTL) and Priorities are a Queue's: a
//     Topic refuses them (ErrInvalidMessage, ErrInvalidOptions) rather
//     than ignore them. A subscription's backlog is bounded by Retention
//     instead.

type topicLife struct {
	dedup   *dedup   // nil: DedupWindow negative
	delay   *delayer // made at open; its goroutine at the first delayed message
	lifeCtx context.Context
	cancel  context.CancelFunc // ends lifeCtx: Close
	// unqueued counts messages accepted but never published (held by
	// the delay at Close, or refused when due), for Sent; lifeDropped
	// those of them lost.
	unqueued     atomic.Uint64
	lifeDropped  atomic.Uint64
	deduplicated atomic.Uint64
}

// checkTopicLife refuses the lifecycle options a Topic does not take.
func checkTopicLife(o *Options) error {
	switch {
	case o.Priorities > 1:
		return fmt.Errorf("%w: Priorities apply to a Queue, not a Topic", ErrInvalidOptions)
	case o.MessageTTL != 0:
		return fmt.Errorf("%w: MessageTTL applies to a Queue, not a Topic (Retention bounds a topic's logs)", ErrInvalidOptions)
	}
	return nil
}

var errTopicExpiry = fmt.Errorf("%w: ExpiresAt applies to a Queue, not a Topic", ErrInvalidMessage)

func (t *Topic) initLife() {
	t.dedup = newDedup(&t.opts)
	t.delay = newDelayer(t.opts.Clock, t.opts.DelayTick, t.publishDue)
	t.lifeCtx, t.cancel = context.WithCancel(context.Background())
}

// closeLife stops the delays, dropping (and counting) what they held.
// REQUIRES: t.closed.
func (t *Topic) closeLife() {
	t.cancel()
	if n := uint64(t.delay.close()); n > 0 {
		t.unqueued.Add(n)
		t.lifeDropped.Add(n)
	}
}

// publishLife is Publish for a message with lifecycle fields.
func (t *Topic) publishLife(ctx context.Context, m Message) error {
	if err := checkLife(&m, &t.opts); err != nil {
		return err
	}
	if !m.ExpiresAt.IsZero() {
		return errTopicExpiry
	}
	if t.closed.Load() {
		return ErrClosed
	}
	now := t.now(&m)
	due, _ := lifeTimes(&m, 0, now)
	if due != 0 && t.sy != nil {
		return errDelayPersistent
	}
	if m.ID == "" || t.dedup == nil {
		return t.publishTimed(ctx, &m, due, now)
	}
	dup, err := t.dedup.begin(ctx, m.ID, now)
	if err != nil {
		return err
	}
	if dup {
		t.deduplicated.Add(1)
		return nil
	}
	err = t.publishTimed(ctx, &m, due, now)
	t.dedup.end(m.ID, err == nil, now)
	return err
}

// now is Queue.now for a topic.
func (t *Topic) now(m *Message) int64 {
	if m.ID == "" && m.DeliverAt != zeroTime {
		if c := t.delay.coarseNow(); c != 0 && m.DeliverAt.UnixNano() > c {
			return c
		}
	}
	return t.opts.Clock.Now().UnixNano()
}

// publishTimed publishes m, or holds it until due (0: now).
func (t *Topic) publishTimed(ctx context.Context, m *Message, due, now int64) error {
	if due != 0 {
		return t.delay.add(m, due, 0, now)
	}
	var e [1]tentry
	e[0].set(m.Key, m.Value, m.Headers)
	s := t.lockShard(m.Key, 1)
	_, err := s.publishLocked(ctx, e[:])
	return err
}

// publishDue publishes delayed messages that came due (the delayer's
// send), as Publish would, waiting for room as the policy says (until
// Close); what the policy refuses (Reject) is dropped and counted.
func (t *Topic) publishDue(ms []dueMessage) {
	for i := range ms {
		m := &ms[i].m
		var e [1]tentry
		e[0].set(m.Key, m.Value, m.Headers)
		s := t.lockShard(m.Key, 1)
		if _, err := s.publishLocked(t.lifeCtx, e[:]); err != nil {
			t.unqueued.Add(1)
			t.lifeDropped.Add(1)
		}
	}
}

// addLifeStats adds the topic-wide lifecycle counters to st.
func (t *Topic) addLifeStats(st *Stats) {
	st.Sent += t.unqueued.Load() + uint64(t.delay.waiting.Load())
	st.Dropped += t.lifeDropped.Load()
	st.Deduplicated += t.deduplicated.Load()
	st.Delayed = t.delay.waiting.Load()
	if t.dedup != nil {
		_, st.DedupEvicted = t.dedup.stats()
	}
}
