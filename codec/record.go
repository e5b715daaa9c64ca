package codec

import (
	"encoding/binary"
	"fmt"
)

// Record is one message as stored in a batch: everything a message carries,
// so that nothing is lost when it spills.
//
// Nil and empty byte slices are the same to the format: a record decodes
// with nil or empty slices wherever it was encoded with either.
type Record struct {
	Key         []byte
	Value       []byte
	Headers     []Header // ordered name/value pairs
	Timestamp   int64    // unix ns
	ProducerID  uint64   // with ProducerSeq, for idempotent publishing; 0, 0 = none
	ProducerSeq uint64
	Attempts    uint32 // delivery attempts so far
	DeliverAt   int64  // unix ns before which the record must not be delivered; 0 = none
	ExpiresAt   int64  // unix ns after which the record is dropped; 0 = none
}

// Header is one name/value pair of a record.
type Header struct {
	Key   []byte
	Value []byte
}

// Record layout, after the batch header and decompression (see FORMAT.md).
// Every field after flags is present only when its flag bit is set, except
// the timestamp and the value:
//
//	flags      1 byte
//	timeDelta  varint    Timestamp - the previous record's (BaseTime for the first)
//	key        uvarint length, bytes       (flagKey)
//	value      uvarint length, bytes
//	headers    uvarint count, then per header:
//	           uvarint length, key bytes, uvarint length, value bytes (flagHeaders)
//	producer   uvarint ProducerID, uvarint ProducerSeq                (flagProducer)
//	attempts   uvarint                                                (flagAttempts)
//	deliverAt  varint DeliverAt - Timestamp                           (flagDeliverAt)
//	expiresAt  varint ExpiresAt - Timestamp                           (flagExpiresAt)
//
// Encoders write the canonical form only: a flag is set exactly when its
// field is non-zero (non-empty), and varints are minimal. Decoders reject
// anything else, so a batch that decodes re-encodes to the same bytes.
const (
	flagKey = 1 << iota
	flagHeaders
	flagProducer
	flagAttempts
	flagDeliverAt
	flagExpiresAt

	flagsKnown = 1<<iota - 1
)

// minRecordSize is the smallest encoded record: flags, a one-byte time
// delta and a one-byte value length. It bounds the record count a payload of
// a given size can claim.
const minRecordSize = 3

// appendRecord appends r; prev is the previous record's timestamp (the
// batch's base time for the first record).
func appendRecord(b []byte, r *Record, prev int64) []byte {
	var flags byte
	if len(r.Key) > 0 {
		flags |= flagKey
	}
	if len(r.Headers) > 0 {
		flags |= flagHeaders
	}
	if r.ProducerID != 0 || r.ProducerSeq != 0 {
		flags |= flagProducer
	}
	if r.Attempts != 0 {
		flags |= flagAttempts
	}
	if r.DeliverAt != 0 {
		flags |= flagDeliverAt
	}
	if r.ExpiresAt != 0 {
		flags |= flagExpiresAt
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, r.Timestamp-prev)
	if flags&flagKey != 0 {
		b = appendBytes(b, r.Key)
	}
	b = appendBytes(b, r.Value)
	if flags&flagHeaders != 0 {
		b = binary.AppendUvarint(b, uint64(len(r.Headers)))
		for i := range r.Headers {
			b = appendBytes(b, r.Headers[i].Key)
			b = appendBytes(b, r.Headers[i].Value)
		}
	}
	if flags&flagProducer != 0 {
		b = binary.AppendUvarint(b, r.ProducerID)
		b = binary.AppendUvarint(b, r.ProducerSeq)
	}
	if flags&flagAttempts != 0 {
		b = binary.AppendUvarint(b, uint64(r.Attempts))
	}
	if flags&flagDeliverAt != 0 {
		b = binary.AppendVarint(b, r.DeliverAt-r.Timestamp)
	}
	if flags&flagExpiresAt != 0 {
		b = binary.AppendVarint(b, r.ExpiresAt-r.Timestamp)
	}
	return b
}

// recordSize returns the size appendRecord gives r after a record stamped
// prev: the two must agree (TestPlainSize).
func recordSize(r *Record, prev int64) int {
	n := 1 + varintLen(r.Timestamp-prev) + bytesSize(r.Value)
	if len(r.Key) > 0 {
		n += bytesSize(r.Key)
	}
	if len(r.Headers) > 0 {
		n += uvarintLen(uint64(len(r.Headers)))
		for i := range r.Headers {
			n += bytesSize(r.Headers[i].Key) + bytesSize(r.Headers[i].Value)
		}
	}
	if r.ProducerID != 0 || r.ProducerSeq != 0 {
		n += uvarintLen(r.ProducerID) + uvarintLen(r.ProducerSeq)
	}
	if r.Attempts != 0 {
		n += uvarintLen(uint64(r.Attempts))
	}
	if r.DeliverAt != 0 {
		n += varintLen(r.DeliverAt - r.Timestamp)
	}
	if r.ExpiresAt != 0 {
		n += varintLen(r.ExpiresAt - r.Timestamp)
	}
	return n
}

