package spillway

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"
)

// within reports whether got is within 1/128 of want (the histogram's
// bound).
func within(got, want time.Duration) bool {
	return math.Abs(float64(got-want)) <= float64(want)/128
}

// A scripted sequence under a ManualClock, every message timed: OldestAge
// is the oldest waiting message's age, QueueWait and AckLatency hold each
// wait (Max exactly, percentiles within the histogram's bound).
func TestStatsLatencyScripted(t *testing.T) {
	clock := NewManualClock(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	for _, mode := range []string{"memory", "spill", "persistent"} {
		t.Run(mode, func(t *testing.T) {
			opts := Options{Shards: 1, RingSize: 4, Clock: clock, LatencySampling: 1, Ack: ManualAck}
			switch mode {
			case "memory":
				opts.RingSize = 16
			case "spill":
				opts.Dir = t.TempDir()
			case "persistent":
				opts.Dir, opts.Durability = t.TempDir(), Persistent
			}
			q := openQueue(t, opts)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if st := q.Stats(); st.OldestAge != 0 || st.QueueWait.Count != 0 {
				t.Fatalf("empty queue: %+v", st)
			}
			// Ten messages 1 ms apart; with a ring of 4 the spill and
			// persistent modes read most back from disk.
			for i := range 10 {
				if err := q.Send(ctx, Message{Value: fmt.Appendf(nil, "m%d", i)}); err != nil {
					t.Fatal(err)
				}
				clock.Advance(time.Millisecond)
			}
			// now = start+10ms; the first was sent at start.
			if st := q.Stats(); st.OldestAge != 10*time.Millisecond || st.Depth != 10 {
				t.Fatalf("oldest age %v depth %d, want 10ms 10", st.OldestAge, st.Depth)
			}
			clock.Advance(5 * time.Millisecond)
			// Receive the first two at start+15ms: waits 15ms and 14ms.
			var ds [2]Delivery
			for i := range ds {
				d, err := q.Receive(ctx)
				if err != nil {
					t.Fatal(err)
				}
				ds[i] = d
			}
			st := q.Stats()
			if st.QueueWait.Count != 2 || st.QueueWait.Max != 15*time.Millisecond || !within(st.QueueWait.P50, 14*time.Millisecond) {
				t.Fatalf("queue wait %+v, want 2 waits, max 15ms, median 14ms", st.QueueWait)
			}
			if mode == "memory" && st.OldestAge != 13*time.Millisecond { // the third, sent at start+2ms
				t.Fatalf("oldest age %v, want 13ms", st.OldestAge)
			}
			clock.Advance(7 * time.Millisecond)
			if err := ds[0].Ack(); err != nil {
				t.Fatal(err)
			}
			if st := q.Stats(); st.AckLatency.Count != 1 || st.AckLatency.Max != 7*time.Millisecond {
				t.Fatalf("ack latency %+v, want one of 7ms", st.AckLatency)
			}
			// A redelivery is neither a wait nor timed at its Ack.
			if err := ds[1].Nack(0); err != nil {
				t.Fatal(err)
			}
			d, err := q.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d.Attempt != 2 {
				t.Fatalf("got attempt %d first, want the redelivery", d.Attempt)
			}
			if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
			// The rest, at start+22ms: waits 20ms down to 13ms.
			for range 8 {
				d, err := q.Receive(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := d.Ack(); err != nil {
					t.Fatal(err)
				}
			}
			st = q.Stats()
			if st.QueueWait.Count != 10 || st.QueueWait.Max != 20*time.Millisecond || st.AckLatency.Count != 9 || st.OldestAge != 0 {
				t.Fatalf("after all: queue wait %+v, ack latency %+v, oldest %v", st.QueueWait, st.AckLatency, st.OldestAge)
			}
		})
	}
}

// Send times are on disk: a Persistent queue reopened reports the waits of
// what it had before.
func TestQueueWaitAcrossRestart(t *testing.T) {
	clock := NewManualClock(time.Unix(1e9, 0))
	dir := t.TempDir()
	opts := Options{Dir: dir, Durability: Persistent, Shards: 1, Clock: clock, LatencySampling: 1}
	q, err := OpenQueue(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.SendBatch(context.Background(), []Message{{Value: []byte("a")}, {Value: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	closeOK(t, q)
	clock.Advance(time.Minute)
	q = openQueue(t, opts)
	for range 2 {
		if _, err := q.Receive(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if st := q.Stats(); st.QueueWait.Count != 2 || st.QueueWait.Max != time.Minute {
		t.Fatalf("queue wait %+v, want two of a minute", st.QueueWait)
	}
}

// LatencySampling N times about 1 in N messages, one at a time and in
// batches; negative times none.
func TestLatencySampling(t *testing.T) {
	const n = 8192
	for _, c := range []struct {
		sampling int
		lo, hi   uint64
	}{
		{4, n/4 - 400, n/4 + 400}, // 1 in 4: ~2048 ± 40σ for singles; exact for batches
		{-1, 0, 0},
		{1, n, n},
	} {
		for _, batch := range []bool{false, true} {
			q := openQueue(t, Options{Shards: 2, RingSize: n, LatencySampling: c.sampling})
			ctx := context.Background()
			ms := make([]Message, 64)
			for i := 0; i < n; i += len(ms) {
				if batch {
					if err := q.SendBatch(ctx, ms); err != nil {
						t.Fatal(err)
					}
					continue
				}
				for j := range ms {
					if err := q.Send(ctx, ms[j]); err != nil {
						t.Fatal(err)
					}
				}
			}
			dst := make([]Delivery, 100)
			for got := 0; got < n; {
				k, err := q.ReceiveBatch(ctx, dst)
				if err != nil {
					t.Fatal(err)
				}
				got += k
			}
			st := q.Stats()
			if st.QueueWait.Count < c.lo || st.QueueWait.Count > c.hi {
				t.Fatalf("sampling %d, batch %v: %d of %d timed, want %d to %d", c.sampling, batch, st.QueueWait.Count, n, c.lo, c.hi)
			}
			if batch && c.sampling == 4 && st.QueueWait.Count != n/4 {
				t.Fatalf("batches of 64, 1 in 4: %d timed, want %d", st.QueueWait.Count, n/4)
			}
		}
	}
}
