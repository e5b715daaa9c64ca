package spillway

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spillway-io/spillway/mmap"
)

// gateFS holds every file sync (of files whose path contains match) at a
// gate while it is shut: a test sees what happens between a write and its
// sync.
type gateFS struct {
	mmap.FS
	match   string
	mu      sync.Mutex
	shut    chan struct{} // nil: open
	waiting atomic.Int32
}

func (g *gateFS) close() {
	g.mu.Lock()
	g.shut = make(chan struct{})
	g.mu.Unlock()
}

func (g *gateFS) open() {
	g.mu.Lock()
	if g.shut != nil {
		close(g.shut)
		g.shut = nil
	}
	g.mu.Unlock()
}

func (g *gateFS) OpenFile(name string, flag int, perm os.FileMode) (mmap.File, error) {
	f, err := g.FS.OpenFile(name, flag, perm)
	if err != nil || !strings.Contains(name, g.match) {
		return f, err
	}
	return &gateFile{File: f, g: g}, nil
}

type gateFile struct {
	mmap.File
	g *gateFS
}

func (f *gateFile) Sync() error {
	f.g.mu.Lock()
	shut := f.g.shut
	f.g.mu.Unlock()
	if shut != nil {
		f.g.waiting.Add(1)
		<-shut
		f.g.waiting.Add(-1)
	}
	return f.File.Sync()
}

// TestSyncAlwaysNothingSeenBeforeKept holds the sync of a segment: under
// SyncAlways the Send does not return and no receiver sees the message
// until the sync is done.
func TestSyncAlwaysNothingSeenBeforeKept(t *testing.T) {
	g := &gateFS{FS: mmap.NewMemFS(), match: "shard-"}
	opts := crashOptions(g, SyncAlways, nil)
	opts.Ack, opts.Shards = AutoAck, 1
	q := openPersistent(t, opts)
	defer closeQueue(t, q)
	defer g.open() // before the Close above, should the test fail with the gate shut
	// A first message makes the segment, whose creation syncs too.
	if err := q.Send(context.Background(), keyedMessage(1, 0)); err != nil {
		t.Fatal(err)
	}
	receiveN(t, q, 1)
	g.close()
	sent := make(chan error, 1)
	go func() { sent <- q.Send(context.Background(), keyedMessage(0, 0)) }()
	waitFor(t, "the sync to reach the gate", func() bool { return g.waiting.Load() > 0 })
	select {
	case err := <-sent:
		t.Fatalf("Send returned (%v) before its sync did", err)
	default:
	}
	if d, err := q.TryReceive(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("a receiver got %q (%v) before its sync was done", d.Value, err)
	}
	g.open()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	d := receiveN(t, q, 1)[0]
	if _, i := parseKeyed(t, d.Value); i != 0 {
		t.Fatalf("received %d", i)
	}
}

// TestSyncAlwaysGroupCommit: senders that wait at once share syncs.
func TestSyncAlwaysGroupCommit(t *testing.T) {
	g := &gateFS{FS: mmap.NewMemFS(), match: "shard-"}
	opts := crashOptions(g, SyncAlways, nil)
	opts.Shards = 1
	q := openPersistent(t, opts)
	defer closeQueue(t, q)
	defer g.open() // before the Close above, should the test fail with the gate shut
	// A first message makes the segment, whose creation syncs too.
	if err := q.Send(context.Background(), keyedMessage(99, 0)); err != nil {
		t.Fatal(err)
	}
	before := q.Stats().Syncs
	g.close()
	// One sender's sync holds the gate; 31 more queue behind it.
	const senders = 32
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for k := range senders {
		wg.Go(func() { errs <- q.Send(context.Background(), keyedMessage(k, 0)) })
	}
	waitFor(t, "a sync at the gate", func() bool { return g.waiting.Load() > 0 })
	waitFor(t, "every message appended", func() bool { return q.Stats().Sent == senders+1 })
	g.open()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The first round's sync covered one message or a few; everything
	// else waited for the next round, which covered the rest at once.
	if syncs := q.Stats().Syncs - before; syncs > 4 {
		t.Fatalf("%d fdatasyncs for %d senders that waited together; want at most 4", syncs, senders)
	}
}

