package mmap

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/spillway-io/spillway/codec"
)

// writeLog writes batches of the given record counts to a fresh log in dir
// and returns the file position where each batch starts in the (single)
// segment, plus the end.
func writeLog(t *testing.T, dir string, counts []int) []int64 {
	t.Helper()
	l, _ := open(t, dir, Options{Encoder: noneEncoder(t)})
	var pos []int64
	off := 0
	for _, n := range counts {
		segs := l.segments()
		if len(segs) > 0 {
			pos = append(pos, segs[len(segs)-1].end.Load())
		} else {
			pos = append(pos, segHeaderSize)
		}
		if _, err := l.Append(batchOf(off, n, 40)); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	segs := l.segments()
	pos = append(pos, segs[len(segs)-1].end.Load())
	if len(segs) != 1 {
		t.Fatalf("test log spans %d segments", len(segs))
	}
	closeOK(t, l)
	return pos
}

func onlySegment(t *testing.T, dir string) string {
	t.Helper()
	files := segFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("segments: %v", files)
	}
	return filepath.Join(dir, files[0])
}

// TestTornTailEveryByte cuts the last batch at every byte (zeroing what
// follows, as a torn write leaves it): reopening keeps exactly the batches
// before it, reports the torn bytes, and a second reopen is clean.
func TestTornTailEveryByte(t *testing.T) {
	base := t.TempDir()
	counts := []int{3, 4, 5}
	master := filepath.Join(base, "master")
	pos := writeLog(t, master, counts)
	orig, err := os.ReadFile(onlySegment(t, master))
	if err != nil {
		t.Fatal(err)
	}
	last, end := pos[len(pos)-2], pos[len(pos)-1]
	for cut := last; cut < end; cut++ {
		dir := filepath.Join(base, "cut")
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		data := append([]byte(nil), orig...)
		clear(data[cut:end])
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(onlySegment(t, master))), data, 0o600); err != nil {
			t.Fatal(err)
		}
		l, rec := open(t, dir, Options{})
		_, vals := readAll(t, l, 0)
		if len(vals) != 7 {
			t.Fatalf("cut at %d: %d records, want 7", cut, len(vals))
		}
		if cut == last {
			if len(rec.Dropped) != 0 {
				t.Fatalf("cut at a batch boundary reported %+v", rec.Dropped)
			}
		} else if len(rec.Dropped) != 1 || !rec.Dropped[0].Tail || rec.Dropped[0].Position != last || rec.Dropped[0].First != 7 {
			t.Fatalf("cut at %d: dropped %+v", cut, rec.Dropped)
		}
		if first, err := l.Append(batchOf(7, 1, 40)); err != nil || first != 7 {
			t.Fatalf("cut at %d: Append = %d, %v", cut, first, err)
		}
		closeOK(t, l)
		l, rec = open(t, dir, Options{})
		if len(rec.Dropped) != 0 {
			t.Fatalf("cut at %d: second reopen dropped %+v", cut, rec.Dropped)
		}
		if _, vals := readAll(t, l, 0); len(vals) != 8 {
			t.Fatalf("cut at %d: %d records after append and reopen, want 8", cut, len(vals))
		}
		closeOK(t, l)
	}
}

// TestCorruptMiddleBatch flips bits in a middle batch: reopening keeps
// everything before and after it, moves the bad bytes to a sidecar, reports
// the exact offsets lost, and readers skip the gap.
func TestCorruptMiddleBatch(t *testing.T) {
	rng := newRand(t)
	for round := range 20 {
		dir := t.TempDir()
		counts := []int{2, 3, 4, 5, 6}
		pos := writeLog(t, dir, counts)
		seg := onlySegment(t, dir)
		data, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		victim := 1 + rng.IntN(3) // batch 1, 2 or 3
		at := pos[victim] + rng.Int64N(pos[victim+1]-pos[victim])
		data[at] ^= 1 << rng.IntN(8)
		if err := os.WriteFile(seg, data, 0o600); err != nil {
			t.Fatal(err)
		}

		l, rec := open(t, dir, Options{})
		firstLost := 0
		for _, c := range counts[:victim] {
			firstLost += c
		}
		want := Loss{Position: pos[victim], Bytes: pos[victim+1] - pos[victim], Batches: 1,
			First: uint64(firstLost), End: uint64(firstLost + counts[victim])}
		if len(rec.Dropped) != 1 {
			t.Fatalf("round %d: dropped %+v", round, rec.Dropped)
		}
		got := rec.Dropped[0]
		if got.Position != want.Position || got.Bytes != want.Bytes || got.Batches != 1 || got.First != want.First || got.End != want.End || got.Tail {
			t.Fatalf("round %d: flipped byte %d of batch %d: dropped %+v, want %+v", round, at, victim, got, want)
		}
		if n := rec.LostRecords(); n != uint64(counts[victim]) {
			t.Fatalf("round %d: LostRecords = %d, want %d", round, n, counts[victim])
		}
		side, err := os.ReadFile(filepath.Join(dir, got.Sidecar))
		if err != nil || int64(len(side)) != got.Bytes {
			t.Fatalf("round %d: sidecar: %d bytes, %v", round, len(side), err)
		}
		r, err := l.NewPeekReader(0)
		if err != nil {
			t.Fatal(err)
		}
		var vals []int
		for {
			_, recs, err := r.Next()
			if err != nil {
				break
			}
			for _, rc := range recs {
				vals = append(vals, valueIndex(string(rc.Value)))
			}
		}
		if r.Skipped() != uint64(counts[victim]) {
			t.Fatalf("round %d: reader skipped %d, want %d", round, r.Skipped(), counts[victim])
		}
		closeOK(t, r)
		if len(vals) != 20-counts[victim] {
			t.Fatalf("round %d: %d records survived, want %d", round, len(vals), 20-counts[victim])
		}
		for i := 1; i < len(vals); i++ {
			if vals[i] <= vals[i-1] {
				t.Fatalf("round %d: out of order: %v", round, vals)
			}
		}
		if first, err := l.Append(batchOf(20, 1, 40)); err != nil || first != 20 {
			t.Fatalf("round %d: Append after repair = %d, %v", round, first, err)
		}
		closeOK(t, l)
		l, rec = open(t, dir, Options{})
		if len(rec.Dropped) != 0 {
			t.Fatalf("round %d: reopening a repaired log dropped %+v", round, rec.Dropped)
		}
		if _, vals := readAll(t, l, 0); len(vals) != 21-counts[victim] {
			t.Fatalf("round %d: %d records after reopening twice", round, len(vals))
		}
		closeOK(t, l)
	}
}

