package spillway

import (
	"fmt"
	"time"
	"unsafe"
)

// Header is one name/value pair of a message's ordered headers.
type Header struct {
	Key   string
	Value []byte
}

// Message is what producers send.
//
// Ownership: Send takes ownership of Key, Value and Headers. On the memory
// path the receiver gets the very same slices, without a copy, so the sender
// must not modify them after Send, nor after Publish, whose spill may copy
// them to disk on its own goroutines after Publish returned. Messages that
// spill are copied to disk and come back in fresh memory: memory that the
// messages of one spilled batch (up to a few hundred KiB) share, so that
// keeping one message's slices keeps that whole batch's memory alive. Copy
// what you keep long.
//
// The lifecycle fields are optional; a message without them costs nothing
// more than before they existed.
type Message struct {
	Key     []byte // selects the shard; equal keys keep their order. nil: any shard
	Value   []byte
	Headers []Header

	// ID, if set, is the message's deduplication id: a second message with
	// the same ID within Options.DedupWindow of the first is acknowledged
	// as queued (Send returns nil) but not queued again, and counted in
	// Stats.Deduplicated. At most MaxIDBytes. Not delivered: receivers get
	// "" (the id is the sender's instruction, as DeliverAt is).
	ID string
	// DeliverAt, if set and in the future, holds the message back until
	// then (to the delay tick, Options.DelayTick); counted in
	// Stats.Delayed meanwhile. Not delivered: receivers get the zero time.
	DeliverAt time.Time
	// ExpiresAt, if set, is when the message expires: it is never
	// delivered after it; it goes to the dead-letter queue with reason
	// DeadExpired, or is dropped, and is counted in Stats.Expired either
	// way. Options.MessageTTL sets it for messages that leave it zero.
	// Delivered as set (or as MessageTTL set it).
	ExpiresAt time.Time
	// Priority is from 0 (the default, lowest) to Options.Priorities-1: a
	// receiver gets the highest-priority message waiting. Delivered as
	// set.
	Priority uint8

	// life is set on a Delivery whose lifecycle fields a take filled, so
	// that the next take into it clears them (clearLifecycle) without
	// looking at each. (In the padding after Priority: no room taken.)
	life bool
}

// Bounds on a message besides Options.MaxMessageBytes, from the 32-byte
// form a message takes in a Topic's ring, which packs the lengths into one
// word: longer keys or more headers fail with ErrTooLarge. A Queue applies
// the same bounds, so that both accept the same messages.
const (
	MaxKeyBytes = 1<<20 - 1 // 1 MiB - 1: at least the default MaxMessageBytes
	MaxHeaders  = 1<<12 - 1 // 4095
	MaxIDBytes  = 256       // Message.ID: SQS allows 128 characters, JetStream's Nats-Msg-Id has no bound
)

// The bounds are what tentry's packed lengths hold.
var _ = [1]struct{}{}[MaxKeyBytes-(1<<(32-hdrBits)-1)]
var _ = [1]struct{}{}[MaxHeaders-(1<<hdrBits-1)]

// maxMessageBytes bounds Options.MaxMessageBytes: a value's length is kept
// in 32 bits.
const maxMessageBytes = 1<<32 - 1

// fits reports whether m is within max bytes and the bounds on keys and
// headers.
func (m *Message) fits(max int) bool {
	return len(m.Key) <= MaxKeyBytes && len(m.Headers) <= MaxHeaders && m.size() <= max
}

// tooLarge says which bound m, which does not fit, exceeds.
func (m *Message) tooLarge(max int) error {
	switch {
	case len(m.Key) > MaxKeyBytes:
		return fmt.Errorf("%w: key of %d bytes, limit %d", ErrTooLarge, len(m.Key), MaxKeyBytes)
	case len(m.Headers) > MaxHeaders:
		return fmt.Errorf("%w: %d headers, limit %d", ErrTooLarge, len(m.Headers), MaxHeaders)
	}
	return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, m.size(), max)
}

func (m *Message) size() int {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// detached returns m with bytes of its own: its key, value and headers
// copied into one allocation (the header list into another), so that a
// message kept long (a parked delayed one) does not hold on to the larger
// buffer it was read into from a log.
func detached(m Message) Message {
	n := m.size()
	if n == 0 && len(m.Headers) == 0 {
		return m
	}
	arena := make([]byte, 0, n)
	take := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		arena = append(arena, b...)
		return arena[len(arena)-len(b) : len(arena) : len(arena)]
	}
	m.Key, m.Value = take(m.Key), take(m.Value)
	if len(m.Headers) > 0 {
		hs := make([]Header, len(m.Headers))
		for i, h := range m.Headers {
			k := take(unsafe.Slice(unsafe.StringData(h.Key), len(h.Key)))
			hs[i] = Header{Key: unsafe.String(unsafe.SliceData(k), len(k)), Value: take(h.Value)}
		}
		m.Headers = hs
	}
	return m
}
