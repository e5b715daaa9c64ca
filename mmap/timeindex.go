package mmap

import (
	"fmt"
	"runtime/debug"
	"sort"

	"github.com/spillway-io/spillway/codec"
)

// OffsetAt returns the offset of the first record whose batch was stamped
// at or after t (unix ns), or NextOffset if there is none: the log's time
// index. It relies on what an owner that wants the index promises: every
// record of a batch carries the batch's time (its header's BaseTime), and
// the times never decrease along the log. Records before FirstOffset are
// gone; a t before the oldest batch gives the oldest one's offset.
//
// It reads batch headers only, never a payload: a binary search over the
// segments by their first batch's time, then one over the segment's
// sparse index (a mark every 64 KiB of batches, kept in memory as batches
// are appended, or built by walking the segment's headers once for a
// segment opened from disk), then a walk over at most 64 KiB of headers.
func (l *Log) OffsetAt(t int64) (uint64, error) {
	if l.closed.Load() {
		return 0, ErrClosed
	}
	l.mu.Lock()
	segs := l.segments()
	marks := make([][]timeMark, len(segs))
	for i, s := range segs {
		s.acquire()
		if s.indexed {
			marks[i] = s.marks[:len(s.marks):len(s.marks)]
		}
	}
	indexed := func(i int) bool { return marks[i] != nil || segs[i].indexed }
	l.mu.Unlock()
	defer func() {
		for _, s := range segs {
			_ = s.release()
		}
	}()
	// first returns the time and offset of segment i's first batch.
	var ferr error
	first := func(i int) (at int64, off uint64, ok bool) {
		if indexed(i) {
			if len(marks[i]) == 0 {
				return 0, 0, false // indexed and without marks: empty
			}
			m := marks[i][0]
			h, _, err := segs[i].headerAt(m.pos)
			if err != nil && ferr == nil {
				ferr = err
			}
			return m.at, h.FirstOffset, err == nil
		}
		h, ok, err := segs[i].firstHeader()
		if err != nil && ferr == nil {
			ferr = err
		}
		return h.BaseTime, h.FirstOffset, ok
	}
	// The first segment whose first batch is at or after t (an empty
	// segment, the active one at most, counts as after).
	i := sort.Search(len(segs), func(i int) bool {
		at, _, ok := first(i)
		return !ok || at >= t
	})
	if ferr != nil {
		return 0, ferr
	}
	if i > 0 {
		s := segs[i-1]
		if !indexed(i - 1) {
			var err error
			if marks[i-1], err = l.buildMarks(s); err != nil {
				return 0, err
			}
		}
		// Walk from the last mark stamped before t.
		m := marks[i-1]
		k := sort.Search(len(m), func(k int) bool { return m[k].at >= t })
		from := int64(segHeaderSize)
		if k > 0 {
			from = m[k-1].pos
		}
		off, found, err := s.findTime(from, t)
		if err != nil {
			return 0, err
		}
		if found {
			return off, nil
		}
	}
	if i < len(segs) {
		if _, off, ok := first(i); ok {
			return off, nil
		}
		if ferr != nil {
			return 0, ferr
		}
	}
	return l.next.Load(), nil
}

// buildMarks walks the headers of a segment opened from disk and installs
// its time index, which it returns. Batches appended meanwhile (to the
// active segment) get no marks: the walks from the last mark cover them.
func (l *Log) buildMarks(s *segment) ([]timeMark, error) {
	var marks []timeMark
	end := s.end.Load()
	err := s.walkHeaders(segHeaderSize, end, func(pos int64, h codec.BatchHeader) bool {
		if n := len(marks); n == 0 || pos-marks[n-1].pos >= markEvery {
			marks = append(marks, timeMark{pos, h.BaseTime})
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	if !s.indexed {
		s.marks, s.indexed = marks, true
	}
	marks = s.marks[:len(s.marks):len(s.marks)]
	l.mu.Unlock()
	return marks, nil
}

// headerAt reads the batch header at file position pos.
func (s *segment) headerAt(pos int64) (codec.BatchHeader, bool, error) {
	b, err := s.copyOut(nil, pos, pos+codec.HeaderSize)
	if err != nil {
		return codec.BatchHeader{}, false, err
	}
	h, err := codec.PeekHeader(b)
	if err != nil {
		return h, false, fmt.Errorf("%w: %s at %d: %v", ErrCorrupt, s.name, pos, err)
	}
	return h, true, nil
}

// firstHeader returns the header of the segment's first batch, if it has
// one.
func (s *segment) firstHeader() (codec.BatchHeader, bool, error) {
	if s.end.Load() < segHeaderSize+codec.HeaderSize {
		return codec.BatchHeader{}, false, nil
	}
	b, err := s.copyOut(nil, segHeaderSize, segHeaderSize+codec.HeaderSize)
	if err != nil {
		return codec.BatchHeader{}, false, err
	}
	h, err := codec.PeekHeader(b)
	if err != nil {
		return h, false, fmt.Errorf("%w: %s at %d: %v", ErrCorrupt, s.name, segHeaderSize, err)
	}
	return h, true, nil
}

// findTime walks the segment's batch headers from file position from for
// the first batch stamped at or after t, and returns its first offset.
func (s *segment) findTime(from, t int64) (off uint64, found bool, err error) {
	err = s.walkHeaders(from, s.end.Load(), func(_ int64, h codec.BatchHeader) bool {
		if h.BaseTime >= t {
			off, found = h.FirstOffset, true
			return false
		}
		return true
	})
	return off, found, err
}

// walkHeaders calls fn with each batch header from file position from to
// end, until fn returns false. It reads the mapping directly, with one
// fault guard around the whole walk (see copyOut).
func (s *segment) walkHeaders(from, end int64, fn func(pos int64, h codec.BatchHeader) bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: fault reading %s: %v", ErrCorrupt, s.name, r)
		}
	}()
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	for pos := from; pos+codec.HeaderSize <= end; {
		h, err := codec.PeekHeader(s.data[pos : pos+codec.HeaderSize])
		if err != nil {
			return fmt.Errorf("%w: %s at %d: %v", ErrCorrupt, s.name, pos, err)
		}
		if !fn(pos, h) {
			return nil
		}
		pos += int64(h.Size())
	}
	return nil
}

// timeMark is an entry of a segment's time index: a batch at file
// position pos, stamped at.
type timeMark struct{ pos, at int64 }

// markEvery is the least distance, in bytes of batches, between two marks
// of a segment's time index: the index costs 16 bytes per 64 KiB of log,
// and a look-up walks at most 64 KiB of batch headers past a mark.
const markEvery = 64 << 10

// mark records the batch at pos, stamped at, in the time index, if it is
// markEvery past the last mark. REQUIRES: Log.mu.
func (s *segment) mark(pos, at int64) {
	if !s.indexed {
		return
	}
	if n := len(s.marks); n == 0 || pos-s.marks[n-1].pos >= markEvery {
		s.marks = append(s.marks, timeMark{pos, at})
	}
}
