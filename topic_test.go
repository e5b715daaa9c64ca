package spillway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spillway-io/spillway/shard"
)

func openTopic(t testing.TB, opts Options) *Topic {
	t.Helper()
	tp, err := OpenTopic(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, tp) })
	return tp
}

func subscribe(t testing.TB, tp *Topic, name string) *Subscription {
	t.Helper()
	s, err := tp.Subscribe(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// spillDirs lists the spill directories left in dir.
func spillDirs(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), spillDirPrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestTopicFanOutStress: three subscriptions with two receivers each, one
// subscription slow (it starts reading only once half of the messages are
// out, and then in small batches), many keys and a ring of 16. Every
// subscription receives every message exactly once, each receiver in order
// per producer and key; the slow one went through the spill, and the spill
// is gone once it caught up.
func TestTopicFanOutStress(t *testing.T) {
	rng := newRand(t)
	for _, c := range []Compression{Zstd, S2} {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			const producers, keys = 2, 40
			perProducer := 4000 * *stressScale
			if testing.Short() {
				perProducer = 1000
			}
			total := producers * perProducer
			dir := t.TempDir()
			tp := openTopic(t, Options{Dir: dir, Shards: 4, RingSize: 16, Compression: c})
			ctx := context.Background()
			names := []string{"fast-a", "fast-b", "slow"}
			subs := map[string][2]*Subscription{}
			for _, n := range names {
				subs[n] = [2]*Subscription{subscribe(t, tp, n), subscribe(t, tp, n)}
			}
			var published atomic.Int64
			half := make(chan struct{})
			var pwg sync.WaitGroup
			for p := range producers {
				seed := rng.Uint64()
				pwg.Add(1)
				go func() {
					defer pwg.Done()
					rng := newRandFrom(seed)
					for i := 0; i < perProducer; {
						n := 1
						var err error
						if rng.IntN(4) == 0 {
							n = min(1+rng.IntN(20), perProducer-i)
							ms := make([]Message, n)
							for j := range ms {
								ms[j] = msg(p, i+j, rng.IntN(keys))
							}
							err = tp.PublishBatch(ctx, ms)
						} else {
							err = tp.Publish(ctx, msg(p, i, rng.IntN(keys)))
						}
						if err != nil {
							t.Error(err)
							return
						}
						i += n
						// Exactly one Add crosses the half: its own result
						// says so (a second load could see another
						// producer's Add too, and then nobody closes half).
						if v := published.Add(int64(n)); v >= int64(total/2) && v-int64(n) < int64(total/2) {
							close(half)
						}
					}
				}()
			}
			type result struct {
				name string
				seen [][]bool
				got  int
				mu   sync.Mutex
			}
			results := map[string]*result{}
			var rwg sync.WaitGroup
			for _, name := range names {
				res := &result{name: name, seen: make([][]bool, producers)}
				for p := range res.seen {
					res.seen[p] = make([]bool, perProducer)
				}
				results[name] = res
				for ri, sub := range subs[name] {
					rwg.Add(1)
					go func() {
						defer rwg.Done()
						batch := 16
						if name == "slow" {
							<-half
							batch = 2
						}
						last := map[[2]int]int{}
						dst := make([]Delivery, batch)
						for {
							res.mu.Lock()
							done := res.got == total
							res.mu.Unlock()
							if done {
								return
							}
							rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
							n, err := sub.ReceiveBatch(rctx, dst)
							cancel()
							if errors.Is(err, context.DeadlineExceeded) {
								continue
							}
							if err != nil {
								t.Error(err)
								return
							}
							res.mu.Lock()
							for _, d := range dst[:n] {
								p, s, k := unmsg(t, d)
								if res.seen[p][s] {
									t.Errorf("%s: message %d/%d delivered twice", name, p, s)
								}
								res.seen[p][s] = true
								if prev, ok := last[[2]int{p, k}]; ok && s < prev {
									t.Errorf("%s receiver %d: producer %d's key %d out of order: %d after %d", name, ri, p, k, s, prev)
								}
								last[[2]int{p, k}] = s
							}
							res.got += n
							res.mu.Unlock()
							clear(dst)
						}
					}()
				}
			}
			pwg.Wait()
			doneC := make(chan struct{})
			go func() { rwg.Wait(); close(doneC) }()
			select {
			case <-doneC:
			case <-watchdog(20 * time.Second):
				t.Fatalf("stuck: topic %+v", tp.Stats())
			}
			if t.Failed() {
				return
			}
			var evictions uint64
			for _, s := range tp.shards {
				evictions += s.evictions.Load()
			}
			st := tp.Stats()
			t.Logf("topic %+v, %d moves to the spill", st, evictions)
			for _, name := range names {
				sst := subs[name][0].Stats()
				if sst.Delivered != uint64(total) || sst.Depth != 0 || sst.Dropped != 0 {
					t.Fatalf("%s: stats do not add up: %+v", name, sst)
				}
			}
			if st.Sent != uint64(total) || st.Spilled == 0 || evictions == 0 {
				t.Fatalf("the slow subscription did not spill: %+v, %d moves", st, evictions)
			}
			// The last reader of each spill removed it when it rejoined the
			// ring, and a spill is written once: never more than published.
			if st.DiskBytes != 0 || len(spillDirs(t, dir)) != 0 {
				t.Fatalf("spill left behind: %d bytes, %v", st.DiskBytes, spillDirs(t, dir))
			}
			if st.Spilled > st.Sent {
				t.Fatalf("spilled %d messages of %d published: written more than once", st.Spilled, st.Sent)
			}
		})
	}
}

