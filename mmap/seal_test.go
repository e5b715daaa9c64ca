package mmap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/spillway-io/spillway/codec"
)

func testKeyring(t testing.TB, seed byte) *codec.Keyring {
	t.Helper()
	key := bytes.Repeat([]byte{seed}, 32)
	k, err := codec.NewKeyring(map[uint32][]byte{1: key}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSealedLog writes a log with a Keyring through every append path
// (Append, AppendRecords mapped and not, a Writer), reads it back, reopens
// it (recovery verifies sealed batches without opening them) and reads it
// again; no file holds a record's bytes in the clear; a reader without the
// key stops with ErrKey, one with another context or key meets corrupt
// batches and delivers none of them.
func TestSealedLog(t *testing.T) {
	for _, mapped := range []bool{false, true} {
		t.Run(fmt.Sprintf("mapped=%v", mapped), func(t *testing.T) {
			dir := t.TempDir()
			k := testKeyring(t, 7)
			opts := Options{Keyring: k, Context: []byte("shard 1"), RequireSealed: true, Mapped: mapped}
			l, _ := open(t, dir, opts)
			appendBatches(t, l, 20, 10, 30) // Append: compressed, sealed
			for i := range 20 {
				if _, err := l.AppendRecords(batchOf(200+10*i, 10, 30)); err != nil {
					t.Fatal(err)
				}
			}
			w := l.NewWriter(WriterOptions{})
			if _, err := w.Write(batchOf(400, 100, 30)); err != nil {
				t.Fatal(err)
			}
			if err := errors.Join(w.Flush(), w.Close()); err != nil {
				t.Fatal(err)
			}
			check := func(l *Log) {
				t.Helper()
				offs, vals := readAll(t, l, 0)
				if len(offs) != 500 {
					t.Fatalf("read %d records back, 500 written", len(offs))
				}
				for i, v := range vals {
					if valueIndex(v) != i || offs[i] != uint64(i) {
						t.Fatalf("record %d: offset %d, value %q", i, offs[i], v)
					}
				}
			}
			check(l)
			closeOK(t, l)
			l, rec := open(t, dir, opts)
			if rec.LostRecords() != 0 || len(rec.Dropped) != 0 {
				t.Fatalf("the reopen dropped sealed batches: %+v", rec)
			}
			check(l)
			closeOK(t, l)

			segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range segs {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(b, []byte("v-12-")) || bytes.Contains(b, []byte("v-250-")) || bytes.Contains(b, []byte("v-450-")) {
					t.Fatalf("%s holds a record's bytes in the clear", p)
				}
			}

			for _, c := range []struct {
				name string
				opts Options
				want error
			}{
				{"no keys", Options{Mapped: mapped}, codec.ErrKey},
				{"another context", Options{Keyring: k, Context: []byte("shard 2"), Mapped: mapped}, ErrCorrupt},
				{"another key", Options{Keyring: testKeyring(t, 8), Context: []byte("shard 1"), Mapped: mapped}, ErrCorrupt},
			} {
				l, rec := open(t, dir, c.opts)
				if rec.LostRecords() != 0 || len(rec.Dropped) != 0 {
					t.Fatalf("%s: the reopen dropped sealed batches: %+v", c.name, rec)
				}
				r, err := l.NewPeekReader(0)
				if err != nil {
					t.Fatal(err)
				}
				_, recs, err := r.Next()
				if !errors.Is(err, c.want) || len(recs) != 0 {
					t.Fatalf("%s: Next = %d records, %v; want %v", c.name, len(recs), err, c.want)
				}
				if c.want == ErrCorrupt {
					for !errors.Is(err, io.EOF) { // every batch: corrupt, none delivered
						if _, recs, err = r.Next(); len(recs) != 0 {
							t.Fatalf("%s: %d records delivered", c.name, len(recs))
						}
					}
				}
				closeOK(t, r)
				closeOK(t, l)
			}
		})
	}
}

// TestSealedAppendRestamps: a batch sealed ahead for another offset than
// the one the log gives it is opened, restamped and sealed again, and
// reads back.
func TestSealedAppendRestamps(t *testing.T) {
	k := testKeyring(t, 3)
	l, _ := open(t, t.TempDir(), Options{Keyring: k, Context: []byte("c")})
	defer closeOK(t, l)
	if _, err := l.AppendRecords(batchOf(0, 5, 10)); err != nil {
		t.Fatal(err)
	}
	plain, err := codec.AppendPlain(nil, 1000, batchOf(5, 5, 10))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := k.Seal(nil, plain, []byte("c"))
	if err != nil {
		t.Fatal(err)
	}
	first, err := l.AppendBatch(sealed)
	if err != nil || first != 5 {
		t.Fatalf("AppendBatch = %d, %v; want offset 5", first, err)
	}
	offs, vals := readAll(t, l, 0)
	if len(offs) != 10 || valueIndex(vals[9]) != 9 || offs[9] != 9 {
		t.Fatalf("read back %v %v", offs, vals)
	}
}

// TestSealedAppendAllocs: sealing costs an append no allocation.
func TestSealedAppendAllocs(t *testing.T) {
	for _, mapped := range []bool{false, true} {
		l, _ := open(t, t.TempDir(), Options{Keyring: testKeyring(t, 5), Context: []byte("c"), Mapped: mapped, SegmentSize: 64 << 20})
		recs := batchOf(0, 4, 100)
		if _, err := l.AppendRecords(recs); err != nil { // scratch grown once
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(200, func() {
			if _, err := l.AppendRecords(recs); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("mapped=%v: %.1f allocations per sealed append", mapped, n)
		}
		closeOK(t, l)
	}
}
