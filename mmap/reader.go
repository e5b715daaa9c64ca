package mmap

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/spillway-io/spillway/codec"
)

// Reader reads a log forward from an offset. It is registered with the log:
// segments are retired only once every registered reader has passed them.
// A Reader is used by one goroutine at a time.
type Reader struct {
	// Invariants: the reader holds a reference on seg, so seg stays mapped; pos
	// is the file position of the next batch to read in seg; off is the next
	// offset to return, published atomically for the log's retention.

	l       *Log
	seg     *segment
	filePos int64
	pos     atomic.Uint64 // next offset to return
	skipped uint64        // records skipped over gaps (recovery losses, age retention)
	peek    bool          // not registered: does not hold back retention
	planned uint64        // offset after the last batch walk handed out
	ahead   int           // batches decoded in parallel ahead of the caller; 0: none
	pipe    *readAhead    // the read-ahead pipeline, once started
	decoded func()        // called by read-ahead workers after each batch (OnDecoded)
	buf     []byte        // heap copy of the current batch
	batch   codec.Batch   // decoded batch, when not shared through the cache
	key     []byte        // cache key scratch
	closed  bool
}

// NewReader returns a registered reader whose first record is at offset
// from, which must be in [FirstOffset, NextOffset]; otherwise ErrOutOfRange.
// Segments are retired only once every registered reader has passed them.
func (l *Log) NewReader(from uint64) (*Reader, error) { return l.newReader(from, false) }

// NewPeekReader returns a reader that is not registered: it neither holds
// back retention nor counts as having consumed anything. If the segments
// ahead of it are retired, it skips over them (see Skipped).
func (l *Log) NewPeekReader(from uint64) (*Reader, error) { return l.newReader(from, true) }

func (l *Log) newReader(from uint64, peek bool) (*Reader, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return nil, ErrClosed
	}
	segs := l.segments()
	if len(segs) == 0 || from < segs[0].base || from > l.next.Load() {
		if len(segs) == 0 && from == l.next.Load() {
			r := &Reader{l: l, peek: peek, planned: from}
			r.pos.Store(from)
			if !peek {
				l.readers[r] = struct{}{}
			}
			return r, nil
		}
		return nil, fmt.Errorf("%w: %d not in [%d, %d]", ErrOutOfRange, from, l.FirstOffset(), l.next.Load())
	}
	i := len(segs) - 1
	for i > 0 && segs[i].base > from {
		i--
	}
	r := &Reader{l: l, seg: segs[i], filePos: segHeaderSize, peek: peek, planned: from}
	r.seg.acquire()
	r.pos.Store(from)
	if !peek {
		l.readers[r] = struct{}{}
	}
	return r, nil
}

// Offset returns the offset of the next record the reader will return.
func (r *Reader) Offset() uint64 { return r.pos.Load() }

// Skipped returns how many offsets the reader jumped over because the log
// no longer held them (dropped at recovery, or retired by MaxAge) or held
// them in a batch that could not be decoded.
func (r *Reader) Skipped() uint64 { return r.skipped }

// Next returns the next records: those of the next batch from the reader's
// offset on, and the offset of the first of them. At the end of the log it
// returns io.EOF; call again after more appends. The records are valid until
// the next call; when they come from a cache shared by several readers they
// must not be modified.
//
// A batch whose bytes are not what was written gives an error matching
// ErrCorrupt. If its header could be read, the reader moves past it (its
// records count in Skipped) and the next call returns what follows;
// otherwise the reader cannot find the next batch, and every call returns
// the error again.
func (r *Reader) Next() (uint64, []codec.Record, error) {
	if r.closed || r.l.closed.Load() {
		return 0, nil, ErrClosed
	}
	if r.ahead > 0 {
		return r.nextAhead(true)
	}
	for {
		seg, at, h, err := r.walk()
		if err != nil {
			return 0, nil, err
		}
		b, err := r.decode(seg, at, h)
		if err != nil {
			r.pass(h)
			return 0, nil, err
		}
		if first, recs, ok := r.take(b); ok {
			return first, recs, nil
		}
	}
}

