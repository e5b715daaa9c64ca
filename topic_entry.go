package spillway

import (
	"time"
	"unsafe"
)

// tentry is a message in a Topic's broadcast ring: the publisher's slices
// as pointers, with the three lengths packed into one word, 32 bytes in
// all. Two share a cache line, where the Queue's 48-byte entry straddles
// two lines in every other slot: every message a publisher hands to the
// subscriptions moves at most one line, and publishing one message at a
// time to three subscriptions went a fifth faster than with 48-byte
// entries (BenchmarkTopicFanOut in bench/). The packing is what bounds keys
// and headers (MaxKeyBytes, MaxHeaders) and values (a 32-bit length):
// Message.fits checks them before a message becomes a tentry.
//
// (The Queue keeps its 48-byte entry: its MPSC ring adds 16 bytes of its
// own to each slot, and 32-byte entries were slower there, one at a time
// and in batches: docs/MEASUREMENTS.md.)
type tentry struct {
	key     *byte
	value   *byte
	headers *Header
	lens    uint64 // the value's length | the key's << 32 | the number of headers << (64-hdrBits)
}

const hdrBits = 12

// set fills t field by field (cheaper than assigning a whole tentry).
func (t *tentry) set(key, value []byte, headers []Header) {
	t.key, t.value, t.headers = unsafe.SliceData(key), unsafe.SliceData(value), unsafe.SliceData(headers)
	t.lens = uint64(len(value)) | uint64(len(key))<<32 | uint64(len(headers))<<(64-hdrBits)
}

func (t *tentry) valLen() int { return int(uint32(t.lens)) }
func (t *tentry) keyLen() int { return int(t.lens >> 32 & (1<<(32-hdrBits) - 1)) }
func (t *tentry) hdrLen() int { return int(t.lens >> (64 - hdrBits)) }

func (t *tentry) headerSlice() []Header { return unsafe.Slice(t.headers, t.hdrLen()) }

// unpack returns t as the Queue's entry, which the spill and the
// subscriptions' carried messages use.
func (t *tentry) unpack() entry {
	return entry{
		key: t.key, value: t.value, headers: t.headers,
		valLen: uint32(t.lens), khLen: uint32(t.keyLen())<<hdrBits | uint32(t.hdrLen()),
	}
}

// deliver fills d with t's message, first attempt, field by field (see
// entry.deliver), but its lifecycle fields (the caller clears them).
func (t *tentry) deliver(d *Delivery, shard int, offset uint64) {
	// unsafe.Slice(nil, 0) is nil: absent parts need no branch.
	d.Key = unsafe.Slice(t.key, t.keyLen())
	d.Value = unsafe.Slice(t.value, t.valLen())
	d.Headers = unsafe.Slice(t.headers, t.hdrLen())
	d.Shard, d.Offset, d.Attempt = shard, offset, 1
	d.lease, d.gen = nil, 0
	d.SentAt = time.Time{}
}
