package mmap

import (
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetentionByAge: with MaxAge, sealed segments older than it are
// deleted although a reader has not read them; the reader skips ahead and
// counts what it skipped. The clock is injected.
func TestRetentionByAge(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	l, _ := open(t, t.TempDir(), Options{MaxAge: time.Hour, Now: clock, Encoder: noneEncoder(t)})
	defer closeOK(t, l)
	slow, err := l.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, slow)
	n := 0
	for l.Stats().Segments < 3 {
		if _, err := l.Append(batchOf(n, 1, 2000)); err != nil {
			t.Fatal(err)
		}
		n++
	}
	segsBefore := l.Stats().Segments
	now.Add(int64(2 * time.Hour))
	if _, err := l.Append(batchOf(n, 1, 2000)); err != nil { // appends run retention on roll; force one
		t.Fatal(err)
	}
	n++
	for l.Stats().Segments >= segsBefore { // fill the active segment until it rolls
		if _, err := l.Append(batchOf(n, 1, 2000)); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if got := l.FirstOffset(); got == 0 {
		t.Fatal("expired segments were kept")
	}
	// The slow reader still holds its first segment (it has a reference);
	// after it, it skips to what is left.
	read := 0
	for {
		_, recs, err := slow.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		read += len(recs)
	}
	if slow.Skipped() == 0 || uint64(read)+slow.Skipped() != uint64(n) {
		t.Fatalf("read %d, skipped %d, of %d", read, slow.Skipped(), n)
	}
}

// TestSharedCache: two lagging readers of the same region decompress each
// batch once; the second is served from the cache.
func TestSharedCache(t *testing.T) {
	cache := NewBatchCache(64<<20, 1<<20)
	l, _ := open(t, t.TempDir(), Options{Cache: cache})
	defer closeOK(t, l)
	for i := range 50 {
		if _, err := l.Append(batchOf(i*20, 20, 200)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		offs, vals := readAll(t, l, 0)
		if len(vals) != 1000 || offs[999] != 999 {
			t.Fatalf("%d records", len(vals))
		}
	}
	if s := cache.Stats(); s.Misses != 50 || s.Hits != 50 {
		t.Fatalf("cache stats %+v, want 50 misses then 50 hits", s)
	}
}