// TestRotationAtExactBoundary fills a segment to its last byte: the next
// append rolls, and everything reads back and survives reopening.
func TestRotationAtExactBoundary(t *testing.T) {
	dir := t.TempDir()
	enc := noneEncoder(t)
	l, _ := open(t, dir, Options{Encoder: enc})
	one, err := enc.AppendBatch(nil, 0, batchOf(0, 1, 100))
	if err != nil {
		t.Fatal(err)
	}
	room := func() int { return int(smallSegment - l.segments()[0].end.Load()) }
	// Fill with batches of about the same size, then one sized to the remainder.
	n := 0
	for n == 0 || room() >= 2*len(one)+codec.HeaderSize+10 {
		if _, err := l.Append(batchOf(n, 1, 100)); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if len(l.segments()) != 1 {
		t.Fatal("rolled while filling")
	}
	{
		room := room()
		pad := 100 + room - len(one) // a record whose batch takes exactly what is left
		last, err := enc.AppendBatch(nil, 0, batchOf(n, 1, pad))
		if err != nil {
			t.Fatal(err)
		}
		if len(last) != room {
			// The value length's varint may have grown by a byte.
			if last, err = enc.AppendBatch(nil, 0, batchOf(n, 1, pad-(len(last)-room))); err != nil {
				t.Fatal(err)
			}
		}
		if len(last) != room {
			t.Fatalf("cannot size a batch to %d bytes (got %d)", room, len(last))
		}
		if _, err := l.AppendBatch(last); err != nil {
			t.Fatal(err)
		}
	}
	n++
	if segs := l.segments(); len(segs) != 1 || segs[0].end.Load() != smallSegment {
		t.Fatalf("segment not exactly full: end %d of %d", segs[0].end.Load(), smallSegment)
	}
	if _, err := l.Append(batchOf(n, 1, 10)); err != nil {
		t.Fatal(err)
	}
	n++
	if len(l.segments()) != 2 {
		t.Fatalf("no roll after a full segment")
	}
	closeOK(t, l)
	l, rec := open(t, dir, Options{})
	defer closeOK(t, l)
	if len(rec.Dropped) != 0 {
		t.Fatalf("dropped %+v", rec.Dropped)
	}
	if _, vals := readAll(t, l, 0); len(vals) != n {
		t.Fatalf("%d records, want %d", len(vals), n)
	}
}

// TestOddFiles: zero-length and header-less segment files left by a crash
// during creation are removed; a segment with a corrupt header is moved
// aside with its offsets reported; empty segments are fine.
func TestOddFiles(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, []int{2, 2})
	bad := make([]byte, 4096)
	copy(bad, "garbage")
	for _, f := range []struct {
		name string
		data []byte
	}{
		{segName(100), nil},                // zero length
		{segName(200), make([]byte, 4096)}, // zeros only
		{segName(300), bad},                // corrupt header
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, rec := open(t, dir, Options{})
	if len(rec.Removed) != 2 {
		t.Fatalf("removed %v", rec.Removed)
	}
	if len(rec.Dropped) != 1 || rec.Dropped[0].Segment != segName(300) || !errors.Is(rec.Dropped[0].Reason, ErrCorrupt) {
		t.Fatalf("dropped %+v", rec.Dropped)
	}
	if _, err := os.Stat(filepath.Join(dir, segName(300)+".corrupt")); err != nil {
		t.Fatal(err)
	}
	if _, vals := readAll(t, l, 0); len(vals) != 4 {
		t.Fatalf("%d records", len(vals))
	}
	closeOK(t, l)
	// An empty log directory, and a log whose only segment is empty.
	empty := t.TempDir()
	l, _ = open(t, empty, Options{})
	if r, err := l.NewReader(0); err != nil {
		t.Fatal(err)
	} else if _, _, err := r.Next(); !errors.Is(err, ErrClosed) && err.Error() != "EOF" {
		t.Fatalf("Next on an empty log = %v", err)
	} else {
		closeOK(t, r)
	}
	closeOK(t, l)
	l, rec = open(t, empty, Options{})
	defer closeOK(t, l)
	if rec.Segments != 0 || l.NextOffset() != 0 {
		t.Fatalf("reopened empty log: %+v, next %d", rec, l.NextOffset())
	}
}
