package mmap

import (
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/spillway-io/spillway/codec"
)

// dirHash is a digest of every file's name and bytes under dir.
func dirHash(t testing.TB, dir string) [32]byte {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		h.Write([]byte(path))
		h.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// TestScanCleanLog: a log of several segments, sealed and not, scanned
// while it is open (Scan takes no lock), reports every batch and record,
// hands the batches out in offset order, decodes from an offset, and
// changes no byte.
func TestScanCleanLog(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, Options{})
	defer closeOK(t, l)
	const batches, per = 60, 7
	appendBatches(t, l, batches, per, 300) // several small segments
	if n := len(l.segments()); n < 3 {
		t.Fatalf("%d segments: the test wants several", n)
	}
	before := dirHash(t, dir)

	var offsets []uint64
	var values []int
	rep, err := Scan(dir, ScanOptions{Decode: true, From: 100}, func(b *ScannedBatch) error {
		offsets = append(offsets, b.Header.FirstOffset)
		for _, r := range b.Records {
			values = append(values, valueIndex(string(r.Value)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() {
		t.Fatalf("problems in a clean log: %v", rep.Problems())
	}
	if dirHash(t, dir) != before {
		t.Fatal("Scan changed the directory")
	}
	var nb int
	var nr uint64
	for i, s := range rep.Segments {
		nb += s.Batches
		nr += s.Records
		if s.Sealed != (i < len(rep.Segments)-1) {
			t.Fatalf("segment %d of %d: sealed %v", i, len(rep.Segments), s.Sealed)
		}
		if i > 0 && s.Base != rep.Segments[i-1].Next {
			t.Fatalf("segment %s starts at %d after one that ends at %d", s.Name, s.Base, rep.Segments[i-1].Next)
		}
	}
	if nb != batches || nr != batches*per {
		t.Fatalf("scanned %d batches, %d records; want %d, %d", nb, nr, batches, batches*per)
	}
	if !slices.IsSorted(offsets) || len(offsets) != batches {
		t.Fatalf("batches handed out: %v", offsets)
	}
	// Decoded: the batches that reach offset 100, whole.
	first := 100 / per * per
	if len(values) != batches*per-first || values[0] != first || values[len(values)-1] != batches*per-1 {
		t.Fatalf("decoded from 100: %d values, %v ... %v", len(values), values[:1], values[len(values)-1:])
	}
	last := rep.Segments[len(rep.Segments)-1]
	// Record i's timestamp is i: the first batch starts untimed (0), so the
	// first batch header with a time is the second's.
	if rep.Segments[0].FirstTime != int64(per) || last.LastTime != int64(batches*per-1) {
		t.Fatalf("timestamps %d and %d, want %d and %d", rep.Segments[0].FirstTime, last.LastTime, per, batches*per-1)
	}

	// Headers only: the same counts, no checksums read.
	rep2, err := Scan(dir, ScanOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep2.Clean() || len(rep2.Segments) != len(rep.Segments) || rep2.Segments[0].Records != rep.Segments[0].Records {
		t.Fatalf("header scan: %+v", rep2)
	}
}

// TestScanFindsWhatRecoveryRepairs: for a flipped byte in a middle batch,
// a torn tail, a damaged segment header and a missing segment, Scan (with
// Verify) reports the problem where Open then drops the bytes, and changes
// nothing itself.
func TestScanFindsWhatRecoveryRepairs(t *testing.T) {
	build := func(t *testing.T) (string, []string) {
		dir := t.TempDir()
		l, _ := open(t, dir, Options{})
		appendBatches(t, l, 60, 7, 300) // three segments or more
		closeOK(t, l)
		var paths []string
		for _, name := range segFiles(t, dir) {
			paths = append(paths, filepath.Join(dir, name))
		}
		return dir, paths
	}
	scan := func(t *testing.T, dir string) *LogReport {
		before := dirHash(t, dir)
		rep, err := Scan(dir, ScanOptions{Verify: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if dirHash(t, dir) != before {
			t.Fatal("Scan changed the directory")
		}
		return rep
	}
	flip := func(t *testing.T, path string, at int64) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[at] ^= 0x40
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("flipped", func(t *testing.T) {
		dir, segs := build(t)
		last := segs[len(segs)-1] // not sealed: Open scans it
		if rep := scan(t, dir); rep.Segments[len(rep.Segments)-1].Batches < 2 {
			t.Fatal("the last segment holds one batch: the test wants a batch after the flipped one")
		}
		flip(t, last, segHeaderSize+codec.HeaderSize+3) // inside its first batch's payload
		rep := scan(t, dir)
		ps := rep.Problems()
		if len(ps) != 1 || ps[0].Tail || ps[0].Position != segHeaderSize || !errors.Is(ps[0].Err, ErrCorrupt) || !errors.Is(ps[0].Err, codec.ErrChecksum) {
			t.Fatalf("problems %v", ps)
		}
		// Headers only: the payload's checksum is not read, so nothing shows.
		if rep, err := Scan(dir, ScanOptions{}, nil); err != nil || !rep.Clean() {
			t.Fatalf("header scan: %v, %v", err, rep.Problems())
		}
		l, rec := open(t, dir, Options{})
		closeOK(t, l)
		if len(rec.Dropped) != 1 || rec.Dropped[0].Position != ps[0].Position || rec.Dropped[0].Bytes != ps[0].Bytes {
			t.Fatalf("recovery dropped %+v; Scan reported %v", rec.Dropped, ps)
		}
	})
	t.Run("flipped in a sealed segment", func(t *testing.T) {
		dir, segs := build(t)
		flip(t, segs[0], segHeaderSize+codec.HeaderSize+3)
		ps := scan(t, dir).Problems()
		if len(ps) != 1 || ps[0].Tail || ps[0].Position != segHeaderSize {
			t.Fatalf("problems %v", ps)
		}
		// Open trusts the seal; a reader that meets the batch skips it.
		l, rec := open(t, dir, Options{})
		defer closeOK(t, l)
		if len(rec.Dropped) != 0 || rec.Trusted == 0 {
			t.Fatalf("recovery %+v", rec)
		}
		r, err := l.NewPeekReader(0)
		if err != nil {
			t.Fatal(err)
		}
		defer closeOK(t, r)
		for {
			if _, _, err := r.Next(); err != nil {
				break
			}
		}
		if r.Skipped() != 7 {
			t.Fatalf("the reader skipped %d records, want the batch's 7", r.Skipped())
		}
	})
	t.Run("torn tail", func(t *testing.T) {
		dir, segs := build(t)
		last := segs[len(segs)-1]
		rep := scan(t, dir)
		s := rep.Segments[len(rep.Segments)-1]
		flip(t, last, segHeaderSize+s.DataBytes-2) // the last batch's last bytes
		ps := scan(t, dir).Problems()
		if len(ps) != 1 || !ps[0].Tail {
			t.Fatalf("problems %v", ps)
		}
		l, rec := open(t, dir, Options{})
		closeOK(t, l)
		if len(rec.Dropped) != 1 || !rec.Dropped[0].Tail || rec.Dropped[0].Position != ps[0].Position {
			t.Fatalf("recovery dropped %+v; Scan reported %v", rec.Dropped, ps)
		}
	})
	t.Run("header", func(t *testing.T) {
		dir, segs := build(t)
		flip(t, segs[1], 1) // the magic
		ps := scan(t, dir).Problems()
		if len(ps) != 1 || ps[0].Position != 0 || filepath.Base(segs[1]) != ps[0].Segment {
			t.Fatalf("problems %v", ps)
		}
	})
	t.Run("missing", func(t *testing.T) {
		dir, segs := build(t)
		if len(segs) < 3 {
			t.Fatalf("%d segments: the test wants three", len(segs))
		}
		if err := os.Remove(segs[1]); err != nil {
			t.Fatal(err)
		}
		rep := scan(t, dir)
		if len(rep.Gaps) != 1 || !errors.Is(rep.Gaps[0].Err, ErrMissing) || rep.Clean() {
			t.Fatalf("gaps %v", rep.Gaps)
		}
		if _, _, err := Open(dir, Options{SegmentSize: smallSegment}); !errors.Is(err, ErrMissing) {
			t.Fatalf("Open = %v, want ErrMissing as Scan said", err)
		}
	})
}

// TestScanStopsOnCallbackError: an error from fn ends the scan with it.
func TestScanStopsOnCallbackError(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, Options{})
	appendBatches(t, l, 10, 2, 10)
	closeOK(t, l)
	stop := errors.New("enough")
	n := 0
	_, err := Scan(dir, ScanOptions{}, func(*ScannedBatch) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("Scan = %v after %d batches", err, n)
	}
}
