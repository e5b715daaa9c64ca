package mmap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// A segment file is a 64-byte header followed by codec batches back to back,
// then zeros up to the size reserved when it was created:
//
//	offset size field
//	     0    4 magic      "SPWS"
//	     4    1 version    2 (1: the seal fields are reserved, zero)
//	     5    1 flags      bit 0 sealed, bit 1 gap (see below); others 0
//	     6    2 reserved   0
//	     8    8 base       offset of the first record the segment holds
//	    16    8 created    creation time, unix ns
//	    24    8 size       bytes reserved for the file
//	    32    8 end        sealed: file position after the last batch
//	    40    8 next       sealed: offset after the last record
//	    48    8 lastAt     sealed: time of the last append, unix ns
//	    56    8 checksum   xxhash64 of bytes [0, 56)
//	    64      batches    codec batches (see FORMAT.md), then zeros
//
// The header is written whole when the file is created, and once more when
// the segment is sealed (the log moved on to the next one): then end, next
// and lastAt say where its batches end, and Open trusts them instead of
// scanning the file (readers still verify every batch they decode). A seal
// that did not reach the disk whole fails its checksum: the segment is
// scanned as if it had none. The gap flag marks a segment whose base was
// set past the previous segment's end on purpose (Log.SkipTo), so that Open
// tells such a gap from a missing file.
//
// The file is named after its base offset: %020d.seg.
const (
	segHeaderSize = 64
	segVersion    = 2
	segMagic      = "SPWS"
	segSuffix     = ".seg"

	segSealed = 1 << 0
	segGap    = 1 << 1
)

func segName(base uint64) string { return fmt.Sprintf("%020d%s", base, segSuffix) }

// parseSegName returns the base offset in a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	base, err := strconv.ParseUint(digits, 10, 64)
	return base, err == nil
}

// segHeader is what a segment file's header holds (the diagram above).
type segHeader struct {
	flags   byte
	base    uint64
	created int64
	size    int64
	end     int64  // sealed only
	next    uint64 // sealed only
	lastAt  int64  // sealed only
}

func (h segHeader) sealed() bool { return h.flags&segSealed != 0 }

func (h segHeader) marshal() []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic)
	b[4] = segVersion
	b[5] = h.flags
	binary.LittleEndian.PutUint64(b[8:], h.base)
	binary.LittleEndian.PutUint64(b[16:], uint64(h.created))
	binary.LittleEndian.PutUint64(b[24:], uint64(h.size))
	binary.LittleEndian.PutUint64(b[32:], uint64(h.end))
	binary.LittleEndian.PutUint64(b[40:], h.next)
	binary.LittleEndian.PutUint64(b[48:], uint64(h.lastAt))
	binary.LittleEndian.PutUint64(b[56:], xxhash.Sum64(b[:56]))
	return b
}

// errSegChecksum is the header checksum failing on a header that is
// otherwise a segment's: a seal torn by a crash, which recovery scans past.
var errSegChecksum = fmt.Errorf("%w: segment header checksum", ErrCorrupt)

func unmarshalSegHeader(b []byte) (segHeader, error) {
	if len(b) < segHeaderSize {
		return segHeader{}, fmt.Errorf("%w: segment header cut at %d bytes", ErrCorrupt, len(b))
	}
	if string(b[:4]) != segMagic || b[4] < 1 || b[4] > segVersion {
		return segHeader{}, fmt.Errorf("%w: bad segment magic or version", ErrCorrupt)
	}
	h := segHeader{
		base:    binary.LittleEndian.Uint64(b[8:]),
		created: int64(binary.LittleEndian.Uint64(b[16:])),
		size:    int64(binary.LittleEndian.Uint64(b[24:])),
	}
	if xxhash.Sum64(b[:56]) != binary.LittleEndian.Uint64(b[56:]) {
		return h, errSegChecksum
	}
	if b[4] == 1 {
		return h, nil // no seal fields
	}
	h.flags = b[5]
	h.end = int64(binary.LittleEndian.Uint64(b[32:]))
	h.next = binary.LittleEndian.Uint64(b[40:])
	h.lastAt = int64(binary.LittleEndian.Uint64(b[48:]))
	if h.flags&^(segSealed|segGap) != 0 {
		return h, fmt.Errorf("%w: unknown segment flags %#x", ErrCorrupt, h.flags)
	}
	return h, nil
}

