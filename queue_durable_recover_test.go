package spillway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/mmap"
)

// oneShard is a Persistent single-shard queue on a MemFS, AutoAck.
func oneShard(fs mmap.FS) Options {
	opts := crashOptions(fs, SyncNever, nil)
	opts.Shards, opts.Ack = 1, AutoAck
	return opts
}

// fill sends messages 0..n-1 of key 0 and closes the queue.
func fill(t *testing.T, opts Options, n int) {
	t.Helper()
	q := openPersistent(t, opts)
	for i := range n {
		if err := q.Send(context.Background(), keyedMessage(0, i)); err != nil {
			t.Fatal(err)
		}
	}
	closeQueue(t, q)
}

// drainIndexes reopens the queue, drains it and returns the indexes.
func drainIndexes(t *testing.T, opts Options) ([]int, Recovery) {
	t.Helper()
	q, err := OpenQueue(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer closeQueue(t, q)
	var out []int
	for _, d := range drainAll(t, q) {
		_, i := parseKeyed(t, d.Value)
		out = append(out, i)
	}
	return out, q.Recovery()
}

// flipInBatch flips a bit in the payload of segment file path's batch
// number i (from 0), where the batch's checksum will catch it.
func flipInBatch(t *testing.T, fs *mmap.MemFS, path string, i int) {
	t.Helper()
	data, err := fs.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := 64 // the segment header's size
	for range i {
		h, err := codec.PeekHeader(data[at:])
		if err != nil {
			t.Fatal(err)
		}
		at += h.Size()
	}
	data[at+codec.HeaderSize+4] ^= 0x40
	if err := fs.WriteFile(path, data); err != nil {
		t.Fatal(err)
	}
}

func segmentsOf(t *testing.T, fs *mmap.MemFS, shard int) []string {
	t.Helper()
	var segs []string
	for _, p := range fs.Files() {
		if filepath.Dir(p) == filepath.Join("/q", shardDirName(shard)) && strings.HasSuffix(p, ".seg") {
			segs = append(segs, p)
		}
	}
	slices.Sort(segs)
	return segs
}

// TestPersistentTornTailEveryByte cuts the log's last batch at every byte
// (zeroing what follows, as a torn write leaves it): the reopen delivers
// every message before it, counts the torn bytes, and loses nothing else.
func TestPersistentTornTailEveryByte(t *testing.T) {
	master := mmap.NewMemFS()
	const n = 20
	fill(t, oneShard(master), n)
	segs := segmentsOf(t, master, 0)
	last := segs[len(segs)-1]
	data, err := master.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	// The last batch: walk the batches from the segment header.
	pos, end := 64, 64
	for {
		h, err := codec.PeekHeader(data[end:])
		if err != nil {
			break
		}
		pos, end = end, end+h.Size()
	}
	for cut := pos; cut < end; cut++ {
		fs := master.CrashClone(mmap.CrashOptions{KeepUnsynced: 1})
		torn := slices.Clone(data)
		clear(torn[cut:end])
		if err := fs.WriteFile(last, torn); err != nil {
			t.Fatal(err)
		}
		got, rec := drainIndexes(t, oneShard(fs))
		if len(got) != n-1 || got[n-2] != n-2 {
			t.Fatalf("cut at %d of the last batch [%d, %d): delivered %v", cut, pos, end, got)
		}
		if cut > pos && rec.TruncatedBytes == 0 {
			t.Fatalf("cut at %d: recovery %+v reports no torn bytes", cut, rec)
		}
	}
}

// TestPersistentBitFlipSealed flips a byte of a message in a sealed
// segment, which Open trusts without reading: the receiver skips that
// message, counts it in Stats.Dropped, reports it to OnError, and
// delivers every other one in order.
func TestPersistentBitFlipSealed(t *testing.T) {
	fs := mmap.NewMemFS()
	opts := oneShard(fs)
	const n = 3000
	fill(t, opts, n)
	segs := segmentsOf(t, fs, 0)
	if len(segs) < 2 {
		t.Fatalf("%d segments; want a sealed one", len(segs))
	}
	flipInBatch(t, fs, segs[0], 9)
	var reports []error
	opts.OnError = func(err error) { reports = append(reports, err) }
	q := openPersistent(t, opts)
	defer closeQueue(t, q)
	if rec := q.Recovery(); rec.Scanned != 1 {
		t.Fatalf("recovery %+v: want the sealed segment trusted, not scanned", rec)
	}
	var got []int
	for _, d := range receiveN(t, q, n-1) {
		_, i := parseKeyed(t, d.Value)
		got = append(got, i)
	}
	for j, i := range got {
		want := j
		if j >= 9 {
			want = j + 1
		}
		if i != want {
			t.Fatalf("delivery %d is message %d, want %d", j, i, want)
		}
	}
	if st := q.Stats(); st.Dropped != 1 {
		t.Fatalf("stats %+v: want the flipped message counted dropped", st)
	}
	if len(reports) != 1 || !errors.Is(reports[0], ErrSpillFailed) {
		t.Fatalf("OnError got %v; want one ErrSpillFailed", reports)
	}
}

// TestPersistentMissingSegment removes a segment that holds messages not
// yet delivered: the reopen fails with ErrStorage, never an empty queue.
func TestPersistentMissingSegment(t *testing.T) {
	for _, which := range []string{"first", "middle"} {
		t.Run(which, func(t *testing.T) {
			fs := mmap.NewMemFS()
			opts := oneShard(fs)
			fill(t, opts, 5000)
			segs := segmentsOf(t, fs, 0)
			if len(segs) < 3 {
				t.Fatalf("%d segments, want 3 or more", len(segs))
			}
			victim := segs[0]
			if which == "middle" {
				victim = segs[1]
			}
			if err := fs.Remove(victim); err != nil {
				t.Fatal(err)
			}
			_, err := OpenQueue(opts)
			if !errors.Is(err, ErrStorage) || !strings.Contains(err.Error(), "shard-0000") {
				t.Fatalf("reopen without %s: %v; want ErrStorage naming the shard's directory", victim, err)
			}
		})
	}
}

// TestPersistentManifest: a damaged manifest, or one from a newer format,
// is refused with ErrStorage naming it; another shard count with
// ErrInvalidOptions naming both; no shard count takes the stored one; an
// Ephemeral open and a Topic are refused without touching the messages.
func TestPersistentManifest(t *testing.T) {
	fs := mmap.NewMemFS()
	opts := oneShard(fs)
	opts.Shards = 4
	fill(t, opts, 10)
	good, err := fs.ReadFile("/q/MANIFEST")
	if err != nil {
		t.Fatal(err)
	}
	expect := func(o Options, target error, says ...string) {
		t.Helper()
		_, err := OpenQueue(o)
		if !errors.Is(err, target) {
			t.Fatalf("OpenQueue: %v; want %v", err, target)
		}
		for _, s := range says {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("error %q does not say %q", err, s)
			}
		}
	}
	damaged := slices.Clone(good)
	damaged[len(damaged)/2] ^= 1
	if err := fs.WriteFile("/q/MANIFEST", damaged); err != nil {
		t.Fatal(err)
	}
	expect(opts, ErrStorage, "MANIFEST", "damaged")

	newer := newManifest(&Options{Durability: Persistent, Shards: 4}, "queue")
	newer.Format = manifestFormat + 1
	if err := fs.WriteFile("/q/MANIFEST", newer.marshal()); err != nil {
		t.Fatal(err)
	}
	expect(opts, ErrStorage, "MANIFEST", fmt.Sprintf("format %d", manifestFormat+1))

	if err := fs.WriteFile("/q/MANIFEST", good); err != nil {
		t.Fatal(err)
	}
	other := opts
	other.Shards = 8
	expect(other, ErrInvalidOptions, "4 shards", "8")
	eph := opts
	eph.Durability, eph.Sync = Ephemeral, SyncNever
	expect(eph, ErrInvalidOptions, "persistent")
	if _, err := OpenTopic(Options{Dir: "/q", fs: fs}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("OpenTopic on a queue's directory: %v", err)
	}

	stored := opts
	stored.Shards = 0
	got, _ := drainIndexes(t, stored)
	if len(got) != 10 {
		t.Fatalf("reopened with the stored shard count: %d messages, want 10", len(got))
	}
}

