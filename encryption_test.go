package spillway

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/mmap"
)

// marker is a plaintext every test message carries: no file of an
// encrypted directory may hold it.
const marker = "PLAINTEXT-MARKER-7f3a"

func markedMessage(i int) Message {
	return Message{Key: fmt.Appendf(nil, "k%d", i%5), Value: fmt.Appendf(nil, "%s %d %s", marker, i, strings.Repeat("x", i%200))}
}

func markedIndex(t testing.TB, v []byte) int {
	t.Helper()
	var i int
	if _, err := fmt.Sscanf(string(v), marker+" %d ", &i); err != nil {
		t.Fatalf("value %q: %v", v, err)
	}
	return i
}

func testEncryption(ids ...uint32) *Encryption {
	e := &Encryption{Keys: map[uint32][]byte{}, Current: ids[len(ids)-1]}
	for _, id := range ids {
		e.Keys[id] = bytes.Repeat([]byte{byte(id) + 1}, 32)
	}
	return e
}

// noPlaintext fails if a file under dir holds the marker.
func noPlaintext(t testing.TB, dir string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		if bytes.Contains(b, []byte(marker)) {
			t.Errorf("%s holds a message's bytes in the clear", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("no files to look at")
	}
}

// TestEncryptedQueue: a Persistent ManualAck queue with Encryption keeps
// no message byte in the clear, in its logs or in its journals (whose
// moved messages are sealed too), and reopening it with its key delivers
// every unacked message; a wrong key, or none, is refused at open, with an
// error that names key ids and holds no key byte.
func TestEncryptedQueue(t *testing.T) {
	dir := t.TempDir()
	clock := NewManualClock(time.Unix(1e9, 0))
	opts := persistentOptions(dir)
	opts.Shards, opts.Ack, opts.AckTimeout, opts.Clock = 1, ManualAck, time.Hour, clock
	opts.segmentSize, opts.journalSize = 64<<10, 64<<10
	opts.Encryption = testEncryption(1)
	q := openPersistent(t, opts)
	ctx := context.Background()
	const n = 2000
	for i := range n {
		if err := q.Send(ctx, markedMessage(i)); err != nil {
			t.Fatal(err)
		}
	}
	held, err := q.Receive(ctx) // keeps the first segment: its bytes move to the journal
	if err != nil {
		t.Fatal(err)
	}
	for range n - 1 {
		d, err := q.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if err := q.Send(ctx, markedMessage(n+len(marker))); err != nil {
			t.Fatal(err)
		}
	}
	tick(t, q, clock)
	if q.shards[0].moved.n == 0 {
		t.Fatal("the held message was not moved to the journal: the test does not look at a sealed journal record")
	}
	closeQueue(t, q)
	noPlaintext(t, dir)

	for _, bad := range []struct {
		name string
		e    *Encryption
		says string
	}{
		{"no key", nil, "key ids [1]"},
		{"a wrong key under the same id", &Encryption{Keys: map[uint32][]byte{1: bytes.Repeat([]byte{9}, 32)}, Current: 1}, "key id 1 is not the key"},
		{"another id only", testEncryption(5), "key ids [1]"},
	} {
		o := opts
		o.Encryption = bad.e
		_, err := OpenQueue(o)
		if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), bad.says) {
			t.Fatalf("%s: %v; want ErrInvalidOptions saying %q", bad.name, err, bad.says)
		}
		if bad.e != nil && strings.Contains(err.Error(), string(bad.e.Keys[bad.e.Current])) {
			t.Fatalf("%s: the error holds the key", bad.name)
		}
	}

	// Rotation: a new current key, the old one kept readable.
	opts.Encryption = testEncryption(1, 2)
	q = openPersistent(t, opts)
	if err := q.Send(ctx, markedMessage(n+1)); err != nil {
		t.Fatal(err)
	}
	got := drainAll(t, q)
	if len(got) != n+2 || markedIndex(t, got[0].Value) != markedIndex(t, held.Value) || got[0].Attempt != 2 {
		t.Fatalf("after the reopen: %d messages, the first %q attempt %d; want %d, the held one first", len(got), got[0].Value, got[0].Attempt, n+2)
	}
	closeQueue(t, q)
	noPlaintext(t, dir)
	m, err := readManifest(mmap.OSFS{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Keys) != 2 || !m.Sealed || m.ID == "" {
		t.Fatalf("manifest %+v: want both key ids, sealed, an identity", m)
	}
}

