package spillway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spillway-io/spillway/internal/race"
	"github.com/spillway-io/spillway/mmap"
)

// keyedMessage is message i of key k: its value names both, padded to a
// size that varies with i.
func keyedMessage(k, i int) Message {
	v := fmt.Appendf(nil, "k%d-i%d-", k, i)
	for j := 0; j < (i*37)%300; j++ {
		v = append(v, 'a'+byte((i+j)%26))
	}
	return Message{Key: []byte("key-" + strconv.Itoa(k)), Value: v}
}

// parseKeyed returns the key and index keyedMessage put in a value, and
// checks the padding.
func parseKeyed(t testing.TB, v []byte) (k, i int) {
	t.Helper()
	if _, err := fmt.Sscanf(string(v), "k%d-i%d-", &k, &i); err != nil {
		t.Fatalf("value %q: %v", v, err)
	}
	if want := keyedMessage(k, i).Value; string(want) != string(v) {
		t.Fatalf("value of k%d i%d corrupted: %q", k, i, v)
	}
	return k, i
}

func persistentOptions(dir string) Options {
	return Options{Dir: dir, Durability: Persistent, Shards: 4, RingSize: 64}
}

func openPersistent(t testing.TB, opts Options) *Queue {
	t.Helper()
	q, err := OpenQueue(opts)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func closeQueue(t testing.TB, q *Queue) {
	t.Helper()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

// receiveN receives n messages within a deadline.
func receiveN(t testing.TB, q *Queue, n int) []Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := make([]Delivery, 0, n)
	for len(out) < n {
		d, err := q.Receive(ctx)
		if err != nil {
			t.Fatalf("receiving message %d of %d: %v", len(out)+1, n, err)
		}
		out = append(out, d)
	}
	return out
}

// checkOrder checks that, per key, the indexes come in increasing order
// after those in last, and records the last.
func checkOrder(t testing.TB, ds []Delivery, last map[int]int) {
	t.Helper()
	for _, d := range ds {
		k, i := parseKeyed(t, d.Value)
		if p, ok := last[k]; ok && i <= p {
			t.Fatalf("key %d: message %d after %d", k, i, p)
		}
		last[k] = i
	}
}

// TestPersistentReopen sends more than the rings hold, receives part,
// closes and reopens: the rest comes back, per key in order, and nothing
// is dropped.
func TestPersistentReopen(t *testing.T) {
	dir := t.TempDir()
	opts := persistentOptions(dir)
	q := openPersistent(t, opts)
	const keys, per = 8, 150
	ctx := context.Background()
	for i := range per {
		for k := range keys {
			if err := q.Send(ctx, keyedMessage(k, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	last := map[int]int{}
	checkOrder(t, receiveN(t, q, 300), last)
	if st := q.Stats(); st.Sent != keys*per || st.Delivered != 300 || st.Depth != keys*per-300 || st.Dropped != 0 {
		t.Fatalf("stats before close: %+v", st)
	}
	closeQueue(t, q)

	q = openPersistent(t, opts)
	rec := q.Recovery()
	if rec.Messages != keys*per-300 || rec.Redelivered != 0 || rec.Lost != 0 {
		t.Fatalf("recovery %+v: want %d messages waiting", rec, keys*per-300)
	}
	checkOrder(t, receiveN(t, q, keys*per-300), last)
	for k := range keys {
		if last[k] != per-1 {
			t.Fatalf("key %d: last message %d, want %d", k, last[k], per-1)
		}
	}
	if _, err := q.TryReceive(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("after everything: %v, want ErrEmpty", err)
	}
	// New messages after the reopen come after the old ones.
	if err := q.Send(ctx, keyedMessage(0, per)); err != nil {
		t.Fatal(err)
	}
	checkOrder(t, receiveN(t, q, 1), last)
	if st := q.Stats(); st.Dropped != 0 {
		t.Fatalf("stats after reopen: %+v", st)
	}
	closeQueue(t, q)
	q = openPersistent(t, opts)
	defer closeQueue(t, q)
	if rec := q.Recovery(); rec.Messages != 0 {
		t.Fatalf("everything was delivered, yet the reopen recovered %+v", rec)
	}
}

// TestPersistentManualAckReopen: unsettled deliveries come back after a
// reopen with their attempts kept, before the messages never delivered;
// acked ones do not.
func TestPersistentManualAckReopen(t *testing.T) {
	dir := t.TempDir()
	opts := persistentOptions(dir)
	opts.Ack = ManualAck
	opts.Shards = 1
	q := openPersistent(t, opts)
	ctx := context.Background()
	for i := range 100 {
		if err := q.Send(ctx, keyedMessage(0, i)); err != nil {
			t.Fatal(err)
		}
	}
	ds := receiveN(t, q, 40)
	for i, d := range ds {
		if i%2 == 0 {
			if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// One unsettled message nacked and redelivered: attempt 2.
	if err := ds[1].Nack(0); err != nil {
		t.Fatal(err)
	}
	d := receiveN(t, q, 1)[0]
	if d.Offset != ds[1].Offset || d.Attempt != 2 {
		t.Fatalf("redelivery: offset %d attempt %d, want %d, 2", d.Offset, d.Attempt, ds[1].Offset)
	}
	closeQueue(t, q)

	q = openPersistent(t, opts)
	defer closeQueue(t, q)
	if rec := q.Recovery(); rec.Redelivered != 20 || rec.Messages != 80 {
		t.Fatalf("recovery %+v: want 20 redelivered, 80 waiting", rec)
	}
	again := receiveN(t, q, 20)
	for _, d := range again {
		_, i := parseKeyed(t, d.Value)
		if i%2 == 0 || i >= 40 {
			t.Fatalf("redelivered message %d, which was acked or never delivered", i)
		}
		want := 2
		if i == 1 {
			want = 3
		}
		if d.Attempt != want || d.Offset != uint64(i) {
			t.Fatalf("message %d redelivered at offset %d, attempt %d; want %d, %d", i, d.Offset, d.Attempt, i, want)
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	rest := receiveN(t, q, 60)
	for j, d := range rest {
		if _, i := parseKeyed(t, d.Value); i != 40+j || d.Attempt != 1 {
			t.Fatalf("message %d: index %d attempt %d", j, i, d.Attempt)
		}
	}
}

func TestPersistentOptions(t *testing.T) {
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{Durability: Persistent}, "needs Dir"},
		{Options{Sync: SyncAlways}, "Persistent only"},
		{Options{Dir: t.TempDir(), Durability: Persistent, Sync: 7}, "sync policy"},
		{Options{Dir: t.TempDir(), Durability: 9}, "durability"},
	} {
		_, err := OpenQueue(c.opts)
		if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("OpenQueue(%+v) = %v; want ErrInvalidOptions saying %q", c.opts, err, c.want)
		}
	}
}

// TestPersistentDeletesSettledSegments: once receivers settled the
// messages of a segment, the housekeeping (each SyncEvery) deletes it.
func TestPersistentDeletesSettledSegments(t *testing.T) {
	fs := mmap.NewMemFS()
	clock := NewManualClock(time.Unix(1e9, 0))
	opts := oneShard(fs)
	opts.Clock = clock
	q := openPersistent(t, opts)
	defer closeQueue(t, q)
	ctx := context.Background()
	const n = 5000
	for i := range n {
		if err := q.Send(ctx, keyedMessage(0, i)); err != nil {
			t.Fatal(err)
		}
	}
	full := q.Stats().DiskBytes
	if segs := len(segmentsOf(t, fs, 0)); segs < 4 {
		t.Fatalf("%d segments; want several", segs)
	}
	receiveN(t, q, n)
	tick(t, q, clock)
	if st := q.Stats(); st.DiskBytes >= full/2 || len(segmentsOf(t, fs, 0)) > 2 {
		t.Fatalf("after everything was received: %d of %d bytes on disk, %d segments", st.DiskBytes, full, len(segmentsOf(t, fs, 0)))
	}
}

// TestPersistentStragglerMoved holds one delivery unacked while thousands
// after it are acked: the housekeeping moves it into the journal so that
// its segment, and those after, can go; it stays unsettled, comes back
// after a reopen with its attempt, and can be acked.
func TestPersistentStragglerMoved(t *testing.T) {
	fs := mmap.NewMemFS()
	clock := NewManualClock(time.Unix(1e9, 0))
	opts := crashOptions(fs, SyncNever, clock)
	opts.Shards = 1
	q := openPersistent(t, opts)
	ctx := context.Background()
	const n = 5000
	for i := range n {
		if err := q.Send(ctx, keyedMessage(0, i)); err != nil {
			t.Fatal(err)
		}
	}
	held := receiveN(t, q, 1)[0]
	for _, d := range receiveN(t, q, n-1) {
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	tick(t, q, clock)
	if segs := len(segmentsOf(t, fs, 0)); segs > 2 {
		t.Fatalf("one unacked message keeps %d segments", segs)
	}
	closeQueue(t, q)
	q = openPersistent(t, opts)
	defer closeQueue(t, q)
	if rec := q.Recovery(); rec.Redelivered != 1 || rec.Messages != 1 {
		t.Fatalf("recovery %+v: want the held message, and nothing else", rec)
	}
	d := receiveN(t, q, 1)[0]
	if d.Offset != held.Offset || d.Attempt != 2 || string(d.Value) != string(held.Value) {
		t.Fatalf("came back as offset %d attempt %d %s; want offset %d attempt 2 %s", d.Offset, d.Attempt, short(string(d.Value)), held.Offset, short(string(held.Value)))
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
}

// tick advances the clock by SyncEvery, twice, and waits each time for
// the housekeeping it runs.
func tick(t *testing.T, q *Queue, clock *ManualClock) {
	t.Helper()
	for range 2 {
		before := q.housekeeps.Load()
		clock.Advance(q.opts.SyncEvery)
		waitFor(t, "the housekeeping", func() bool { return q.housekeeps.Load() > before })
	}
}

// TestPersistentCloseWhileHousekeeping closes the queue while its
// housekeeping is about to wait for a sync, and lets it go on only once the
// syncer has run its final round: the housekeeping, which Close joins, must
// not wait for a sync that Close itself does after joining it.
func TestPersistentCloseWhileHousekeeping(t *testing.T) {
	fs := mmap.NewMemFS()
	clock := NewManualClock(time.Unix(1e9, 0))
	opts := oneShard(fs)
	opts.Clock = clock
	q := openPersistent(t, opts)
	for i := range 3000 {
		if err := q.Send(context.Background(), keyedMessage(0, i)); err != nil {
			t.Fatal(err)
		}
	}
	receiveN(t, q, 3000) // segments to delete: the next tick waits for a sync
	inside, release := make(chan struct{}), make(chan struct{})
	q.housekeepHook = func() {
		close(inside)
		<-release
	}
	clock.Advance(q.opts.SyncEvery)
	<-inside
	closed := make(chan error, 1)
	go func() { closed <- q.Close() }()
	waitFor(t, "the syncer's final round", func() bool {
		q.sy.mu.Lock()
		defer q.sy.mu.Unlock()
		return q.sy.next == nil
	})
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second): // a safety net against a deadlock, not a wait for work
		t.Fatal("Close did not return: the housekeeping waits for a sync that only Close would do")
	}
}

// TestPersistentOverflowPolicies: under Persistent, Block, Reject and
// DropOldest bound what waits per shard to RingSize, as they bound the
// ring of an Ephemeral queue; what DropOldest drops is counted and stays
// dropped after a reopen.
func TestPersistentOverflowPolicies(t *testing.T) {
	ctx := context.Background()
	for _, policy := range []Overflow{Block, Reject, DropOldest} {
		t.Run(policy.String(), func(t *testing.T) {
			fs := mmap.NewMemFS()
			opts := oneShard(fs)
			opts.Overflow, opts.RingSize = policy, 16
			q := openPersistent(t, opts)
			for i := range 16 {
				if err := q.Send(ctx, keyedMessage(0, i)); err != nil {
					t.Fatal(err)
				}
			}
			switch policy {
			case Block:
				if err := q.TrySend(keyedMessage(0, 16)); !errors.Is(err, ErrFull) {
					t.Fatalf("TrySend into a full shard: %v; want ErrFull", err)
				}
				sent := make(chan error, 1)
				go func() { sent <- q.Send(ctx, keyedMessage(0, 16)) }()
				waitFor(t, "the Send to wait", func() bool { return q.shards[0].senders.Len() > 0 })
				receiveN(t, q, 1) // room for one
				if err := <-sent; err != nil {
					t.Fatal(err)
				}
			case Reject:
				if err := q.Send(ctx, keyedMessage(0, 16)); !errors.Is(err, ErrFull) {
					t.Fatalf("Send into a full shard: %v; want ErrFull", err)
				}
			case DropOldest:
				for i := 16; i < 20; i++ {
					if err := q.Send(ctx, keyedMessage(0, i)); err != nil {
						t.Fatal(err)
					}
				}
				if st := q.Stats(); st.Dropped != 4 || st.Depth != 16 {
					t.Fatalf("stats %+v: want 4 dropped, 16 waiting", st)
				}
			}
			closeQueue(t, q)
			got, _ := drainIndexes(t, opts)
			var want []int
			switch policy {
			case Block:
				want = seq(1, 17)
			case Reject:
				want = seq(0, 16)
			case DropOldest:
				want = seq(4, 20)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("after a reopen: %v; want %v", got, want)
			}
		})
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// TestPersistentAllocs: a Persistent queue's paths allocate nothing per
// message in steady state: Send and Receive, batches, and ManualAck's
// Ack (the journal's records are stores into a mapping). Reading the log
// allocates the memory receivers keep, once per run of messages read.
func TestPersistentAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts are distorted under -race")
	}
	ctx := context.Background()
	m := Message{Key: []byte("k"), Value: make([]byte, 128)}
	batch := make([]Message, 64)
	for i := range batch {
		batch[i] = m
	}
	dst := make([]Delivery, 64)
	for _, ack := range []AckMode{AutoAck, ManualAck} {
		q := openPersistent(t, Options{Dir: t.TempDir(), Durability: Persistent, Shards: 1, Ack: ack, Clock: NewManualClock(time.Unix(1e9, 0))})
		settle := func(ds []Delivery) error {
			for i := range ds {
				if ds[i].lease != nil {
					if err := ds[i].Ack(); err != nil {
						return err
					}
				}
			}
			return nil
		}
		allocCheck(t, fmt.Sprintf("ack %v, Send+Receive", ack), func() error {
			if err := q.Send(ctx, m); err != nil {
				return err
			}
			d, err := q.Receive(ctx)
			if err != nil {
				return err
			}
			return settle([]Delivery{d})
		})
		allocCheck(t, fmt.Sprintf("ack %v, SendBatch+ReceiveBatch", ack), func() error {
			if err := q.SendBatch(ctx, batch); err != nil {
				return err
			}
			for got := 0; got < len(batch); {
				n, err := q.ReceiveBatch(ctx, dst)
				if err != nil {
					return err
				}
				if err := settle(dst[:n]); err != nil {
					return err
				}
				got += n
			}
			return nil
		})
		closeQueue(t, q)
	}
}
