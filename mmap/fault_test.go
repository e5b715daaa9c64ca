package mmap

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

// TestSyncErrorIsSticky: under SyncAlways, a failed fdatasync fails the
// append with ErrReadOnly; every later append and Sync fails too, and the
// log never calls fsync again to pretend the data made it.
func TestSyncErrorIsSticky(t *testing.T) {
	fs := NewFaultFS(nil)
	l, _ := open(t, t.TempDir(), Options{FS: fs, Sync: SyncAlways})
	defer closeOK(t, l)
	if _, err := l.Append(batchOf(0, 3, 10)); err != nil {
		t.Fatal(err)
	}
	fs.Inject(Fault{Op: OpSync, Path: segSuffix, Err: syscall.EIO, Times: 1})
	if _, err := l.Append(batchOf(3, 3, 10)); !errors.Is(err, ErrReadOnly) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append with a failing sync = %v, want ErrReadOnly wrapping EIO", err)
	}
	syncs := fs.Calls(OpSync)
	for range 3 {
		if _, err := l.Append(batchOf(6, 1, 10)); !errors.Is(err, ErrReadOnly) {
			t.Fatalf("Append after a failed sync = %v, want ErrReadOnly", err)
		}
		if err := l.Sync(); !errors.Is(err, ErrReadOnly) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("Sync after a failed sync = %v", err)
		}
	}
	if fs.Calls(OpSync) != syncs {
		t.Fatalf("the log called fsync %d more times after it failed", fs.Calls(OpSync)-syncs)
	}
	if !errors.Is(l.Err(), syscall.EIO) {
		t.Fatalf("Err = %v", l.Err())
	}
	if _, vals := readAll(t, l, 0); len(vals) < 3 {
		t.Fatalf("reads stopped working after the failure: %d records", len(vals))
	}
}

// TestIntervalSyncErrorIsSticky: the background syncer's failure makes the
// log read-only too.
func TestIntervalSyncErrorIsSticky(t *testing.T) {
	fs := NewFaultFS(nil)
	l, _ := open(t, t.TempDir(), Options{FS: fs, Sync: SyncInterval(1 << 40)}) // the test syncs by hand
	defer closeOK(t, l)
	if _, err := l.Append(batchOf(0, 3, 10)); err != nil {
		t.Fatal(err)
	}
	fs.Inject(Fault{Op: OpSync, Err: syscall.EIO})
	if err := l.Sync(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Sync = %v", err)
	}
	if _, err := l.Append(batchOf(3, 1, 10)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Append after the failed sync = %v", err)
	}
}

// TestNoSpaceForSegment: a full device fails the append that needs a new
// segment with ErrDiskFull, leaves nothing behind, and the log works again
// once space is back.
func TestNoSpaceForSegment(t *testing.T) {
	fs := NewFaultFS(nil)
	dir := t.TempDir()
	l, _ := open(t, dir, Options{FS: fs})
	defer closeOK(t, l)
	fs.Inject(Fault{Op: OpAllocate, Err: syscall.ENOSPC, Times: 1})
	if _, err := l.Append(batchOf(0, 1, 10)); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Append on a full device = %v, want ErrDiskFull", err)
	}
	if files := segFiles(t, dir); len(files) != 0 {
		t.Fatalf("a failed segment creation left %v", files)
	}
	if first, err := l.Append(batchOf(0, 1, 10)); err != nil || first != 0 {
		t.Fatalf("Append once space is back = %d, %v", first, err)
	}
}

// TestShortWrite: a write that stops halfway (EIO after some bytes) makes
// the log read-only; reopening drops exactly the torn bytes and keeps
// everything before.
func TestShortWrite(t *testing.T) {
	fs := NewFaultFS(nil)
	dir := t.TempDir()
	l, _ := open(t, dir, Options{FS: fs})
	if _, err := l.Append(batchOf(0, 5, 50)); err != nil {
		t.Fatal(err)
	}
	fs.Inject(Fault{Op: OpWrite, Path: segSuffix, Err: syscall.EIO, Short: 60, Times: 1})
	if _, err := l.Append(batchOf(5, 5, 50)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Append with a short write = %v", err)
	}
	closeOK(t, l)
	l, rec := open(t, dir, Options{})
	defer closeOK(t, l)
	if len(rec.Dropped) != 1 || !rec.Dropped[0].Tail || rec.Dropped[0].Bytes != 60 || rec.Dropped[0].First != 5 || rec.Dropped[0].End != 10 || rec.LostRecords() != 5 {
		t.Fatalf("recovery after a short write: %+v (%d records lost)", rec.Dropped, rec.LostRecords())
	}
	if _, vals := readAll(t, l, 0); len(vals) != 5 {
		t.Fatalf("%d records after recovery, want 5", len(vals))
	}
}

