package spillway

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"
)

// The lifecycle of a message (Message.ID, DeliverAt, ExpiresAt, Priority;
// Options.DedupWindow, MessageTTL, Priorities), common to Queue and Topic.
//
// A message with none of the fields, on a queue without MessageTTL, takes
// the paths it took before they existed: one test of its fields
// (Message.plain) is all it pays. The others go through sendLife:
// deduplication first (a duplicate ends there), then the delay (a message
// due later waits in the delay wheel, not in a ring), then its shard, with
// its expiry in the entry. Expiry is checked where a message is handed to
// a receiver (lifeTaken, and takeReady for redeliveries): an expired
// message is never delivered.

var zeroTime time.Time

// plain reports whether m has none of the lifecycle fields: every word of
// them zero, or'd without a branch (a time.Time is three words, all zero
// only in the zero value; a zero time in another location goes the slow
// way, which uses IsZero).
func (m *Message) plain() bool {
	d := (*[3]uint64)(unsafe.Pointer(&m.DeliverAt))
	e := (*[3]uint64)(unsafe.Pointer(&m.ExpiresAt))
	return uint64(len(m.ID))|uint64(m.Priority)|d[0]|d[1]|d[2]|e[0]|e[1]|e[2] == 0
}

// plain reads a time.Time as three words.
var _ = [1]struct{}{}[unsafe.Sizeof(time.Time{})-3*8]

// checkLife reports what is wrong with m's lifecycle fields under o: an ID
// past MaxIDBytes (ErrTooLarge), a Priority out of range, a DeliverAt
// after the ExpiresAt (ErrInvalidMessage: a message that would expire
// before it is due is refused rather than silently expired).
func checkLife(m *Message, o *Options) error {
	switch {
	case len(m.ID) > MaxIDBytes:
		return fmt.Errorf("%w: ID of %d bytes, limit %d", ErrTooLarge, len(m.ID), MaxIDBytes)
	case int(m.Priority) >= o.Priorities:
		return fmt.Errorf("%w: priority %d, Options.Priorities is %d", ErrInvalidMessage, m.Priority, o.Priorities)
	case !m.DeliverAt.IsZero() && !m.ExpiresAt.IsZero() && m.DeliverAt.After(m.ExpiresAt):
		return fmt.Errorf("%w: DeliverAt %v is after ExpiresAt %v", ErrInvalidMessage, m.DeliverAt, m.ExpiresAt)
	}
	return nil
}

// lifeTimes returns when m is due (unix ns; 0: now, not delayed) and when
// it expires (0: never), at now: its ExpiresAt, or, without one, ttl
// after it is due (or sent).
func lifeTimes(m *Message, ttl time.Duration, now int64) (due, exp int64) {
	if !m.DeliverAt.IsZero() {
		if d := m.DeliverAt.UnixNano(); d > now {
			due = d
		}
	}
	switch {
	case !m.ExpiresAt.IsZero():
		exp = m.ExpiresAt.UnixNano()
	case ttl > 0:
		exp = max(now, due) + int64(ttl)
	}
	return due, exp
}

// life is the lifecycle state a Queue and a Topic share: the duplicate
// window, the delays, and the counters of messages accepted that never
// reached a shard.
type life struct {
	dedup   *dedup   // nil: DedupWindow negative
	delay   *delayer // made at open; its goroutine at the first delayed message
	lifeCtx context.Context
	cancel  context.CancelFunc // ends lifeCtx: Close
	// unqueued counts the messages accepted that never reached a shard
	// (expired, refused or dropped first), for Sent; lifeDropped those of
	// them lost; deduplicated the duplicates.
	unqueued     atomic.Uint64
	lifeDropped  atomic.Uint64
	deduplicated atomic.Uint64
	// idsUsed: a Persistent queue's or topic's logs hold ids (sent, or
	// found at open): the housekeeping keeps the window's segments
	// (dedupFloor).
	idsUsed atomic.Bool
}

// now returns the time for m's lifecycle under o: the clock's, or none
// (0) for a message that needs none (a Priority alone, no MessageTTL), or,
// for a message with neither ID nor ExpiresAt due after what the running
// delayer last read, that (a clock read costs more than the rest of a
// delayed send; a message in fact due already comes at the next tick).
func (l *life) now(m *Message, o *Options, lat *timing) int64 {
	if m.ID == "" && m.ExpiresAt == zeroTime {
		if m.DeliverAt == zeroTime && o.MessageTTL == 0 {
			return 0
		}
		if c := l.delay.coarseNow(); c != 0 && m.DeliverAt != zeroTime && m.DeliverAt.UnixNano() > c {
			return c
		}
	}
	return lat.now() // the clock as the owner's timing reads it: one read, not time.Now's two
}

// init sets l up from o; send gets the delayed messages that come due.
func (l *life) init(o *Options, send func([]dueMessage)) {
	l.dedup = newDedup(o)
	l.delay = newDelayer(o.Clock, o.DelayTick, send)
	l.lifeCtx, l.cancel = context.WithCancel(context.Background())
}

// close stops the delays (ending what waits on lifeCtx), dropping (and
// counting) what they held. REQUIRES: the owner is closed.
func (l *life) close() {
	l.cancel()
	if n := uint64(l.delay.close()); n > 0 {
		l.unqueued.Add(n)
		l.lifeDropped.Add(n)
	}
}

// addStats adds l's counters and gauges to st.
func (l *life) addStats(st *Stats) {
	st.Sent += l.unqueued.Load() + uint64(l.delay.waiting.Load())
	st.Dropped += l.lifeDropped.Load()
	st.Deduplicated += l.deduplicated.Load()
	st.Delayed += l.delay.waiting.Load()
	if l.dedup != nil {
		_, st.DedupEvicted = l.dedup.stats()
	}
}
