package spillway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/spillway-io/spillway/internal/race"
)

// msg encodes producer, sequence and key index in a message.
func msg(producer, seq, key int) Message {
	v := make([]byte, 24, 64)
	binary.LittleEndian.PutUint64(v, uint64(producer))
	binary.LittleEndian.PutUint64(v[8:], uint64(seq))
	binary.LittleEndian.PutUint64(v[16:], uint64(key))
	v = append(v, "padding to make batches realistic"...)
	return Message{Key: fmt.Appendf(nil, "key-%d", key), Value: v, Headers: []Header{{Key: "p", Value: []byte{byte(producer)}}}}
}

func unmsg(t testing.TB, d Delivery) (producer, seq, key int) {
	if len(d.Value) < 24 {
		t.Fatalf("short message %q", d.Value)
	}
	producer = int(binary.LittleEndian.Uint64(d.Value))
	seq = int(binary.LittleEndian.Uint64(d.Value[8:]))
	key = int(binary.LittleEndian.Uint64(d.Value[16:]))
	own := len(d.Headers)
	if own == 6 && d.Headers[1].Key == HeaderDeadReason { // dead-lettered: five of ours after its own
		own = 1
	}
	if string(d.Key) != fmt.Sprintf("key-%d", key) || own != 1 || d.Headers[0].Value[0] != byte(producer) {
		t.Fatalf("message %d/%d lost its key or headers: %q %+v", producer, seq, d.Key, d.Headers)
	}
	return producer, seq, key
}

