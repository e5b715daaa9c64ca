package mmap

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/spillway-io/spillway/codec"
)

// readRecords reads everything from offset from with ReadRecords in runs of
// about maxBytes, and returns the values with their offsets.
func readRecords(t testing.TB, l *Log, from uint64, maxBytes int) (offsets []uint64, values []string, r *Reader) {
	t.Helper()
	r, err := l.NewPeekReader(from)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, r) })
	var recs []codec.Record
	for {
		var first uint64
		first, recs, err = r.ReadRecords(recs, ^uint64(0), maxBytes)
		if errors.Is(err, io.EOF) {
			return offsets, values, r
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			t.Fatal("ReadRecords returned no records and no error")
		}
		for i, rec := range recs {
			offsets = append(offsets, first+uint64(i))
			values = append(values, string(rec.Value)) // a copy: the check below compares the kept bytes too
		}
	}
}

// TestMappedAppendRecords appends batches of one to a few records through
// the mapping, across several segments, and reads them back with Next and
// with ReadRecords in runs of every size, before and after a reopen (which
// trusts the sealed segments and scans the active one).
func TestMappedAppendRecords(t *testing.T) {
	rng := newRand(t)
	dir := t.TempDir()
	l, _ := open(t, dir, Options{Mapped: true})
	total := 0
	for total < 3000 {
		n := 1 + rng.IntN(4)
		first, err := l.AppendRecords(batchOf(total, n, rng.IntN(200)))
		if err != nil {
			t.Fatal(err)
		}
		if first != uint64(total) {
			t.Fatalf("AppendRecords returned %d, want %d", first, total)
		}
		total += n
	}
	if s := l.Stats(); s.Segments < 3 {
		t.Fatalf("stats %+v: want several segments", s)
	}
	check := func(l *Log) {
		t.Helper()
		offs, vals := readAll(t, l, 0)
		if len(vals) != total {
			t.Fatalf("Next read %d records, want %d", len(vals), total)
		}
		for _, maxBytes := range []int{1, 300, 4096, 1 << 20} {
			offs2, vals2, _ := readRecords(t, l, 0, maxBytes)
			if !slices.Equal(offs, offs2) || !slices.Equal(vals, vals2) {
				t.Fatalf("ReadRecords(maxBytes %d) read %d records, Next %d, or they differ", maxBytes, len(vals2), len(vals))
			}
		}
		for i, v := range vals {
			if offs[i] != uint64(i) || valueIndex(v) != i {
				t.Fatalf("record %d: offset %d value %q", i, offs[i], v)
			}
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, rec := open(t, dir, Options{Mapped: true})
	defer closeOK(t, l)
	if len(rec.Dropped) != 0 || rec.Trusted != rec.Segments-1 {
		t.Fatalf("clean reopen reported %+v", rec)
	}
	check(l)
	if first, err := l.AppendRecords(batchOf(total, 1, 0)); err != nil || first != uint64(total) {
		t.Fatalf("AppendRecords after reopen = %d, %v; want %d", first, err, total)
	}
}

// TestReadRecordsKeepsMemory keeps every record ReadRecords returned and
// checks them all at the end: no later call may have written over them.
func TestReadRecordsKeepsMemory(t *testing.T) {
	for _, c := range []codec.Compression{codec.None, codec.S2} {
		t.Run(c.String(), func(t *testing.T) {
			enc, err := codec.NewEncoder(codec.WithCompression(c))
			if err != nil {
				t.Fatal(err)
			}
			defer closeOK(t, enc)
			l, _ := open(t, t.TempDir(), Options{Encoder: enc})
			defer closeOK(t, l)
			appendBatches(t, l, 50, 20, 100)
			r, err := l.NewPeekReader(0)
			if err != nil {
				t.Fatal(err)
			}
			defer closeOK(t, r)
			var kept []codec.Record
			var recs []codec.Record
			for {
				_, recs, err = r.ReadRecords(recs, ^uint64(0), 1000)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				kept = append(kept, recs...)
			}
			if len(kept) != 1000 {
				t.Fatalf("read %d records, want 1000", len(kept))
			}
			for i, rec := range kept {
				if valueIndex(string(rec.Value)) != i || string(rec.Value) != string(batchOf(i, 1, 100)[0].Value) {
					t.Fatalf("record %d was overwritten: %q", i, rec.Value)
				}
			}
		})
	}
}

// TestReadRecordsLimit stops before a batch that reaches past the limit,
// however the run would otherwise go on.
func TestReadRecordsLimit(t *testing.T) {
	l, _ := open(t, t.TempDir(), Options{Mapped: true})
	defer closeOK(t, l)
	for i := 0; i < 100; i += 10 {
		if _, err := l.AppendRecords(batchOf(i, 10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := l.NewPeekReader(3)
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, r)
	first, recs, err := r.ReadRecords(nil, 25, 1<<20)
	if err != nil || first != 3 || len(recs) != 17 {
		t.Fatalf("ReadRecords to 25 from 3 = %d, %d records, %v; want 3, 17 (the batch at 20 reaches 30)", first, len(recs), err)
	}
	if _, recs, err := r.ReadRecords(recs, 25, 1<<20); !errors.Is(err, io.EOF) || len(recs) != 0 {
		t.Fatalf("at the limit: %d records, %v; want io.EOF", len(recs), err)
	}
	first, recs, err = r.ReadRecords(recs, 30, 1<<20)
	if err != nil || first != 20 || len(recs) != 10 {
		t.Fatalf("ReadRecords to 30 = %d, %d records, %v; want 20, 10", first, len(recs), err)
	}
}

// TestSkipTo leaves a gap on purpose: readers jump it (counting it), a
// reopen keeps the next offset and does not mistake the gap for a missing
// file.
func TestSkipTo(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, Options{Mapped: true, Sync: SyncManual})
	if _, err := l.AppendRecords(batchOf(0, 5, 0)); err != nil {
		t.Fatal(err)
	}
	if err := l.SkipTo(3); err != nil || l.NextOffset() != 5 {
		t.Fatalf("SkipTo behind the end: next %d, %v; want 5, nil", l.NextOffset(), err)
	}
	if err := l.SkipTo(100); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, rec := open(t, dir, Options{Mapped: true, Sync: SyncManual})
	defer closeOK(t, l)
	if l.NextOffset() != 100 || len(rec.Dropped) != 0 {
		t.Fatalf("after a reopen next is %d (recovery %+v); want 100", l.NextOffset(), rec)
	}
	if first, err := l.AppendRecords(batchOf(100, 1, 0)); err != nil || first != 100 {
		t.Fatalf("AppendRecords = %d, %v; want 100", first, err)
	}
	offs, _, r := readRecords(t, l, 0, 1<<20)
	if want := []uint64{0, 1, 2, 3, 4, 100}; !slices.Equal(offs, want) {
		t.Fatalf("read offsets %v, want %v", offs, want)
	}
	if r.Skipped() != 95 {
		t.Fatalf("Skipped %d, want 95", r.Skipped())
	}
}

// TestMissingSegment removes a sealed segment in the middle of the log:
// Open refuses, naming the offsets and the file.
func TestMissingSegment(t *testing.T) {
	dir, segs := writeMapped(t, 600)
	if len(segs) < 3 {
		t.Fatalf("%d segments, want at least 3", len(segs))
	}
	if err := os.Remove(filepath.Join(dir, segs[1])); err != nil {
		t.Fatal(err)
	}
	_, _, err := Open(dir, Options{SegmentSize: smallSegment})
	if !errors.Is(err, ErrMissing) {
		t.Fatalf("Open without %s: %v; want ErrMissing", segs[1], err)
	}
	if want := segs[1]; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %s", err, want)
	}
}

// TestTornSeal corrupts the seal of a sealed segment: Open scans it instead
// of trusting it, and loses nothing.
func TestTornSeal(t *testing.T) {
	dir, segs := writeMapped(t, 600)
	flipByte(t, filepath.Join(dir, segs[0]), 36) // inside the seal's end field
	l, rec := open(t, dir, Options{Mapped: true})
	defer closeOK(t, l)
	if len(rec.Dropped) != 0 || rec.Trusted != rec.Segments-2 || rec.Batches == 0 {
		t.Fatalf("recovery %+v: want the torn seal's segment scanned, nothing dropped", rec)
	}
	_, vals := readAll(t, l, 0)
	if len(vals) != 600 {
		t.Fatalf("read %d records, want 600", len(vals))
	}
}

// TestReadRecordsPassesCorruption flips a byte of a batch's payload and,
// elsewhere, of a batch's length in sealed segments, which Open trusts
// without reading: ReadRecords reports the first, skips the second by
// looking for the next batch, and reads everything else, counting what it
// skipped.
func TestReadRecordsPassesCorruption(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, Options{Mapped: true})
	type place struct {
		seg string
		pos int64
	}
	var places []place // where each batch starts
	for i := 0; i < 900; i += 3 {
		if _, err := l.AppendRecords(batchOf(i, 3, 200)); err != nil {
			t.Fatal(err)
		}
		s := l.segments()[len(l.segments())-1]
		places = append(places, place{s.name, s.end.Load() - int64(codec.PlainSize(batchOf(i, 3, 200)))})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segmentFiles(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments, want at least 3", len(segs))
	}
	var inSeg [2][]int64
	for _, p := range places {
		for k := range inSeg {
			if p.seg == segs[k] {
				inSeg[k] = append(inSeg[k], p.pos)
			}
		}
	}
	// Segment 0: the payload of its third batch. Segment 1: the length of
	// its second batch.
	flipByte(t, filepath.Join(dir, segs[0]), inSeg[0][2]+codec.HeaderSize+5)
	flipByte(t, filepath.Join(dir, segs[1]), inSeg[1][1]+16)
	l, rec := open(t, dir, Options{Mapped: true})
	defer closeOK(t, l)
	if rec.Trusted != rec.Segments-1 {
		t.Fatalf("recovery %+v: want the sealed segments trusted", rec)
	}
	r, err := l.NewPeekReader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, r)
	var recs []codec.Record
	read, corrupt := 0, 0
	for {
		var first uint64
		first, recs, err = r.ReadRecords(recs, ^uint64(0), 1000)
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, ErrCorrupt) {
			corrupt++
		} else if err != nil {
			t.Fatal(err)
		}
		for i, rec := range recs {
			if valueIndex(string(rec.Value)) != int(first)+i {
				t.Fatalf("offset %d holds %q", first+uint64(i), rec.Value)
			}
		}
		read += len(recs)
	}
	// The batch with the bad length fails to decode too (its checksum no
	// longer covers what the length says): two reports, six records.
	if corrupt != 2 || r.Skipped() != 6 || read != 900-6 {
		t.Fatalf("read %d, %d corrupt batches reported, skipped %d; want 894, 2, 6", read, corrupt, r.Skipped())
	}
}