// TestPersistentSyncFailureIsSticky fails one fdatasync: the Send that
// waited for it fails with ErrStorage, and so does every later call, even
// though later syncs would succeed (fsyncgate); OnError hears of it once.
// A reopen finds every message whose Send returned nil.
func TestPersistentSyncFailureIsSticky(t *testing.T) {
	mem := mmap.NewMemFS()
	fs := mmap.NewFaultFS(mem)
	var reported atomic.Int32
	opts := crashOptions(fs, SyncAlways, nil)
	opts.OnError = func(err error) {
		if !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.EIO) {
			t.Errorf("OnError(%v): want ErrStorage wrapping EIO", err)
		}
		reported.Add(1)
	}
	q := openPersistent(t, opts)
	ctx := context.Background()
	for i := range 10 {
		if err := q.Send(ctx, keyedMessage(0, i)); err != nil {
			t.Fatal(err)
		}
	}
	fs.Inject(mmap.Fault{Op: mmap.OpSync, Path: "shard-", Err: syscall.EIO, Times: 1})
	if err := q.Send(ctx, keyedMessage(0, 10)); !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Send whose sync failed: %v; want ErrStorage wrapping EIO", err)
	}
	for _, call := range []func() error{
		func() error { return q.Send(ctx, keyedMessage(0, 11)) },
		func() error { return q.TrySend(keyedMessage(0, 12)) },
		q.Sync,
	} {
		if err := call(); !errors.Is(err, ErrStorage) {
			t.Fatalf("after a failed sync: %v; want ErrStorage", err)
		}
	}
	if n := reported.Load(); n != 1 {
		t.Fatalf("OnError called %d times, want once", n)
	}
	closeOK(t, q) // syncs nothing more: the failure stands

	opts.fs = mem
	q = openPersistent(t, opts)
	defer closeQueue(t, q)
	got := drainAll(t, q)
	seen := map[int]bool{}
	for _, d := range got {
		_, i := parseKeyed(t, d.Value)
		seen[i] = true
	}
	for i := range 10 {
		if !seen[i] {
			t.Fatalf("message %d, whose Send returned nil, is missing after the reopen", i)
		}
	}
}

// TestPersistentDiskFull: a Send that needs a new segment on a full disk
// fails with ErrDiskFull under Reject, waits under SpillToDisk until the
// receivers free a segment, and nothing is lost.
func TestPersistentDiskFull(t *testing.T) {
	fs := mmap.NewFaultFS(mmap.NewMemFS())
	clock := NewManualClock(time.Unix(1e9, 0))
	opts := crashOptions(fs, SyncNever, clock)
	opts.Ack, opts.Shards = AutoAck, 1
	q := openPersistent(t, opts)
	defer closeQueue(t, q)
	ctx := context.Background()
	fs.Inject(mmap.Fault{Op: mmap.OpAllocate, Err: syscall.ENOSPC})
	n := 0
	var err error
	for ; n < 10000; n++ {
		if err = q.TrySend(keyedMessage(0, n)); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("TrySend on a full disk after %d messages: %v; want ErrDiskFull", n, err)
	}
	sent := make(chan error, 1)
	go func() { sent <- q.Send(ctx, keyedMessage(0, n)) }()
	waitFor(t, "the Send to wait for room", func() bool { return q.shards[0].senders.Len() > 0 })
	select {
	case err := <-sent:
		t.Fatalf("Send on a full disk returned %v instead of waiting", err)
	default:
	}
	// Room on the device again (freed by something else than the queue):
	// the housekeeping's next tick lets the waiting Send try again.
	fs.Reset()
	clock.Advance(time.Second)
	if err := <-sent; err != nil {
		t.Fatalf("Send once the disk had room: %v", err)
	}
	got := receiveN(t, q, n+1)
	for j, d := range got {
		if _, i := parseKeyed(t, d.Value); i != j {
			t.Fatalf("message %d is %d", j, i)
		}
	}
}
