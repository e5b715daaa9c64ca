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
	HeaderDeadReason        = "spillway-dead-reason"         // DeadMaxAttempts or DeadTerminated
	HeaderDeadSource        = "spillway-dead-source"         // the Queue's Options.Name, or the topic's name and the subscription's, "topic/subscription"
	HeaderDeadAttempts      = "spillway-dead-attempts"       // deliveries, in decimal
	HeaderDeadFirstDelivery = "spillway-dead-first-delivery" // RFC 3339 with nanoseconds
	HeaderDeadLastDelivery  = "spillway-dead-last-delivery"  // RFC 3339 with nanoseconds
)

// The values of HeaderDeadReason.
const (
	DeadMaxAttempts = "max-attempts" // delivered MaxAttempts times without an Ack
	DeadTerminated  = "terminated"   // Delivery.Term
)

// deadReason says why a lease dies.
type deadReason uint8

const (
	deadMaxAttempts deadReason = iota + 1
	deadTerminated
)

func (r deadReason) String() string {
	if r == deadTerminated {
		return DeadTerminated
	}
	return DeadMaxAttempts
}

// deadMessage returns l's message with the dead-letter headers after its
// own (a copy of the headers: the original's may be shared).
// REQUIRES: l dying (no other goroutine changes it).
func (s *ackBook) deadMessage(l *lease) Message {
	g := s.g
	m := l.msg
	hs := make([]Header, len(m.Headers), len(m.Headers)+5)
	copy(hs, m.Headers)
	hs = append(hs,
		Header{Key: HeaderDeadReason, Value: []byte(l.why.String())},
		Header{Key: HeaderDeadSource, Value: []byte(g.name)},
		Header{Key: HeaderDeadAttempts, Value: strconv.AppendInt(nil, int64(l.attempt), 10)})
	at := func(tick int64) []byte {
		return time.Unix(0, g.clock.wall(tick)).UTC().AppendFormat(nil, time.RFC3339Nano)
	}
	if l.firstTick >= 0 {
		hs = append(hs, Header{Key: HeaderDeadFirstDelivery, Value: at(l.firstTick)})
	}
	hs = append(hs, Header{Key: HeaderDeadLastDelivery, Value: at(l.lastTick)})
	m.Headers = hs
	return m
}
