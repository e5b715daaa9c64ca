package spillway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spillway-io/spillway/mmap"
)

var lifeStart = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

// recvN receives n messages, failing the test if they do not come within
// a safety deadline.
func recvN(t *testing.T, r interface {
	Receive(context.Context) (Delivery, error)
}, n int) []Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := make([]Delivery, 0, n)
	for range n {
		d, err := r.Receive(ctx)
		if err != nil {
			t.Fatalf("after %d of %d: %v", len(out), n, err)
		}
		out = append(out, d)
	}
	return out
}

// advanceDelay moves clock by d (at least one DelayTick) and waits until
// q's delay mover has fired for it.
func advanceDelay(t *testing.T, q *Queue, clock *ManualClock, d time.Duration) {
	t.Helper()
	before := q.delay.fires.Load()
	running := q.delay.waiting.Load() > 0
	clock.Advance(d)
	if running {
		waitFor(t, "the delay mover", func() bool { return q.delay.fires.Load() > before })
	}
}

// TestQueueDelay: messages delayed from 1 ms to 30 days come out at the
// first tick at or after their DeliverAt, never before, in due order
// (messages due at once in the order sent), through spill; Stats.Delayed
// counts those held.
func TestQueueDelay(t *testing.T) {
	for _, spill := range []bool{false, true} {
		t.Run(fmt.Sprintf("spill=%v", spill), func(t *testing.T) {
			rng := newRand(t)
			clock := NewManualClock(lifeStart)
			opts := Options{Shards: 1, Clock: clock, DelayTick: 10 * time.Millisecond}
			if spill {
				opts.Dir, opts.RingSize = t.TempDir(), 16
			}
			q := openQueue(t, opts)
			ctx := context.Background()
			spans := []time.Duration{time.Millisecond, 7 * time.Millisecond, time.Second, time.Minute, time.Hour, 30 * 24 * time.Hour}
			type sent struct {
				at time.Time
				id int
			}
			var all []sent
			for id := range 400 {
				d := spans[rng.IntN(len(spans))]
				d = time.Duration(1 + rng.Int64N(int64(d)))
				if id%100 < 40 {
					d = time.Hour // a crowd due at once: more than a ring
				}
				at := clock.Now().Add(d)
				v := binary.AppendUvarint(nil, uint64(id))
				if err := q.Send(ctx, Message{Value: v, DeliverAt: at}); err != nil {
					t.Fatal(err)
				}
				all = append(all, sent{at, id})
			}
			if st := q.Stats(); st.Delayed != 400 || st.Depth != 0 || st.Sent != 400 {
				t.Fatalf("held: Delayed %d Depth %d Sent %d", st.Delayed, st.Depth, st.Sent)
			}
			slices.SortStableFunc(all, func(a, b sent) int { return a.at.Compare(b.at) })
			tick := opts.DelayTick
			next := 0
			for next < len(all) {
				at := all[next].at
				// Just before the tick it is due at: nothing due later comes.
				if before := at.Add(-tick).Sub(clock.Now()); before >= tick {
					advanceDelay(t, q, clock, before)
				}
				// One tick on: it and every other message due by now come.
				advanceDelay(t, q, clock, max(at.Sub(clock.Now())+tick, tick))
				// Ticks fall every DelayTick from the queue's open: what is due
				// by the last one has come.
				now := clock.Now()
				boundary := lifeStart.Add(now.Sub(lifeStart) / tick * tick)
				k := next
				for k < len(all) && !all[k].at.After(boundary) {
					k++
				}
				got := recvN(t, q, k-next)
				for i, d := range got {
					id, _ := binary.Uvarint(d.Value)
					want := all[next+i]
					if int(id) != want.id {
						t.Fatalf("got message %d, want %d (due %v, now %v)", id, want.id, want.at, now)
					}
				}
				if d, err := q.TryReceive(); err == nil {
					id, _ := binary.Uvarint(d.Value)
					t.Fatalf("message %d came early at %v", id, now)
				}
				next = k
				if st := q.Stats(); st.Delayed != int64(len(all)-next) {
					t.Fatalf("Delayed %d, %d held", st.Delayed, len(all)-next)
				}
			}
			st := q.Stats()
			if st.Delivered != 400 || st.Sent != 400 || st.Delayed != 0 || st.Depth != 0 {
				t.Fatalf("stats: %+v", st)
			}
			if spill && st.Spilled == 0 {
				t.Fatal("nothing spilled")
			}
		})
	}
}