// TestEncryptedSpill: an Ephemeral queue's and topic's spills hold no
// message byte in the clear while they spill, and read back whole.
func TestEncryptedSpill(t *testing.T) {
	dir := t.TempDir()
	q, err := OpenQueue(Options{Dir: dir, Shards: 1, RingSize: 64, Encryption: testEncryption(3)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 3000
	for i := range n {
		if err := q.Send(ctx, markedMessage(i)); err != nil {
			t.Fatal(err)
		}
	}
	if q.Stats().Spilled == 0 {
		t.Fatal("nothing spilled")
	}
	for i := range n {
		d, err := q.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if j := markedIndex(t, d.Value); j != i {
			t.Fatalf("message %d is %d", i, j)
		}
		if i == n/2 {
			noPlaintext(t, dir)
		}
	}
	closeQueue(t, q)

	tdir := t.TempDir()
	tp, err := OpenTopic(Options{Dir: tdir, Shards: 1, RingSize: 64, Encryption: testEncryption(4)})
	if err != nil {
		t.Fatal(err)
	}
	defer closeTopic(t, tp)
	sub, err := tp.Subscribe("lag")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := tp.Publish(ctx, markedMessage(i)); err != nil {
			t.Fatal(err)
		}
	}
	noPlaintext(t, tdir)
	for i := range n {
		d, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if j := markedIndex(t, d.Value); j != i {
			t.Fatalf("topic message %d is %d", i, j)
		}
	}
}

// TestEncryptedTopic: a Persistent ManualAck topic with Encryption keeps no
// message byte in the clear, and a subscription resumes after a reopen.
func TestEncryptedTopic(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Shards: 2, Ack: ManualAck, AckTimeout: time.Hour, Encryption: testEncryption(6)}
	tp := openPersistentTopic(t, dir, opts)
	sub, err := tp.Subscribe("s")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 500 {
		if err := tp.Publish(ctx, markedMessage(i)); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		d, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	closeTopic(t, tp)
	noPlaintext(t, dir)
	opts.Encryption = nil
	if _, err := OpenTopic(Options{Dir: dir, Durability: Persistent}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("reopening without the key: %v", err)
	}
	opts.Encryption = testEncryption(6)
	tp = openPersistentTopic(t, dir, opts)
	defer closeTopic(t, tp)
	sub, err = tp.Subscribe("s")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for range 400 {
		d, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen[markedIndex(t, d.Value)] = true
	}
	if len(seen) != 400 {
		t.Fatalf("%d distinct messages after the reopen, want 400", len(seen))
	}
	expectEmpty(t, sub)
}

// segmentOf returns the path of the one segment file of dir's shard.
func segmentOf(t *testing.T, dir string, shard int) string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, shardDirName(shard), "*.seg"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("shard %d: segments %v, %v", shard, segs, err)
	}
	return segs[0]
}

// TestEncryptedTamper: a sealed batch whose ciphertext was changed (and
// its checksum recomputed, as someone who knew the format would) fails
// authentication: its messages are never delivered, counted in
// Stats.Dropped and reported to OnError; the others come through. A
// segment copied from another shard authenticates in none of its batches.
func TestEncryptedTamper(t *testing.T) {
	dir := t.TempDir()
	opts := persistentOptions(dir)
	opts.Shards, opts.Encryption = 2, testEncryption(1)
	q := openPersistent(t, opts)
	ctx := context.Background()
	const n = 200
	for i := range n {
		m := markedMessage(i)
		m.Key = []byte{byte('a' + i%2)} // both shards
		if err := q.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	closeQueue(t, q)

	// Change one byte of the fifth batch's ciphertext in shard 0.
	path := segmentOf(t, dir, 0)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pos := int64(64)
	for range 4 {
		h, err := codec.PeekHeader(b[pos:])
		if err != nil {
			t.Fatal(err)
		}
		pos += int64(h.Size())
	}
	h, err := codec.PeekHeader(b[pos:])
	if err != nil || !h.Sealed {
		t.Fatalf("the fifth batch: %+v, %v", h, err)
	}
	b[pos+codec.HeaderSize+20] ^= 1
	binary.LittleEndian.PutUint64(b[pos+40:], xxhash.Sum64(append(slices.Clone(b[pos:pos+40]), b[pos+codec.HeaderSize:pos+int64(h.Size())]...)))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var reported []error
	var mu sync.Mutex
	opts.OnError = func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }
	q = openPersistent(t, opts)
	got := drainAll(t, q)
	st := q.Stats()
	closeQueue(t, q)
	if len(got) != n-int(h.Count) || st.Dropped != uint64(h.Count) {
		t.Fatalf("%d delivered, %d dropped; want %d and the tampered batch's %d", len(got), st.Dropped, n-int(h.Count), h.Count)
	}
	mu.Lock()
	if len(reported) == 0 || !errors.Is(reported[0], ErrSpillFailed) {
		t.Fatalf("reported %v; want the tampered batch as a failure", reported)
	}
	mu.Unlock()

	// Shard 1's segment replaced by shard 0's: nothing of it is delivered.
	src, err := os.ReadFile(segmentOf(t, dir, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(segmentOf(t, dir, 1), src, 0o600); err != nil {
		t.Fatal(err)
	}
	opts.OnError = nil
	q = openPersistent(t, opts)
	defer closeQueue(t, q)
	for _, d := range drainAll(t, q) {
		if d.Shard == 1 {
			t.Fatalf("shard 1 delivered %q from a segment copied from shard 0", d.Value)
		}
	}
}
