package mmap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spillway-io/spillway/codec"
)

// Scan reads the log in dir without opening it: it never takes the log's
// lock, never writes, and never repairs. It walks every segment file's
// batches, checks what ScanOptions asks, hands each batch to fn (if not
// nil, in offset order; an error from fn ends the scan with that error),
// and reports what it found, problems included. Scan works on a directory
// another process has open: that process's active segment may then show a
// tail being written, reported as a torn tail.
//
// A Problem is what recovery (Open) would act on: a segment header that is
// unreadable, a run of bytes that are not valid batches (in the middle of a
// segment or at its end), offsets missing between segments. Scan reports
// them; Open repairs them. With Verify, Scan also reads the sealed
// segments, which Open trusts without reading: a bad batch there is one a
// reader skips when it meets it (counted in Reader.Skipped), and a sealed
// segment whose batches disagree with its seal is a problem of its own.
func Scan(dir string, opts ScanOptions, fn func(*ScannedBatch) error) (*LogReport, error) {
	fsys := opts.FS
	if fsys == nil {
		fsys = OSFS{}
	}
	limits := opts.Limits
	if limits == (codec.Limits{}) {
		limits = codec.DefaultLimits()
	}
	var decOpts []codec.DecoderOption
	if opts.Keyring != nil {
		decOpts = append(decOpts, codec.WithKeyring(opts.Keyring, opts.Context, false))
	}
	dec, err := codec.NewDecoder(limits, decOpts...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = dec.Close() }() // a Decoder's Close returns nil
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	rep := &LogReport{Dir: dir}
	var bases []uint64
	for _, name := range names {
		if base, ok := parseSegName(name); ok {
			bases = append(bases, base)
			continue
		}
		switch {
		case strings.HasSuffix(name, ".corrupt"):
			rep.Sidecars = append(rep.Sidecars, name)
		case name == lockName, name == preparedName:
			// the lock; a segment made ahead, not yet part of the log
		default:
			rep.Others = append(rep.Others, name)
		}
	}
	slices.Sort(bases)
	sc := &scanner{fs: fsys, dir: dir, opts: opts, dec: dec, fn: fn}
	for _, base := range bases {
		sr, err := sc.segment(base)
		if err != nil {
			return rep, err
		}
		rep.Segments = append(rep.Segments, sr)
	}
	rep.checkGaps()
	return rep, nil
}

// ScanOptions says what Scan checks and hands out.
type ScanOptions struct {
	FS FS // default OSFS
	// Verify checks every batch's checksum and limits (Decode implies
	// it); without it Scan walks the batch headers only.
	Verify bool
	// Decode decodes every batch whose records reach From or beyond, for
	// fn (ScannedBatch.Records).
	Decode bool
	From   uint64
	// Limits bound what is decoded. Default: codec.DefaultLimits().
	Limits codec.Limits
	// Keyring and Context open sealed batches (see Options); without them
	// a sealed batch is verified but not decoded (Decode fails with
	// codec.ErrKey).
	Keyring *codec.Keyring
	Context []byte
}

// ScannedBatch is one batch Scan found.
type ScannedBatch struct {
	Segment  string // the segment file's name
	Position int64  // file position of the batch
	Header   codec.BatchHeader
	// Records holds the batch's records, with Decode (nil for a batch that
	// ends before ScanOptions.From). It is valid until fn returns.
	Records []codec.Record
}

// LogReport is what Scan found in a log's directory.
type LogReport struct {
	Dir      string
	Segments []SegmentReport
	Sidecars []string  // files holding bytes a recovery moved aside (*.corrupt)
	Others   []string  // other files, neither segments nor the lock
	Gaps     []Problem // offsets missing between segments
}

// Clean reports whether Scan found no problem.
func (r *LogReport) Clean() bool {
	if len(r.Gaps) > 0 {
		return false
	}
	for _, s := range r.Segments {
		if len(s.Problems) > 0 {
			return false
		}
	}
	return true
}

// Problems returns every problem found, in file order.
func (r *LogReport) Problems() []Problem {
	var ps []Problem
	for _, s := range r.Segments {
		ps = append(ps, s.Problems...)
	}
	return append(ps, r.Gaps...)
}

