package spillway

import (
	"time"
	"unsafe"

	"github.com/spillway-io/spillway/codec"
)

// entry is a message waiting in a shard's ring: the sender's slices, not a
// copy, kept as pointer and length (their capacity is not kept; the key's
// and the headers' lengths share a word) so that a ring slot, with the
// ring's own 16 bytes, fills exactly one 64-byte cache line. Each slot a
// sender writes then costs it one line from the receiver, not two. at is
// the send time (unix ns) of a message picked for timing
// (Options.LatencySampling), 0 for the others; it goes to disk with the
// message, as the record's Timestamp; a negative at is instead a
// Persistent queue's delayed message, due at -at (unix ns: the record's
// DeliverAt), which the take parks (lifeTaken). exp is the message's
// expiry (unix ns; 0: none), the record's ExpiresAt on disk.
type entry struct {
	key     *byte
	value   *byte
	headers *Header
	valLen  uint32
	khLen   uint32 // the key's length << hdrBits | the number of headers
	at      int64
	exp     int64
}

func (e *entry) keyLen() int { return int(e.khLen >> hdrBits) }
func (e *entry) hdrLen() int { return int(e.khLen & (1<<hdrBits - 1)) }

func newEntry(key, value []byte, headers []Header) entry {
	return entry{
		key: unsafe.SliceData(key), value: unsafe.SliceData(value), headers: unsafe.SliceData(headers),
		valLen: uint32(len(value)), khLen: uint32(len(key))<<hdrBits | uint32(len(headers)),
	}
}

// set fills e field by field (cheaper than assigning a whole entry, which
// goes through typedmemmove), untimed, without expiry.
func (e *entry) set(key, value []byte, headers []Header) {
	e.key, e.value, e.headers = unsafe.SliceData(key), unsafe.SliceData(value), unsafe.SliceData(headers)
	e.valLen, e.khLen = uint32(len(value)), uint32(len(key))<<hdrBits|uint32(len(headers))
	e.at, e.exp = 0, 0
}

// owned returns b capped at its length (appending to it must not write over
// the next record), or nil if it is empty (on disk an empty slice and nil
// are the same).
func owned(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b[:len(b):len(b)]
}

// deliver fills d with e's message, first attempt, field by field: a
// whole-struct assignment of a Delivery goes through typedmemmove, several
// times slower.
func (e *entry) deliver(d *Delivery, shard int, offset uint64) {
	// A message with neither key nor headers (the most common) skips
	// their unsafe.Slice checks; unsafe.Slice(nil, 0) is nil.
	d.Value = unsafe.Slice(e.value, e.valLen)
	d.Key, d.Headers = nil, nil
	if e.khLen != 0 {
		d.Key = unsafe.Slice(e.key, e.keyLen())
		d.Headers = unsafe.Slice(e.headers, e.hdrLen())
	}
	d.Shard, d.Offset, d.Attempt = shard, offset, 1
	d.lease, d.gen = nil, 0
	d.SentAt = time.Time{}
}

// deliverLife sets d's lifecycle fields from e, after deliver. Apart from
// deliver so that both stay inlined in the take's loop: a plain message
// costs three tests.
func (e *entry) deliverLife(d *Delivery) {
	if d.life || e.exp != 0 || e.at < 0 {
		e.lifeTo(d)
	}
}

// lifeTo sets d's lifecycle fields from e (an expiry, or a Persistent
// queue's delay), clearing what an earlier take left.
func (e *entry) lifeTo(d *Delivery) {
	d.clearLifecycle()
	if e.exp == 0 && e.at >= 0 {
		return
	}
	if e.exp != 0 {
		d.ExpiresAt = time.Unix(0, e.exp)
	}
	if e.at < 0 {
		d.DeliverAt = time.Unix(0, -e.at)
	}
	d.life = true
}

