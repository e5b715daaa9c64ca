package mmap

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"testing"
)

func memWrite(t *testing.T, m *MemFS, name string, data []byte, off int64) File {
	t.Helper()
	f, err := m.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestMemFSCrash checks the crash model: data and directory entries
// survive a power loss once synced, not before; a kill -9 (KeepUnsynced
// 1) keeps everything.
func TestMemFSCrash(t *testing.T) {
	m := NewMemFS()
	if err := m.MkdirAll("/d", 0o700); err != nil {
		t.Fatal(err)
	}
	a := memWrite(t, m, "/d/a", []byte("synced"), 0)
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteAt([]byte("SYNCED, then more"), 0); err != nil {
		t.Fatal(err)
	}
	memWrite(t, m, "/d/b", []byte("never synced"), 0)

	lost := m.CrashClone(CrashOptions{})
	if got, err := lost.ReadFile("/d/a"); err != nil || string(got) != "synced" {
		t.Fatalf("after a power loss a holds %q, %v; want what was synced", got, err)
	}
	if _, err := lost.ReadFile("/d/b"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after a power loss b, never in a synced directory, is there: %v", err)
	}
	kept := m.CrashClone(CrashOptions{KeepUnsynced: 1})
	if got, err := kept.ReadFile("/d/a"); string(got) != "SYNCED, then more" {
		t.Fatalf("after a kill a holds %q (%v)", got, err)
	}
	if got, err := kept.ReadFile("/d/b"); string(got) != "never synced" {
		t.Fatalf("after a kill b holds %q (%v)", got, err)
	}

	// A removal is durable only once the directory is synced.
	if err := m.Remove("/d/a"); err != nil {
		t.Fatal(err)
	}
	if got, err := m.CrashClone(CrashOptions{}).ReadFile("/d/a"); err != nil || string(got) != "synced" {
		t.Fatalf("a removed without a directory sync: %q, %v; want it back", got, err)
	}
	if err := m.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CrashClone(CrashOptions{}).ReadFile("/d/a"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a removed and the directory synced: %v; want it gone", err)
	}
}

// TestMemFSMapping: stores through a mapping are the file's content, and
// survive a power loss only once synced.
func TestMemFSMapping(t *testing.T) {
	m := NewMemFS()
	if err := m.MkdirAll("/d", 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := m.OpenFile("/d/seg", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Grow(3 * memPage); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	w, err := f.MapWritable(3 * memPage)
	if err != nil {
		t.Fatal(err)
	}
	copy(w, "first page")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	copy(w[2*memPage:], "third page")
	buf := make([]byte, 10)
	if _, err := f.ReadAt(buf, 2*memPage); err != nil || string(buf) != "third page" {
		t.Fatalf("ReadAt after a store through the mapping: %q, %v", buf, err)
	}
	got, err := m.CrashClone(CrashOptions{}).ReadFile("/d/seg")
	if err != nil || len(got) != 3*memPage || string(got[:10]) != "first page" || !allZero(got[2*memPage:]) {
		t.Fatalf("after a power loss: %d bytes, %q, third page zero %v, %v", len(got), got[:10], allZero(got[2*memPage:]), err)
	}
	if err := f.Truncate(10 * memPage); err == nil {
		t.Fatal("growing a mapped file past its mapping succeeded; its memory would move under the mapping")
	}
	if _, err := f.ReadAt(make([]byte, 1), 3*memPage); !errors.Is(err, io.EOF) {
		t.Fatalf("ReadAt past the end: %v; want io.EOF", err)
	}
}

// TestLogOnMemFSPowerLoss appends through the mapping, syncs part of it,
// and loses power: a reopen holds every record that was synced, and of the
// rest only whole records in order, whatever pages survived.
func TestLogOnMemFSPowerLoss(t *testing.T) {
	rng := newRand(t)
	for round := range 40 {
		m := NewMemFS()
		l, _ := open(t, "/log", Options{FS: m, Mapped: true, Sync: SyncManual})
		synced, total := 0, 0
		for range 1 + rng.IntN(300) {
			n := 1 + rng.IntN(3)
			if _, err := l.AppendRecords(batchOf(total, n, rng.IntN(300))); err != nil {
				t.Fatal(err)
			}
			total += n
			if rng.IntN(20) == 0 {
				if err := l.Sync(); err != nil {
					t.Fatal(err)
				}
				synced = total
			}
		}
		keep := []float64{0, 0.5, 1}[round%3]
		crashed := m.CrashClone(CrashOptions{KeepUnsynced: keep, Rand: rng})
		l2, rec, err := Open("/log", Options{FS: crashed, SegmentSize: smallSegment, Mapped: true, Sync: SyncManual})
		if err != nil {
			t.Fatalf("round %d: reopen after a power loss: %v", round, err)
		}
		offs, vals := readAll(t, l2, l2.FirstOffset())
		if err := l2.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if len(vals) < synced {
			t.Fatalf("round %d (keep %v): %d records back, %d were synced; recovery %+v", round, keep, len(vals), synced, rec)
		}
		if keep == 1 && len(vals) != total {
			t.Fatalf("round %d: everything kept, yet %d of %d records back", round, len(vals), total)
		}
		for i, v := range vals {
			// Batches carry checksums: what comes back is what was written.
			if valueIndex(v) != int(offs[i]) || i > 0 && offs[i] <= offs[i-1] {
				t.Fatalf("round %d: offset %d holds %q", round, offs[i], v)
			}
			if i < synced && offs[i] != uint64(i) {
				t.Fatalf("round %d: synced record %d came back at offset %d", round, i, offs[i])
			}
		}
	}
}