// segment is one open segment file.
//
// Invariants:
//   - data maps the whole file, read-only and shared; it stays mapped while
//     refs > 0. The log holds one reference while the segment is in its
//     list; every reader positioned in the segment holds one. The last
//     release unmaps and closes the file, and removes it if it was retired.
//   - Bytes [segHeaderSize, end) hold whole, verified batches with offsets
//     [base, next). Only the log's appender (under Log.mu) writes past end,
//     with pwrite, and then publishes the new end and next with atomic
//     stores: next first, then end. Readers load end (then next) and read
//     only below it, so they never see a partial batch.
//   - The file is never truncated while mapped.
type segment struct {
	name    string // file name, without the directory
	path    string
	base    uint64
	created int64
	size    int64 // reserved bytes
	f       File
	data    []byte // read-only mapping of the whole reservation
	// wdata is a writable mapping of the whole file, once the appender has
	// made one (mapped appends): only the appender writes it, under
	// Log.mu. prefault says it is a real mapping worth prefaulting.
	wdata    []byte
	prefault bool
	gap      bool // the header's gap flag
	// trusted: Open took the segment at its seal's word (set at open).
	trusted bool

	end    atomic.Int64  // file position after the last batch
	next   atomic.Uint64 // offset after the last record
	lastAt atomic.Int64  // unix ns of the last append (age retention)
	sealed atomic.Bool   // no more appends: readers move on at end
	dirty  atomic.Bool   // written since the last sync
	refs   atomic.Int32
	// readFaulted: the read mapping is faulted in below it (prefaultRead).
	readFaulted atomic.Int64
	retired     atomic.Bool // removed from the log: delete the file at the last release
	fs          FS
	// stale: appends carried no timestamps since lastAt was set, so it
	// is older than the last append; the seal sets it from the clock.
	// Guarded by Log.mu.
	stale bool
	// marks is the segment's sparse time index (see Log.OffsetAt): the
	// file position and time of a batch at least markEvery bytes after the
	// previous mark. indexed says marks start at the first batch: set for
	// a segment this process created, whose appends add the marks, and
	// once OffsetAt has walked a segment opened from disk. Guarded by
	// Log.mu; entries, once appended, never change.
	marks   []timeMark
	indexed bool
	// mapped: the file was created at its full size with every block
	// reserved (File.Grow), so appends may store through wdata; otherwise
	// they use WriteAt. Set at creation, or by the appender, under Log.mu.
	mapped bool
}

// createSegment creates, reserves, stamps and maps a new segment file. With
// mapped, it reserves the whole file at its full size (File.Grow) and maps
// it writable, so that appends store into the mapping; where the file
// system cannot reserve blocks, it falls back to a plain reservation and
// appends written with WriteAt.
func createSegment(fs FS, dir string, h segHeader, sync, mapped bool) (*segment, error) {
	name := segName(h.base)
	path := filepath.Join(dir, name)
	f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*segment, error) {
		_ = f.Close()
		_ = fs.Remove(path)
		return nil, err
	}
	grown := false
	if mapped {
		err = f.Grow(h.size)
		grown = err == nil
		if errors.Is(err, errors.ErrUnsupported) {
			err = nil
		}
	}
	if err == nil && !grown {
		err = f.Allocate(0, h.size)
	}
	if err != nil {
		if errors.Is(err, errNoSpace) {
			err = fmt.Errorf("%w: reserving %d bytes for %s: %v", ErrDiskFull, h.size, name, err)
		}
		return fail(err)
	}
	if _, err := f.WriteAt(h.marshal(), 0); err != nil {
		return fail(err)
	}
	if sync {
		// The header and the reservation are durable before any batch is
		// acknowledged in this file; the directory entry is synced by the
		// caller.
		if err := f.Sync(); err != nil {
			return fail(&syncError{err})
		}
	}
	s, err := mapSegment(fs, f, path, h)
	if err != nil {
		return fail(err)
	}
	if grown {
		if err := s.mapWritable(); err != nil {
			_ = s.release()
			_ = fs.Remove(path)
			return nil, err
		}
		s.prefaultFrom(segHeaderSize)
	}
	s.end.Store(segHeaderSize)
	s.next.Store(h.base)
	s.lastAt.Store(h.created)
	return s, nil
}

func mapSegment(fs FS, f File, path string, h segHeader) (*segment, error) {
	data, err := f.Map(int(h.size))
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	s := &segment{name: filepath.Base(path), path: path, base: h.base, created: h.created, size: h.size, f: f, data: data, fs: fs, gap: h.flags&segGap != 0}
	s.refs.Store(1)
	return s, nil
}

// makeMapped readies s, a segment recovered from disk, for mapped appends:
// its file grows to the full reservation (blocks reserved) and gets a
// writable mapping. Where blocks cannot be reserved, s stays appended with
// WriteAt. REQUIRES: Log.mu; s is the active segment.
func (s *segment) makeMapped() error {
	if err := s.f.Grow(s.size); err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			return nil
		}
		if errors.Is(err, errNoSpace) {
			return fmt.Errorf("%w: reserving %d bytes for %s: %v", ErrDiskFull, s.size, s.name, err)
		}
		return err
	}
	if err := s.mapWritable(); err != nil {
		return err
	}
	s.prefaultFrom(s.end.Load())
	return nil
}