// Detach hands the caller the memory that the records the last Next (or
// TryNext) returned point to: the reader decodes the next batch into new
// memory instead of over it, so their Key, Value and Headers stay valid
// after the next call (the Records slice itself does not). For a caller
// that keeps the records' bytes, it replaces a copy with an allocation.
// Batches from the shared cache are never reused and need no Detach; they
// stay shared, not to be modified.
func (r *Reader) Detach() {
	if r.pipe != nil {
		if s := r.pipe.last; s != nil {
			s.b.Detach()
			if s.h.Compression == codec.None {
				s.buf = nil // the records alias the copy of the stored batch
			}
		}
		return
	}
	r.batch.Detach()
	if r.batch.Header.Compression == codec.None {
		r.buf = nil
	}
}

// TryNext is Next that does not wait for the read-ahead: where Next would
// wait for a batch still being decoded, it returns ErrNotReady at once, and
// the batch goes on decoding (OnDecoded says when it is done). A caller
// with other work (another reader, another shard) then does that instead
// of blocking. Without read-ahead it is Next.
func (r *Reader) TryNext() (uint64, []codec.Record, error) {
	if r.closed || r.l.closed.Load() {
		return 0, nil, ErrClosed
	}
	if r.ahead > 0 {
		return r.nextAhead(false)
	}
	return r.Next()
}

// walk finds the next batch to read, moving the planning position (seg,
// filePos) past it. It skips batches wholly before planned. At the end of
// the log it returns io.EOF.
func (r *Reader) walk() (*segment, int64, codec.BatchHeader, error) {
	for {
		if r.seg == nil { // opened on an empty log
			if err := r.advance(); err != nil {
				return nil, 0, codec.BatchHeader{}, err
			}
			continue
		}
		end := r.seg.end.Load()
		if r.filePos >= end {
			if !r.seg.sealed.Load() {
				return nil, 0, codec.BatchHeader{}, io.EOF
			}
			if end = r.seg.end.Load(); r.filePos < end { // final once sealed
				continue
			}
			if err := r.advance(); err != nil {
				return nil, 0, codec.BatchHeader{}, err
			}
			continue
		}
		hdr, err := r.seg.copyOut(r.buf, r.filePos, r.filePos+codec.HeaderSize)
		r.buf = hdr
		if err != nil {
			return nil, 0, codec.BatchHeader{}, err
		}
		h, err := codec.PeekHeader(hdr)
		if err != nil || r.filePos+int64(h.Size()) > end {
			return nil, 0, codec.BatchHeader{}, fmt.Errorf("%w: %s at %d: %v", ErrCorrupt, r.seg.name, r.filePos, err)
		}
		at := r.filePos
		r.filePos += int64(h.Size())
		if h.FirstOffset+uint64(h.Count) <= r.planned {
			continue // entirely before the reader's offset
		}
		r.planned = h.FirstOffset + uint64(h.Count)
		return r.seg, at, h, nil
	}
}

// take returns b's records from the reader's offset on and moves the offset
// past them, counting any gap before b as skipped.
func (r *Reader) take(b *codec.Batch) (uint64, []codec.Record, bool) {
	want := r.pos.Load()
	end := b.Header.FirstOffset + uint64(len(b.Records))
	if end <= want {
		return 0, nil, false
	}
	if b.Header.FirstOffset > want { // a gap: dropped at recovery, or retired
		r.skipped += b.Header.FirstOffset - want
		want = b.Header.FirstOffset
	}
	r.pos.Store(end)
	return want, b.Records[want-b.Header.FirstOffset:], true
}

// pass moves the reader past a batch it could not decode, whose header
// (as walk peeked it, and planned past it) is h, counting its records as
// skipped.
func (r *Reader) pass(h codec.BatchHeader) {
	want := r.pos.Load()
	if end := h.FirstOffset + uint64(h.Count); end > want {
		r.skipped += end - want
		r.pos.Store(end)
	}
}

