package mmap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spillway-io/spillway/codec"
)

// TestAppendReadAcrossSegments appends enough to roll many times, reads it
// all back, reopens and reads it again.
func TestAppendReadAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, Options{})
	total := 0
	for range 300 {
		first, err := l.Append(batchOf(total, 10, 100))
		if err != nil {
			t.Fatal(err)
		}
		if first != uint64(total) {
			t.Fatalf("Append returned %d, want %d", first, total)
		}
		total += 10
	}
	if s := l.Stats(); s.Segments < 3 || s.Next != uint64(total) {
		t.Fatalf("stats %+v: want several segments and next %d", s, total)
	}
	check := func(l *Log) {
		t.Helper()
		offs, vals := readAll(t, l, 0)
		if len(vals) != total {
			t.Fatalf("read %d records, want %d", len(vals), total)
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
	l, rec := open(t, dir, Options{})
	defer closeOK(t, l)
	// Sealed segments are taken at their seal's word; only the active one
	// is scanned.
	if len(rec.Dropped) != 0 || len(rec.Removed) != 0 || rec.Segments < 3 || rec.Trusted != rec.Segments-1 || rec.Batches == 0 || rec.Batches >= 300 {
		t.Fatalf("clean reopen reported %+v", rec)
	}
	check(l)
	if first, err := l.Append(batchOf(total, 1, 0)); err != nil || first != uint64(total) {
		t.Fatalf("Append after reopen = %d, %v; want %d", first, err, total)
	}
}

// TestReaderFromAnyOffset starts readers at every offset, including in the
// middle of batches and at the end.
func TestReaderFromAnyOffset(t *testing.T) {
	l, _ := open(t, t.TempDir(), Options{})
	defer closeOK(t, l)
	for i := 0; i < 500; i += 7 {
		if _, err := l.Append(batchOf(i, 7, 300)); err != nil {
			t.Fatal(err)
		}
	}
	for from := uint64(0); from <= 504; from += 13 {
		offs, vals := readAll(t, l, from)
		if want := 504 - int(from); len(vals) != want {
			t.Fatalf("from %d: %d records, want %d", from, len(vals), want)
		}
		if len(vals) > 0 && (offs[0] != from || valueIndex(vals[0]) != int(from)) {
			t.Fatalf("from %d: first is %d %q", from, offs[0], vals[0])
		}
	}
	if _, err := l.NewReader(505); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("reader past the end: %v", err)
	}
}

// TestRetentionByConsumption: sealed segments are deleted once every
// registered reader has passed them, and not before.
func TestRetentionByConsumption(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, Options{})
	defer closeOK(t, l)
	fast, err := l.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := l.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, fast)
	for i := range 200 {
		if _, err := l.Append(batchOf(i*10, 10, 200)); err != nil {
			t.Fatal(err)
		}
	}
	before := l.Stats().Segments
	drain := func(r *Reader) {
		for {
			if _, _, err := r.Next(); err != nil {
				return
			}
		}
	}
	drain(fast)
	if got := l.Stats().Segments; got != before {
		t.Fatalf("segments went from %d to %d while a reader had read nothing", before, got)
	}
	drain(slow)
	if got := l.Stats().Segments; got != 1 {
		t.Fatalf("%d segments left after every reader passed them, want the active one", got)
	}
	if files := segFiles(t, dir); len(files) != 1 {
		t.Fatalf("files left: %v", files)
	}
	closeOK(t, slow)
	if l.FirstOffset() == 0 {
		t.Fatal("first offset did not move")
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), segSuffix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestLockAndPermissions: a second Open of the directory fails; files are
// 0600 and the directory 0700.
func TestLockAndPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l, _ := open(t, dir, Options{})
	defer closeOK(t, l)
	if _, _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if _, err := l.Append(batchOf(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v", fi.Mode().Perm())
	}
	for _, name := range append(segFiles(t, dir), "LOCK") {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", name, fi.Mode().Perm())
		}
	}
}

// TestReaderDetach: records whose reader was told to Detach keep their
// bytes through every later Next, compressed or not, with read-ahead or
// without.
func TestReaderDetach(t *testing.T) {
	for _, none := range []bool{false, true} {
		for _, ahead := range []int{0, 2} {
			t.Run(fmt.Sprintf("none=%v/ahead=%d", none, ahead), func(t *testing.T) {
				opts := Options{}
				if none {
					opts.Encoder = noneEncoder(t)
				}
				l, _ := open(t, t.TempDir(), opts)
				defer closeOK(t, l)
				const batches, per = 40, 5
				want := make([]codec.Record, batches*per)
				raw := 0
				for i := range want {
					// Values that compress, so that the compressed case is one.
					want[i] = codec.Record{Value: fmt.Appendf(nil, "v-%d-%s", i, strings.Repeat("abcd", 50))}
					raw += len(want[i].Value)
				}
				for i := 0; i < len(want); i += per {
					if _, err := l.Append(want[i : i+per]); err != nil {
						t.Fatal(err)
					}
				}
				if stored := l.Stats().DataBytes; !none && stored >= int64(raw) {
					t.Fatalf("%d bytes stored for %d raw: not compressed", stored, raw)
				}
				r, err := l.NewReader(0)
				if err != nil {
					t.Fatal(err)
				}
				defer closeOK(t, r)
				r.SetReadAhead(ahead)
				var kept [][]byte // the records' own bytes, not copies
				for len(kept) < batches*per {
					_, recs, err := r.Next()
					if err != nil {
						t.Fatal(err)
					}
					r.Detach()
					for _, rec := range recs {
						kept = append(kept, rec.Value)
					}
				}
				for i, v := range kept {
					if !bytes.Equal(v, want[i].Value) {
						t.Fatalf("record %d became %.20q", i, v)
					}
				}
			})
		}
	}
}

