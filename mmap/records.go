package mmap

import (
	"bytes"
	"fmt"
	"io"

	"github.com/spillway-io/spillway/codec"
)

// ReadRecords appends to dst the records from the reader's offset on, whole
// batches at a time from one segment, stopping before the first batch that
// reaches past offset limit and once about maxBytes of batches were read
// (at least one). It returns the offset of the first record it appended,
// and dst. The records point into memory the call allocates and never
// reuses, so the caller may keep them: a run of uncompressed batches is
// copied out of the mapping in one piece and its records point into that
// copy; a compressed batch decodes into memory of its own. At the end of
// the log, or at limit, it returns io.EOF and no records.
//
// A batch that fails to decode is passed over and its records counted in
// Skipped; the error, matching ErrCorrupt, comes back with the records read
// before it. A batch header that cannot be read (so that the next batch
// cannot be found by its length) makes the reader look for the next batch
// that verifies, in the same segment or, for a sealed one, the next; the
// offsets it jumps over count in Skipped. Only in the active segment, which
// this process appended itself, does such a header stop the reader for good.
//
// ReadRecords does not mix with read-ahead (SetReadAhead).
func (r *Reader) ReadRecords(dst []codec.Record, limit uint64, maxBytes int) (uint64, []codec.Record, error) {
	dst = dst[:0]
	if r.closed || r.l.closed.Load() {
		return 0, dst, ErrClosed
	}
	if r.ahead > 0 {
		return 0, dst, fmt.Errorf("spillway/mmap: ReadRecords on a reader with read-ahead")
	}
	for {
		seg, from, buf, err := r.planRun(limit, maxBytes)
		if err != nil {
			return 0, dst, err
		}
		if len(buf) == 0 {
			continue // passed over a batch wholly before the offset
		}
		return r.decodeRun(dst, seg, from, buf)
	}
}

// planRun finds the next run of whole batches to read in r.seg, none wholly
// before the reader's offset and none past limit, about maxBytes long, and
// returns it copied out of the mapping: the file position where it starts,
// and the copy. It moves r.filePos past the run. It copies first and walks
// the batch headers in the copy: the mapping, which the appender writes
// from another core, is read once, front to back. An empty run means a
// batch before the offset was passed over: plan again.
func (r *Reader) planRun(limit uint64, maxBytes int) (*segment, int64, []byte, error) {
	for {
		if r.seg == nil { // opened on an empty log
			if err := r.advance(); err != nil {
				return nil, 0, nil, err
			}
			continue
		}
		end := r.seg.end.Load()
		if r.filePos >= end {
			if !r.seg.sealed.Load() {
				return nil, 0, nil, io.EOF
			}
			if end = r.seg.end.Load(); r.filePos < end { // final once sealed
				continue
			}
			if err := r.advance(); err != nil {
				return nil, 0, nil, err
			}
			continue
		}
		seg, want, from := r.seg, r.pos.Load(), r.filePos
		var (
			first uint64
			count uint32
			size  int
			ok    bool
		)
		if ferr := guard(func() { first, count, size, ok = codec.BatchSpan(seg.data[from:end]) }); ferr != nil {
			return nil, 0, nil, ferr
		}
		if !ok || size > int(end-from) {
			// The header here cannot be read: find the next batch.
			if err := r.resync(want); err != nil {
				return nil, 0, nil, err
			}
			continue
		}
		if last := first + uint64(count); last <= want {
			r.filePos += int64(size) // wholly before the offset
			return seg, from, nil, nil
		} else if last > limit {
			return nil, 0, nil, io.EOF
		}
		n := max(int64(size), min(end-from, int64(maxBytes)))
		seg.prefaultRead(from + n)
		buf, err := seg.copyOut(make([]byte, 0, n), from, from+n)
		if err != nil {
			return nil, 0, nil, err
		}
		pos := 0
		for pos < len(buf) {
			first, count, size, ok := codec.BatchSpan(buf[pos:])
			if !ok || size > len(buf)-pos || first+uint64(count) > limit {
				break // cut by the copy, past the limit, or unreadable: the next call sees
			}
			pos += size
		}
		r.filePos = from + int64(pos)
		return seg, from, buf[:pos:pos], nil
	}
}

// resync moves the reader from an unreadable batch header at r.filePos to
// the next position in its segment where a batch verifies whose offsets
// come at or after want; in a sealed segment without one, to the next
// segment. The offsets passed over are counted as skipped when the next
// batch is taken.
func (r *Reader) resync(want uint64) error {
	seg, end := r.seg, r.seg.end.Load()
	found := int64(-1)
	if ferr := guard(func() {
		for i := r.filePos + 1; i+codec.HeaderSize <= end; i++ {
			j := bytes.Index(seg.data[i:end], []byte("SPWB"))
			if j < 0 {
				return
			}
			i += int64(j)
			if h, _, err := r.l.dec.Verify(seg.data[i:end]); err == nil && h.FirstOffset >= want {
				found = i
				return
			}
		}
	}); ferr != nil {
		return ferr
	}
	if found >= 0 {
		r.filePos = found
		return nil
	}
	if !seg.sealed.Load() {
		return fmt.Errorf("%w: %s at %d: no batch header can be read, and the segment is being appended to", ErrCorrupt, seg.name, r.filePos)
	}
	r.filePos = seg.end.Load()
	return r.advance()
}

// decodeRun decodes buf, a run of whole batches copied from file position
// from of seg, appending their records from the reader's offset on to dst.
func (r *Reader) decodeRun(dst []codec.Record, seg *segment, from int64, buf []byte) (uint64, []codec.Record, error) {
	var err error
	var (
		first    uint64
		firstErr error
		slab     []codec.Header // fresh for this run: the caller keeps the records
	)
	for off := 0; off < len(buf); {
		before := len(dst)
		var h codec.BatchHeader
		var n int
		dst, slab, h, n, err = r.l.dec.AppendRecords(dst, slab, buf[off:])
		if err != nil {
			// planRun read this header whole: pass the batch by it.
			ph, perr := codec.PeekHeader(buf[off:])
			if perr != nil {
				return first, dst, fmt.Errorf("%w: %s at %d: %w", ErrCorrupt, seg.name, from+int64(off), perr)
			}
			r.pass(ph)
			if firstErr == nil {
				firstErr = fmt.Errorf("%w: %s at %d: %w", ErrCorrupt, seg.name, from+int64(off), err)
			}
			off += ph.Size()
			continue
		}
		off += n
		want := r.pos.Load()
		last := h.FirstOffset + uint64(h.Count)
		if last <= want {
			clear(dst[before:])
			dst = dst[:before]
			continue
		}
		if h.FirstOffset > want { // a gap: dropped at recovery, or retired
			r.skipped += h.FirstOffset - want
			want = h.FirstOffset
		}
		if skip := int(want - h.FirstOffset); skip > 0 { // the batch began before the reader's offset
			n := copy(dst[before:], dst[before+skip:])
			clear(dst[before+n:])
			dst = dst[:before+n]
		}
		if before == 0 {
			first = want
		}
		r.pos.Store(last)
	}
	return first, dst, firstErr
}