// TestSpillStress: many producers and competing consumers, random keys, and
// rings so small that shards spill and drain many times. In AutoAck every
// message arrives exactly once, each consumer sees each producer's messages
// for a key in order, and the stats add up, with nothing left on disk.
//
// The run has three phases. In the first two the consumers wait while the
// producers send a third of their messages each, so every shard spills, and
// then drain it all, so every shard goes back to its ring: each shard has
// at least two spills whatever the scheduler does. In the third,
// producers and consumers run together and consumers fall behind at random,
// which covers spills that start and end while both sides are busy; how
// often that happens depends on the scheduler, and the test asserts nothing
// about it.
func TestSpillStress(t *testing.T) {
	rng := newRand(t)
	for _, c := range []Compression{Zstd, S2} {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			const producers, consumers, keys, phases = 4, 4, 40, 3
			perProducer := 5000 * *stressScale
			if testing.Short() {
				perProducer = 1000
			}
			q := openQueue(t, Options{Dir: t.TempDir(), Shards: 4, RingSize: 8, Compression: c})
			ctx := context.Background()
			// phaseEnd[k] is where producer messages of phase k end; start[k]
			// lets the producers begin phase k, and sent[k] is done when
			// they have sent it.
			var phaseEnd [phases]int
			var start [phases]chan struct{}
			var sent [phases]sync.WaitGroup
			for k := range phases {
				phaseEnd[k] = perProducer * (k + 1) / phases
				start[k] = make(chan struct{})
				sent[k].Add(producers)
			}
			for p := range producers {
				seed := rng.Uint64()
				go func() {
					rng := newRandFrom(seed)
					i := 0
					for k := range phases {
						<-start[k]
						for i < phaseEnd[k] {
							if rng.IntN(4) == 0 { // a batch of messages with random keys
								n := min(1+rng.IntN(20), phaseEnd[k]-i)
								ms := make([]Message, n)
								for j := range ms {
									ms[j] = msg(p, i+j, rng.IntN(keys))
								}
								if err := q.SendBatch(ctx, ms); err != nil {
									t.Error(err)
									return
								}
								i += n
								continue
							}
							if err := q.Send(ctx, msg(p, i, rng.IntN(keys))); err != nil {
								t.Error(err)
								return
							}
							i++
						}
						sent[k].Done()
					}
				}()
			}
			total := producers * perProducer
			var mu sync.Mutex
			cond := sync.NewCond(&mu)
			allowed := 0   // consumers wait while got == allowed < total
			receiving := 0 // consumers between the gate and the end of their receive
			seen := make([][]bool, producers)
			for p := range seen {
				seen[p] = make([]bool, perProducer)
			}
			got := 0
			offsets := map[[2]uint64]bool{} // (shard, offset) delivered
			var cwg sync.WaitGroup
			for c := range consumers {
				seed := rng.Uint64()
				cwg.Add(1)
				go func() {
					defer cwg.Done()
					rng := newRandFrom(seed)
					last := map[[2]int]int{} // (producer, key) -> last seq this consumer saw
					dst := make([]Delivery, 16)
					for {
						mu.Lock()
						for got == allowed && got < total {
							cond.Wait()
						}
						done := got == total
						if !done {
							receiving++
						}
						mu.Unlock()
						if done {
							return
						}
						if rng.IntN(50) == 0 { // fall behind for a while, so that shards spill
							for range 200 + rng.IntN(2000) {
								runtime_Gosched()
							}
						}
						rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
						n, err := q.ReceiveBatch(rctx, dst[:1+rng.IntN(len(dst))])
						cancel()
						mu.Lock()
						receiving--
						cond.Broadcast()
						if errors.Is(err, context.DeadlineExceeded) {
							mu.Unlock()
							continue // everything may have been taken by the others
						}
						if err != nil {
							mu.Unlock()
							t.Error(err)
							return
						}
						for _, d := range dst[:n] {
							p, s, k := unmsg(t, d)
							if seen[p][s] {
								t.Errorf("message %d/%d delivered twice", p, s)
							}
							seen[p][s] = true
							if prev, ok := last[[2]int{p, k}]; ok && s < prev {
								t.Errorf("consumer %d saw producer %d's key %d out of order: %d after %d", c, p, k, s, prev)
							}
							last[[2]int{p, k}] = s
							o := [2]uint64{uint64(d.Shard), d.Offset}
							if offsets[o] {
								t.Errorf("two messages at shard %d offset %d", d.Shard, d.Offset)
							}
							offsets[o] = true
						}
						got += n
						if got > allowed {
							t.Errorf("consumers took %d messages with %d sent", got, allowed)
						}
						cond.Broadcast()
						mu.Unlock()
						clear(dst)
					}
				}()
			}
			// waitDone runs wait on its own goroutine and fails the test if it
			// does not return in time.
			waitDone := func(what string, wait func()) {
				t.Helper()
				doneC := make(chan struct{})
				go func() { defer close(doneC); wait() }()
				select {
				case <-doneC:
				case <-watchdog(10 * time.Second):
					t.Fatalf("stuck %s: %+v\n%s", what, q.Stats(), q.dump())
				}
			}
			spilling := func() bool {
				for _, s := range q.shards {
					if s.spilling.Load() {
						return true
					}
				}
				return false
			}
			for k := range phases - 1 {
				close(start[k])
				waitDone("sending", sent[k].Wait)
				if t.Failed() {
					return
				}
				for _, s := range q.shards {
					if s.spills.Load() != uint64(k+1) || !s.spilling.Load() {
						t.Fatalf("phase %d: shard %d is in spill %d (spilling %v) with its consumers waiting", k, s.idx, s.spills.Load(), s.spilling.Load())
					}
				}
				mu.Lock()
				allowed = producers * phaseEnd[k]
				cond.Broadcast()
				mu.Unlock()
				waitDone("draining", func() {
					mu.Lock()
					for (got < allowed || receiving > 0) && !t.Failed() {
						cond.Wait()
					}
					mu.Unlock()
				})
				if t.Failed() {
					return
				}
				// The consumers wait again, none inside a receive; a receiver
				// that finds a spill read to its end turns the shard back to
				// its ring.
				waitDone("ending the spills", func() {
					for spilling() {
						if _, err := q.TryReceive(); !errors.Is(err, ErrEmpty) {
							t.Errorf("TryReceive after the drain: %v, want ErrEmpty", err)
							return
						}
						runtime_Gosched()
					}
				})
			}
			mu.Lock()
			allowed = total
			cond.Broadcast()
			mu.Unlock()
			close(start[phases-1])
			waitDone("in the last phase", func() { sent[phases-1].Wait(); cwg.Wait() })
			if t.Failed() {
				return
			}
			st := q.Stats()
			var spills uint64
			for _, s := range q.shards {
				spills += s.spills.Load()
			}
			t.Logf("%+v, %d spills", st, spills)
			if st.Sent != uint64(total) || st.Delivered != uint64(total) || st.Depth != 0 || st.Dropped != 0 {
				t.Fatalf("stats do not add up: %+v", st)
			}
			if st.DiskBytes != 0 {
				t.Fatalf("%d bytes left on disk after the drain", st.DiskBytes)
			}
			// Offsets count each shard's deliveries: none skipped.
			perShard := map[uint64]uint64{}
			for o := range offsets {
				perShard[o[0]]++
			}
			for o := range offsets {
				if o[1] >= perShard[o[0]] {
					t.Fatalf("shard %d delivered %d messages, one at offset %d", o[0], perShard[o[0]], o[1])
				}
			}
		})
	}
}

