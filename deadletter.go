package spillway

import (
	"strconv"
	"time"
)

// The headers a dead-lettered message carries, after its own, saying why
// it died (as RabbitMQ's x-death does): the reason, where it came from,
// its delivery attempts, and its first and last delivery times (RFC 3339,
// to the lease clock's tick: AckTimeout/256, between 1 ms and 1 s; the
// first is left out for a message first delivered before a reopen).
const (
	HeaderDeadReason        = "spillway-dead-reason"         // DeadMaxAttempts, DeadTerminated, DeadExpired or DeadRejected
	HeaderDeadSource        = "spillway-dead-source"         // the Queue's Options.Name, or the topic's name and the subscription's, "topic/subscription"
	HeaderDeadAttempts      = "spillway-dead-attempts"       // deliveries, in decimal
	HeaderDeadFirstDelivery = "spillway-dead-first-delivery" // RFC 3339 with nanoseconds
	HeaderDeadLastDelivery  = "spillway-dead-last-delivery"  // RFC 3339 with nanoseconds
)

// The values of HeaderDeadReason.
const (
	DeadMaxAttempts = "max-attempts" // delivered MaxAttempts times without an Ack
	DeadTerminated  = "terminated"   // Delivery.Term
	DeadExpired     = "expired"      // past its ExpiresAt (or MessageTTL) before it was delivered
	DeadRejected    = "rejected"     // a delayed message came due and its queue refused it (Reject, full)
)

// deadReason says why a message dies.
type deadReason uint8

const (
	deadMaxAttempts deadReason = iota + 1
	deadTerminated
	deadExpired
	deadRejected
)

func (r deadReason) String() string {
	switch r {
	case deadTerminated:
		return DeadTerminated
	case deadExpired:
		return DeadExpired
	case deadRejected:
		return DeadRejected
	}
	return DeadMaxAttempts
}

// deadMessage returns l's message with the dead-letter headers after its
// own. REQUIRES: l dying (no other goroutine changes it).
func (s *ackBook) deadMessage(l *lease) Message {
	return s.g.deadMessage(l.msg.message(), l.why, l.attempt, s.g.clock.wall(l.firstTick), s.g.clock.wall(l.lastTick), l.firstTick >= 0)
}

// sendDead hands m to the dead-letter queue without waiting, and reports
// whether it took it (not if there is none, or it is full or closed).
func (g *group) sendDead(m Message) bool {
	dlq := g.opts.DeadLetter
	return dlq != nil && dlq.TrySend(m) == nil
}

// deadMessage returns m with the dead-letter headers after its own (a copy
// of the headers: the original's may be shared): why, from where, after
// how many deliveries, first and last delivered when (unix ns; the first
// left out unless firstKnown: it was before a reopen; both left out for a
// message never delivered).
func (g *group) deadMessage(m Message, why deadReason, attempts int, first, last int64, firstKnown bool) Message {
	hs := make([]Header, len(m.Headers), len(m.Headers)+5)
	copy(hs, m.Headers)
	hs = append(hs,
		Header{Key: HeaderDeadReason, Value: []byte(why.String())},
		Header{Key: HeaderDeadSource, Value: []byte(g.name)},
		Header{Key: HeaderDeadAttempts, Value: strconv.AppendInt(nil, int64(attempts), 10)})
	at := func(ns int64) []byte { return time.Unix(0, ns).UTC().AppendFormat(nil, time.RFC3339Nano) }
	if attempts > 0 {
		if firstKnown {
			hs = append(hs, Header{Key: HeaderDeadFirstDelivery, Value: at(first)})
		}
		hs = append(hs, Header{Key: HeaderDeadLastDelivery, Value: at(last)})
	}
	m.Headers = hs
	// The lifecycle is over: the dead-letter queue takes the message as
	// it is, now (an ID would be deduplicated against the dead-letter
	// queue's window, an expiry would expire it there).
	m.ID, m.DeliverAt, m.ExpiresAt, m.Priority = "", time.Time{}, time.Time{}, 0
	return m
}