func (s *segment) mapWritable() error {
	w, err := s.f.MapWritable(int(s.size))
	if err != nil {
		return fmt.Errorf("mapping %s writable: %w", s.name, err)
	}
	s.wdata, s.mapped = w, true
	_, s.prefault = s.f.(prefaulter)
	return nil
}

// prefaultChunk is how far ahead of the appender the writable mapping is
// faulted in, a chunk at a time: one call that populates a chunk's page
// tables costs a fraction of faulting its pages one store at a time.
const prefaultChunk = 256 << 10

// prefaultFrom faults in the chunk holding file position pos and the next
// one. REQUIRES: Log.mu.
func (s *segment) prefaultFrom(pos int64) {
	if !s.prefault {
		return
	}
	from := pos &^ (prefaultChunk - 1)
	s.populate(from, min(from+2*prefaultChunk, s.size))
}

// prefaultAfter is called after an append moved the end from old to end:
// crossing into a new chunk faults in the one after it.
func (s *segment) prefaultAfter(old, end int64) {
	if s.prefault && old/prefaultChunk != end/prefaultChunk {
		from := (end/prefaultChunk + 1) * prefaultChunk
		s.populate(from, min(from+prefaultChunk, s.size))
	}
}

// prefaultRead faults the read mapping in, a chunk at a time, ahead of a
// reader about to copy up to position to: a reader's first touch of each
// page of a segment otherwise faults one page at a time. readFaulted
// remembers how far it went, for every reader of the segment.
func (s *segment) prefaultRead(to int64) {
	pf, ok := s.f.(prefaulter)
	if !ok {
		return
	}
	for {
		done := s.readFaulted.Load()
		if to <= done && done > 0 {
			return
		}
		from := max(done, segHeaderSize) &^ (prefaultChunk - 1)
		upto := min(max(to, from)+prefaultChunk, s.size) &^ (pageSize - 1)
		if upto <= from || !s.readFaulted.CompareAndSwap(done, upto) {
			if upto <= from {
				return
			}
			continue
		}
		pf.PrefaultRead(s.data[from:upto])
		return
	}
}

func (s *segment) populate(from, to int64) {
	if from < to {
		s.f.(prefaulter).Prefault(s.wdata[from:to])
	}
}

// seal rewrites s's header with where its batches end, so that Open trusts
// it instead of scanning. REQUIRES: Log.mu; no more appends to s.
func (s *segment) seal() error {
	h := segHeader{flags: segSealed, base: s.base, created: s.created, size: s.size,
		end: s.end.Load(), next: s.next.Load(), lastAt: s.lastAt.Load()}
	if s.gap {
		h.flags |= segGap
	}
	_, err := s.f.WriteAt(h.marshal(), 0)
	return err
}

// overreadSafe reports whether the decodeOverread bytes after file
// position end may be read through s's mapping: they must lie in the
// file, or in the last page of it (which the mapping fills out with
// zeros). A page wholly past the file's end faults (SIGBUS), and a
// segment appended with pwrite ends where its last batch does; one with a
// writable mapping was grown to its reservation first.
func (s *segment) overreadSafe(end int64) bool {
	fileEnd := int64(len(s.data))
	if s.wdata == nil {
		fileEnd = min(fileEnd, (s.end.Load()+pageSize-1)&^(pageSize-1))
	}
	return end+decodeOverread <= fileEnd
}

// pageSize is the size of a memory page, which mappings are made of.
var pageSize = int64(os.Getpagesize())

func (s *segment) acquire() { s.refs.Add(1) }

// release drops a reference; the last one unmaps and closes the segment and,
// if it was retired, removes its file.
func (s *segment) release() error {
	if s.refs.Add(-1) != 0 {
		return nil
	}
	err := s.f.Unmap(s.data)
	s.data = nil
	if s.wdata != nil {
		if uerr := s.f.Unmap(s.wdata); err == nil {
			err = uerr
		}
		s.wdata = nil
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if s.retired.Load() {
		if rerr := s.fs.Remove(s.path); err == nil {
			err = rerr
		}
	}
	return err
}

// copyOut copies data[from:to] into dst's storage and returns it. This copy
// is the only place the log reads mapped memory after Open: a fault there
// (an I/O error under the mapping, a file cut short by something outside the
// log) is turned into ErrCorrupt instead of crashing the process, and what
// the caller decodes afterwards lives on the heap.
func (s *segment) copyOut(dst []byte, from, to int64) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = dst[:0], fmt.Errorf("%w: fault reading %s at %d: %v", ErrCorrupt, s.name, from, r)
		}
	}()
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	return append(dst[:0], s.data[from:to]...), nil
}

// syncError marks a failed fdatasync, which makes the log read-only.
type syncError struct{ err error }

func (e *syncError) Error() string { return "sync: " + e.err.Error() }
func (e *syncError) Unwrap() error { return e.err }
