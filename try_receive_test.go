package spillway

import (
	"context"
	"errors"
	"strconv"
	"testing"
)

// TestTryReceive: TryReceive and TryReceiveBatch take what is there without
// waiting, in order, with the offsets and leases Receive gives; they fail
// with ErrEmpty when nothing is there and with ErrClosed after Close.
func TestTryReceive(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, Options{Shards: 2, Ack: ManualAck})
	if _, err := q.TryReceive(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("TryReceive on an empty queue: %v, want ErrEmpty", err)
	}
	if n, err := q.TryReceiveBatch(nil); n != 0 || err != nil {
		t.Fatalf("TryReceiveBatch(nil) = %d, %v", n, err)
	}
	key := []byte("k")
	for i := range 5 {
		if err := q.Send(ctx, Message{Key: key, Value: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := q.TryReceive()
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Value) != "0" || d.Offset != 0 || d.Attempt != 1 {
		t.Fatalf("first delivery %q offset %d attempt %d", d.Value, d.Offset, d.Attempt)
	}
	if err := d.Ack(); err != nil {
		t.Fatalf("Ack of a TryReceive delivery: %v", err)
	}
	dst := make([]Delivery, 8)
	n, err := q.TryReceiveBatch(dst)
	if err != nil || n != 4 {
		t.Fatalf("TryReceiveBatch = %d, %v; want the 4 left", n, err)
	}
	for i, d := range dst[:n] {
		if want := strconv.Itoa(i + 1); string(d.Value) != want || d.Offset != uint64(i+1) {
			t.Fatalf("delivery %d: %q offset %d, want %q offset %d", i, d.Value, d.Offset, want, i+1)
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.TryReceiveBatch(dst); !errors.Is(err, ErrEmpty) {
		t.Fatalf("TryReceiveBatch once drained: %v, want ErrEmpty", err)
	}
	if st := q.Stats(); st.Delivered != 5 || st.Acked != 5 || st.Depth != 0 || st.InFlight != 0 {
		t.Fatalf("stats: %+v", st)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.TryReceive(); !errors.Is(err, ErrClosed) {
		t.Fatalf("TryReceive after Close: %v, want ErrClosed", err)
	}
	if _, err := q.TryReceiveBatch(dst); !errors.Is(err, ErrClosed) {
		t.Fatalf("TryReceiveBatch after Close: %v, want ErrClosed", err)
	}
}

// TestTryReceiveSkipsAHeldShard: a shard another receiver holds is not
// waited for: TryReceive reports ErrEmpty while it is held and takes the
// message once it is free.
func TestTryReceiveSkipsAHeldShard(t *testing.T) {
	q := openQueue(t, Options{Shards: 1})
	if err := q.TrySend(Message{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	s := q.shards[0]
	s.recvMu.Lock() // as a receiver taking from the shard does
	_, err := q.TryReceive()
	s.recvMu.Unlock()
	if !errors.Is(err, ErrEmpty) {
		t.Fatalf("TryReceive with the only shard held: %v, want ErrEmpty", err)
	}
	if d, err := q.TryReceive(); err != nil || string(d.Value) != "x" {
		t.Fatalf("TryReceive with the shard free: %q, %v", d.Value, err)
	}
}

// TestTryReceiveFromSpill: messages that went through the spill come back
// through TryReceive in order. A batch still being decoded reads as
// ErrEmpty for the moment, so the test retries on ErrEmpty (never on
// anything else) until every message is back.
func TestTryReceiveFromSpill(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, Options{Dir: t.TempDir(), Shards: 1, RingSize: 2})
	const n = 300
	for i := range n {
		if err := q.Send(ctx, Message{Value: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if st := q.Stats(); st.Spilled == 0 {
		t.Fatalf("nothing spilled: %+v", st)
	}
	next := 0
	waitFor(t, "every spilled message through TryReceive", func() bool {
		for {
			d, err := q.TryReceive()
			if errors.Is(err, ErrEmpty) {
				return false
			}
			if err != nil {
				t.Fatalf("TryReceive after %d: %v", next, err)
			}
			if want := strconv.Itoa(next); string(d.Value) != want {
				t.Fatalf("message %d is %q", next, d.Value)
			}
			if next++; next == n {
				return true
			}
		}
	})
	if st := q.Stats(); st.Delivered != n || st.Depth != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// TestSubscriptionTryReceive: the same for a Topic's subscription.
func TestSubscriptionTryReceive(t *testing.T) {
	ctx := context.Background()
	tp := openTopic(t, Options{Shards: 1})
	sub := subscribe(t, tp, "a")
	if _, err := sub.TryReceive(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("TryReceive with nothing published: %v, want ErrEmpty", err)
	}
	for i := range 3 {
		if err := tp.Publish(ctx, Message{Value: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := sub.TryReceive()
	if err != nil || string(d.Value) != "0" {
		t.Fatalf("TryReceive = %q, %v", d.Value, err)
	}
	dst := make([]Delivery, 4)
	if n, err := sub.TryReceiveBatch(dst); err != nil || n != 2 || string(dst[0].Value) != "1" || string(dst[1].Value) != "2" {
		t.Fatalf("TryReceiveBatch = %d, %v", n, err)
	}
	if _, err := sub.TryReceiveBatch(dst); !errors.Is(err, ErrEmpty) {
		t.Fatalf("TryReceiveBatch once caught up: %v, want ErrEmpty", err)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.TryReceive(); !errors.Is(err, ErrClosed) {
		t.Fatalf("TryReceive after the subscription's Close: %v, want ErrClosed", err)
	}
}

// TestWaitingReceiverCountsTheRing: a waiting receiver's look reports what
// the shard holds, not only what fit in its dst, so that one that looked
// late, after the sender filled the ring and stopped, looks sooner next
// time (park.AwaitN). Without the ring's rest a batch receiver counted at
// most a batch, looked later and later, and a ring of 256 moved batches of
// 64 no faster than a channel (BenchmarkQueueSmallRing). The fast path does
// not look at the senders' side.
func TestWaitingReceiverCountsTheRing(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, Options{Shards: 1, RingSize: 256})
	if err := q.SendBatch(ctx, batchOf(256)); err != nil {
		t.Fatal(err)
	}
	dst := make([]Delivery, 64)
	if n, seen := q.takeSome(dst, lookWaiting); n != 64 || seen != 256 {
		t.Fatalf("waiting batch receiver on a full ring: took %d, saw %d; want 64 and 256", n, seen)
	}
	if n, seen := q.takeSome(dst, lookOnce); n != 64 || seen != 64 {
		t.Fatalf("fast-path batch receiver: took %d, saw %d; want 64 and 64", n, seen)
	}
	// One at a time: one delivered, 31 in the shard's local buffer, 96
	// still in the ring.
	if n, seen := q.takeSome(dst[:1], lookWaiting); n != 1 || seen != 128 {
		t.Fatalf("waiting one-at-a-time receiver: took %d, saw %d; want 1 and 128", n, seen)
	}
	if string(dst[0].Value) != "128" {
		t.Fatalf("delivered %q, want message 128", dst[0].Value)
	}
}

// TestWaitingSubscriberCountsTheRing is TestWaitingReceiverCountsTheRing for
// a Topic's subscription: what is left in the ring for it counts.
func TestWaitingSubscriberCountsTheRing(t *testing.T) {
	ctx := context.Background()
	tp := openTopic(t, Options{Shards: 1, RingSize: 256})
	sub := subscribe(t, tp, "s")
	if err := tp.PublishBatch(ctx, batchOf(256)); err != nil {
		t.Fatal(err)
	}
	dst := make([]Delivery, 64)
	if n, seen := sub.sub.takeSome(dst, lookWaiting); n != 64 || seen != 256 {
		t.Fatalf("waiting batch receiver on a full ring: took %d, saw %d; want 64 and 256", n, seen)
	}
	if n, seen := sub.sub.takeSome(dst, lookOnce); n != 64 || seen != 64 {
		t.Fatalf("fast-path batch receiver: took %d, saw %d; want 64 and 64", n, seen)
	}
	if string(dst[0].Value) != "64" {
		t.Fatalf("delivered %q, want message 64", dst[0].Value)
	}
}
