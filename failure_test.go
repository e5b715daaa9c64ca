package spillway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/mmap"
)

// corruptFirstBatch flips a byte inside the payload of the first batch of
// the first segment under dir (a spill directory), through the file system:
// the log's mapping sees the change. It returns the batch's header, read
// before.
func corruptFirstBatch(t *testing.T, dir string) codec.BatchHeader {
	return flipFirstBatch(t, dir, codec.HeaderSize+5)
}

// flipFirstBatch flips the byte at offset at of the first batch of the
// first segment under dir, and returns the batch's header, read before.
func flipFirstBatch(t *testing.T, dir string, at int64) codec.BatchHeader {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segment in %s (%v)", dir, err)
	}
	slices.Sort(segs)
	f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, f)
	const segHeader = 64 // the segment file's own header
	hdr := make([]byte, codec.HeaderSize)
	if _, err := f.ReadAt(hdr, segHeader); err != nil {
		t.Fatal(err)
	}
	h, err := codec.PeekHeader(hdr)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, segHeader+at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, segHeader+at); err != nil {
		t.Fatal(err)
	}
	return h
}

// spillFlushed sends messages 0 to n-1 to q, a one-shard queue spilling
// into dir, flushes the spill, and returns the spill's directory.
func spillFlushed(ctx context.Context, t *testing.T, q *Queue, dir string, n int) string {
	t.Helper()
	for i := range n {
		if err := q.Send(ctx, msg(0, i, i%5)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Flush(); err != nil {
		t.Fatal(err)
	}
	spilled := spillDirs(t, dir)
	if len(spilled) != 1 {
		t.Fatalf("spill directories: %v, want one", spilled)
	}
	return filepath.Join(dir, spilled[0])
}

// flushTopicSpill makes the spill log of tp, a one-shard topic spilling
// into dir, hold everything published, and returns the spill's directory.
func flushTopicSpill(t *testing.T, tp *Topic, dir string) string {
	t.Helper()
	s := tp.shards[0]
	s.pub.Lock()
	err := s.spill.appendAll(s)
	s.pub.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	spilled := spillDirs(t, dir)
	if len(spilled) != 1 {
		t.Fatalf("spill directories: %v, want one", spilled)
	}
	return filepath.Join(dir, spilled[0])
}

// errorLog collects what Options.OnError is told.
type errorLog chan error

func (l errorLog) onError(err error) {
	select {
	case l <- err:
	default:
		panic("more OnError calls than the test expects")
	}
}

// TestQueueSpillCorrupt: a spill whose file turns out corrupt when read
// back is given up: the messages it held are dropped and counted, OnError
// is told why (ErrSpillFailed wrapping the checksum failure), the spill's
// files go, and the shard goes on in memory.
func TestQueueSpillCorrupt(t *testing.T) {
	dir := t.TempDir()
	errs := make(errorLog, 1)
	q := openQueue(t, Options{Dir: dir, Shards: 1, RingSize: 2, Compression: S2, OnError: errs.onError})
	ctx := context.Background()
	const n = 300
	corruptFirstBatch(t, spillFlushed(ctx, t, q, dir, n))

	for i := range 2 { // what the ring held comes first, intact
		d, err := q.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, seq, _ := unmsg(t, d); seq != i {
			t.Fatalf("got message %d, want %d", seq, i)
		}
	}
	var dst [1]Delivery
	var got error
	waitFor(t, "the spill failure to be reported", func() bool {
		if k := q.tryReceive(dst[:]); k > 0 {
			t.Fatalf("received a message from a corrupt spill: %q", dst[0].Value)
		}
		select {
		case got = <-errs:
			return true
		default:
			return false
		}
	})
	if !errors.Is(got, ErrSpillFailed) || !errors.Is(got, mmap.ErrCorrupt) || !errors.Is(got, codec.ErrChecksum) {
		t.Fatalf("OnError got %v, want ErrSpillFailed wrapping mmap.ErrCorrupt and codec.ErrChecksum", got)
	}
	st := q.Stats()
	if st.Sent != n || st.Delivered != 2 || st.Dropped != n-2 || st.Depth != 0 || st.DiskBytes != 0 {
		t.Fatalf("after the failure: %+v, want Sent %d, Delivered 2, Dropped %d, Depth 0, DiskBytes 0", st, n, n-2)
	}
	if left := spillDirs(t, dir); len(left) != 0 {
		t.Fatalf("spill directories left: %v", left)
	}

	// The shard goes on, in memory and through a new spill.
	for i := range 10 {
		if err := q.Send(ctx, msg(1, i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		d, err := q.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p, seq, _ := unmsg(t, d); p != 1 || seq != i {
			t.Fatalf("after the failure got message %d/%d, want 1/%d", p, seq, i)
		}
	}
	if st := q.Stats(); st.Sent != n+10 || st.Delivered+st.Dropped != st.Sent || st.Depth != 0 {
		t.Fatalf("at the end: %+v", st)
	}
}

// TestQueueSpillSkipsCorruptBatch: of a spill of several batches, the one
// whose bytes rotted is skipped: its messages are dropped and counted, the
// others come back in order, and OnError is told once. A batch whose
// header rotted instead leaves the reader no way to find the next one: the
// spill is given up, as a whole.
func TestQueueSpillSkipsCorruptBatch(t *testing.T) {
	for _, c := range []struct {
		name   string
		at     int64 // the byte of the first batch to flip
		whole  bool  // the spill is given up
		reason error
	}{
		{"payload", codec.HeaderSize + 5, false, codec.ErrChecksum},
		{"header", 0, true, mmap.ErrCorrupt},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			errs := make(errorLog, 1)
			q := openQueue(t, Options{Dir: dir, Shards: 1, RingSize: 2, Compression: None, OnError: errs.onError})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a safety net: a lost message fails, not hangs
			defer cancel()
			const n = 8000 // about 3 MB: a dozen batches
			h := flipFirstBatch(t, spillFlushed(ctx, t, q, dir, n), c.at)
			lost := int(h.Count) // the first batch holds messages 2 to 2+Count-1
			if c.whole {
				lost = n - 2
			}
			next, dst := 0, make([]Delivery, 64)
			for next < n-lost {
				k, err := q.ReceiveBatch(ctx, dst)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range dst[:k] {
					want := next
					if next >= 2 {
						want = next + lost
					}
					if _, seq, _ := unmsg(t, d); seq != want {
						t.Fatalf("got message %d, want %d (the first batch held %d)", seq, want, h.Count)
					}
					next++
				}
			}
			var got error
			waitFor(t, "the failure to be reported and the spill to drain", func() bool {
				if k := q.tryReceive(dst); k > 0 {
					t.Fatalf("received %d more messages", k)
				}
				if got == nil {
					select {
					case got = <-errs:
					default:
					}
				}
				return got != nil && q.Stats().DiskBytes == 0
			})
			if !errors.Is(got, ErrSpillFailed) || !errors.Is(got, c.reason) {
				t.Fatalf("OnError got %v, want ErrSpillFailed wrapping %v", got, c.reason)
			}
			st := q.Stats()
			if st.Sent != n || st.Delivered != uint64(n-lost) || st.Dropped != uint64(lost) || st.Depth != 0 {
				t.Fatalf("stats %+v, want Delivered %d, Dropped %d, Depth 0", st, n-lost, lost)
			}
			if left := spillDirs(t, dir); len(left) != 0 {
				t.Fatalf("spill directories left: %v", left)
			}
		})
	}
}

// TestTopicSpillCorrupt: a subscription reading a spill that turns out
// corrupt rejoins the ring at the oldest message it holds: what it skipped
// is dropped and counted, OnError is told why (naming the subscription),
// the spill goes once nobody reads it, and the subscription goes on.
func TestTopicSpillCorrupt(t *testing.T) {
	dir := t.TempDir()
	errs := make(errorLog, 1)
	tp := openTopic(t, Options{Dir: dir, Shards: 1, RingSize: 16, Compression: S2, OnError: errs.onError})
	ctx := context.Background()
	stuck := subscribe(t, tp, "stuck") // not read while publishing: it moves to the spill
	const n = 500
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			if err := tp.Publish(ctx, Message{Value: []byte{byte(i >> 8), byte(i)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(0, n)
	corruptFirstBatch(t, flushTopicSpill(t, tp, dir))

	const kept = 16 // the ring keeps its last RingSize messages
	for i := n - kept; i < n+3; i++ {
		if i == n {
			publish(n, n+3)
		}
		d, err := stuck.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := int(d.Value[0])<<8 | int(d.Value[1]); got != i {
			t.Fatalf("got message %d, want %d", got, i)
		}
	}
	var got error
	select {
	case got = <-errs:
	default:
		t.Fatal("OnError was not called")
	}
	if !errors.Is(got, ErrSpillFailed) || !errors.Is(got, codec.ErrChecksum) || !strings.Contains(got.Error(), `"stuck"`) {
		t.Fatalf("OnError got %v, want ErrSpillFailed wrapping codec.ErrChecksum, naming the subscription", got)
	}
	if st := stuck.Stats(); st.Delivered != kept+3 || st.Dropped != n-kept || st.Depth != 0 {
		t.Fatalf("subscription after the failure: %+v, want Delivered %d, Dropped %d, Depth 0", st, kept+3, n-kept)
	}
	if st := tp.Stats(); st.DiskBytes != 0 || len(spillDirs(t, dir)) != 0 {
		t.Fatalf("spill left after its only reader left it: %+v, %v", st, spillDirs(t, dir))
	}
}

// TestTopicSpillSkipsCorruptBatch: a subscription reading a spill of
// several batches skips the one whose bytes rotted, losing only its
// messages (counted, and reported), and reads the others in order.
func TestTopicSpillSkipsCorruptBatch(t *testing.T) {
	dir := t.TempDir()
	errs := make(errorLog, 1)
	tp := openTopic(t, Options{Dir: dir, Shards: 1, RingSize: 16, Compression: S2, OnError: errs.onError})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a safety net: a lost message fails, not hangs
	defer cancel()
	stuck := subscribe(t, tp, "stuck")
	const n = 8000 // several batches
	for i := range n {
		if err := tp.Publish(ctx, msg(0, i, i%5)); err != nil {
			t.Fatal(err)
		}
	}
	h := corruptFirstBatch(t, flushTopicSpill(t, tp, dir))
	lost := int(h.Count)
	if lost >= n-16 {
		t.Fatalf("the first batch holds %d of %d messages: not several batches", lost, n)
	}
	dst := make([]Delivery, 64)
	for next := lost; next < n; {
		k, err := stuck.ReceiveBatch(ctx, dst)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dst[:k] {
			if _, seq, _ := unmsg(t, d); seq != next || d.Offset != uint64(next) {
				t.Fatalf("got message %d at offset %d, want %d (the first batch held %d)", seq, d.Offset, next, lost)
			}
			next++
		}
	}
	var got error
	select {
	case got = <-errs:
	default:
		t.Fatal("OnError was not called")
	}
	if !errors.Is(got, ErrSpillFailed) || !errors.Is(got, codec.ErrChecksum) {
		t.Fatalf("OnError got %v, want ErrSpillFailed wrapping codec.ErrChecksum", got)
	}
	if st := stuck.Stats(); st.Delivered != uint64(n-lost) || st.Dropped != uint64(lost) || st.Depth != 0 {
		t.Fatalf("stats %+v, want Delivered %d, Dropped %d, Depth 0", st, n-lost, lost)
	}
	waitFor(t, "the spill to go", func() bool { return tp.Stats().DiskBytes == 0 && len(spillDirs(t, dir)) == 0 })
}

// TestQueueSpillWriteError fails the spill's writes with EIO through the
// queue's file system (mmap.FaultFS): every message is either delivered or
// counted in Stats.Dropped, the failure reaches OnError (ErrSpillFailed
// wrapping EIO), and the shard goes on.
func TestQueueSpillWriteError(t *testing.T) {
	fs := mmap.NewFaultFS(nil)
	errs := make(chan error, 16)
	q := openQueue(t, Options{Dir: t.TempDir(), Shards: 1, RingSize: 4, Compression: S2, fs: fs,
		OnError: func(err error) { errs <- err }})
	fs.Inject(mmap.Fault{Op: mmap.OpWrite, Path: ".seg", Err: syscall.EIO})
	ctx := context.Background()
	const n = 2000
	for i := range n {
		if err := q.Send(ctx, msg(0, i, 0)); err != nil && !errors.Is(err, ErrSpillFailed) && !errors.Is(err, mmap.ErrReadOnly) {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if err := q.Flush(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Flush of a spill whose writes fail: %v, want EIO", err)
	}
	seen := map[int]bool{}
	var reported error
	waitFor(t, "every message delivered or dropped", func() bool {
		for {
			d, err := q.TryReceive()
			if err != nil {
				break
			}
			_, seq, _ := unmsg(t, d)
			if seen[seq] {
				t.Fatalf("message %d delivered twice", seq)
			}
			seen[seq] = true
		}
		select {
		case err := <-errs:
			reported = err
		default:
		}
		st := q.Stats()
		return st.Delivered+st.Dropped == st.Sent && st.Depth == 0 && reported != nil
	})
	if !errors.Is(reported, ErrSpillFailed) || !errors.Is(reported, syscall.EIO) {
		t.Fatalf("OnError got %v, want ErrSpillFailed wrapping EIO", reported)
	}
	st := q.Stats()
	if st.Dropped == 0 || int(st.Delivered) != len(seen) || st.Sent != n {
		t.Fatalf("stats %+v, %d seen: want drops counted and every other message delivered", st, len(seen))
	}
	// The device works again: the shard spills and reads back anew.
	fs.Reset()
	for i := range 100 {
		if err := q.Send(ctx, msg(1, i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		d, err := q.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p, seq, _ := unmsg(t, d); p != 1 || seq != i {
			t.Fatalf("after the failure got %d/%d, want 1/%d", p, seq, i)
		}
	}
}

// TestQueueSpillNoSpace fails the reservation of the spill's segments with
// ENOSPC: the spill's writer holds what does not fit until its buffers are
// full, then TrySend says ErrDiskFull; once the device has room again,
// everything accepted is delivered, in order, nothing dropped.
func TestQueueSpillNoSpace(t *testing.T) {
	fs := mmap.NewFaultFS(nil)
	q := openQueue(t, Options{Dir: t.TempDir(), Shards: 1, RingSize: 4, fs: fs})
	fs.Inject(mmap.Fault{Op: mmap.OpAllocate, Err: syscall.ENOSPC})
	accepted := 0
	for ; accepted < 1_000_000; accepted++ {
		err := q.TrySend(msg(0, accepted, 0))
		if errors.Is(err, ErrDiskFull) {
			break
		}
		if err != nil {
			t.Fatalf("TrySend %d: %v", accepted, err)
		}
	}
	if accepted == 1_000_000 {
		t.Fatal("TrySend never said ErrDiskFull")
	}
	fs.Reset()
	ctx := context.Background()
	for i := range accepted {
		d, err := q.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, seq, _ := unmsg(t, d); seq != i {
			t.Fatalf("got %d, want %d", seq, i)
		}
	}
	if st := q.Stats(); st.Dropped != 0 || st.Depth != 0 {
		t.Fatalf("stats %+v: nothing should be dropped or left", st)
	}
}

// TestTopicSpillNoSpace fails the reservation of a Topic's spill segments
// with ENOSPC while a subscription lags: the publisher waits (Publish does
// not fail and nothing is dropped) until the device has room again, and
// then the lagging subscription gets every message, in order.
func TestTopicSpillNoSpace(t *testing.T) {
	fs := mmap.NewFaultFS(nil)
	errs := make(chan error, 16)
	tp := openTopic(t, Options{Dir: t.TempDir(), Shards: 1, RingSize: 16, Compression: None, fs: fs,
		OnError: func(err error) { errs <- err }})
	fs.Inject(mmap.Fault{Op: mmap.OpAllocate, Err: syscall.ENOSPC})
	ctx := context.Background()
	slow := subscribe(t, tp, "slow") // not read until the disk has room
	const n = 100_000
	value := func(i int) []byte {
		v := make([]byte, 200)
		binary.LittleEndian.PutUint64(v, uint64(i))
		return v
	}
	published := make(chan error, 1)
	go func() {
		for i := range n {
			if err := tp.Publish(ctx, Message{Value: value(i)}); err != nil {
				published <- fmt.Errorf("Publish %d: %w", i, err)
				return
			}
		}
		published <- nil
	}()
	s := tp.shards[0]
	// A writer holding what the disk had no room for, and the publisher
	// parked: it waits for the disk (the slow subscription, in the spill,
	// gates no ring slot).
	waitFor(t, "the publisher to wait for the disk", func() bool { return s.spillFull.Load() && s.room.Len() == 1 })
	select {
	case err := <-published:
		t.Fatalf("the publisher finished with no room on the device: %v", err)
	default:
	}
	if st := slow.Stats(); st.Dropped != 0 {
		t.Fatalf("dropped with the disk full: %+v", st)
	}
	t.Logf("publisher waiting for the disk: topic %+v", tp.Stats())
	fs.Reset()
	for i := range n {
		d, err := slow.Receive(ctx)
		if err != nil {
			t.Fatalf("message %d: %v (stats %+v)", i, err, slow.Stats())
		}
		if got := int(binary.LittleEndian.Uint64(d.Value)); got != i {
			t.Fatalf("slow subscription got %d, want %d", got, i)
		}
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	if st := slow.Stats(); st.Delivered != n || st.Dropped != 0 || st.Depth != 0 {
		t.Fatalf("slow subscription %+v: want everything delivered, nothing dropped", st)
	}
	select {
	case err := <-errs:
		t.Fatalf("OnError with nothing lost: %v", err)
	default:
	}
}

// TestTopicSpillWriteError fails the writes of a Topic's spill with EIO
// (mmap.FaultFS): the subscription that lagged gets every message or
// counts it in its Stats.Dropped, OnError is told (ErrSpillFailed wrapping
// EIO), and a subscription that kept up loses nothing.
func TestTopicSpillWriteError(t *testing.T) {
	fs := mmap.NewFaultFS(nil)
	errs := make(chan error, 16)
	tp := openTopic(t, Options{Dir: t.TempDir(), Shards: 1, RingSize: 16, Compression: S2, fs: fs,
		OnError: func(err error) { errs <- err }})
	fs.Inject(mmap.Fault{Op: mmap.OpWrite, Path: ".seg", Err: syscall.EIO})
	ctx := context.Background()
	stuck := subscribe(t, tp, "stuck") // not read while publishing: it moves to the spill
	fast := subscribe(t, tp, "fast")
	const n = 3000
	fastDone := make(chan error, 1)
	go func() {
		for i := range n {
			d, err := fast.Receive(ctx)
			if err != nil {
				fastDone <- err
				return
			}
			if got := int(d.Value[0])<<8 | int(d.Value[1]); got != i {
				fastDone <- fmt.Errorf("fast subscription got %d, want %d", got, i)
				return
			}
		}
		fastDone <- nil
	}()
	for i := range n {
		if err := tp.Publish(ctx, Message{Value: []byte{byte(i >> 8), byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-fastDone; err != nil {
		t.Fatal(err)
	}
	var reported error
	got, last := 0, -1
	defer func() {
		if t.Failed() {
			t.Logf("stuck %+v fast %+v topic %+v got %d reported %v", stuck.Stats(), fast.Stats(), tp.Stats(), got, reported)
		}
	}()
	waitFor(t, "the stuck subscription to get or drop everything", func() bool {
		for {
			d, err := stuck.TryReceive()
			if err != nil {
				break
			}
			v := int(d.Value[0])<<8 | int(d.Value[1])
			if v <= last {
				t.Fatalf("stuck subscription got %d after %d", v, last)
			}
			last = v
			got++
		}
		select {
		case err := <-errs:
			reported = err
		default:
		}
		st := stuck.Stats()
		return st.Delivered+st.Dropped == n && reported != nil
	})
	if !errors.Is(reported, ErrSpillFailed) || !errors.Is(reported, syscall.EIO) {
		t.Fatalf("OnError got %v, want ErrSpillFailed wrapping EIO", reported)
	}
	if st := stuck.Stats(); st.Dropped == 0 || int(st.Delivered) != got {
		t.Fatalf("stuck subscription %+v, %d received: want drops counted", st, got)
	}
	if st := fast.Stats(); st.Delivered != n || st.Dropped != 0 {
		t.Fatalf("fast subscription %+v: want everything, nothing dropped", st)
	}
}