// SegmentReport is what Scan found in one segment file.
type SegmentReport struct {
	Name    string
	Base    uint64    // offset of the segment's first record
	Version int       // of the segment header; 0 if the header is unreadable
	Sealed  bool      // the log moved on from it; its seal says where its batches end
	Gap     bool      // its base follows the previous segment's end on purpose
	Created time.Time // as its header says
	// LastAppend is the time of the last append, as a sealed segment's
	// seal says; zero for one not sealed.
	LastAppend time.Time
	Size       int64 // the file's length
	Reserved   int64 // bytes reserved for it, as its header says

	Batches   int
	Records   uint64
	Next      uint64                    // offset after the last record found
	DataBytes int64                     // bytes of the batches found, headers included
	RawBytes  int64                     // bytes of their records before compression
	Codecs    map[codec.Compression]int // batches per compression
	KeyIDs    map[uint32]int            // sealed batches per key id
	// FirstTime and LastTime are timestamps (unix ns) of the first and last
	// records found that carry one (a Queue times 1 in LatencySampling
	// messages; 0 when none does): the first batch header with a time
	// says the first; the last batch's last timed record, or else the last
	// batch header with a time, the last.
	FirstTime, LastTime int64

	Problems []Problem
}

// Problem is one thing Scan found wrong.
type Problem struct {
	Segment  string // segment file name
	Position int64  // file position where the bad bytes begin
	Bytes    int64  // how many (up to the next valid batch, or the end of the data)
	// Tail is set when nothing valid follows in the segment: a torn
	// write (or, on a log in use, one being written).
	Tail bool
	Err  error // what is wrong; matches ErrCorrupt or ErrMissing
}

func (p Problem) String() string {
	where := "mid-segment"
	if p.Tail {
		where = "tail"
	}
	return fmt.Sprintf("%s at %d: %d bytes (%s): %v", p.Segment, p.Position, p.Bytes, where, p.Err)
}

// scanner is one Scan's state.
type scanner struct {
	fs   FS
	dir  string
	opts ScanOptions
	dec  *codec.Decoder
	fn   func(*ScannedBatch) error
	b    codec.Batch
}

// segment scans one segment file.
func (sc *scanner) segment(base uint64) (SegmentReport, error) {
	name := segName(base)
	sr := SegmentReport{Name: name, Base: base, Next: base, Codecs: map[codec.Compression]int{}, KeyIDs: map[uint32]int{}}
	bad := func(pos, n int64, tail bool, err error) {
		sr.Problems = append(sr.Problems, Problem{Segment: name, Position: pos, Bytes: n, Tail: tail, Err: err})
	}
	f, err := sc.fs.OpenFile(filepath.Join(sc.dir, name), os.O_RDONLY, 0)
	if err != nil {
		return sr, err
	}
	defer func() { _ = f.Close() }() // read only: its Close loses nothing
	if sr.Size, err = f.Size(); err != nil {
		return sr, err
	}
	hdr := make([]byte, segHeaderSize)
	n, err := f.ReadAt(hdr, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return sr, err
	}
	h, herr := unmarshalSegHeader(hdr[:n])
	if herr == nil && h.base != base {
		herr = fmt.Errorf("%w: header says base %d", ErrCorrupt, h.base)
	}
	torn := errors.Is(herr, errSegChecksum) && h.base == base && h.size > segHeaderSize && h.size >= sr.Size
	if herr != nil && !torn {
		bad(0, sr.Size, false, fmt.Errorf("segment header: %w", herr))
		return sr, nil
	}
	sr.Version = int(hdr[4])
	sr.Created, sr.Reserved = time.Unix(0, h.created), h.size
	if torn {
		bad(0, segHeaderSize, false, fmt.Errorf("%w: the seal was torn (the segment is scanned; recovery does the same)", errSegChecksum))
		h = segHeader{base: h.base, created: h.created, size: h.size}
	}
	sr.Sealed, sr.Gap = h.sealed(), h.flags&segGap != 0
	if sr.Sealed && h.lastAt != 0 {
		sr.LastAppend = time.Unix(0, h.lastAt)
	}
	limit := min(sr.Size, h.size)
	if limit <= segHeaderSize {
		return sr, nil
	}
	data, err := f.Map(int(limit))
	if err != nil {
		return sr, fmt.Errorf("mapping %s: %w", name, err)
	}
	defer func() { _ = f.Unmap(data) }() // read only: nothing to lose
	var fnErr error
	if ferr := guard(func() { fnErr = sc.walk(&sr, data, limit, h, bad) }); ferr != nil {
		bad(segHeaderSize+sr.DataBytes, limit-segHeaderSize-sr.DataBytes, true, ferr)
	}
	return sr, fnErr
}