// TestQueueExpiry: a message past its ExpiresAt (or MessageTTL after its
// send) is never delivered, from the ring, the spill or a redelivery; it
// goes to the dead-letter queue with reason expired and the delivery
// history it had, or is dropped; Stats count it either way.
func TestQueueExpiry(t *testing.T) {
	for _, spill := range []bool{false, true} {
		t.Run(fmt.Sprintf("spill=%v", spill), func(t *testing.T) {
			clock := NewManualClock(lifeStart)
			dlq := openQueue(t, Options{Shards: 1})
			opts := Options{Name: "jobs", Shards: 2, Clock: clock, DeadLetter: dlq}
			if spill {
				opts.Dir, opts.RingSize = t.TempDir(), 8
			}
			q := openQueue(t, opts)
			ctx := context.Background()
			soon, later := clock.Now().Add(time.Minute), clock.Now().Add(time.Hour)
			for i := range 100 {
				m := Message{Key: []byte{byte(i % 5)}, Value: []byte{byte(i)}}
				switch i % 3 {
				case 0:
					m.ExpiresAt = soon
				case 1:
					m.ExpiresAt = later
				}
				if err := q.Send(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			// Expired on arrival: accepted, never queued.
			if err := q.Send(ctx, Message{Value: []byte("stale"), ExpiresAt: clock.Now().Add(-time.Second)}); err != nil {
				t.Fatal(err)
			}
			clock.Advance(2 * time.Minute)
			got := recvN(t, q, 66)
			for _, d := range got {
				i := int(d.Value[0])
				if i%3 == 0 {
					t.Fatalf("message %d delivered after it expired", i)
				}
				if want := map[int]time.Time{1: later, 2: {}}[i%3]; !d.ExpiresAt.Equal(want) {
					t.Fatalf("message %d: ExpiresAt %v, want %v", i, d.ExpiresAt, want)
				}
			}
			if d, err := q.TryReceive(); err == nil {
				t.Fatalf("message %v delivered", d.Value)
			}
			st := q.Stats()
			if st.Expired != 35 || st.DeadLettered != 35 || st.Delivered != 66 || st.Sent != 101 || st.Depth != 0 || st.Dropped != 0 {
				t.Fatalf("stats: %+v", st)
			}
			if spill && st.Spilled == 0 {
				t.Fatal("nothing spilled")
			}
			dead := recvN(t, dlq, 35)
			for _, d := range dead {
				h := headerMap(d.Headers)
				if h[HeaderDeadReason] != DeadExpired || h[HeaderDeadSource] != "jobs" || h[HeaderDeadAttempts] != "0" || h[HeaderDeadLastDelivery] != "" {
					t.Fatalf("dead-letter headers %v", h)
				}
				if !d.ExpiresAt.IsZero() {
					t.Fatalf("dead letter keeps its expiry %v", d.ExpiresAt)
				}
			}
		})
	}
}

// TestQueueExpiryRedelivery: a ManualAck message nacked and expired
// before its redelivery is not redelivered: it is dead-lettered with its
// attempts and delivery times. Without a dead-letter queue an expired
// message is counted in Expired only.
func TestQueueExpiryRedelivery(t *testing.T) {
	clock := NewManualClock(lifeStart)
	dlq := openQueue(t, Options{Shards: 1})
	q := openQueue(t, Options{Shards: 1, Clock: clock, Ack: ManualAck, AckTimeout: time.Minute, DeadLetter: dlq})
	ctx := context.Background()
	if err := q.Send(ctx, Message{Value: []byte("x"), ExpiresAt: clock.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	d := recvN(t, q, 1)[0]
	if err := d.Nack(0); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	if d, err := q.TryReceive(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("redelivered %q (%v) after its expiry", d.Value, err)
	}
	h := headerMap(recvN(t, dlq, 1)[0].Headers)
	if h[HeaderDeadReason] != DeadExpired || h[HeaderDeadAttempts] != "1" || h[HeaderDeadFirstDelivery] == "" || h[HeaderDeadLastDelivery] == "" {
		t.Fatalf("headers %v", h)
	}
	if st := q.Stats(); st.Expired != 1 || st.DeadLettered != 1 || st.InFlight != 0 || st.Depth != 0 {
		t.Fatalf("stats %+v", st)
	}

	// MessageTTL, no dead-letter queue.
	clock2 := NewManualClock(lifeStart)
	q2 := openQueue(t, Options{Shards: 1, Clock: clock2, MessageTTL: time.Minute})
	if err := q2.Send(ctx, Message{Value: []byte("ttl")}); err != nil {
		t.Fatal(err)
	}
	if err := q2.Send(ctx, Message{Value: []byte("own"), ExpiresAt: clock2.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := q2.SendBatch(ctx, []Message{{Value: []byte("batch")}}); err != nil {
		t.Fatal(err)
	}
	clock2.Advance(2 * time.Minute)
	if got := recvN(t, q2, 1)[0]; string(got.Value) != "own" {
		t.Fatalf("got %q", got.Value)
	}
	if d, err := q2.TryReceive(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("got %q, %v", d.Value, err)
	}
	if st := q2.Stats(); st.Expired != 2 || st.DeadLettered != 0 || st.Dropped != 0 || st.Depth != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestQueueLifeBadInput: what contradicts itself or the options fails
// with a clear error and queues nothing.
func TestQueueLifeBadInput(t *testing.T) {
	clock := NewManualClock(lifeStart)
	q := openQueue(t, Options{Shards: 1, Clock: clock, Priorities: 3})
	ctx := context.Background()
	now := clock.Now()
	for name, tc := range map[string]struct {
		m   Message
		err error
	}{
		"priority":          {Message{Priority: 3}, ErrInvalidMessage},
		"due after expiry":  {Message{DeliverAt: now.Add(time.Hour), ExpiresAt: now.Add(time.Minute)}, ErrInvalidMessage},
		"id too long":       {Message{ID: strings.Repeat("i", MaxIDBytes+1)}, ErrTooLarge},
		"id too long batch": {Message{ID: strings.Repeat("i", MaxIDBytes+1)}, ErrTooLarge},
	} {
		err := q.Send(ctx, tc.m)
		if strings.HasSuffix(name, "batch") {
			err = q.SendBatch(ctx, []Message{{Value: []byte("ok")}, tc.m})
			var be *BatchError
			if !errors.As(err, &be) || be.Queued != 1 {
				t.Fatalf("%s: %v", name, err)
			}
			recvN(t, q, 1)
		}
		if !errors.Is(err, tc.err) {
			t.Fatalf("%s: %v, want %v", name, err, tc.err)
		}
	}
	if err := q.TrySend(Message{Priority: 9}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Sent != 1 || st.Depth != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, o := range []Options{{Priorities: MaxPriorities + 1}, {DelayTick: time.Microsecond}, {MessageTTL: -1}} {
		if _, err := OpenQueue(o); !errors.Is(err, ErrInvalidOptions) {
			t.Fatalf("%+v: %v", o, err)
		}
	}
}

// TestQueueDedupRetries: producers send 100 k messages (fewer with
// -short), 30% of them retried with the same ID by another producer at
// once; every ID is delivered exactly once, and Stats count each retry.
func TestQueueDedupRetries(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	rng := newRand(t)
	q := openQueue(t, Options{Shards: 4, RingSize: 256})
	ctx := context.Background()
	const producers = 4
	retried := 0
	plan := make([][]int, producers) // ids each producer sends, in order
	for id := range n {
		p := rng.IntN(producers)
		plan[p] = append(plan[p], id)
		if rng.IntN(10) < 3 {
			retried++
			r := (p + 1 + rng.IntN(producers-1)) % producers
			plan[r] = append(plan[r], id)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, producers+1)
	for p := range producers {
		wg.Go(func() {
			for _, id := range plan[p] {
				m := Message{Key: []byte{byte(id)}, Value: binary.AppendUvarint(nil, uint64(id)), ID: fmt.Sprintf("order-%d", id)}
				if err := q.Send(ctx, m); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	seen := make([]bool, n)
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		for range n {
			d, err := q.Receive(rctx)
			if err != nil {
				errs <- err
				return
			}
			id, _ := binary.Uvarint(d.Value)
			if seen[id] {
				errs <- fmt.Errorf("id %d delivered twice", id)
				return
			}
			seen[id] = true
		}
	}()
	wg.Wait()
	<-recvDone
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if d, err := q.TryReceive(); err == nil {
		id, _ := binary.Uvarint(d.Value)
		t.Fatalf("id %d delivered again", id)
	}
	if st := q.Stats(); st.Deduplicated != uint64(retried) || st.Sent != uint64(n) || st.Delivered != uint64(n) {
		t.Fatalf("%d retries: stats %+v", retried, st)
	}
}

// TestQueueDedupWindow: an ID is remembered for DedupWindow (by the
// queue's clock) and then forgotten; duplicates inside one SendBatch are
// caught; a send that failed leaves no trace (its retry is queued);
// DedupMaxIDs forgets the oldest early, counted; a negative window turns
// deduplication off.
func TestQueueDedupWindow(t *testing.T) {
	clock := NewManualClock(lifeStart)
	q := openQueue(t, Options{Shards: 1, RingSize: 2, Clock: clock, DedupWindow: time.Minute, DedupMaxIDs: 64 * 4})
	ctx := context.Background()
	send := func(id, v string) {
		t.Helper()
		if err := q.Send(ctx, Message{ID: id, Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(vs ...string) {
		t.Helper()
		for _, v := range vs {
			if d := recvN(t, q, 1)[0]; string(d.Value) != v {
				t.Fatalf("got %q, want %q", d.Value, v)
			}
		}
		if d, err := q.TryReceive(); !errors.Is(err, ErrEmpty) {
			t.Fatalf("got %q, %v", d.Value, err)
		}
	}
	send("a", "a1")
	clock.Advance(59 * time.Second)
	send("a", "a2")
	expect("a1")
	clock.Advance(2 * time.Second) // a1's window is over
	send("a", "a3")
	expect("a3")
	// Duplicates inside a batch.
	if err := q.SendBatch(ctx, []Message{{ID: "b", Value: []byte("b1")}, {ID: "b", Value: []byte("b2")}}); err != nil {
		t.Fatal(err)
	}
	expect("b1")
	// A send that fails (ring full, TrySend) is not remembered.
	send("c", "c1")
	send("d", "d1")
	if err := q.TrySend(Message{ID: "e", Value: []byte("e1")}); !errors.Is(err, ErrFull) {
		t.Fatalf("TrySend on a full ring: %v", err)
	}
	expect("c1", "d1")
	send("e", "e2")
	expect("e2")
	if st := q.Stats(); st.Deduplicated != 2 || st.DedupEvicted != 0 {
		t.Fatalf("stats %+v", st)
	}
	// More ids than DedupMaxIDs in one stripe's share: the oldest go early.
	for i := range 2000 {
		if err := q.TrySend(Message{ID: fmt.Sprint("f", i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := q.TryReceive(); err != nil {
			t.Fatal(err)
		}
	}
	if st := q.Stats(); st.DedupEvicted == 0 {
		t.Fatalf("nothing evicted: %+v", st)
	}
	held, _ := q.dedup.stats()
	if held > 64*4 {
		t.Fatalf("%d ids held, at most %d", held, 64*4)
	}

	off := openQueue(t, Options{Shards: 1, DedupWindow: -1})
	for range 2 {
		if err := off.Send(ctx, Message{ID: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if st := off.Stats(); st.Depth != 2 || st.Deduplicated != 0 {
		t.Fatalf("window off: %+v", st)
	}
}

// TestQueueDedupWaitsForPending: a retry of an ID whose first send is
// still under way (waiting for room) waits for its outcome: if the first
// fails, the retry is queued; while waiting, its own context still ends
// it; a TrySend does not wait (ErrFull).
func TestQueueDedupWaitsForPending(t *testing.T) {
	q := openQueue(t, Options{Shards: 1, RingSize: 1})
	ctx := context.Background()
	if err := q.Send(ctx, Message{Value: []byte("filler")}); err != nil {
		t.Fatal(err)
	}
	firstCtx, cancelFirst := context.WithCancel(ctx)
	first := make(chan error, 1)
	go func() { first <- q.Send(firstCtx, Message{ID: "p", Value: []byte("first")}) }()
	waitFor(t, "the first send to wait for room", func() bool { return q.shards[0].senders.Pending() })
	if err := q.TrySend(Message{ID: "p", Value: []byte("try")}); !errors.Is(err, ErrFull) {
		t.Fatalf("TrySend while pending: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := q.Send(short, Message{ID: "p", Value: []byte("impatient")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("retry while pending: %v", err)
	}
	retry := make(chan error, 1)
	go func() { retry <- q.Send(ctx, Message{ID: "p", Value: []byte("retry")}) }()
	cancelFirst()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first: %v", err)
	}
	if d := recvN(t, q, 1)[0]; string(d.Value) != "filler" {
		t.Fatalf("got %q", d.Value)
	}
	if err := <-retry; err != nil {
		t.Fatal(err)
	}
	if d := recvN(t, q, 1)[0]; string(d.Value) != "retry" {
		t.Fatalf("got %q", d.Value)
	}
}

// TestQueuePriorities: a receiver gets the highest priority waiting,
// FIFO within a priority and per key; lower ones move when nothing above
// waits; Delivery.Priority says which.
func TestQueuePriorities(t *testing.T) {
	rng := newRand(t)
	q := openQueue(t, Options{Shards: 2, Priorities: 4, RingSize: 64, Dir: t.TempDir()})
	ctx := context.Background()
	const n = 2000
	for i := range n {
		p := uint8(rng.IntN(4))
		m := Message{Key: []byte{byte(i % 3)}, Value: binary.AppendUvarint([]byte{p}, uint64(i)), Priority: p}
		if err := q.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if st := q.Stats(); st.Spilled == 0 {
		t.Fatal("nothing spilled")
	}
	last := map[[2]int]int{}
	prio := 3
	for _, d := range recvN(t, q, n) {
		p := int(d.Value[0])
		i, _ := binary.Uvarint(d.Value[1:])
		if int(d.Priority) != p {
			t.Fatalf("message %d of priority %d delivered with %d", i, p, d.Priority)
		}
		if p > prio {
			t.Fatalf("message %d of priority %d after one of %d", i, p, prio)
		}
		prio = p
		k := [2]int{p, int(d.Key[0])}
		if prev, ok := last[k]; ok && int(i) < prev {
			t.Fatalf("priority %d key %d: %d after %d", p, d.Key[0], i, prev)
		}
		last[k] = int(i)
	}
}

// TestQueuePrioritiesCompeting: with receivers competing while senders
// send, every message is delivered once, FIFO per priority and key for
// each receiver, and a high-priority message overtakes a backlog of low
// ones.
func TestQueuePrioritiesCompeting(t *testing.T) {
	q := openQueue(t, Options{Shards: 2, Priorities: 3, RingSize: 128})
	ctx := context.Background()
	// A backlog of low ones, then one high: the next receive takes it.
	for i := range 100 {
		if err := q.Send(ctx, Message{Value: []byte{0, byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Send(ctx, Message{Value: []byte{2, 0}, Priority: 2}); err != nil {
		t.Fatal(err)
	}
	if d := recvN(t, q, 1)[0]; d.Priority != 2 {
		t.Fatalf("got priority %d first", d.Priority)
	}
	recvN(t, q, 100)
	// A redelivery keeps its priority (ManualAck).
	mq := openQueue(t, Options{Shards: 1, Priorities: 3, Ack: ManualAck})
	defer closeOK(t, mq)
	if err := mq.Send(ctx, Message{Value: []byte("p1"), Priority: 1}); err != nil {
		t.Fatal(err)
	}
	if err := recvN(t, mq, 1)[0].Nack(0); err != nil {
		t.Fatal(err)
	}
	if d := recvN(t, mq, 1)[0]; d.Attempt != 2 || d.Priority != 1 {
		t.Fatalf("redelivered: attempt %d, priority %d", d.Attempt, d.Priority)
	}

	const senders, receivers, each = 3, 4, 3000
	var wg sync.WaitGroup
	errs := make(chan error, senders+receivers)
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				p := uint8(i % 3)
				v := binary.AppendUvarint([]byte{byte(s), p}, uint64(i))
				if err := q.Send(ctx, Message{Key: []byte{byte(s)}, Value: v, Priority: p}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var mu sync.Mutex
	got := 0
	seen := map[[3]int]bool{}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for range receivers {
		wg.Go(func() {
			last := map[[2]int]int{}
			for {
				mu.Lock()
				done := got == senders*each
				mu.Unlock()
				if done {
					return
				}
				var ds [8]Delivery
				k, err := q.ReceiveBatch(rctx, ds[:])
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, d := range ds[:k] {
					s, p := int(d.Value[0]), int(d.Value[1])
					i, _ := binary.Uvarint(d.Value[2:])
					key := [3]int{s, p, int(i)}
					if seen[key] {
						errs <- fmt.Errorf("sender %d message %d twice", s, i)
					}
					seen[key] = true
					if prev, ok := last[[2]int{s, p}]; ok && int(i) < prev {
						errs <- fmt.Errorf("sender %d priority %d: %d after %d", s, p, i, prev)
					}
					last[[2]int{s, p}] = int(i)
				}
				got += k
				if got == senders*each {
					cancel() // the others stop waiting
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}
	if got != senders*each {
		t.Fatalf("%d delivered of %d", got, senders*each)
	}
}

// TestPersistentQueueLife: on a Persistent queue, priorities and expiry
// survive a reopen: the levels are recorded (reopening with others is
// refused), messages come back highest first, and one that expired while
// the queue was closed is not delivered.
func TestPersistentQueueLife(t *testing.T) {
	dir := t.TempDir()
	clock := NewManualClock(lifeStart)
	opts := Options{Dir: dir, Durability: Persistent, Shards: 2, Priorities: 3, Clock: clock}
	q, err := OpenQueue(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 30 {
		m := Message{Key: []byte{byte(i % 4)}, Value: []byte{byte(i)}, Priority: uint8(i % 3)}
		if i%5 == 0 {
			m.ExpiresAt = clock.Now().Add(time.Minute)
		}
		if err := q.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	closeOK(t, q)
	if _, err := OpenQueue(Options{Dir: dir, Durability: Persistent, Priorities: 2, Clock: clock}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("reopened with other priorities: %v", err)
	}
	clock.Advance(2 * time.Minute)
	q = openQueue(t, Options{Dir: dir, Durability: Persistent, Clock: clock})
	got := recvN(t, q, 24)
	prio := 2
	for _, d := range got {
		i := int(d.Value[0])
		switch {
		case i%5 == 0:
			t.Fatalf("message %d delivered after it expired", i)
		case int(d.Priority) != i%3 || int(d.Priority) > prio:
			t.Fatalf("message %d: priority %d after %d", i, d.Priority, prio)
		}
		prio = int(d.Priority)
	}
	if d, err := q.TryReceive(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("got %v, %v", d.Value, err)
	}
	if st := q.Stats(); st.Expired != 6 || st.Depth != 0 {
		t.Fatalf("stats %+v", st)
	}
	rep, err := InspectDir(dir, InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Priorities != 3 || len(rep.Logs) != 6 {
		t.Fatalf("inspect: %d priorities, %d logs", rep.Priorities, len(rep.Logs))
	}

	// An unsettled delivery of a priority comes back after a reopen with
	// its priority (ManualAck).
	closeOK(t, q)
	opts.Ack, opts.Priorities = ManualAck, 0
	q = openQueue(t, opts)
	if err := q.Send(ctx, Message{Value: []byte("p2"), Priority: 2}); err != nil {
		t.Fatal(err)
	}
	if d := recvN(t, q, 1)[0]; d.Priority != 2 {
		t.Fatalf("priority %d", d.Priority)
	}
	closeOK(t, q)
	q = openQueue(t, opts)
	if d := recvN(t, q, 1)[0]; d.Attempt != 2 || d.Priority != 2 || string(d.Value) != "p2" {
		t.Fatalf("after the reopen: %q attempt %d priority %d", d.Value, d.Attempt, d.Priority)
	}
}

// TestPersistentQueueDelay: a Persistent queue's delayed messages (1 ms to
// 30 days) are in the log when Send returns; a receiver that comes to one
// early parks it until its DeliverAt, and it stays delayed across a close,
// a kill -9 and a power loss (SyncAlways: Send returned, so it is synced)
// of a queue that had parked it; each comes at the first lease tick at or
// after its DeliverAt (AckTimeout/256, here 1 ms), never before, as
// attempt 1.
func TestPersistentQueueDelay(t *testing.T) {
	for _, ack := range []AckMode{AutoAck, ManualAck} {
		// keep: -1 closes cleanly; otherwise a power loss keeping each
		// unsynced page with that probability (1: what a kill -9 keeps).
		for _, keep := range []float64{-1, 1, 0, 0.5} {
			t.Run(fmt.Sprintf("ack=%v/keep=%v", ack, keep), func(t *testing.T) {
				rng := newRand(t)
				clock := NewManualClock(lifeStart)
				fs := mmap.NewMemFS()
				opts := Options{Dir: "/q", Durability: Persistent, Sync: SyncAlways, Shards: 2, RingSize: 16,
					Ack: ack, AckTimeout: 256 * time.Millisecond, Clock: clock, fs: fs, segmentSize: 128 << 10}
				q, err := OpenQueue(opts)
				if err != nil {
					t.Fatal(err)
				}
				const n = 200
				due := sendDelayedMix(t, q.Send, clock, rng, n)
				recvImmediate(t, q, n-len(due), due, ack) // the delayed ones are parked
				if st := q.Stats(); st.Delayed != int64(len(due)) || st.Delivered != n/4 {
					t.Fatalf("stats %+v", st)
				}
				if keep >= 0 {
					opts.fs = fs.CrashClone(mmap.CrashOptions{KeepUnsynced: keep, Rand: rng})
				}
				closeOK(t, q)
				q = openQueue(t, opts)
				power := keep >= 0 && keep < 1
				if st := q.Stats(); !power && st.Delayed != int64(len(due)) {
					// (After a power loss the parks may be gone with the
					// cursor: the messages wait in the log, to be parked
					// again.)
					t.Fatalf("reopened: Delayed %d, want %d", st.Delayed, len(due))
				}
				awaitDelayed(t, clock, q.clock, due, power, ack, q)
				if st := q.Stats(); st.Delayed != 0 || st.Depth != 0 || st.Redelivered != 0 || st.InFlight != 0 {
					t.Fatalf("stats %+v", st)
				}
			})
		}
	}
}

// sendDelayedMix sends n messages numbered in their values, three in four
// delayed by 1 ms to 30 days (spread over the orders of magnitude), and
// returns when each delayed one is due, by number.
func sendDelayedMix(t *testing.T, send func(context.Context, Message) error, clock *ManualClock, rng *rand.Rand, n int) map[int]time.Time {
	t.Helper()
	spans := []time.Duration{time.Millisecond, time.Second, time.Minute, time.Hour, 30 * 24 * time.Hour}
	due := map[int]time.Time{}
	for i := range n {
		m := Message{Key: []byte{byte(i % 5)}, Value: binary.AppendUvarint(nil, uint64(i))}
		if i%4 != 0 {
			d := time.Duration(1 + rng.Int64N(int64(spans[rng.IntN(len(spans))])))
			m.DeliverAt = clock.Now().Add(d)
			due[i] = m.DeliverAt
		}
		if err := send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	return due
}

// recvImmediate receives n messages from r, none of them one of due, acks
// them under ManualAck, and checks that r has nothing more now.
func recvImmediate(t *testing.T, r interface {
	Receive(context.Context) (Delivery, error)
	TryReceive() (Delivery, error)
}, n int, due map[int]time.Time, ack AckMode) {
	t.Helper()
	for _, d := range recvN(t, r, n) {
		i, _ := binary.Uvarint(d.Value)
		if _, delayed := due[int(i)]; delayed {
			t.Fatalf("message %d, due %v, delivered at once", i, due[int(i)])
		}
		if ack == ManualAck {
			if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if d, err := r.TryReceive(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("got %v, %v", d.Value, err)
	}
}

// awaitDelayed moves clock from one DeliverAt of due (message number to
// DeliverAt) to the next and checks that each receiver of rs gets every
// message of due once, as attempt 1, at the first lease tick (of lc) at or
// after its DeliverAt, none before, and no other message (after a power
// loss, AutoAck deliveries whose cursor it took back may come again).
// Under ManualAck it acks them.
func awaitDelayed(t *testing.T, clock *ManualClock, lc *leaseClock, due map[int]time.Time, power bool, ack AckMode, rs ...interface {
	TryReceive() (Delivery, error)
}) {
	t.Helper()
	type pending struct {
		at time.Time
		i  int
	}
	var order []pending
	for i, at := range due {
		order = append(order, pending{at, i})
	}
	slices.SortFunc(order, func(a, b pending) int { return a.at.Compare(b.at) })
	tick := lc.tick
	advance := func(to time.Time, must bool) {
		d := to.Sub(clock.Now())
		if d < tick && !must {
			return
		}
		before := lc.reaped.Load()
		clock.Advance(max(d, tick))
		waitFor(t, "the reaper", func() bool { return lc.reaped.Load() > before })
	}
	seen := make([]map[int]bool, len(rs))
	for r := range rs {
		seen[r] = map[int]bool{}
	}
	for next := 0; next < len(order); {
		at := order[next].at
		advance(at.Add(-2*tick), false) // just before: it must not come
		for _, r := range rs {
			for {
				d, err := r.TryReceive()
				if err != nil {
					break
				}
				i, _ := binary.Uvarint(d.Value)
				if _, delayed := due[int(i)]; delayed || !power {
					t.Fatalf("message %d due %v came at %v", i, due[int(i)], clock.Now())
				}
			}
		}
		advance(at.Add(2*tick), true)
		now := clock.Now()
		k := next
		for k < len(order) && !order[k].at.After(now.Add(-2*tick)) {
			k++
		}
		for ri, r := range rs {
			for {
				d, err := r.TryReceive()
				if errors.Is(err, ErrEmpty) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				i, _ := binary.Uvarint(d.Value)
				at, ok := due[int(i)]
				if !ok && power {
					continue // an AutoAck delivery whose cursor the power loss took back
				}
				switch {
				case !ok || seen[ri][int(i)]:
					t.Fatalf("receiver %d: message %d delivered again", ri, i)
				case at.After(now):
					t.Fatalf("receiver %d: message %d due %v came at %v", ri, i, at, now)
				case d.Attempt != 1 || !d.DeliverAt.IsZero():
					t.Fatalf("receiver %d: message %d: attempt %d, DeliverAt %v", ri, i, d.Attempt, d.DeliverAt)
				}
				seen[ri][int(i)] = true
				if ack == ManualAck {
					if err := d.Ack(); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, p := range order[next:k] {
				if !seen[ri][p.i] {
					t.Fatalf("receiver %d: message %d due %v not delivered by %v", ri, p.i, p.at, now)
				}
			}
		}
		for next < len(order) && seen[0][order[next].i] {
			next++
		}
	}
}

// TestPersistentDedup: a Persistent queue's or topic's duplicate window
// survives a close, a kill -9 and a power loss (SyncAlways: what Send or
// Publish returned for is synced, its ID with it), and the consumption of
// the messages (their segments stay while their ids are in the window:
// the queue's housekeeping, the topic's Interest retention); the ID never
// reaches a receiver; after the window, the ids are forgotten.
func TestPersistentDedup(t *testing.T) {
	for _, kind := range []string{"queue", "topic"} {
		for _, keep := range []float64{-1, 1, 0} {
			t.Run(fmt.Sprintf("%s/keep=%v", kind, keep), func(t *testing.T) {
				clock := NewManualClock(lifeStart)
				fs := mmap.NewMemFS()
				opts := Options{Dir: "/d", Durability: Persistent, Sync: SyncAlways, Shards: 2, Clock: clock,
					DedupWindow: time.Hour, SyncEvery: time.Second, fs: fs, segmentSize: 64 << 10}
				d := openDurableLife(t, kind, opts, clock)
				ctx := context.Background()
				const n = 300
				send := func(d *durableLife, i int) {
					t.Helper()
					m := Message{Key: []byte{byte(i)}, Value: make([]byte, 500), ID: fmt.Sprint("order-", i),
						Headers: []Header{{Key: "h", Value: []byte{byte(i)}}}}
					if err := d.send(ctx, m); err != nil {
						t.Fatal(err)
					}
				}
				for i := range n {
					send(d, i)
				}
				// Consume them all, and let the housekeeping run: their
				// segments stay for the window's sake.
				for _, m := range recvN(t, d.recv, n) {
					if len(m.Headers) != 1 || m.Headers[0].Key != "h" || m.ID != "" {
						t.Fatalf("delivered headers %v, ID %q", m.Headers, m.ID)
					}
				}
				d.housekeep()
				if keep >= 0 {
					opts.fs = fs.CrashClone(mmap.CrashOptions{KeepUnsynced: keep, Rand: newRand(t)})
				}
				d.close()
				d = openDurableLife(t, kind, opts, clock)
				defer d.close()
				for i := range n {
					send(d, i) // retries, after the reopen
				}
				if st := d.stats(); st.Deduplicated != n || st.Sent != 0 {
					t.Fatalf("after the reopen: %+v", st)
				}
				if depth := d.depth(); depth != 0 {
					// A power loss may take the AutoAck cursor back (the
					// consumed messages come again), never the ids.
					if keep != 0 {
						t.Fatalf("after the reopen: Depth %d", depth)
					}
					for range depth {
						if _, err := d.recv.TryReceive(); err != nil {
							t.Fatal(err)
						}
					}
				}
				// Past the window: the same ids are new.
				clock.Advance(2 * time.Hour)
				send(d, 7)
				if m := recvN(t, d.recv, 1)[0]; m.Key[0] != 7 {
					t.Fatalf("got %v", m.Key)
				}
			})
		}
	}
}

// durableLife is a Persistent queue, or a Persistent topic with its
// subscription "s", as the lifecycle's durability tests drive either:
// stats are the queue's or the topic's, depth the queue's or the
// subscription's; housekeep runs the housekeeping (the topic's
// retention) once.
type durableLife struct {
	send func(context.Context, Message) error
	recv interface {
		Receive(context.Context) (Delivery, error)
		TryReceive() (Delivery, error)
	}
	stats     func() Stats
	depth     func() int64
	housekeep func()
	close     func()
}

func openDurableLife(t *testing.T, kind string, opts Options, clock *ManualClock) *durableLife {
	t.Helper()
	if kind == "queue" {
		q := openQueue(t, opts)
		return &durableLife{send: q.Send, recv: q, stats: q.Stats,
			depth: func() int64 { return q.Stats().Depth },
			housekeep: func() {
				before := q.housekeeps.Load()
				clock.Advance(2 * opts.SyncEvery)
				waitFor(t, "the housekeeping", func() bool { return q.housekeeps.Load() > before })
			},
			close: func() { closeOK(t, q) }}
	}
	tp, err := OpenTopic(opts)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := tp.Subscribe("s")
	if err != nil {
		t.Fatal(err)
	}
	return &durableLife{send: tp.Publish, recv: sub, stats: tp.Stats,
		depth: func() int64 {
			st, err := tp.SubscriptionStats("s", StatsOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return st.Depth
		},
		housekeep: func() { tickTopic(t, tp, clock) },
		close:     func() { closeOK(t, tp) }}
}
