package mmap

import (
	"bytes"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/spillway-io/spillway/codec"
)

// TestWriter writes records (some with headers) through the pipeline and
// reads them back in order with their contents.
func TestWriter(t *testing.T) {
	l, _ := open(t, t.TempDir(), Options{SegmentSize: 1 << 20})
	defer l.Close()
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
		if err := w.Write(recs); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r, _ := l.NewPeekReader(0)
	defer r.Close()
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
	if err := w.Write(batchOf(0, 1, 0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close = %v", err)
	}
}

// TestWriterError: a failed append stops the pipeline; Write, Flush and
// Close report it.
func TestWriterError(t *testing.T) {
	fs := NewFaultFS(nil)
	l, _ := open(t, t.TempDir(), Options{FS: fs, Sync: SyncAlways})
	defer l.Close()
	w := l.NewWriter(WriterOptions{BatchBytes: 1024})
	fs.Inject(Fault{Op: OpSync, Path: segSuffix, Err: syscall.EIO})
	w.Write(batchOf(0, 100, 100))
	if err := w.Flush(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Flush = %v, want ErrReadOnly", err)
	}
	if err := w.Write(batchOf(0, 1, 1)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Write after the failure = %v", err)
	}
	if err := w.Close(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Close = %v", err)
	}
}