// walk reads the batches of data, a segment's first limit bytes.
func (sc *scanner) walk(sr *SegmentReport, data []byte, limit int64, h segHeader, bad func(pos, n int64, tail bool, err error)) error {
	check := sc.opts.Verify || sc.opts.Decode
	pos, next := int64(segHeaderSize), sr.Base
	var last []byte // the last batch found
	for pos < limit {
		var bh codec.BatchHeader
		var size int
		var err error
		if check {
			bh, size, err = sc.dec.Verify(data[pos:limit])
		} else if allZero(data[pos:min(pos+codec.HeaderSize, limit)]) {
			err = io.EOF
		} else if bh, err = codec.PeekHeader(data[pos:limit]); err == nil {
			size = bh.Size()
			if int64(size) > limit-pos {
				err = fmt.Errorf("%w: a batch of %d bytes at %d runs past the data", ErrCorrupt, size, pos)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil && bh.FirstOffset != next {
			err = fmt.Errorf("%w: batch at %d has offset %d, expected %d", ErrCorrupt, pos, bh.FirstOffset, next)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				err = fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
			end := pos + lastNonZero(data[pos:limit])
			resync, _ := findBatch(sc.dec, data, pos, end, limit, next)
			if resync < 0 {
				bad(pos, end-pos, true, err)
				break
			}
			bad(pos, resync-pos, false, err)
			pos = resync
			bh, _ := codec.PeekHeader(data[pos:limit])
			next = bh.FirstOffset
			continue
		}
		if bh.BaseTime != 0 {
			if sr.FirstTime == 0 {
				sr.FirstTime = bh.BaseTime
			}
			sr.LastTime = bh.BaseTime
		}
		sr.Batches++
		sr.Records += uint64(bh.Count)
		sr.DataBytes += int64(size)
		sr.RawBytes += int64(bh.RawLen)
		sr.Codecs[bh.Compression]++
		if bh.Sealed {
			sr.KeyIDs[bh.KeyID]++
		}
		last = data[pos : pos+int64(size)]
		if sc.fn != nil {
			sb := ScannedBatch{Segment: sr.Name, Position: pos, Header: bh}
			if sc.opts.Decode && bh.FirstOffset+uint64(bh.Count) > sc.opts.From {
				if _, err := sc.dec.Decode(data[pos:pos+int64(size)], &sc.b); err != nil {
					return err // Verify passed: a decode that fails is a bug, not the data
				}
				sb.Records = sc.b.Records
			}
			if err := sc.fn(&sb); err != nil {
				return err
			}
		}
		pos += int64(size)
		next = bh.FirstOffset + uint64(bh.Count)
	}
	sr.Next = next
	if last != nil {
		if _, err := sc.dec.Decode(last, &sc.b); err == nil {
			for i := len(sc.b.Records) - 1; i >= 0; i-- {
				if t := sc.b.Records[i].Timestamp; t != 0 {
					sr.LastTime = t
					break
				}
			}
		}
	}
	if h.sealed() && len(sr.Problems) == 0 && (pos != h.end || next != h.next) {
		bad(pos, h.end-pos, false, fmt.Errorf("%w: the seal says the batches end at %d (offset %d); they end at %d (offset %d)", ErrCorrupt, h.end, h.next, pos, next))
	}
	return nil
}

// findBatch returns the position of the first valid batch after pos in
// data[:end] (checksum verified) whose first offset is at least next, and
// its header; -1 if there is none. limit bounds the batch.
func findBatch(dec *codec.Decoder, data []byte, pos, end, limit int64, next uint64) (int64, codec.BatchHeader) {
	for i := pos + 1; i+codec.HeaderSize <= end; i++ {
		j := bytes.Index(data[i:end], []byte("SPWB"))
		if j < 0 {
			break
		}
		i += int64(j)
		if h, _, err := dec.Verify(data[i:limit]); err == nil && h.FirstOffset >= next {
			return i, h
		}
	}
	return -1, codec.BatchHeader{}
}

// checkGaps records the offsets missing between consecutive segments that
// nothing explains (see Log.checkGaps, which Open applies).
func (r *LogReport) checkGaps() {
	for i := 1; i < len(r.Segments); i++ {
		prev, s := r.Segments[i-1], r.Segments[i]
		if s.Base <= prev.Next || s.Gap || len(prev.Problems) > 0 {
			continue
		}
		r.Gaps = append(r.Gaps, Problem{Segment: s.Name, Tail: !prev.Sealed,
			Err: fmt.Errorf("%w: offsets [%d, %d) are missing between %s and %s", ErrMissing, prev.Next, s.Base, prev.Name, s.Name)})
	}
}