// TestDirectoryHygiene: Close leaves the LOCK file (unlinking it would let
// two openers own the directory); an Ephemeral open removes its own spill
// leftovers and nothing else.
func TestDirectoryHygiene(t *testing.T) {
	dir := t.TempDir()
	foreign := []string{"notes.txt", "spill-x", "spill-0001-2/user.txt"}
	for _, f := range foreign {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ours := filepath.Join(dir, "spill-0003-7")
	if err := os.MkdirAll(ours, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ours, "00000000000000000000.seg"), []byte("left by a crash"), 0o600); err != nil {
		t.Fatal(err)
	}
	q := openQueue(t, Options{Dir: dir})
	if _, err := os.Stat(ours); !os.IsNotExist(err) {
		t.Fatalf("a spill left by an earlier process is still there: %v", err)
	}
	for _, f := range foreign {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || string(b) != "mine" {
			t.Fatalf("%s, not Spillway's, was touched: %q, %v", f, b, err)
		}
	}
	if _, err := OpenQueue(Options{Dir: dir}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("a second open of a held directory: %v", err)
	}
	closeQueue(t, q)
	if _, err := os.Stat(filepath.Join(dir, "LOCK")); err != nil {
		t.Fatalf("the LOCK file is gone after Close: %v", err)
	}
	q2 := openQueue(t, Options{Dir: dir}) // the lock was released
	closeQueue(t, q2)
}