// TestTryNext: a reader with read-ahead, driven only by TryNext and parked
// on OnDecoded whenever the next batch is not decoded yet, reads every
// record in order: each ErrNotReady is followed by a call of OnDecoded.
func TestTryNext(t *testing.T) {
	l, _ := open(t, t.TempDir(), Options{})
	defer closeOK(t, l)
	const batches, per = 60, 7
	appendBatches(t, l, batches, per, 300)
	r, err := l.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, r)
	decoded := make(chan struct{}, 1)
	var calls atomic.Int64
	r.SetReadAhead(3)
	r.OnDecoded(func() {
		calls.Add(1)
		select {
		case decoded <- struct{}{}:
		default:
		}
	})
	next, notReady := 0, 0
	for next < batches*per {
		first, recs, err := r.TryNext()
		if errors.Is(err, ErrNotReady) {
			notReady++
			select {
			case <-decoded:
			case <-time.After(10 * time.Second):
				t.Fatalf("no OnDecoded after ErrNotReady at offset %d", next)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if first != uint64(next) {
			t.Fatalf("batch at %d, want %d", first, next)
		}
		for _, rec := range recs {
			if valueIndex(string(rec.Value)) != next {
				t.Fatalf("record %q at %d", rec.Value, next)
			}
			next++
		}
	}
	if _, _, err := r.TryNext(); !errors.Is(err, io.EOF) {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
	if calls.Load() < batches {
		t.Fatalf("OnDecoded called %d times for %d batches", calls.Load(), batches)
	}
	t.Logf("%d batches, %d ErrNotReady", batches, notReady)
}

// TestReaderPassesCorruptBatch: a batch whose payload rotted on disk gives
// ErrCorrupt once, and the reader moves past it (its records count in
// Skipped) to the next batch; a batch whose header rotted leaves the reader
// no way to find the next one, and every read returns the error again.
// With and without read-ahead.
func TestReaderPassesCorruptBatch(t *testing.T) {
	for _, header := range []bool{false, true} {
		for _, ahead := range []int{0, 2} {
			t.Run(fmt.Sprintf("header=%v/ahead=%d", header, ahead), func(t *testing.T) {
				dir := t.TempDir()
				l, _ := open(t, dir, Options{})
				defer closeOK(t, l)
				const per = 10
				appendBatches(t, l, 3, per, 20)
				// Flip a byte of the second batch, through the file.
				segs, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
				if err != nil || len(segs) != 1 {
					t.Fatalf("segments: %v, %v", segs, err)
				}
				f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				hdr := make([]byte, codec.HeaderSize)
				if _, err := f.ReadAt(hdr, segHeaderSize); err != nil {
					t.Fatal(err)
				}
				h, err := codec.PeekHeader(hdr)
				if err != nil {
					t.Fatal(err)
				}
				at := int64(segHeaderSize + h.Size() + codec.HeaderSize + 3) // in the payload
				if header {
					at = int64(segHeaderSize + h.Size()) // the magic
				}
				b := []byte{0}
				if _, err := f.ReadAt(b, at); err != nil {
					t.Fatal(err)
				}
				b[0] ^= 0xff
				if _, err := f.WriteAt(b, at); err != nil {
					t.Fatal(err)
				}
				closeOK(t, f)

				r, err := l.NewReader(0)
				if err != nil {
					t.Fatal(err)
				}
				defer closeOK(t, r)
				r.SetReadAhead(ahead)
				if first, recs, err := r.Next(); err != nil || first != 0 || len(recs) != per {
					t.Fatalf("first batch: %d, %d records, %v", first, len(recs), err)
				}
				for range 2 {
					if _, _, err := r.Next(); !errors.Is(err, ErrCorrupt) {
						t.Fatalf("the rotted batch: %v, want ErrCorrupt", err)
					}
					if !header {
						break
					}
				}
				if header {
					return
				}
				if r.Offset() != 2*per || r.Skipped() != per {
					t.Fatalf("past the rotted batch: offset %d, skipped %d; want %d, %d", r.Offset(), r.Skipped(), 2*per, per)
				}
				first, recs, err := r.Next()
				if err != nil || first != 2*per || len(recs) != per || r.Skipped() != per {
					t.Fatalf("after the rotted batch: %d, %d records, skipped %d, %v; want %d, %d, %d", first, len(recs), r.Skipped(), err, 2*per, per, per)
				}
				if _, _, err := r.Next(); !errors.Is(err, io.EOF) {
					t.Fatalf("at the end: %v, want EOF", err)
				}
			})
		}
	}
}