// TestMappedDiskFull fails the reservation of a new segment: the append
// gets ErrDiskFull and the log stays writable.
func TestMappedDiskFull(t *testing.T) {
	fs := NewFaultFS(nil)
	l, _ := open(t, t.TempDir(), Options{Mapped: true, FS: fs})
	defer closeOK(t, l)
	fs.Inject(Fault{Op: OpAllocate, Err: syscall.ENOSPC, Times: 1})
	if _, err := l.AppendRecords(batchOf(0, 1, 0)); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("AppendRecords with no room for a segment: %v; want ErrDiskFull", err)
	}
	if first, err := l.AppendRecords(batchOf(0, 1, 0)); err != nil || first != 0 {
		t.Fatalf("AppendRecords once there is room = %d, %v", first, err)
	}
}

// TestTrim retires the sealed segments wholly before the offset given, and
// never the active one.
func TestTrim(t *testing.T) {
	l, _ := open(t, t.TempDir(), Options{Mapped: true})
	defer closeOK(t, l)
	for i := 0; i < 600; i += 3 {
		if _, err := l.AppendRecords(batchOf(i, 3, 200)); err != nil {
			t.Fatal(err)
		}
	}
	before := l.Stats()
	l.Trim(before.Next)
	after := l.Stats()
	if after.Segments != 1 || after.First == 0 || after.DiskBytes >= before.DiskBytes {
		t.Fatalf("after Trim(%d): %+v (before %+v); want only the active segment left", before.Next, after, before)
	}
	l.Trim(3) // behind the floor: no effect
	if l.Stats().Segments != 1 {
		t.Fatal("Trim moved the floor back")
	}
}

func TestAppendRecordsAllocs(t *testing.T) {
	l, _ := open(t, t.TempDir(), Options{Mapped: true})
	defer closeOK(t, l)
	recs := batchOf(0, 1, 128)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := l.AppendRecords(recs); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0.01 { // a segment roll allocates, once per thousands of appends
		t.Fatalf("AppendRecords: %v allocs per call", allocs)
	}
}

// writeMapped appends n records (batchOf, 3 a batch, 200 bytes of
// padding) to a mapped log in a fresh directory, closes it, and returns the
// directory and its segment files.
func writeMapped(t testing.TB, n int) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	l, _ := open(t, dir, Options{Mapped: true})
	for i := 0; i < n; i += 3 {
		if _, err := l.AppendRecords(batchOf(i, 3, 200)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, segmentFiles(t, dir)
}

func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var segs []string
	for _, e := range entries {
		if _, ok := parseSegName(e.Name()); ok {
			segs = append(segs, e.Name())
		}
	}
	return segs
}

func flipByte(t testing.TB, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, f)
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}
