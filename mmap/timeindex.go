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
// segments by their first batch's time, then a walk over the headers of
// the one segment where t falls.
func (l *Log) OffsetAt(t int64) (uint64, error) {
	if l.closed.Load() {
		return 0, ErrClosed
	}
	l.mu.Lock()
	segs := l.segments()
	for _, s := range segs {
		s.acquire()
	}
	l.mu.Unlock()
	defer func() {
		for _, s := range segs {
			_ = s.release()
		}
	}()
	// first[i]: segment i's first batch header, if it has one.
	type first struct {
		h  codec.BatchHeader
		ok bool
	}
	firsts := make(map[int]first)
	head := func(i int) (codec.BatchHeader, bool, error) {
		if f, ok := firsts[i]; ok {
			return f.h, f.ok, nil
		}
		var f first
		var err error
		f.h, f.ok, err = segs[i].firstHeader()
		if err != nil {
			return f.h, false, err
		}
		firsts[i] = f
		return f.h, f.ok, nil
	}
	var ferr error
	// The first segment whose first batch is at or after t (an empty
	// segment, the active one at most, counts as after).
	i := sort.Search(len(segs), func(i int) bool {
		h, ok, err := head(i)
		if err != nil && ferr == nil {
			ferr = err
		}
		return !ok || h.BaseTime >= t
	})
	if ferr != nil {
		return 0, ferr
	}
	if i > 0 {
		off, found, err := segs[i-1].findTime(t)
		if err != nil {
			return 0, err
		}
		if found {
			return off, nil
		}
	}
	if i < len(segs) {
		if h, ok, _ := head(i); ok {
			return h.FirstOffset, nil
		}
	}
	return l.next.Load(), nil
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

// findTime walks the segment's batch headers for the first batch stamped at
// or after t, and returns its first offset. The walk reads the mapping
// directly, with one fault guard around it all (see copyOut).
func (s *segment) findTime(t int64) (off uint64, found bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			off, found, err = 0, false, fmt.Errorf("%w: fault reading %s: %v", ErrCorrupt, s.name, r)
		}
	}()
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	end := s.end.Load()
	for pos := int64(segHeaderSize); pos+codec.HeaderSize <= end; {
		h, err := codec.PeekHeader(s.data[pos : pos+codec.HeaderSize])
		if err != nil {
			return 0, false, fmt.Errorf("%w: %s at %d: %v", ErrCorrupt, s.name, pos, err)
		}
		if h.BaseTime >= t {
			return h.FirstOffset, true, nil
		}
		pos += int64(h.Size())
	}
	return 0, false, nil
}