// growRecords returns recs[:n], reallocated if its capacity is short.
func growRecords(recs []codec.Record, n int) []codec.Record {
	if cap(recs) < n {
		return make([]codec.Record, n)
	}
	return recs[:n]
}

// codecRecord fills rec with e for the codec, without copying bytes, and
// appends e's headers to hdrs, which it returns. It sets Key, Value and
// Headers one by one (a Record is 112 bytes, which returning or assigning
// whole costs more than the rest of the conversion); the other fields of
// rec must be zero.
func codecRecord(rec *codec.Record, e *entry, hdrs []codec.Header) []codec.Header {
	rec.Key = unsafe.Slice(e.key, e.keyLen())
	rec.Value = unsafe.Slice(e.value, e.valLen)
	rec.Headers = nil
	rec.Timestamp, rec.ExpiresAt = e.at, e.exp
	if e.at < 0 {
		rec.Timestamp, rec.DeliverAt = 0, -e.at
	}
	if e.headers != nil {
		start := len(hdrs)
		for _, h := range unsafe.Slice(e.headers, e.hdrLen()) {
			hdrs = append(hdrs, codec.Header{Key: unsafe.Slice(unsafe.StringData(h.Key), len(h.Key)), Value: h.Value})
		}
		rec.Headers = hdrs[start:len(hdrs):len(hdrs)]
	}
	return hdrs
}

// convertHeaders returns the headers of recs, in order, as Headers that
// share their bytes, in one fresh slice; nil if recs have none.
func convertHeaders(recs []codec.Record) []Header {
	nh := 0
	for i := range recs {
		nh += len(recs[i].Headers)
	}
	if nh == 0 {
		return nil
	}
	hs := make([]Header, 0, nh)
	for i := range recs {
		for _, h := range recs[i].Headers {
			hs = append(hs, Header{Key: unsafe.String(unsafe.SliceData(h.Key), len(h.Key)), Value: owned(h.Value)})
		}
	}
	return hs
}

// appendEntries copies recs into one fresh arena and appends them as
// entries: the messages then own their bytes, whatever the reader does with
// its buffers next.
func appendEntries(dst []entry, recs []codec.Record) []entry {
	size, nh := 0, 0
	for i := range recs {
		r := &recs[i]
		size += len(r.Key) + len(r.Value)
		for _, h := range r.Headers {
			size += len(h.Key) + len(h.Value)
		}
		nh += len(r.Headers)
	}
	arena := make([]byte, 0, size)
	var hs []Header
	if nh > 0 {
		hs = make([]Header, 0, nh)
	}
	take := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		arena = append(arena, b...)
		return arena[len(arena)-len(b) : len(arena) : len(arena)]
	}
	for i := range recs {
		r := &recs[i]
		key, value := take(r.Key), take(r.Value)
		var headers []Header
		if len(r.Headers) > 0 {
			start := len(hs)
			for _, h := range r.Headers {
				k := take(h.Key)
				hs = append(hs, Header{Key: unsafe.String(unsafe.SliceData(k), len(k)), Value: take(h.Value)})
			}
			headers = hs[start:len(hs):len(hs)]
		}
		e := newEntry(key, value, headers)
		e.at, e.exp = r.Timestamp, r.ExpiresAt
		dst = append(dst, e)
	}
	return dst
}

// leaseEntry returns m as a lease keeps it: its parts and its expiry (a
// lease's priority is its shard's; its ID and DeliverAt are spent).
func leaseEntry(m *Message) entry {
	e := newEntry(m.Key, m.Value, m.Headers)
	if !m.ExpiresAt.IsZero() {
		e.exp = m.ExpiresAt.UnixNano()
	}
	return e
}

// message returns the Message e holds (its parts and expiry), sharing its
// bytes.
func (e *entry) message() Message {
	var d Delivery
	e.deliver(&d, 0, 0)
	if e.exp != 0 {
		d.ExpiresAt = time.Unix(0, e.exp)
	}
	return d.Message
}
