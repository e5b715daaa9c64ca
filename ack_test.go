package spillway

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// receiveNow takes what is available without waiting: a receive with a
// canceled ctx takes what it finds, and fails with ctx's error otherwise.
func receiveNow(q *Queue, dst []Delivery) int {
	n, err := q.ReceiveBatch(canceled, dst)
	if n == 0 && !errors.Is(err, context.Canceled) {
		panic(fmt.Sprintf("ReceiveBatch with a canceled ctx: %d, %v", n, err))
	}
	return n
}

// TestManualAckEventuallyAcked: consumers that drop deliveries at random
// (never acking them) still get every message acked in the end, through
// lease expiry and redelivery driven by a manual clock; attempts never
// exceed MaxAttempts; poison messages, never acked, land in the dead-letter
// queue; a redelivered message keeps its key, headers and offset. Other
// messages are acked on their last attempt if not before, which also
// checks that an ack then settles them.
func TestManualAckEventuallyAcked(t *testing.T) {
	rng := newRand(t)
	clock := NewManualClock(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
	dlq := openQueue(t, Options{RingSize: 1024})
	const maxAttempts, n = 20, 2000 // the default limit; a dropped message comes back on the next round
	q := openQueue(t, Options{Dir: t.TempDir(), Shards: 4, RingSize: 16, Ack: ManualAck,
		AckTimeout: time.Second, MaxAttempts: maxAttempts, DeadLetter: dlq, Clock: clock})
	poison := map[int]bool{}
	for i := range n {
		if rng.IntN(50) == 0 {
			poison[i] = true
		}
		m := Message{Key: fmt.Appendf(nil, "k%d", i%17), Value: fmt.Appendf(nil, "%d", i), Headers: []Header{{Key: "i", Value: fmt.Appendf(nil, "%d", i)}}}
		if err := q.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	acked := map[int]bool{}
	attempts := map[int]int{}
	firstOffset := map[int][2]int{} // shard, offset of the first delivery
	dst := make([]Delivery, 32)
	for round := 0; q.Stats().Acked+q.Stats().DeadLettered < n; round++ {
		if round > 3*maxAttempts {
			t.Fatalf("no progress after %d rounds: %d acked, stats %+v", round, len(acked), q.Stats())
		}
		for {
			k := receiveNow(q, dst)
			if k == 0 {
				break
			}
			for _, d := range dst[:k] {
				var i int
				if _, err := fmt.Sscan(string(d.Value), &i); err != nil {
					t.Fatalf("message %q: %v", d.Value, err)
				}
				if string(d.Key) != fmt.Sprintf("k%d", i%17) || len(d.Headers) != 1 || string(d.Headers[0].Value) != string(d.Value) {
					t.Fatalf("message %d lost its key or headers on attempt %d", i, d.Attempt)
				}
				if f, ok := firstOffset[i]; !ok {
					firstOffset[i] = [2]int{d.Shard, int(d.Offset)}
				} else if f != [2]int{d.Shard, int(d.Offset)} {
					t.Fatalf("message %d moved from %v to shard %d offset %d", i, f, d.Shard, d.Offset)
				}
				attempts[i]++
				if d.Attempt != attempts[i] || d.Attempt > maxAttempts {
					t.Fatalf("message %d: Attempt %d, seen %d times, max %d", i, d.Attempt, attempts[i], maxAttempts)
				}
				if acked[i] {
					t.Fatalf("message %d delivered after it was acked", i)
				}
				switch {
				case poison[i]:
				case d.Attempt == maxAttempts:
					// The last chance: acked, it is settled, not
					// dead-lettered. (Left to chance, one message in
					// 2^20 would miss every attempt, about one run in
					// five hundred.)
					if err := d.Ack(); err != nil {
						t.Fatalf("Ack of message %d on its last attempt: %v", i, err)
					}
					acked[i] = true
				case rng.IntN(3) == 0: // drop it: neither ack nor nack
				case rng.IntN(4) == 0:
					if err := d.Nack(0); err != nil {
						t.Fatal(err)
					}
				default:
					if err := d.Ack(); err != nil {
						t.Fatalf("Ack of message %d: %v", i, err)
					}
					acked[i] = true
				}
			}
		}
		// Let every outstanding lease run out; the reaper redelivers them.
		// Wait until it has done so for every shard: a delivery taken
		// before it stored the new time would get a lease that is due at
		// once.
		before := q.clock.reaped.Load()
		clock.Advance(time.Second + 2*q.clock.tick)
		waitFor(t, "the reaper", func() bool { return q.clock.reaped.Load() > before })
	}
	for i := range poison {
		if attempts[i] != maxAttempts {
			t.Errorf("poison message %d delivered %d times, want %d", i, attempts[i], maxAttempts)
		}
	}
	st := q.Stats()
	if st.Acked != uint64(n-len(poison)) || st.DeadLettered != uint64(len(poison)) || st.Dropped != 0 || st.Depth != 0 || st.InFlight != 0 {
		t.Fatalf("stats %+v: want %d acked, %d dead-lettered", st, n-len(poison), len(poison))
	}
	got := map[int]bool{}
	for k := receiveNow(dlq, dst); k > 0; k = receiveNow(dlq, dst) {
		for _, d := range dst[:k] {
			var i int
			if _, err := fmt.Sscan(string(d.Value), &i); err != nil {
				t.Fatalf("message %q: %v", d.Value, err)
			}
			got[i] = true
		}
	}
	if len(got) != len(poison) {
		t.Fatalf("dead-letter queue holds %d messages, want the %d poison ones", len(got), len(poison))
	}
	for i := range got {
		if !poison[i] {
			t.Fatalf("message %d was dead-lettered but is not poison", i)
		}
	}
}

// TestLeaseOperations covers each settlement: Ack after expiry, double
// settlement, Extend, Nack with a delay, Term, and AutoAck deliveries.
func TestLeaseOperations(t *testing.T) {
	ctx := context.Background()
	clock := NewManualClock(time.Unix(0, 0))
	dlq := openQueue(t, Options{})
	q := openQueue(t, Options{Shards: 1, Ack: ManualAck, AckTimeout: time.Second, Clock: clock, DeadLetter: dlq})
	for i := range 4 {
		if err := q.Send(ctx, Message{Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	tick := func(d time.Duration) {
		before := q.clock.reaped.Load()
		clock.Advance(d)
		waitFor(t, "the reaper", func() bool { return q.clock.reaped.Load() > before })
	}
	d0, err := q.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d1, err := q.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := q.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d3, err := q.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d1.Extend(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d2.Nack(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d2.Ack(); !errors.Is(err, ErrLeaseExpired) {
		t.Fatalf("Ack after Nack = %v", err)
	}
	if err := d3.Term(); err != nil {
		t.Fatal(err)
	}
	if m, err := dlq.Receive(ctx); err != nil || m.Value[0] != 3 {
		t.Fatalf("terminated message in the dead-letter queue: %v, %v", m.Value, err)
	}
	tick(2 * time.Second)
	if err := d0.Ack(); !errors.Is(err, ErrLeaseExpired) {
		t.Fatalf("Ack after the lease ran out = %v", err)
	}
	r, err := q.Receive(ctx) // d0 again; d2 waits out its delay
	if err != nil || r.Value[0] != 0 || r.Attempt != 2 || r.Offset != d0.Offset {
		t.Fatalf("redelivery: %+v, %v", r, err)
	}
	if err := r.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := r.Ack(); !errors.Is(err, ErrLeaseExpired) {
		t.Fatalf("second Ack = %v", err)
	}
	if err := d1.Ack(); err != nil { // extended: still held
		t.Fatalf("Ack of an extended lease = %v", err)
	}
	if n := receiveNow(q, make([]Delivery, 4)); n != 0 {
		t.Fatalf("%d messages delivered before the Nack delay passed", n)
	}
	tick(4 * time.Second)
	if r, err := q.Receive(ctx); err != nil || r.Value[0] != 2 || r.Attempt != 2 {
		t.Fatalf("nacked message after its delay: %+v, %v", r, err)
	}

	auto := openQueue(t, Options{})
	if err := auto.Send(ctx, Message{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	d, err := auto.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(); !errors.Is(err, ErrNoLease) {
		t.Fatalf("Ack under AutoAck = %v", err)
	}
}

// TestNackDelayNotEarly: a Nack's delay and an Extend count from the
// moment of the call, not from the lease clock's last tick: with the
// clock most of a tick past that tick, a Nack of one tick is not
// redelivered at the next tick (which comes before the delay ends), but
// at the one after; an Extend of one tick likewise keeps the lease past
// the next tick.
func TestNackDelayNotEarly(t *testing.T) {
	ctx := context.Background()
	clock := NewManualClock(time.Unix(0, 0))
	q := openQueue(t, Options{Shards: 1, Ack: ManualAck, AckTimeout: 256 * time.Millisecond, Clock: clock})
	tick := q.clock.tick // 1 ms
	advance := func(d time.Duration) {
		before := q.clock.reaped.Load()
		clock.Advance(d)
		if clock.Now().Sub(q.clock.epoch)/tick > time.Duration(before) {
			waitFor(t, "the reaper", func() bool { return q.clock.reaped.Load() > before })
		}
	}
	if err := q.Send(ctx, Message{Value: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	d, err := q.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	advance(tick * 9 / 10) // no tick passed: the reaper still reads tick 0
	if err := d.Nack(tick); err != nil {
		t.Fatal(err)
	}
	advance(tick / 5) // tick 1, at 1.1 ms: the delay ends at 1.9 ms
	if r, err := q.TryReceive(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("redelivered at %v after a Nack of %v at 0.9 ms: %v, %v", clock.Now().Sub(time.Unix(0, 0)), tick, r.Value, err)
	}
	advance(tick) // tick 2
	r, err := q.TryReceive()
	if err != nil || r.Attempt != 2 {
		t.Fatalf("at %v: %v, attempt %d", clock.Now().Sub(time.Unix(0, 0)), err, r.Attempt)
	}
	// An Extend of one tick at 2.9 ms holds the lease until 3.9 ms: past
	// tick 3, which comes before.
	advance(tick * 8 / 10)
	if err := r.Extend(tick); err != nil {
		t.Fatal(err)
	}
	advance(tick) // tick 3, at 3.9 ms
	if err := r.Ack(); err != nil {
		t.Fatalf("the extended lease ended early: %v", err)
	}
}
