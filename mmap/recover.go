package mmap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/spillway-io/spillway/codec"
)

// Recovery reports what Open found and repaired.
type Recovery struct {
	Segments int      // segment files kept
	Trusted  int      // of those, sealed ones taken at their seal's word, not scanned
	Batches  int      // valid batches found in the segments scanned
	Bytes    int64    // bytes of those batches
	Removed  []string // files removed: segments cut off before their header was written
	Dropped  []Loss   // bytes that were not valid batches, moved aside
}

// Loss describes one run of bytes Open dropped.
type Loss struct {
	Segment  string // segment file name
	Position int64  // file position where the dropped bytes began
	Bytes    int64  // how many bytes were dropped
	Batches  int    // how many batches they held, as far as their headers tell (at least 1)
	// First and End bound the offsets lost: [First, End). For a torn tail
	// whose header is unreadable the count is unknown and End == First.
	First, End uint64
	// Tail is set when the bytes ended the log: a torn write, never
	// acknowledged under SyncAlways. Otherwise valid data followed them.
	Tail    bool
	Sidecar string // file in the log's directory that now holds the bytes
	Reason  error  // why the bytes were rejected
}

// LostRecords returns how many records the dropped runs held, as far as
// known.
func (r *Recovery) LostRecords() uint64 {
	var n uint64
	for _, l := range r.Dropped {
		n += l.End - l.First
	}
	return n
}

// recover opens every segment file, verifies every batch, repairs what is
// broken and sets up the segment list. Each step moves forward through the
// files: a repair either ends a segment early or splits its valid remainder
// into a new file that the same pass scans next, so recovery ends.
func (l *Log) recover() (*Recovery, error) {
	rec := &Recovery{}
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return nil, err
	}
	var bases []uint64
	for _, name := range names {
		if strings.HasSuffix(name, ".tmp") {
			_ = l.fs.Remove(filepath.Join(l.dir, name)) // an interrupted split; redone below if needed
			continue
		}
		if base, ok := parseSegName(name); ok {
			bases = append(bases, base)
		}
	}
	slices.Sort(bases)
	var live []*segment
	defer func() {
		if err != nil {
			for _, s := range live {
				_ = s.release()
			}
		}
	}()
	expected := uint64(0)
	for i := 0; i < len(bases); i++ {
		base := bases[i]
		var nextBase uint64
		hasNext := i+1 < len(bases)
		if hasNext {
			nextBase = bases[i+1]
		}
		s, split, err := l.recoverSegment(rec, base, expected, nextBase, hasNext)
		if err != nil {
			return nil, err
		}
		if split != 0 && !(i+1 < len(bases) && bases[i+1] == split) {
			// The valid batches after a corrupt run now live in a new
			// segment: scan it next. (If its file was already listed, an
			// earlier, interrupted repair had made it; it was rewritten.)
			bases = slices.Insert(bases, i+1, split)
		}
		if s == nil {
			continue
		}
		live = append(live, s)
		expected = s.next.Load()
		rec.Segments++
	}
	if err := l.checkGaps(rec, live); err != nil {
		return nil, err
	}
	for i, s := range live {
		s.sealed.Store(i < len(live)-1)
		l.diskBytes.Add(s.size)
		if q := l.opts.Quota; q != nil {
			q.used.Add(s.size) // what is on disk counts, even beyond the quota
		}
	}
	l.setSegments(live)
	l.next.Store(expected)
	return rec, nil
}