// TestTopicSubscribeUnsubscribeWhilePublishing: a subscription created while
// a publisher runs gets everything published after Subscribe returned, in
// order; deleting a subscription nobody reads lets a Block publisher go on.
func TestTopicSubscribeUnsubscribeWhilePublishing(t *testing.T) {
	tp := openTopic(t, Options{Shards: 1, RingSize: 8, Overflow: Block})
	ctx := context.Background()
	reader := subscribe(t, tp, "reader")
	var published atomic.Int64
	stop := make(chan struct{})
	pubDone := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				pubDone <- nil
				return
			default:
			}
			if err := tp.Publish(ctx, Message{Value: fmt.Appendf(nil, "%d", i)}); err != nil {
				pubDone <- err
				return
			}
			published.Store(int64(i + 1))
		}
	}()
	recv := func(s *Subscription) int {
		d, err := s.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var v int
		if _, err := fmt.Sscan(string(d.Value), &v); err != nil {
			t.Fatalf("message %q: %v", d.Value, err)
		}
		return v
	}
	// "reader" is read all along, in order.
	rctx, stopReader := context.WithCancel(ctx)
	var readCount atomic.Int64
	readerDone := make(chan error, 1)
	go func() {
		for next := 0; ; next++ {
			d, err := reader.Receive(rctx)
			if err != nil {
				readerDone <- err
				return
			}
			if want := fmt.Sprint(next); string(d.Value) != want {
				readerDone <- fmt.Errorf("reader got %s, want %s", d.Value, want)
				return
			}
			readCount.Add(1)
		}
	}()
	waitFor(t, "the publisher to get going", func() bool { return published.Load() > 100 })
	late := subscribe(t, tp, "late")
	after := int(published.Load())
	first := -1
	for i := 0; i < 200; i++ {
		v := recv(late)
		if first < 0 {
			first = v
			// Message after may have been in flight during Subscribe; the
			// publish of after+1 began once Subscribe had returned.
			if first > after+1 {
				t.Fatalf("late subscription starts at %d, but %d was published after it was created", first, after+1)
			}
		} else if v != first+i {
			t.Fatalf("late subscription got %d after %d", v, first+i-1)
		}
	}
	// Nobody reads "late" any more: the Block publisher waits for it until
	// it is deleted, then goes on.
	if err := tp.Unsubscribe("late"); err != nil {
		t.Fatal(err)
	}
	if _, err := late.Receive(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Receive on a deleted subscription: %v", err)
	}
	base := readCount.Load()
	waitFor(t, "the publisher to go on", func() bool { return readCount.Load() > base+500 })
	close(stop)
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	stopReader()
	if err := <-readerDone; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if err := tp.Unsubscribe("late"); err == nil {
		t.Fatal("Unsubscribe twice succeeded")
	}
}