// TestSpillBatch: a batch sent to a full ring goes to disk in one write,
// headers and all, comes back in order, and Flush makes the spill files
// hold it, compressed.
func TestSpillBatch(t *testing.T) {
	q := openQueue(t, Options{Dir: t.TempDir(), Shards: 1, RingSize: 2})
	ctx := context.Background()
	const n = 300
	batch := make([]Message, n)
	raw := 0
	for i := range batch {
		batch[i] = msg(i%7, i, i%5)
		raw += len(batch[i].Value)
	}
	if err := q.SendBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := q.Flush(); err != nil {
		t.Fatal(err)
	}
	st := q.Stats()
	if st.Spilled != n-2 || st.Depth != n {
		t.Fatalf("after the batch: %+v, want Spilled %d and Depth %d", st, n-2, n)
	}
	if st.DataBytes <= 0 || st.DataBytes > int64(raw) || st.DataBytes > st.DiskBytes {
		t.Fatalf("spill files hold %d bytes (reserve %d) for %d raw bytes", st.DataBytes, st.DiskBytes, raw)
	}
	dst := make([]Delivery, 17)
	for next := 0; next < n; {
		k, err := q.ReceiveBatch(ctx, dst)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dst[:k] {
			if _, seq, _ := unmsg(t, d); seq != next || d.Offset != uint64(next) {
				t.Fatalf("got message %d at offset %d, want %d", seq, d.Offset, next)
			}
			next++
		}
	}
	if st := q.Stats(); st.Depth != 0 || st.DiskBytes != 0 || st.Delivered != n {
		t.Fatalf("after draining: %+v", st)
	}
	closeOK(t, q)
	if err := q.Flush(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Close: %v, want ErrClosed", err)
	}
}

// TestStatsDoesNotStrandReceivers: Stats holds each shard's receiver lock
// for a moment, so a receiver woken for a message may find that shard
// locked, skip it and go back to waiting. Stats must then wake one, as a
// receiver releasing the lock does, or the message waits for a Send that
// may never come. The hook sends while Stats holds the lock and lets Stats
// go on only once the woken receiver is waiting again.
func TestStatsDoesNotStrandReceivers(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		// The woken receiver finds the shard locked and, the message being
		// in the ring, yields instead of registering (Queue.inFlight); on
		// one P the hook below, which looks only while it yields, never
		// sees it registered.
		t.Skip("needs two Ps: the state the hook waits for shows only while both run")
	}
	q := openQueue(t, Options{Shards: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan error, 1)
	go func() {
		_, err := q.Receive(ctx)
		got <- err
	}()
	waitFor(t, "the receiver to wait", func() bool { return q.receivers.Len() == 1 })
	q.statsHook = func() {
		q.statsHook = nil
		if err := q.Send(ctx, Message{Value: []byte("x")}); err != nil {
			t.Error(err)
		}
		// The Send woke the receiver; the shard is locked, so it waits again.
		waitFor(t, "the receiver to wait again", func() bool { return q.receivers.Len() == 1 })
	}
	q.Stats()
	if err := <-got; err != nil {
		t.Fatalf("Receive: %v (the message: %+v)", err, q.Stats())
	}
	if ctx.Err() != nil {
		t.Fatal("the receiver got the message only when its context ended: nobody woke it")
	}
}

