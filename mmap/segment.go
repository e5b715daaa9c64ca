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
//	     4    1 version    1
//	     5    3 reserved   0
//	     8    8 base       offset of the first record the segment holds
//	    16    8 created    creation time, unix ns
//	    24    8 size       bytes reserved for the file
//	    32   24 reserved   0
//	    56    8 checksum   xxhash64 of bytes [0, 56)
//	    64      batches    codec batches (see FORMAT.md), then zeros
//
// The file is named after its base offset: %020d.seg.
const (
	segHeaderSize = 64
	segVersion    = 1
	segMagic      = "SPWS"
	segSuffix     = ".seg"
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
	base    uint64
	created int64
	size    int64
}

func (h segHeader) marshal() []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic)
	b[4] = segVersion
	binary.LittleEndian.PutUint64(b[8:], h.base)
	binary.LittleEndian.PutUint64(b[16:], uint64(h.created))
	binary.LittleEndian.PutUint64(b[24:], uint64(h.size))
	binary.LittleEndian.PutUint64(b[56:], xxhash.Sum64(b[:56]))
	return b
}

func unmarshalSegHeader(b []byte) (segHeader, error) {
	if len(b) < segHeaderSize {
		return segHeader{}, fmt.Errorf("%w: segment header cut at %d bytes", ErrCorrupt, len(b))
	}
	if string(b[:4]) != segMagic || b[4] != segVersion {
		return segHeader{}, fmt.Errorf("%w: bad segment magic or version", ErrCorrupt)
	}
	if xxhash.Sum64(b[:56]) != binary.LittleEndian.Uint64(b[56:]) {
		return segHeader{}, fmt.Errorf("%w: segment header checksum", ErrCorrupt)
	}
	return segHeader{
		base:    binary.LittleEndian.Uint64(b[8:]),
		created: int64(binary.LittleEndian.Uint64(b[16:])),
		size:    int64(binary.LittleEndian.Uint64(b[24:])),
	}, nil
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
	data    []byte

	end     atomic.Int64  // file position after the last batch
	next    atomic.Uint64 // offset after the last record
	lastAt  atomic.Int64  // unix ns of the last append (age retention)
	sealed  atomic.Bool   // no more appends: readers move on at end
	dirty   atomic.Bool   // written since the last sync
	refs    atomic.Int32
	retired atomic.Bool // removed from the log: delete the file at the last release
	fs      FS
}

// createSegment creates, reserves, stamps and maps a new segment file.
func createSegment(fs FS, dir string, base uint64, size int64, now int64, sync bool) (*segment, error) {
	name := segName(base)
	path := filepath.Join(dir, name)
	f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		fs.Remove(path)
		return nil, err
	}
	if err := f.Allocate(0, size); err != nil {
		if errors.Is(err, errNoSpace) {
			err = fmt.Errorf("%w: reserving %d bytes for %s: %v", ErrDiskFull, size, name, err)
		}
		return fail(err)
	}
	if _, err := f.WriteAt(segHeader{base: base, created: now, size: size}.marshal(), 0); err != nil {
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
	s, err := mapSegment(fs, f, path, segHeader{base: base, created: now, size: size})
	if err != nil {
		return fail(err)
	}
	s.end.Store(segHeaderSize)
	s.next.Store(base)
	s.lastAt.Store(now)
	return s, nil
}

func mapSegment(fs FS, f File, path string, h segHeader) (*segment, error) {
	data, err := f.Map(int(h.size))
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	s := &segment{name: filepath.Base(path), path: path, base: h.base, created: h.created, size: h.size, f: f, data: data, fs: fs}
	s.refs.Store(1)
	return s, nil
}

func (s *segment) acquire() { s.refs.Add(1) }

// release drops a reference; the last one unmaps and closes the segment and,
// if it was retired, removes its file.
func (s *segment) release() error {
	if s.refs.Add(-1) != 0 {
		return nil
	}
	err := s.f.Unmap(s.data)
	s.data = nil
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
