package mmap

import (
	"fmt"
	"testing"

	"github.com/spillway-io/spillway/codec"
)

// TestOffsetAt appends batches stamped at increasing times (several
// batches per time, across many segments, with several index marks each
// or one) and asks the index for every time in and around them, then
// again after a reopen, which builds the index from the files.
func TestOffsetAt(t *testing.T) {
	for _, seg := range []int64{64 << 10, 1 << 20} {
		t.Run(fmt.Sprintf("segment=%d", seg), func(t *testing.T) { testOffsetAt(t, seg) })
	}
}

func testOffsetAt(t *testing.T, segSize int64) {
	dir := t.TempDir()
	l, _ := open(t, dir, Options{SegmentSize: segSize, Mapped: true})
	if off, err := l.OffsetAt(0); err != nil || off != 0 {
		t.Fatalf("empty log: OffsetAt = %d, %v; want 0", off, err)
	}
	const times = 600
	firstAt := map[int64]uint64{} // time -> offset of its first record
	value := make([]byte, 900)
	for ts := int64(1); ts <= times; ts++ {
		for range 1 + ts%3 {
			recs := make([]codec.Record, 1+ts%5)
			for i := range recs {
				recs[i] = codec.Record{Timestamp: ts * 10, Value: value}
			}
			off, err := l.AppendRecords(recs)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := firstAt[ts*10]; !ok {
				firstAt[ts*10] = off
			}
		}
	}
	if n := len(l.Segments()); n < 3 {
		t.Fatalf("only %d segments: the search is not exercised", n)
	}
	check := func() {
		t.Helper()
		for q := int64(0); q <= times*10+5; q++ {
			want := l.NextOffset()
			for ts := int64(1); ts <= times; ts++ {
				if ts*10 >= q {
					want = firstAt[ts*10]
					break
				}
			}
			got, err := l.OffsetAt(q)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("OffsetAt(%d) = %d, want %d", q, got, want)
			}
		}
	}
	check()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, _ = open(t, dir, Options{SegmentSize: segSize, Mapped: true})
	check()
	// Retention: the oldest segments go; earlier times give the oldest
	// record left.
	segs := l.Segments()
	l.Trim(segs[3].Base)
	if got, err := l.OffsetAt(0); err != nil || got != l.FirstOffset() {
		t.Fatalf("after Trim: OffsetAt(0) = %d, %v; want FirstOffset %d", got, err, l.FirstOffset())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.OffsetAt(0); err == nil {
		t.Fatal("OffsetAt after Close succeeded")
	}
}