// TestTopicCloseWakesBlocked: a publisher waiting for a full subscription
// and receivers waiting on an empty one all wake with ErrClosed.
func TestTopicCloseWakesBlocked(t *testing.T) {
	tp, err := OpenTopic(Options{Shards: 1, RingSize: 4, Overflow: Block})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	full := subscribe(t, tp, "full")
	empty := subscribe(t, tp, "other")
	_ = full
	for i := range 4 {
		if err := tp.Publish(ctx, Message{Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	// Drain "other" so its receivers block while "full" blocks the publisher.
	for range 4 {
		if _, err := empty.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 3)
	go func() { errs <- tp.Publish(ctx, Message{Value: []byte("blocked")}) }()
	for range 2 {
		go func() {
			_, err := empty.Receive(ctx)
			errs <- err
		}()
	}
	waitFor(t, "blocked callers", func() bool { return empty.sub.receivers.Pending() && tp.shards[0].room.Pending() })
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked call returned %v, want ErrClosed", err)
		}
	}
	if err := tp.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if err := tp.Publish(ctx, Message{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if _, err := tp.Subscribe("new"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	if st := full.Stats(); st.Dropped != 4 || st.Depth != 0 {
		t.Fatalf("closing with 4 unread: %+v", st)
	}
}

// TestTopicOverflowWithoutDir: DropOldest makes the slowest subscription
// lose its oldest messages, counted; Reject fails the publish.
func TestTopicOverflowWithoutDir(t *testing.T) {
	ctx := context.Background()
	t.Run("drop-oldest", func(t *testing.T) {
		tp := openTopic(t, Options{Shards: 1, RingSize: 8, Overflow: DropOldest})
		slow := subscribe(t, tp, "slow")
		fast := subscribe(t, tp, "fast")
		for i := range 100 {
			if err := tp.Publish(ctx, Message{Value: []byte{byte(i)}}); err != nil {
				t.Fatal(err)
			}
			if d, err := fast.Receive(ctx); err != nil || d.Value[0] != byte(i) {
				t.Fatalf("fast got %v, %v; want %d", d.Value, err, i)
			}
		}
		dst := make([]Delivery, 16)
		n, err := slow.ReceiveBatch(ctx, dst)
		if err != nil || n != 8 || dst[0].Value[0] != 92 || dst[7].Value[0] != 99 {
			t.Fatalf("slow got %d messages from %v, %v", n, dst[0].Value, err)
		}
		if st := slow.Stats(); st.Dropped != 92 || st.Delivered != 8 || st.Depth != 0 {
			t.Fatalf("slow: %+v", st)
		}
		if st := fast.Stats(); st.Dropped != 0 || st.Delivered != 100 {
			t.Fatalf("fast: %+v", st)
		}
	})
	t.Run("drop-oldest-after-partial-receive", func(t *testing.T) {
		// The receiver took 32 out of the ring and was handed one: the 31
		// others are the oldest, dropped first, one per message that does
		// not fit, and the reader's next ones move in behind them.
		tp := openTopic(t, Options{Shards: 1, RingSize: 64, Overflow: DropOldest})
		s := subscribe(t, tp, "s")
		publish := func(from, to int) {
			for i := from; i < to; i++ {
				if err := tp.Publish(ctx, Message{Value: []byte{byte(i)}}); err != nil {
					t.Fatal(err)
				}
			}
		}
		recv := func(want int) {
			t.Helper()
			d, err := s.Receive(ctx)
			if err != nil || d.Value[0] != byte(want) || d.Offset != uint64(want) {
				t.Fatalf("got %v at offset %d, %v; want %d", d.Value, d.Offset, err, want)
			}
		}
		publish(0, 64)
		recv(0)
		publish(64, 136) // 64-95 fit; 96-135 drop 1-40
		for i := 41; i < 136; i++ {
			recv(i)
		}
		if st := s.Stats(); st.Dropped != 40 || st.Delivered != 96 || st.Depth != 0 {
			t.Fatalf("stats %+v, want Dropped 40, Delivered 96, Depth 0", st)
		}
	})
	t.Run("reject", func(t *testing.T) {
		tp := openTopic(t, Options{Shards: 1, RingSize: 4, Overflow: Reject})
		subscribe(t, tp, "slow")
		for i := range 4 {
			if err := tp.Publish(ctx, Message{Value: []byte{byte(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := tp.Publish(ctx, Message{}); !errors.Is(err, ErrFull) {
			t.Fatalf("publish to a full topic: %v, want ErrFull", err)
		}
		if err := tp.Publish(ctx, Message{Value: make([]byte, 2<<20)}); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("oversized publish: %v, want ErrTooLarge", err)
		}
	})
}

// TestTopicManualAck: a subscription's unacked delivery comes back after
// its lease, with Attempt 2 and the same offset, and after MaxAttempts it
// lands in the dead-letter queue; the other subscription is not affected.
func TestTopicManualAck(t *testing.T) {
	clock := NewManualClock(time.Unix(1000, 0))
	dlq := openQueue(t, Options{})
	tp := openTopic(t, Options{Shards: 1, Ack: ManualAck, AckTimeout: time.Second, MaxAttempts: 2, DeadLetter: dlq, Clock: clock})
	ctx := context.Background()
	flaky := subscribe(t, tp, "flaky")
	good := subscribe(t, tp, "good")
	if err := tp.Publish(ctx, Message{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	d, err := good.Receive(ctx)
	if err != nil || d.Ack() != nil {
		t.Fatalf("good: %v", err)
	}
	d1, err := flaky.Receive(ctx)
	if err != nil || d1.Attempt != 1 {
		t.Fatalf("flaky first delivery: %+v, %v", d1, err)
	}
	clock.Advance(time.Second + 2*tp.clock.tick) // the lease runs out
	d2, err := flaky.Receive(ctx)
	if err != nil || d2.Attempt != 2 || d2.Offset != d1.Offset || string(d2.Key) != "k" {
		t.Fatalf("redelivery: %+v, %v", d2, err)
	}
	if err := d1.Ack(); !errors.Is(err, ErrLeaseExpired) {
		t.Fatalf("ack of an expired lease: %v", err)
	}
	if err := d2.Nack(0); err != nil {
		t.Fatal(err)
	}
	dead, err := dlq.Receive(ctx)
	if err != nil || string(dead.Value) != "v" {
		t.Fatalf("dead letter: %+v, %v", dead, err)
	}
	if st := flaky.Stats(); st.Redelivered != 1 || st.DeadLettered != 1 || st.InFlight != 0 || st.Depth != 0 {
		t.Fatalf("flaky: %+v", st)
	}
	if st := good.Stats(); st.Acked != 1 || st.Redelivered != 0 || st.InFlight != 0 {
		t.Fatalf("good: %+v", st)
	}
}

// TestTopicUnsubscribeSpilled: deleting the subscription that holds a spill
// open removes the spill's files at once, while the others go on; a topic
// closed while subscriptions read a spill removes it too.
func TestTopicUnsubscribeSpilled(t *testing.T) {
	dir := t.TempDir()
	tp, err := OpenTopic(Options{Dir: dir, Shards: 2, RingSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fast := subscribe(t, tp, "fast")
	subscribe(t, tp, "stuck") // never read: it moves to the spill
	const n = 2000
	got := make(chan int, 1)
	go func() {
		dst := make([]Delivery, 32)
		total := 0
		for total < 2*n {
			k, err := fast.ReceiveBatch(ctx, dst)
			if err != nil {
				t.Error(err)
				break
			}
			total += k
		}
		got <- total
	}()
	publish := func(from int) {
		for i := from; i < from+n; i++ {
			if err := tp.Publish(ctx, Message{Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, "%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(0)
	if st := tp.Stats(); st.Spilled == 0 || len(spillDirs(t, dir)) == 0 {
		t.Fatalf("the stuck subscription did not spill: %+v, %v", st, spillDirs(t, dir))
	}
	if err := tp.Unsubscribe("stuck"); err != nil {
		t.Fatal(err)
	}
	if st := tp.Stats(); st.DiskBytes != 0 || len(spillDirs(t, dir)) != 0 {
		t.Fatalf("spill left after its only reader was deleted: %+v, %v", st, spillDirs(t, dir))
	}
	// A new stuck subscription spills again; Close removes that spill.
	subscribe(t, tp, "stuck-again")
	publish(n)
	if total := <-got; total != 2*n {
		t.Fatalf("fast got %d of %d", total, 2*n)
	}
	if len(spillDirs(t, dir)) == 0 {
		t.Fatal("the second stuck subscription did not spill")
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if left := spillDirs(t, dir); len(left) != 0 {
		t.Fatalf("Close left %v", left)
	}
}

// TestTopicLaggingShareDecompression: two subscriptions that both fell
// behind read the same spill; the second reads batches the first one
// decompressed from the shared cache, and both get everything, in order.
func TestTopicLaggingShareDecompression(t *testing.T) {
	tp := openTopic(t, Options{Dir: t.TempDir(), Shards: 1, RingSize: 16})
	ctx := context.Background()
	a, b := subscribe(t, tp, "a"), subscribe(t, tp, "b")
	const n = 5000
	for i := range n {
		if err := tp.Publish(ctx, Message{Value: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if tp.Stats().Spilled == 0 {
		t.Fatal("nothing spilled")
	}
	for _, s := range []*Subscription{a, b} {
		dst := make([]Delivery, 100)
		for next := 0; next < n; {
			k, err := s.ReceiveBatch(ctx, dst)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range dst[:k] {
				if string(d.Value) != fmt.Sprint(next) {
					t.Fatalf("%s got %s, want %d", s.Name(), d.Value, next)
				}
				next++
			}
		}
	}
	if st := tp.cache.Stats(); st.Hits == 0 {
		t.Fatalf("the second subscription decompressed everything again: %+v", st)
	}
	if st := tp.Stats(); st.DiskBytes != 0 {
		t.Fatalf("spill left after both caught up: %+v", st)
	}
}

// fillQuota publishes msg(0), msg(1), ... until a Publish waits (here until
// a short deadline) while the spill holds at least full bytes: the quota is
// reached (with several shards, as soon as no shard can start a segment). A
// deadline that passes with less (a slow machine) only retries. It returns
// how many messages were published.
func fillQuota(t *testing.T, tp *Topic, full int64, msg func(i int) Message) int {
	t.Helper()
	published, waits := 0, 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err := tp.Publish(ctx, msg(published))
		cancel()
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			if st := tp.Stats(); st.DiskBytes >= full {
				return published
			} else if waits++; waits > 500 {
				t.Fatalf("Publish keeps waiting with the quota not full: %+v", st)
			}
		case err != nil:
			t.Fatal(err)
		default:
			published++
		}
		if published > 100000 {
			t.Fatalf("published %d messages, and the spill holds less than %d bytes", published, full)
		}
	}
}

// numberedMessage is a keyless message with a numbered value.
func numberedMessage(i int) Message { return Message{Value: numbered(i)} }

// numbered returns a 200-byte value that starts with i in decimal.
func numbered(i int) []byte {
	v := make([]byte, 200)
	copy(v, fmt.Sprint(i))
	return v
}

// readNumbered receives n messages from s with ctx and checks that they are
// numbered 0 to n-1, in order.
func readNumbered(ctx context.Context, s *Subscription, n int) error {
	for want := range n {
		d, err := s.Receive(ctx)
		if err != nil {
			return fmt.Errorf("%s: message %d of %d: %w", s.Name(), want, n, err)
		}
		var got int
		if _, err := fmt.Sscan(string(d.Value[:8]), &got); err != nil {
			return fmt.Errorf("%s: message %q: %w", s.Name(), d.Value[:8], err)
		}
		if got != want {
			return fmt.Errorf("%s: message %d, want %d", s.Name(), got, want)
		}
	}
	return nil
}

// stalledReader starts reading the n numbered messages of s and returns
// once the reader waits at the end of the spill, short of n: there the
// spill's writer holds the rest for want of room. The reader has made its
// last look (park.Waiters.Settled): only a wake-up can make it look again,
// so whatever the test does next must wake it. (Stats wakes a receiver
// that may have skipped a locked shard: the test must not call it before
// whatever it means to wake the reader.) The channel gets the reader's
// result.
func stalledReader(t *testing.T, s *Subscription, n int) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- readNumbered(context.Background(), s, n) }()
	waitFor(t, s.Name()+" to wait at the spill's end", s.sub.receivers.Pending)
	if got := s.Stats().Delivered; got == uint64(n) {
		t.Fatalf("%s read all %d messages: the quota never held the writer back", s.Name(), got)
	}
	waitFor(t, s.Name()+" to wait for a wake-up alone", func() bool {
		return s.sub.receivers.Pending() && s.sub.receivers.Settled() == 1
	})
	return done
}

// awaitReader waits for a stalled reader to get everything.
func awaitReader(t *testing.T, done <-chan error, s *Subscription) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still waits: %+v", s.Name(), s.Stats())
	}
}

// TestTopicDiskQuota: when the spill reaches MaxDiskBytes, Publish waits
// (here until its context ends) instead of dropping anything; deleting the
// subscription that holds the spill lets it go on.
func TestTopicDiskQuota(t *testing.T) {
	opts := Options{Dir: t.TempDir(), Shards: 1, RingSize: 16, Compression: None, MaxMessageBytes: 1024, MaxDiskBytes: 1 << 20}
	tp := openTopic(t, opts)
	subscribe(t, tp, "stuck")
	ctx := context.Background()
	value := make([]byte, 200)
	fillQuota(t, tp, opts.MaxDiskBytes, func(int) Message { return Message{Value: value} })
	st := tp.Stats()
	if st.DiskBytes > opts.MaxDiskBytes || st.Dropped != 0 {
		t.Fatalf("after the quota filled: %+v", st)
	}
	// A publisher waiting for room goes on once the spill's only reader
	// is deleted.
	blocked := make(chan error, 1)
	go func() { blocked <- tp.Publish(ctx, Message{Value: value}) }()
	waitFor(t, "the publisher to wait", tp.shards[0].room.Pending)
	if err := tp.Unsubscribe("stuck"); err != nil {
		t.Fatal(err)
	}
	if err := <-blocked; err != nil {
		t.Fatalf("publish after the spill's only reader was deleted: %v", err)
	}
	if st := tp.Stats(); st.DiskBytes != 0 {
		t.Fatalf("spill left: %+v", st)
	}
}

// TestTopicDiskQuotaDrains: after the quota filled, the spill's reader
// alone (nobody publishes any more) receives every message Publish
// accepted, including those the writer still held for want of room. (It
// used to stop short: the retention pin, which publishers move a ring at a
// time, kept the space the writer needed.)
func TestTopicDiskQuotaDrains(t *testing.T) {
	opts := Options{Dir: t.TempDir(), Shards: 1, RingSize: 16, Compression: None, MaxMessageBytes: 1024, MaxDiskBytes: 1 << 20}
	tp := openTopic(t, opts)
	s := subscribe(t, tp, "late")
	published := fillQuota(t, tp, opts.MaxDiskBytes, numberedMessage)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := readNumbered(ctx, s, published); err != nil {
		t.Fatalf("%v; stats %+v", err, tp.Stats())
	}
	if st := tp.Stats(); st.Dropped != 0 || st.DiskBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestTopicDiskQuotaWakesOthers: two subscriptions share a spill that
// filled the quota, and nobody publishes any more. The first reads as far
// as the log goes and waits at its end, where the writer's held batches
// cannot go for want of room; the second then reads its backlog, which
// frees segments as it goes. That must retry the held batches and wake the
// first (it used to wait until its context ended, or for a publisher).
// (The second reads all of it: the writer holds up to two batches per
// compressing worker, a worker per P, and with GOMAXPROCS=8 that was more
// than reading half the backlog frees. So the second's own reads retry the
// held batches, at the latest at the end of what the log holds; what this
// test guards is that the flush which appends them wakes the first: it
// fails without the flush's wake-up.)
func TestTopicDiskQuotaWakesOthers(t *testing.T) {
	opts := Options{Dir: t.TempDir(), Shards: 1, RingSize: 16, Compression: None, MaxMessageBytes: 1024, MaxDiskBytes: 1 << 20}
	tp := openTopic(t, opts)
	a, b := subscribe(t, tp, "a"), subscribe(t, tp, "b")
	published := fillQuota(t, tp, opts.MaxDiskBytes, numberedMessage)
	done := stalledReader(t, a, published)
	if err := readNumbered(context.Background(), b, published); err != nil {
		t.Fatal(err)
	}
	awaitReader(t, done, a)
}

// TestTopicUnsubscribeFreesQuota: one subscription waits at the end of a
// spill whose writer holds batches for want of room, which another
// subscription's backlog takes up. Deleting that subscription frees the
// room: the held batches must be appended and the waiting subscription
// woken, with nobody publishing (it used to wait for good). Nobody else
// reads, and the waiting receiver made its last look before the
// Unsubscribe (stalledReader), so only Unsubscribe's retry of the held
// batches (Topic.retrySpills) can wake it: the test fails without it.
func TestTopicUnsubscribeFreesQuota(t *testing.T) {
	opts := Options{Dir: t.TempDir(), Shards: 1, RingSize: 16, Compression: None, MaxMessageBytes: 1024, MaxDiskBytes: 1 << 20}
	tp := openTopic(t, opts)
	a := subscribe(t, tp, "a")
	subscribe(t, tp, "idle")
	published := fillQuota(t, tp, opts.MaxDiskBytes, numberedMessage)
	done := stalledReader(t, a, published)
	if err := tp.Unsubscribe("idle"); err != nil {
		t.Fatal(err)
	}
	awaitReader(t, done, a)
	if st := tp.Stats(); st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestTopicQuotaDrainsManyShards: three subscriptions, four shards, a full
// quota, nobody publishing: reading concurrently at different paces, every
// subscription gets everything (each one's reads free the room the others'
// held batches wait for).
func TestTopicQuotaDrainsManyShards(t *testing.T) {
	for round := range 3 {
		opts := Options{Dir: t.TempDir(), Shards: 4, RingSize: 16, Compression: None, MaxMessageBytes: 1024, MaxDiskBytes: 4 << 20}
		tp := openTopic(t, opts)
		subs := []*Subscription{subscribe(t, tp, "a"), subscribe(t, tp, "b"), subscribe(t, tp, "c")}
		published := fillQuota(t, tp, opts.MaxDiskBytes-tp.dir.segSize+1, func(i int) Message {
			return Message{Key: fmt.Append(nil, i%7), Value: numbered(i)}
		})
		errs := make(chan error, len(subs))
		for i, s := range subs {
			go func() {
				for n := range published {
					if _, err := s.Receive(context.Background()); err != nil {
						errs <- fmt.Errorf("%s: message %d of %d: %w", s.Name(), n, published, err)
						return
					}
					if i > 0 && n%(100*i) == 0 { // b and c fall behind now and then
						for range 1000 * i {
							runtime.Gosched()
						}
					}
				}
				errs <- nil
			}()
		}
		deadline := time.After(20 * time.Second)
		for range subs {
			select {
			case err := <-errs:
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			case <-deadline:
				t.Fatalf("round %d: a subscription still waits: %+v", round, tp.Stats())
			}
		}
		closeOK(t, tp)
	}
}

// TestTopicQuotaFlow: a subscription that stops reading for a while makes
// the spill fill its quota; the publisher (one key, so one shard's order)
// then waits instead of dropping, and goes on as the subscription catches
// up through the spill. Both subscriptions get everything in order, and the
// spill never holds more than the quota.
func TestTopicQuotaFlow(t *testing.T) {
	for _, shards := range []int{1, 2} {
		opts := Options{Dir: t.TempDir(), Shards: shards, RingSize: 16, Compression: None, MaxMessageBytes: 1024, MaxDiskBytes: 1 << 20 * int64(shards)}
		tp := openTopic(t, opts)
		subs := []*Subscription{subscribe(t, tp, "a"), subscribe(t, tp, "b")}
		const n = 30000
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pubErr := make(chan error, 1)
		go func() {
			for i := range n {
				if err := tp.Publish(ctx, Message{Key: []byte("k"), Value: numbered(i)}); err != nil {
					pubErr <- fmt.Errorf("publish %d: %w; %+v", i, err, tp.Stats())
					return
				}
			}
			pubErr <- nil
		}()
		errs := make(chan error, 2)
		aHalf := make(chan struct{})
		for i, s := range subs {
			go func() {
				if i == 1 {
					<-aHalf
				}
				for want := range n {
					if i == 0 && want == 3000 {
						close(aHalf) // b starts reading: far behind, in the spill
					}
					// (Every 8th: Stats, which snapshots the latency
					// histograms, is for monitoring, not per message.)
					if want%8 == 0 {
						if st := tp.Stats(); st.DiskBytes > opts.MaxDiskBytes {
							errs <- fmt.Errorf("the spill holds %d bytes, quota %d", st.DiskBytes, opts.MaxDiskBytes)
							return
						}
					}
					d, err := s.Receive(ctx)
					if err != nil {
						errs <- fmt.Errorf("%s: %d: %w; %+v / %+v", s.Name(), want, err, s.Stats(), tp.Stats())
						return
					}
					var got int
					if _, err := fmt.Sscan(string(d.Value[:8]), &got); err != nil {
						errs <- fmt.Errorf("%s: message %q: %w", s.Name(), d.Value[:8], err)
						return
					}
					if got != want {
						errs <- fmt.Errorf("%s: got %d want %d", s.Name(), got, want)
						return
					}
					if i == 1 && want%50 == 0 { // b stays slower than a
						for range 2000 {
							runtime.Gosched()
						}
					}
				}
				errs <- nil
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if err := <-pubErr; err != nil {
			t.Fatal(err)
		}
		// A subscription that caught up with the spill moved back to the
		// ring at its last receive, unless the publisher held the shard at
		// that moment (receivers never wait for it): then its next call
		// does, and the spill goes with its last reader.
		for _, s := range subs {
			if n, err := s.ReceiveBatch(canceled, make([]Delivery, 1)); n != 0 || !errors.Is(err, context.Canceled) {
				t.Fatalf("%s after everything: %d, %v", s.Name(), n, err)
			}
		}
		if st := tp.Stats(); st.Spilled == 0 || st.Dropped != 0 || st.DiskBytes != 0 {
			t.Fatalf("shards %d: %+v", shards, st)
		}
	}
}

// TestTopicManualAckFromSpill: deliveries read back from a spill are leased
// like the others; the ones not acked come back after their lease, intact.
func TestTopicManualAckFromSpill(t *testing.T) {
	clock := NewManualClock(time.Unix(1000, 0))
	tp := openTopic(t, Options{Dir: t.TempDir(), Shards: 1, RingSize: 16, Ack: ManualAck, AckTimeout: time.Second, Clock: clock})
	ctx := context.Background()
	s := subscribe(t, tp, "late")
	const n = 500
	for i := range n {
		if err := tp.Publish(ctx, Message{Key: []byte("k"), Value: fmt.Appendf(nil, "%d", i), Headers: []Header{{Key: "i", Value: fmt.Appendf(nil, "%d", i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if tp.Stats().Spilled == 0 {
		t.Fatal("nothing spilled")
	}
	dst := make([]Delivery, 64)
	kept := map[string]bool{}
	for got := 0; got < n; {
		k, err := s.ReceiveBatch(ctx, dst)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dst[:k] {
			if string(d.Value) != fmt.Sprint(got) || string(d.Headers[0].Value) != string(d.Value) {
				t.Fatalf("delivery %d: %q %+v", got, d.Value, d.Headers)
			}
			if got%10 == 0 {
				kept[string(d.Value)] = true // not acked: comes back
			} else if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
			got++
		}
	}
	clock.Advance(time.Second + 2*tp.clock.tick)
	for len(kept) > 0 {
		d, err := s.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !kept[string(d.Value)] || d.Attempt != 2 || string(d.Key) != "k" || string(d.Headers[0].Value) != string(d.Value) {
			t.Fatalf("redelivery %q attempt %d headers %+v", d.Value, d.Attempt, d.Headers)
		}
		delete(kept, string(d.Value))
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Acked != n || st.InFlight != 0 || st.Redelivered != n/10 || st.Depth != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// TestTopicPublishContextEnds: a publisher waiting for room (Block) gives
// up when its context ends, without publishing, and the topic goes on.
func TestTopicPublishContextEnds(t *testing.T) {
	tp := openTopic(t, Options{Shards: 1, RingSize: 4, Overflow: Block})
	s := subscribe(t, tp, "slow")
	ctx := context.Background()
	for i := range 4 {
		if err := tp.Publish(ctx, Message{Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- tp.Publish(wctx, Message{Value: []byte("late")}) }()
	waitFor(t, "the publisher to wait", tp.shards[0].room.Pending)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish whose context ended: %v", err)
	}
	for i := range 4 {
		if d, err := s.Receive(ctx); err != nil || d.Value[0] != byte(i) {
			t.Fatalf("got %v, %v; want %d", d.Value, err, i)
		}
	}
	if err := tp.Publish(ctx, Message{Value: []byte{9}}); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Receive(ctx); err != nil || d.Value[0] != 9 {
		t.Fatalf("after the cancelled publish got %v, %v", d.Value, err)
	}
}

// TestSubscriptionClose: closing one receiver of a subscription wakes its
// blocked Receive with ErrClosed and fails its later calls, while the
// subscription, its backlog and its other receivers go on.
func TestSubscriptionClose(t *testing.T) {
	tp := openTopic(t, Options{Shards: 2, RingSize: 16})
	ctx := context.Background()
	a := subscribe(t, tp, "s")
	b := subscribe(t, tp, "s") // a second receiver of the same subscription
	blocked := make(chan error, 1)
	go func() {
		_, err := a.Receive(ctx)
		blocked <- err
	}()
	waitFor(t, "the receiver to park", func() bool { return a.sub.receivers.Pending() })
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-blocked:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked Receive returned %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake the blocked Receive")
	}
	if err := a.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	var dst [4]Delivery
	if _, err := a.ReceiveBatch(ctx, dst[:]); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReceiveBatch after Close: %v, want ErrClosed", err)
	}

	// The other receiver gets everything; once it too is closed the
	// subscription keeps its backlog for the next receiver.
	for i := range 8 {
		if err := tp.Publish(ctx, Message{Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for range 8 {
		if _, err := b.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := tp.Publish(ctx, Message{Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if st := b.Stats(); st.Depth != 5 || st.Delivered != 8 {
		t.Fatalf("backlog with every receiver closed: %+v, want Depth 5, Delivered 8", st)
	}
	c := subscribe(t, tp, "s")
	got := 0
	for got < 5 {
		k, err := c.ReceiveBatch(ctx, dst[:])
		if err != nil {
			t.Fatal(err)
		}
		got += k
	}
	if st := c.Stats(); st.Depth != 0 || st.Delivered != 13 {
		t.Fatalf("after the new receiver drained it: %+v", st)
	}
}

// TestSubscriptionCaughtUp: a receiver whose last ReceiveBatch emptied the
// subscription looks again only after a look interval, but still gets what
// is published next, in order, whether it is there already or comes while
// it waits; a full batch keeps it taking at once.
func TestSubscriptionCaughtUp(t *testing.T) {
	tp := openTopic(t, Options{Shards: 1, RingSize: 64})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := subscribe(t, tp, "s")
	var dst [8]Delivery
	next := 0
	publish := func(n int) {
		for range n {
			if err := tp.Publish(ctx, Message{Value: []byte{byte(next)}}); err != nil {
				t.Fatal(err)
			}
			next++
		}
	}
	got := 0
	receive := func(want int) {
		t.Helper()
		n, err := r.ReceiveBatch(ctx, dst[:])
		if err != nil || n != want {
			t.Fatalf("ReceiveBatch = %d, %v; want %d", n, err, want)
		}
		for _, d := range dst[:n] {
			if d.Value[0] != byte(got) {
				t.Fatalf("got message %d, want %d", d.Value[0], got)
			}
			got++
		}
		if caughtUp := n < len(dst); r.caughtUp.Load() != caughtUp {
			t.Fatalf("after taking %d of %d: caughtUp %v", n, len(dst), !caughtUp)
		}
	}
	publish(3)
	receive(3) // fewer than asked for: caught up
	publish(2)
	receive(2) // there already
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	go func() { // comes while it waits
		n, err := r.ReceiveBatch(ctx, dst[:])
		res <- result{n, err}
	}()
	waitFor(t, "the receiver to park", func() bool { return r.sub.receivers.Pending() })
	publish(1)
	if x := <-res; x.err != nil || x.n != 1 || dst[0].Value[0] != byte(got) {
		t.Fatalf("ReceiveBatch while waiting = %d, %v", x.n, x.err)
	}
	got++
	publish(10)
	receive(8) // a full batch: not caught up
	receive(2)
}

// TestTopicKeylessSpread: keyless messages from one publisher go to one
// shard stickyRun at a time, then to the next, so every shard gets its
// share, one at a time or in batches; a keyed message goes to its key's
// shard whatever the keyless shard is.
func TestTopicKeylessSpread(t *testing.T) {
	const shards = 4
	tp := openTopic(t, Options{Shards: shards, RingSize: 1024})
	subscribe(t, tp, "s")
	ctx := context.Background()
	tails := func() (out [shards]uint64) {
		for i, s := range tp.shards {
			out[i] = s.ring.Tail()
		}
		return out
	}
	for i := range shards * stickyRun {
		if err := tp.Publish(ctx, Message{Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := tails(), [shards]uint64{stickyRun, stickyRun, stickyRun, stickyRun}; got != want {
		t.Fatalf("one at a time: shards hold %v, want %v", got, want)
	}
	batch := make([]Message, 3*stickyRun)
	for i := range batch {
		batch[i] = Message{Value: []byte{byte(i)}}
	}
	if err := tp.PublishBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if got, want := tails(), [shards]uint64{2 * stickyRun, 2 * stickyRun, 2 * stickyRun, stickyRun}; got != want {
		t.Fatalf("after a batch of %d: shards hold %v, want %v", len(batch), got, want)
	}
	before := tails()
	key := []byte("k")
	if err := tp.Publish(ctx, Message{Key: key, Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	after := tails()
	for i := range after {
		want := before[i]
		if i == shard.Of(key, shards) {
			want++
		}
		if after[i] != want {
			t.Fatalf("a keyed message: shard %d went from %d to %d", i, before[i], after[i])
		}
	}
}

// TestSubscriptionStatsDoesNotStrandReceivers is
// TestStatsDoesNotStrandReceivers for a subscription: Stats holds each
// subShard's receiver lock for a moment, and must wake a receiver that
// skipped it meanwhile.
func TestSubscriptionStatsDoesNotStrandReceivers(t *testing.T) {
	tp := openTopic(t, Options{Shards: 1})
	s := subscribe(t, tp, "a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan error, 1)
	go func() {
		_, err := s.Receive(ctx)
		got <- err
	}()
	waiting := func() bool { return s.sub.receivers.Len() == 1 }
	waitFor(t, "the receiver to wait", waiting)
	tp.statsHook = func() {
		tp.statsHook = nil
		if err := tp.Publish(ctx, Message{Value: []byte("x")}); err != nil {
			t.Error(err)
		}
		// The publish woke the receiver; the subShard is locked, so it
		// waits again.
		waitFor(t, "the receiver to wait again", waiting)
	}
	s.Stats()
	if err := <-got; err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the receiver got the message only when its context ended: nobody woke it")
	}
}
