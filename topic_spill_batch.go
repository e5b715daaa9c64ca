package spillway

import (
	"unsafe"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/internal/prefetch"
)

// refBatch is a batch of a Topic's spill that the publisher gathered by
// reference: the ring's entries, 32 bytes a message, which the spill
// writer's goroutines encode themselves (mmap.Deferred), so that spilling
// costs the publisher no copy of the messages' bytes. The messages are
// immutable once published, and their entries keep them alive until
// AppendTo has encoded them.
//
// Ownership: the spill's publisher side (under the shard's pub) fills
// the pending refBatch; once handed to the writer it belongs to the writer
// goroutine that calls AppendTo, which clears it and returns it to the
// spill's free list (a channel: the only thing both sides touch).
type refBatch struct {
	es    []tentry
	timed []timedRef // the timed messages of es, in order
	exps  []timedRef // the expiring messages of es, in order, with their expiries
	bytes int        // about the encoded size of es
	rec   codec.Record
	hdrs  []codec.Header
	free  chan *refBatch
	sink  byte // keeps the loads of prefetch.Touch
}

// AppendTo encodes the batch's messages into rb, then lets go of them and
// returns the refBatch for reuse.
func (b *refBatch) AppendTo(rb *codec.RawBatch) {
	var sink byte
	timed, exps := b.timed, b.exps
	for i := range b.es {
		if j := i + prefetch.Distance; j < len(b.es) {
			sink += prefetch.Touch(unsafe.Slice(b.es[j].value, b.es[j].valLen()))
		}
		e := b.es[i].unpack()
		if len(timed) > 0 && timed[0].i == i {
			e.at, timed = timed[0].at, timed[1:]
		}
		if len(exps) > 0 && exps[0].i == i {
			e.exp, exps = exps[0].at, exps[1:]
		}
		b.hdrs = codecRecord(&b.rec, &e, b.hdrs[:0])
		rb.Add(&b.rec)
	}
	b.sink = sink
	b.rec = codec.Record{}
	clear(b.es)
	clear(b.hdrs)
	b.es, b.hdrs, b.timed, b.exps, b.bytes = b.es[:0], b.hdrs[:0], b.timed[:0], b.exps[:0], 0
	select {
	case b.free <- b:
	default: // more were made than the list keeps: let this one go
	}
}

// timedRef is the publish time (or the expiry) of es[i] of a refBatch.
type timedRef struct {
	i  int
	at int64
}

// add appends e, published at at if it is timed (else 0), expiring at
// exp (0: never), and counts about what it will encode to.
func (b *refBatch) add(e *tentry, at, exp int64) {
	if at != 0 {
		b.timed = append(b.timed, timedRef{len(b.es), at})
	}
	if exp != 0 {
		b.exps = append(b.exps, timedRef{len(b.es), exp})
	}
	b.es = append(b.es, *e)
	b.bytes += 4 + e.valLen() + e.keyLen()
	for _, h := range e.headerSlice() {
		b.bytes += 2 + len(h.Key) + len(h.Value)
	}
}
