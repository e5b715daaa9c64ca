package mmap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/spillway-io/spillway/codec"
)

// TestWriter writes records (some with headers) through the pipeline and
// reads them back in order with their contents.
func TestWriter(t *testing.T) {
	l, _ := open(t, t.TempDir(), Options{SegmentSize: 1 << 20})
	defer closeOK(t, l)
	w := l.NewWriter(WriterOptions{BatchBytes: 4096, Workers: 3})
	const n = 5000
	for i := 0; i < n; i += 10 {
		recs := batchOf(i, 10, i%50)
		for j := range recs {
			if (i+j)%7 == 0 {
				recs[j].Key = fmt.Appendf(nil, "key-%d", i+j)
				recs[j].Headers = []codec.Header{{Key: []byte("h"), Value: fmt.Appendf(nil, "%d", i+j)}, {Key: []byte("e")}}
			}
		}
		if _, err := w.Write(recs); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := l.NewPeekReader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, r)
	got := 0
	for got < n {
		first, recs, err := r.Next()
		if err != nil {
			t.Fatalf("after %d records: %v", got, err)
		}
		for k, rec := range recs {
			i := int(first) + k
			if i != got || valueIndex(string(rec.Value)) != i {
				t.Fatalf("record %d at offset %d has value %q", got, i, rec.Value)
			}
			if i%7 == 0 && (!bytes.Equal(rec.Key, fmt.Appendf(nil, "key-%d", i)) || len(rec.Headers) != 2 || string(rec.Headers[0].Value) != fmt.Sprint(i)) {
				t.Fatalf("record %d lost its key or headers: %q %+v", i, rec.Key, rec.Headers)
			}
			got++
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := w.Write(batchOf(0, 1, 0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close = %v", err)
	}
}

// TestWriterError: a failed append stops the pipeline; Write, Flush and
// Close report it.
func TestWriterError(t *testing.T) {
	fs := NewFaultFS(nil)
	l, _ := open(t, t.TempDir(), Options{FS: fs, Sync: SyncAlways})
	defer closeOK(t, l)
	w := l.NewWriter(WriterOptions{BatchBytes: 1024})
	fs.Inject(Fault{Op: OpSync, Path: segSuffix, Err: syscall.EIO})
	if _, err := w.Write(batchOf(0, 100, 100)); err != nil { // the failure shows at Flush
		t.Fatal(err)
	}
	if err := w.Flush(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Flush = %v, want ErrReadOnly", err)
	}
	if _, err := w.Write(batchOf(0, 1, 1)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Write after the failure = %v", err)
	}
	if err := w.Close(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Close = %v", err)
	}
}

// TestReadAhead reads with batches decoded ahead in parallel: same records,
// same order, across segments, from any offset, and picking up appends made
// after it reached the end.
func TestReadAhead(t *testing.T) {
	rng := newRand(t)
	l, _ := open(t, t.TempDir(), Options{})
	defer closeOK(t, l)
	n := 0
	appendSome := func(k int) {
		for range k {
			c := 1 + rng.IntN(30)
			if _, err := l.Append(batchOf(n, c, rng.IntN(300))); err != nil {
				t.Fatal(err)
			}
			n += c
		}
	}
	appendSome(200)
	for _, from := range []int{0, 1, n / 3, n - 1, n} {
		r, err := l.NewPeekReader(uint64(from))
		if err != nil {
			t.Fatal(err)
		}
		r.SetReadAhead(1 + rng.IntN(4))
		want := from
		for round := 0; round < 3; round++ {
			for {
				first, recs, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				for i, rec := range recs {
					if int(first)+i != want || valueIndex(string(rec.Value)) != want {
						t.Fatalf("from %d: got offset %d value %q, want %d", from, int(first)+i, rec.Value, want)
					}
					want++
				}
			}
			if want != n {
				t.Fatalf("from %d: stopped at %d of %d", from, want, n)
			}
			appendSome(5)
		}
		closeOK(t, r)
	}
}

// TestWriterDiskFull: when the quota fills, batches wait in memory instead
// of being lost; Write (and WriteDeferred) report ErrDiskFull once they use
// up the buffers, and a WriteDeferred that does takes nothing; after a
// reader frees space, a Flush appends them all, in order.
func TestWriterDiskFull(t *testing.T) {
	for _, deferred := range []bool{false, true} {
		t.Run(fmt.Sprintf("deferred=%v", deferred), func(t *testing.T) {
			l, _ := open(t, t.TempDir(), Options{MaxBytes: 3 * smallSegment, Encoder: noneEncoder(t)})
			defer closeOK(t, l)
			r, err := l.NewReader(0)
			if err != nil {
				t.Fatal(err)
			}
			defer closeOK(t, r)
			w := l.NewWriter(WriterOptions{BatchBytes: 8 << 10, Workers: 2})
			written := 0
			var refused *deferredRecords
			for written < 100000 {
				var n int
				var err error
				if deferred {
					d := &deferredRecords{recs: batchOf(written, 8, 1000)}
					if err = w.WriteDeferred(d, 8); err == nil {
						n = 8 // d belongs to the writer now
					} else {
						refused = d
					}
				} else {
					n, err = w.Write(batchOf(written, 1, 1000))
				}
				written += n
				if errors.Is(err, ErrDiskFull) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if written == 100000 {
				t.Fatal("the quota never filled")
			}
			if refused != nil && refused.calls.Load() != 0 {
				t.Fatal("a refused WriteDeferred encoded its records")
			}
			if err := w.Flush(); !errors.Is(err, ErrDiskFull) {
				t.Fatalf("Flush on a full disk = %v", err)
			}
			if !w.Stalled() {
				t.Fatal("Stalled = false with batches waiting for disk space")
			}
			got := 0
			for got < written {
				first, recs, err := r.Next()
				if errors.Is(err, io.EOF) {
					if err := w.Flush(); err != nil && !errors.Is(err, ErrDiskFull) {
						t.Fatal(err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				for i, rec := range recs {
					if int(first)+i != got || valueIndex(string(rec.Value)) != got {
						t.Fatalf("record %d: offset %d, value %q", got, int(first)+i, rec.Value[:12])
					}
					got++
				}
			}
			if w.Stalled() {
				t.Fatal("Stalled = true after everything was appended")
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if w.Lost() != 0 {
				t.Fatalf("lost %d records", w.Lost())
			}
		})
	}
}

// deferredRecords is a Deferred over records in memory; calls counts its
// AppendTo calls.
type deferredRecords struct {
	recs  []codec.Record
	calls atomic.Int32
}

func (d *deferredRecords) AppendTo(rb *codec.RawBatch) {
	d.calls.Add(1)
	for i := range d.recs {
		rb.Add(&d.recs[i])
	}
	d.recs = nil
}

// TestWriterDeferred mixes Write and WriteDeferred: the log holds every
// record once, in the order the calls were made, each deferred run as a
// batch of its own with the offsets it was given, and each AppendTo runs
// once.
func TestWriterDeferred(t *testing.T) {
	l, _ := open(t, t.TempDir(), Options{SegmentSize: 1 << 20})
	defer closeOK(t, l)
	w := l.NewWriter(WriterOptions{BatchBytes: 2048, Workers: 2})
	const n = 6000
	var ds []*deferredRecords
	deferredAt := map[int]int{} // first offset -> count of each deferred run
	for i := 0; i < n; {
		k := 1 + i%37
		k = min(k, n-i)
		if i%3 == 0 {
			d := &deferredRecords{recs: batchOf(i, k, i%64)}
			if err := w.WriteDeferred(d, k); err != nil {
				t.Fatal(err)
			}
			ds = append(ds, d)
			deferredAt[i] = k
		} else if _, err := w.Write(batchOf(i, k, i%64)); err != nil {
			t.Fatal(err)
		}
		i += k
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for i, d := range ds {
		if c := d.calls.Load(); c != 1 {
			t.Fatalf("deferred run %d: AppendTo called %d times", i, c)
		}
	}
	r, err := l.NewPeekReader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, r)
	for got := 0; got < n; {
		first, recs, err := r.Next()
		if err != nil {
			t.Fatalf("after %d records: %v", got, err)
		}
		if k, ok := deferredAt[int(first)]; ok && len(recs) != k {
			t.Fatalf("the deferred run at %d came as a batch of %d records, want %d", first, len(recs), k)
		}
		for k, rec := range recs {
			if int(first)+k != got || valueIndex(string(rec.Value)) != got {
				t.Fatalf("record %d at offset %d has value %q", got, int(first)+k, rec.Value)
			}
			got++
		}
	}
	if _, _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after every record: %v, want io.EOF", err)
	}
	if err := w.WriteDeferred(&deferredRecords{}, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteDeferred after Close = %v", err)
	}
}
