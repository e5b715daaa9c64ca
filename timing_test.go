package spillway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
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

// A Topic's subscriptions under a ManualClock, every message timed: each
// reports its lag in time (OldestAge) and its waits, through the ring and
// through the spill; the Topic merges them; receivers attached and shards
// read from a spill are counted.
func TestTopicLatencyScripted(t *testing.T) {
	clock := NewManualClock(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	top, err := OpenTopic(Options{Shards: 1, RingSize: 4, Dir: t.TempDir(), Clock: clock, LatencySampling: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, top)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fast, err := top.Subscribe("fast")
	if err != nil {
		t.Fatal(err)
	}
	slow, err := top.Subscribe("slow")
	if err != nil {
		t.Fatal(err)
	}
	// Ten messages 1 ms apart; fast takes each as it comes, 1 ms later.
	for i := range 10 {
		if err := top.Publish(ctx, Message{Value: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Millisecond)
		if _, err := fast.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// now = start+10ms.
	fs, ss := fast.Stats(), slow.Stats()
	if fs.QueueWait.Count != 10 || fs.QueueWait.Max != time.Millisecond || fs.OldestAge != 0 || fs.Depth != 0 {
		t.Fatalf("fast: queue wait %+v, oldest %v, depth %d; want ten of 1ms, nothing waiting", fs.QueueWait, fs.OldestAge, fs.Depth)
	}
	if ss.QueueWait.Count != 0 || ss.OldestAge != 10*time.Millisecond || ss.Depth != 10 || ss.SpillingShards != 1 {
		t.Fatalf("slow: queue wait %+v, oldest %v, depth %d, spilling %d; want none, 10ms, 10, 1", ss.QueueWait, ss.OldestAge, ss.Depth, ss.SpillingShards)
	}
	if ss.Receivers != 1 {
		t.Fatalf("slow: %d receivers, want 1", ss.Receivers)
	}
	clock.Advance(5 * time.Millisecond)
	// slow takes two at start+15ms: waits 15ms and 14ms, read back from
	// the spill; the third, published at start+2ms, is 13ms old.
	for range 2 {
		if _, err := slow.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ss = slow.Stats()
	if ss.QueueWait.Count != 2 || ss.QueueWait.Max != 15*time.Millisecond || ss.OldestAge != 13*time.Millisecond {
		t.Fatalf("slow: queue wait %+v, oldest %v; want two, max 15ms, oldest 13ms", ss.QueueWait, ss.OldestAge)
	}
	second, err := top.Subscribe("slow")
	if err != nil {
		t.Fatal(err)
	}
	ts := top.StatsWith(StatsOptions{Shards: true})
	if ts.QueueWait.Count != 12 || ts.QueueWait.Max != 15*time.Millisecond || ts.OldestAge != 13*time.Millisecond || ts.Receivers != 3 || ts.Sent != 10 {
		t.Fatalf("topic: queue wait %+v, oldest %v, receivers %d, sent %d; want 12 max 15ms, 13ms, 3, 10", ts.QueueWait, ts.OldestAge, ts.Receivers, ts.Sent)
	}
	if len(ts.Shards) != 1 || ts.Shards[0].Sent != 10 || ts.Shards[0].Depth != 8 || ts.Shards[0].OldestAge != 13*time.Millisecond || !ts.Shards[0].Spilling {
		t.Fatalf("topic shards: %+v", ts.Shards)
	}
	closeOK(t, second)
	for range 8 {
		if _, err := slow.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ss = slow.Stats()
	if ss.QueueWait.Count != 10 || ss.OldestAge != 0 || ss.Receivers != 1 || ss.Depth != 0 {
		t.Fatalf("slow after all: queue wait %+v, oldest %v, receivers %d, depth %d", ss.QueueWait, ss.OldestAge, ss.Receivers, ss.Depth)
	}
}

// StatsWith(Shards) splits a Queue's Stats by shard: the parts add up to
// the whole.
func TestQueueShardStats(t *testing.T) {
	clock := NewManualClock(time.Unix(1e9, 0))
	q := openQueue(t, Options{Shards: 4, Clock: clock, LatencySampling: 1, Ack: ManualAck})
	ctx := context.Background()
	for i := range 40 {
		if err := q.Send(ctx, Message{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Second)
	var ds [5]Delivery
	n, err := q.ReceiveBatch(ctx, ds[:])
	if err != nil {
		t.Fatal(err)
	}
	st := q.StatsWith(StatsOptions{Shards: true})
	if len(st.Shards) != 4 {
		t.Fatalf("%d shard parts, want 4", len(st.Shards))
	}
	var sent, delivered uint64
	var depth, inFlight int64
	for i, p := range st.Shards {
		if p.Shard != i {
			t.Fatalf("part %d is shard %d", i, p.Shard)
		}
		if p.Depth > 0 && p.OldestAge != time.Second {
			t.Fatalf("shard %d: depth %d, oldest %v, want 1s", i, p.Depth, p.OldestAge)
		}
		sent, delivered, depth, inFlight = sent+p.Sent, delivered+p.Delivered, depth+p.Depth, inFlight+p.InFlight
	}
	if sent != 40 || delivered != uint64(n) || depth != int64(40-n) || inFlight != int64(n) {
		t.Fatalf("parts add up to sent %d delivered %d depth %d in flight %d; took %d of 40", sent, delivered, depth, inFlight, n)
	}
	if st.Sent != sent || st.Depth != depth || st.OldestAge != time.Second {
		t.Fatalf("whole %+v, parts %+v", st, st.Shards)
	}
	if q.Stats().Shards != nil {
		t.Fatal("Stats filled Shards")
	}
}

// A Topic lists its subscriptions and reports each one's Stats without
// attaching a receiver.
func TestTopicSubscriptionStats(t *testing.T) {
	tp := openTopic(t, Options{Shards: 2})
	a := subscribe(t, tp, "a")
	subscribe(t, tp, "b")
	if err := tp.Publish(context.Background(), Message{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if got := tp.Subscriptions(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("subscriptions %q", got)
	}
	st, err := tp.SubscriptionStats("a", StatsOptions{Shards: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Depth != 1 || st.Receivers != 1 || len(st.Shards) != 2 {
		t.Fatalf("a: %+v", st)
	}
	if _, err := a.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, err = tp.SubscriptionStats("a", StatsOptions{}); err != nil || st.Depth != 0 || st.Delivered != 1 {
		t.Fatalf("a after a receive: %+v, %v", st, err)
	}
	if _, err := tp.SubscriptionStats("c", StatsOptions{}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("unknown subscription: %v", err)
	}
}

// StatsOptions.Histograms gets the histograms the percentiles come from.
func TestStatsHistograms(t *testing.T) {
	clock := NewManualClock(time.Unix(1e9, 0))
	q := openQueue(t, Options{Clock: clock, LatencySampling: 1})
	ctx := context.Background()
	for range 3 {
		if err := q.Send(ctx, Message{Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Millisecond)
	for range 3 {
		if _, err := q.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var h Histograms
	st := q.StatsWith(StatsOptions{Histograms: &h})
	if h.QueueWait.Count() != 3 || h.QueueWait.Sum() != 3*time.Millisecond || st.QueueWait.Count != 3 || h.AckLatency.Count() != 0 {
		t.Fatalf("histograms: wait %d (sum %v), ack %d; stats %+v", h.QueueWait.Count(), h.QueueWait.Sum(), h.AckLatency.Count(), st.QueueWait)
	}
}