// recoverSegment opens, verifies and repairs one segment file. It returns
// the segment (nil if the file was removed or quarantined) and, if it split
// the file, the base of the new segment holding the remainder.
func (l *Log) recoverSegment(rec *Recovery, base, expected, nextBase uint64, hasNext bool) (*segment, uint64, error) {
	name := segName(base)
	path := filepath.Join(l.dir, name)
	f, err := l.fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, err
	}
	size, err := f.Size()
	if err != nil {
		_ = f.Close()
		return nil, 0, err
	}
	hdr := make([]byte, segHeaderSize)
	n, _ := f.ReadAt(hdr, 0)
	if n < segHeaderSize && allZero(hdr[:n]) || allZero(hdr) {
		// Cut off while being created: no batch was ever acknowledged in it.
		_ = f.Close()
		if err := l.fs.Remove(path); err != nil {
			return nil, 0, err
		}
		rec.Removed = append(rec.Removed, name)
		return nil, 0, nil
	}
	h, herr := unmarshalSegHeader(hdr[:n])
	if herr == nil && h.base != base {
		herr = fmt.Errorf("%w: header says base %d", ErrCorrupt, h.base)
	}
	if errors.Is(herr, errSegChecksum) && h.base == base && h.size > segHeaderSize && h.size >= size {
		// A header whose only fault is its checksum is a seal that a crash
		// tore: what it said about the segment's size and base still
		// stands (the file's name and length agree), its seal does not.
		// Scan the batches, which carry checksums of their own.
		herr = nil
		h = segHeader{base: h.base, created: h.created, size: h.size}
	}
	if herr != nil {
		// The whole file is suspect: move it aside.
		_ = f.Close()
		side := name + ".corrupt"
		if err := l.fs.Rename(path, filepath.Join(l.dir, side)); err != nil {
			return nil, 0, err
		}
		loss := Loss{Segment: name, Bytes: size, Batches: 1, First: expected, End: expected, Sidecar: side, Reason: herr, Tail: !hasNext}
		if hasNext {
			loss.End = max(nextBase, expected)
		}
		rec.Dropped = append(rec.Dropped, loss)
		return nil, 0, nil
	}
	s, err := mapSegment(l.fs, f, path, h)
	if err != nil {
		_ = f.Close()
		return nil, 0, err
	}
	if h.sealed() && h.end >= segHeaderSize && h.end <= min(size, h.size) && h.next >= h.base {
		// Sealed: its seal says where its batches end. Readers verify each
		// batch they decode; Open need not read the file.
		s.end.Store(h.end)
		s.next.Store(h.next)
		s.lastAt.Store(h.lastAt)
		s.trusted = true
		rec.Trusted++
		return s, 0, nil
	}
	// Appends extend the file into its reservation, so the file's size is
	// where the written bytes end; past it the mapping must not be read.
	// (A segment appended through a mapping has its whole size: its
	// batches end at the first zero header.)
	split, err := l.scanSegment(rec, s, min(size, h.size), nextBase, hasNext)
	if err != nil {
		_ = s.release()
		return nil, 0, err
	}
	return s, split, nil
}

// checkGaps fails if the offsets of live, the segments kept in order, jump
// where nothing explains it: a segment file is missing. Gaps are legitimate
// where this recovery dropped bytes, after a segment moved aside by an
// earlier one (its .corrupt sidecar is there), and before a segment
// started past the previous end on purpose (SkipTo, or the remainder that
// a repair split off): those carry the gap flag. A gap after a segment
// without a seal (scanned, not trusted) is that segment's tail, which a
// power loss took while a later segment survived: it is counted as lost
// (unsynced data, whose writeback order is the kernel's), not an error. A
// sealed segment's seal is written only after its data is synced (under a
// syncing policy), so a gap after one is a file that is gone.
func (l *Log) checkGaps(rec *Recovery, live []*segment) error {
next:
	for i := 1; i < len(live); i++ {
		prev, s := live[i-1], live[i]
		want := prev.next.Load()
		if s.base <= want || s.gap {
			continue
		}
		if !prev.trusted {
			rec.Dropped = append(rec.Dropped, Loss{Segment: prev.name, Position: prev.end.Load(), Batches: 1, First: want, End: s.base,
				Reason: fmt.Errorf("%w: the segment's tail, [%d, %d), is missing before %s (lost to a crash before it was synced)", ErrCorrupt, want, s.base, s.name)})
			continue
		}
		for _, loss := range rec.Dropped {
			if loss.First <= want && loss.End >= s.base {
				continue next
			}
		}
		if l.quarantinedIn(want, s.base) {
			continue
		}
		return fmt.Errorf("%w: offsets [%d, %d) are missing from %s: %s ends at %d and %s starts at %d (a segment file such as %s was removed)",
			ErrMissing, want, s.base, l.dir, prev.name, want, s.name, s.base, segName(want))
	}
	return nil
}

// quarantinedIn reports whether a segment whose base is in [from, to) was
// moved aside to a .corrupt sidecar.
func (l *Log) quarantinedIn(from, to uint64) bool {
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return false
	}
	for _, name := range names {
		segPart, ok := strings.CutSuffix(name, ".corrupt")
		if !ok {
			continue
		}
		if base, ok := parseSegName(segPart); ok && base >= from && base < to {
			return true
		}
	}
	return false
}

// scanSegment walks s's batches, sets its end and next, and repairs the first
// invalid run it meets.
func (l *Log) scanSegment(rec *Recovery, s *segment, limit int64, nextBase uint64, hasNext bool) (split uint64, err error) {
	pos, next := int64(segHeaderSize), s.base
	var bad error
	faultErr := guard(func() {
		for pos < limit {
			h, n, err := l.dec.Verify(s.data[pos:limit])
			if errors.Is(err, io.EOF) {
				return
			}
			if err == nil && h.FirstOffset != next {
				err = fmt.Errorf("%w: batch at %d has offset %d, expected %d", ErrCorrupt, pos, h.FirstOffset, next)
			}
			if err != nil {
				bad = err
				return
			}
			rec.Batches++
			rec.Bytes += int64(n)
			pos += int64(n)
			next = h.FirstOffset + uint64(h.Count)
		}
	})
	if faultErr != nil {
		bad = faultErr
	}
	s.end.Store(pos)
	s.next.Store(next)
	s.lastAt.Store(l.now()) // the last append's time is not on disk: count age from now
	if bad == nil {
		return 0, nil
	}
	return l.repair(rec, s, pos, limit, next, bad, nextBase, hasNext)
}