// TestQuota: appends beyond MaxBytes fail with ErrDiskFull; once a reader
// has consumed old segments, retention frees room and appends go on.
func TestQuota(t *testing.T) {
	l, _ := open(t, t.TempDir(), Options{MaxBytes: 3 * smallSegment, Encoder: noneEncoder(t)})
	defer closeOK(t, l)
	r, err := l.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, r)
	var full error
	n := 0
	for ; n < 10000 && full == nil; n++ {
		_, full = l.Append(batchOf(n, 1, 1000))
	}
	if !errors.Is(full, ErrDiskFull) {
		t.Fatalf("no ErrDiskFull after %d appends: %v", n, full)
	}
	if s := l.Stats(); s.DiskBytes > 3*smallSegment {
		t.Fatalf("disk bytes %d beyond the quota", s.DiskBytes)
	}
	for {
		if _, _, err := r.Next(); err != nil {
			break
		}
	}
	if _, err := l.Append(batchOf(n, 1, 1000)); err != nil {
		t.Fatalf("Append after the reader freed segments = %v", err)
	}
}

// TestSharedQuota: two logs share a quota; together they cannot exceed it,
// and closing one returns its share.
func TestSharedQuota(t *testing.T) {
	q := NewQuota(3 * smallSegment)
	a, _ := open(t, t.TempDir(), Options{Quota: q, Encoder: noneEncoder(t)})
	b, _ := open(t, t.TempDir(), Options{Quota: q, Encoder: noneEncoder(t)})
	defer closeOK(t, b)
	fill := func(l *Log) error {
		for i := 0; ; i++ {
			if _, err := l.Append(batchOf(i, 1, 2000)); err != nil {
				return err
			}
		}
	}
	if err := fill(a); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("first log: %v", err)
	}
	if err := fill(b); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("second log: %v", err)
	}
	if used := q.Used(); used > 3*smallSegment {
		t.Fatalf("quota used %d of %d", used, 3*smallSegment)
	}
	closeOK(t, a)
	if q.Used() != b.Stats().DiskBytes {
		t.Fatalf("after closing a: quota used %d, b holds %d", q.Used(), b.Stats().DiskBytes)
	}
	if _, err := b.Append(batchOf(0, 1, 2000)); err != nil {
		t.Fatalf("append after a freed its share: %v", err)
	}
}

// TestQuotaRollRetires: a roll that finds the quota full and frees room by
// retiring segments a reader has passed (it read the oldest segment to its
// end and has not asked for more, so it has not moved on) must leave the
// retired segments out of the log for good: the log's segments, its
// DiskBytes and the quota's use agree after every append, whether the quota
// is the log's own or shared.
func TestQuotaRollRetires(t *testing.T) {
	for _, shared := range []bool{false, true} {
		opts := Options{Encoder: noneEncoder(t)}
		var q *Quota
		if shared {
			q = NewQuota(2 * smallSegment)
			opts.Quota = q
		} else {
			opts.MaxBytes = 2 * smallSegment
		}
		l, _ := open(t, t.TempDir(), opts)
		r, err := l.NewReader(0)
		if err != nil {
			t.Fatal(err)
		}
		check := func(when string) {
			t.Helper()
			st := l.Stats()
			if st.DiskBytes != int64(st.Segments)*smallSegment || st.DiskBytes > 2*smallSegment {
				t.Fatalf("shared %v, %s: %d segments, %d disk bytes (quota %d)", shared, when, st.Segments, st.DiskBytes, 2*smallSegment)
			}
			if q != nil && q.Used() != st.DiskBytes {
				t.Fatalf("shared %v, %s: quota used %d, log holds %d", shared, when, q.Used(), st.DiskBytes)
			}
		}
		appended, read := 0, 0
		for round := range 5 {
			// Fill the quota: the writer rolls until it cannot.
			for {
				if _, err := l.Append(batchOf(appended, 1, 2000)); err != nil {
					if !errors.Is(err, ErrDiskFull) {
						t.Fatal(err)
					}
					break
				}
				appended++
				check(fmt.Sprintf("round %d, append %d", round, appended))
			}
			// Read the oldest segment to its last batch, no further.
			oldest := l.segments()[0].next.Load()
			for r.Offset() < oldest {
				if _, _, err := r.Next(); err != nil {
					t.Fatal(err)
				}
				read++
			}
			// The next append rolls, retiring that segment on the way.
			if _, err := l.Append(batchOf(appended, 1, 2000)); err != nil {
				t.Fatalf("shared %v, round %d: append after the reader passed a segment: %v", shared, round, err)
			}
			appended++
			check(fmt.Sprintf("round %d, after the roll", round))
		}
		closeOK(t, r)
		closeOK(t, l)
	}
}