// TestPingPongNoLostWakeup passes one message back and forth through two
// Queues, one at a time and in batches, so that receivers wait on empty
// queues round after round: a lost wake-up (senders publish a ring slot
// with a release store; see Queue.inFlight) leaves both sides waiting, and
// the deadline fails the test.
func TestPingPongNoLostWakeup(t *testing.T) {
	rounds := 10_000
	if race.Enabled {
		rounds = 1_000
	}
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			ping, pong := openQueue(t, Options{}), openQueue(t, Options{})
			send := func(q *Queue, v byte) error {
				if batch {
					return q.SendBatch(ctx, []Message{{Value: []byte{v}}})
				}
				return q.Send(ctx, Message{Value: []byte{v}})
			}
			receive := func(q *Queue) (byte, error) {
				if batch {
					var d [4]Delivery
					n, err := q.ReceiveBatch(ctx, d[:])
					if err == nil && n != 1 {
						return 0, fmt.Errorf("ReceiveBatch got %d messages, want 1", n)
					}
					return d[0].Value[0], err
				}
				d, err := q.Receive(ctx)
				if err != nil {
					return 0, err
				}
				return d.Value[0], nil
			}
			echoed := make(chan error, 1)
			go func() {
				for range rounds {
					v, err := receive(ping)
					if err == nil {
						err = send(pong, v+1)
					}
					if err != nil {
						echoed <- err
						return
					}
				}
				echoed <- nil
			}()
			for i := range rounds {
				if err := send(ping, byte(2*i)); err != nil {
					t.Fatalf("round %d: %v", i, err)
				}
				v, err := receive(pong)
				if err != nil {
					t.Fatalf("round %d: %v (a lost wake-up?)", i, err)
				}
				if v != byte(2*i+1) {
					t.Fatalf("round %d: got %d, want %d", i, v, byte(2*i+1))
				}
			}
			if err := <-echoed; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSpillWaitsForAClaimInFlight: a sender that claimed the ring's next
// slot and has yet to publish it holds up the ring's consumer, which
// cannot read past that slot; the messages queued behind it in the ring
// came before anything the shard spilled since. The receiver must not
// take the spill's messages meanwhile (it would deliver a sender's later
// messages before its earlier ones, still in the ring). Once the slot is
// published, everything comes out in order.
func TestSpillWaitsForAClaimInFlight(t *testing.T) {
	q := openQueue(t, Options{Dir: t.TempDir(), Shards: 1, RingSize: 4})
	ctx := context.Background()
	s := q.shards[0]
	first, k := s.ring.Claim(1) // a sender stopped between its claim and its publication
	if k != 1 {
		t.Fatalf("Claim = %d", k)
	}
	for i := 1; i <= 5; i++ { // 1-3 fill the ring behind the claim; 4 and 5 spill
		if err := q.Send(ctx, msg(0, i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if st := q.Stats(); st.Spilled != 2 {
		t.Fatalf("spilled %d, want 2", st.Spilled)
	}
	if err := q.Flush(); err != nil {
		t.Fatal(err)
	}
	// Nothing may be delivered before message 0: the spill is readable,
	// so a receiver that skipped the unpublished slot would find 4 on its
	// first look. What the 200 ms show: a blocking Receive looked at least
	// once (its first look is before its first wait) and took nothing; it
	// does not park while the claim is in flight, so on a fast machine it
	// looks many times. They cannot show that no later look would take the
	// spill. TryReceive then looks once more, without a clock.
	rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	d, err := q.Receive(rctx)
	cancel()
	switch {
	case err == nil:
		_, seq, _ := unmsg(t, d)
		t.Fatalf("Receive with a claim in flight = message %d; want nothing before message 0", seq)
	case !errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("Receive with a claim in flight: %v", err)
	}
	if _, err := q.TryReceive(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("TryReceive with a claim in flight = %v, want ErrEmpty", err)
	}
	m := msg(0, 0, 0)
	s.ring.At(first).set(m.Key, m.Value, m.Headers)
	s.ring.Publish(first, 1)
	for want := 0; want <= 5; want++ {
		d, err := q.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, seq, _ := unmsg(t, d); seq != want {
			t.Fatalf("received message %d, want %d", seq, want)
		}
	}
}