// repair handles an invalid run starting at pos in s, where offset next was
// expected. If a valid batch follows in the same file, the bytes between are
// a corrupt run in the middle: they go to a sidecar, and the valid remainder
// moves to a new segment named after its first offset. Otherwise the run is
// the segment's tail: it goes to a sidecar and is zeroed.
func (l *Log) repair(rec *Recovery, s *segment, pos, limit int64, next uint64, reason error, nextBase uint64, hasNext bool) (uint64, error) {
	var (
		dataEnd int64 = pos
		resync  int64 = -1
		resyncH codec.BatchHeader
		batches int
	)
	if err := guard(func() {
		dataEnd = pos + lastNonZero(s.data[pos:limit])
		resync, resyncH = findBatch(l.dec, s.data, pos, dataEnd, limit, next)
		end := dataEnd
		if resync >= 0 {
			end = resync
		}
		// Count the batches in the run by their headers, trusting a
		// header's length only if it leads exactly to the run's end or to
		// another header.
		batches = 1
		for k := pos; ; batches++ {
			h, err := codec.PeekHeader(s.data[k:end])
			if err != nil {
				break
			}
			k += int64(h.Size())
			if k >= end || !bytes.HasPrefix(s.data[k:end], []byte("SPWB")) {
				break
			}
		}
	}); err != nil {
		return 0, err
	}
	runEnd := dataEnd
	loss := Loss{Segment: s.name, Position: pos, Batches: batches, First: next, End: next, Reason: reason}
	if resync >= 0 {
		runEnd = resync
		loss.End = resyncH.FirstOffset
	} else {
		loss.Tail = !hasNext
		if hasNext {
			loss.End = max(nextBase, next)
		} else if h, err := codec.PeekHeader(s.data[pos:dataEnd]); err == nil && h.FirstOffset == next {
			loss.End = next + uint64(h.Count)
		}
	}
	loss.Bytes = runEnd - pos
	loss.Sidecar = fmt.Sprintf("%s.%d.corrupt", s.name, pos)
	// 1. The dropped bytes, kept for a human to look at later.
	buf, err := s.copyOut(nil, pos, runEnd)
	if err != nil {
		return 0, err
	}
	if err := l.writeFile(loss.Sidecar, buf); err != nil {
		return 0, err
	}
	// 2. The valid remainder, in a segment of its own, made durable before
	// anything is removed from s. A crash in between repeats the split.
	var split uint64
	if resync >= 0 {
		rest, err := s.copyOut(nil, resync, dataEnd)
		if err != nil {
			return 0, err
		}
		split = resyncH.FirstOffset
		if err := l.writeSegment(split, rest); err != nil {
			return 0, err
		}
	}
	// 3. Zero everything from pos on, so that the file ends at pos.
	if err := zeroRange(s.f, pos, dataEnd); err != nil {
		return 0, err
	}
	if err := s.f.Sync(); err != nil {
		return 0, err
	}
	rec.Dropped = append(rec.Dropped, loss)
	return split, nil
}

// writeFile writes name in the log's directory durably.
func (l *Log) writeFile(name string, data []byte) error {
	path := filepath.Join(l.dir, name)
	f, err := l.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return l.fs.SyncDir(l.dir)
}

// writeSegment creates the segment for base holding batches (already
// verified), via a temporary file renamed into place.
func (l *Log) writeSegment(base uint64, batches []byte) error {
	size := max(l.opts.SegmentSize, int64(segHeaderSize+len(batches)))
	final := filepath.Join(l.dir, segName(base))
	tmp := final + ".tmp"
	_ = l.fs.Remove(tmp)
	f, err := l.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = f.Allocate(0, size)
	if err == nil {
		// The remainder starts past the dropped run on purpose: the gap
		// flag tells later Opens it is not a missing file.
		_, err = f.WriteAt(segHeader{flags: segGap, base: base, created: l.now(), size: size}.marshal(), 0)
	}
	if err == nil {
		_, err = f.WriteAt(batches, segHeaderSize)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.fs.Rename(tmp, final)
	}
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		_ = l.fs.Remove(tmp)
	}
	return err
}

func zeroRange(f File, from, to int64) error {
	zeros := make([]byte, min(to-from, 1<<20))
	for from < to {
		n := min(to-from, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:n], from); err != nil {
			return err
		}
		from += n
	}
	return nil
}

// lastNonZero returns the length of b up to and including its last non-zero
// byte.
func lastNonZero(b []byte) int64 {
	i := len(b)
	for i >= 8 && allZero(b[i-8:i]) {
		i -= 8
	}
	for i > 0 && b[i-1] == 0 {
		i--
	}
	return int64(i)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// guard runs fn with faults on mapped memory turned into an ErrCorrupt
// error instead of a crash.
func guard(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: fault reading a mapped segment: %v", ErrCorrupt, r)
		}
	}()
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	fn()
	return nil
}