// decode returns the batch at file position at of seg, from the shared
// cache if the log has one, else decoded into the reader's own Batch.
func (r *Reader) decode(seg *segment, at int64, h codec.BatchHeader) (*codec.Batch, error) {
	cache := r.l.opts.Cache
	if cache != nil {
		r.key = fmt.Appendf(r.key[:0], "%s%d/%d", r.l.id, seg.base, at)
		if b := cache.get(string(r.key)); b != nil {
			return b, nil
		}
	}
	b := &r.batch
	if cache != nil {
		b = new(codec.Batch) // shared once cached: never reused
	}
	var err error
	if r.buf, err = r.l.decodeAt(seg, at, h, b, r.buf); err != nil {
		return nil, err
	}
	if cache != nil {
		if h.Compression == codec.None {
			// Uncompressed records alias buf, which this reader reuses.
			b = cloneBatch(b)
		}
		cache.add(string(r.key), b)
	}
	return b, nil
}

// decodeOverread is how far past the end of its input a decompressor may
// read: the zstd and S2 assembly decoders copy 8 and 16 bytes at a time
// and may load bytes past the last one of their input (harmless on the
// heap, where the bytes after an object are mapped, but a fault past the
// end of a file: see segment.overreadSafe).
const decodeOverread = 64

// decodeAt decodes the batch at file position at of seg into b. An
// uncompressed batch is first copied into buf (returned, grown), since its
// records alias their source, and so is a compressed one too close to the
// end of the file (see decodeOverread); any other is decompressed straight
// out of the mapping. Either way the mapping is read under the fault
// guard.
func (l *Log) decodeAt(seg *segment, at int64, h codec.BatchHeader, b *codec.Batch, buf []byte) ([]byte, error) {
	var err error
	if h.Compression == codec.None || !seg.overreadSafe(at+int64(h.Size())) {
		buf, err = seg.copyOut(buf, at, at+int64(h.Size()))
		if err == nil {
			_, err = l.dec.Decode(buf, b)
		}
	} else if gerr := guard(func() { _, err = l.dec.Decode(seg.data[at:at+int64(h.Size())], b) }); gerr != nil {
		err = gerr
	}
	if err != nil {
		return buf, fmt.Errorf("%w: %s at %d: %w", ErrCorrupt, seg.name, at, err)
	}
	return buf, nil
}

// cloneBatch copies a decoded batch onto fresh memory.
func cloneBatch(b *codec.Batch) *codec.Batch {
	c := &codec.Batch{Header: b.Header, Records: make([]codec.Record, len(b.Records))}
	for i, rec := range b.Records {
		c.Records[i] = rec
		c.Records[i].Key = clone(rec.Key)
		c.Records[i].Value = clone(rec.Value)
		if len(rec.Headers) > 0 {
			c.Records[i].Headers = make([]codec.Header, len(rec.Headers))
			for j, h := range rec.Headers {
				c.Records[i].Headers[j] = codec.Header{Key: clone(h.Key), Value: clone(h.Value)}
			}
		}
	}
	return c
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// advance moves the reader to the segment after its current one, skipping
// offsets the log no longer holds, and lets the log retire what every
// reader has passed.
func (r *Reader) advance() error {
	l := r.l
	l.mu.Lock()
	defer l.mu.Unlock()
	var next *segment
	for _, s := range l.segments() { // sorted by base; retirement only removes a prefix
		if r.seg == nil || s.base > r.seg.base {
			next = s
			break
		}
	}
	if next == nil {
		if r.seg == nil {
			return io.EOF
		}
		return fmt.Errorf("%w: no segment after sealed %s", ErrCorrupt, r.seg.name)
	}
	next.acquire()
	if r.seg != nil {
		_ = r.seg.release()
	}
	r.seg, r.filePos = next, segHeaderSize
	if !r.peek {
		l.retain()
	}
	return nil
}

// Close unregisters the reader, so that it no longer holds back retention,
// and releases its segment. It is idempotent.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.pipe != nil {
		r.pipe.stop()
	}
	l := r.l
	l.mu.Lock()
	delete(l.readers, r)
	if !l.closed.Load() {
		l.retain()
	}
	l.mu.Unlock()
	if r.seg != nil {
		if err := r.seg.release(); err != nil && !errors.Is(err, ErrClosed) {
			return err
		}
		r.seg = nil
	}
	return nil
}