func bytesSize(v []byte) int { return uvarintLen(uint64(len(v))) + len(v) }

// varintLen is the size of binary.AppendVarint's encoding of v (zigzag).
func varintLen(v int64) int { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// recordParser reads canonical records from a decompressed payload. Key,
// Value and header slices alias the payload; headers are carved from a slab
// the caller reuses.
type recordParser struct {
	b     []byte
	off   int
	slab  []Header
	first bool  // no record parsed yet
	prev  int64 // the previous record's timestamp; the base time at first
}

func (p *recordParser) corrupt(what string) error {
	return fmt.Errorf("%w: record payload offset %d: %s", ErrCorrupt, p.off, what)
}

func (p *recordParser) uvarint() (uint64, error) {
	v, n := binary.Uvarint(p.b[p.off:])
	if n <= 0 {
		return 0, p.corrupt("bad uvarint")
	}
	if n != uvarintLen(v) {
		return 0, p.corrupt("non-minimal uvarint")
	}
	p.off += n
	return v, nil
}

func (p *recordParser) varint() (int64, error) {
	u, err := p.uvarint() // zigzag: canonical iff its uvarint is
	if err != nil {
		return 0, err
	}
	return int64(u>>1) ^ -int64(u&1), nil
}

func (p *recordParser) bytes() ([]byte, error) {
	n, err := p.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(p.b)-p.off) {
		return nil, p.corrupt("length beyond payload")
	}
	v := p.b[p.off : p.off+int(n) : p.off+int(n)]
	p.off += int(n)
	return v, nil
}

func (p *recordParser) nonEmptyBytes(field string) ([]byte, error) {
	v, err := p.bytes()
	if err == nil && len(v) == 0 {
		err = p.corrupt("empty " + field + " with its flag set")
	}
	return v, err
}

// next parses one record into r.
func (p *recordParser) next(r *Record) error {
	if p.off >= len(p.b) {
		return p.corrupt("fewer records than the header counts")
	}
	flags := p.b[p.off]
	if flags&^flagsKnown != 0 {
		return p.corrupt("unknown record flags")
	}
	p.off++
	*r = Record{}
	delta, err := p.varint()
	if err != nil {
		return err
	}
	if p.first && delta != 0 {
		return p.corrupt("first record's time differs from the batch base time")
	}
	p.first = false
	r.Timestamp = p.prev + delta
	p.prev = r.Timestamp
	if flags&flagKey != 0 {
		if r.Key, err = p.nonEmptyBytes("key"); err != nil {
			return err
		}
	}
	if r.Value, err = p.bytes(); err != nil {
		return err
	}
	if flags&flagHeaders != 0 {
		n, err := p.uvarint()
		if err != nil {
			return err
		}
		// Each header takes at least two bytes, which bounds n by the payload.
		if n == 0 || n > uint64(len(p.b)-p.off)/2 {
			return p.corrupt("bad header count")
		}
		start := len(p.slab)
		for range n {
			var h Header
			if h.Key, err = p.bytes(); err != nil {
				return err
			}
			if h.Value, err = p.bytes(); err != nil {
				return err
			}
			p.slab = append(p.slab, h)
		}
		r.Headers = p.slab[start:len(p.slab):len(p.slab)]
	}
	if flags&flagProducer != 0 {
		if r.ProducerID, err = p.uvarint(); err != nil {
			return err
		}
		if r.ProducerSeq, err = p.uvarint(); err != nil {
			return err
		}
		if r.ProducerID == 0 && r.ProducerSeq == 0 {
			return p.corrupt("zero producer with its flag set")
		}
	}
	if flags&flagAttempts != 0 {
		a, err := p.uvarint()
		if err != nil {
			return err
		}
		if a == 0 || a > 1<<32-1 {
			return p.corrupt("bad attempts")
		}
		r.Attempts = uint32(a)
	}
	if flags&flagDeliverAt != 0 {
		d, err := p.varint()
		if err != nil {
			return err
		}
		if r.DeliverAt = r.Timestamp + d; r.DeliverAt == 0 {
			return p.corrupt("zero deliver-at with its flag set")
		}
	}
	if flags&flagExpiresAt != 0 {
		d, err := p.varint()
		if err != nil {
			return err
		}
		if r.ExpiresAt = r.Timestamp + d; r.ExpiresAt == 0 {
			return p.corrupt("zero expiry with its flag set")
		}
	}
	return nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
