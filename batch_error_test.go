package spillway

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/spillway-io/spillway/internal/testwait"
)

// batchOf returns n keyless messages "0", "1", ...
func batchOf(n int) []Message {
	ms := make([]Message, n)
	for i := range ms {
		ms[i].Value = []byte(strconv.Itoa(i))
	}
	return ms
}

// queuedOf checks that err is a *BatchError matching cause and returns its
// Queued.
func queuedOf(t *testing.T, err, cause error) int {
	t.Helper()
	var be *BatchError
	if !errors.As(err, &be) {
		t.Fatalf("error %v (%T) is not a *BatchError", err, err)
	}
	if !errors.Is(err, cause) {
		t.Fatalf("error %v does not match %v", err, cause)
	}
	msg := err.Error()
	if want := "first " + strconv.Itoa(be.Queued) + " messages were queued"; !strings.Contains(msg, want) || !strings.Contains(msg, be.Err.Error()) {
		t.Fatalf("message %q should name the cause %q and say %q", msg, be.Err, want)
	}
	return be.Queued
}

// TestSendBatchPartial: a SendBatch that fails part way says how many
// messages it queued, and exactly those are in the queue, in order: for a
// full ring under Reject, a context that ends while Block waits, and a
// message too large in the middle of the batch or at its front.
func TestSendBatchPartial(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tooLarge := Message{Value: make([]byte, 100)}
	for _, c := range []struct {
		name   string
		opts   Options
		ctx    context.Context
		ms     []Message
		cause  error
		queued int
	}{
		{"reject", Options{Overflow: Reject}, ctx, batchOf(7), ErrFull, 4},
		{"block, context ended", Options{Overflow: Block}, cancelled, batchOf(7), context.Canceled, 4},
		{"too large in the middle", Options{}, ctx, append(batchOf(2), tooLarge, Message{}), ErrTooLarge, 2},
		{"too large first", Options{}, ctx, append([]Message{tooLarge}, batchOf(2)...), ErrTooLarge, 0},
		{"too large by its headers", Options{}, ctx, append(batchOf(1),
			Message{Value: []byte("1"), Headers: []Header{{Key: "h", Value: make([]byte, 60)}}}), ErrTooLarge, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.opts.Shards, c.opts.RingSize, c.opts.MaxMessageBytes = 1, 4, 50
			q := openQueue(t, c.opts)
			err := q.SendBatch(c.ctx, c.ms)
			if got := queuedOf(t, err, c.cause); got != c.queued {
				t.Fatalf("Queued = %d, want %d (%v)", got, c.queued, err)
			}
			if st := q.Stats(); st.Sent != uint64(c.queued) {
				t.Fatalf("Sent = %d, want %d", st.Sent, c.queued)
			}
			for i := range c.queued {
				d, err := q.TryReceive()
				if err != nil || string(d.Value) != string(c.ms[i].Value) {
					t.Fatalf("message %d: %q, %v; want %q", i, d.Value, err, c.ms[i].Value)
				}
			}
			if _, err := q.TryReceive(); !errors.Is(err, ErrEmpty) {
				t.Fatalf("more than Queued were queued: %v", err)
			}
		})
	}
	t.Run("closed", func(t *testing.T) {
		q := openQueue(t, Options{})
		closeOK(t, q)
		if got := queuedOf(t, q.SendBatch(ctx, batchOf(3)), ErrClosed); got != 0 {
			t.Fatalf("Queued = %d after Close", got)
		}
	})
}

// TestPublishBatchPartial: the same for a Topic's PublishBatch.
func TestPublishBatchPartial(t *testing.T) {
	ctx := context.Background()
	tp := openTopic(t, Options{Shards: 1, RingSize: 4, Overflow: Reject, MaxMessageBytes: 50})
	sub := subscribe(t, tp, "a")
	err := tp.PublishBatch(ctx, append(batchOf(2), Message{Value: make([]byte, 100)}))
	if got := queuedOf(t, err, ErrTooLarge); got != 2 {
		t.Fatalf("too large third: Queued = %d, want 2", got)
	}
	err = tp.PublishBatch(ctx, batchOf(5))
	if got := queuedOf(t, err, ErrFull); got != 2 {
		t.Fatalf("into a ring with room for 2: Queued = %d, want 2", got)
	}
	want := []string{"0", "1", "0", "1"}
	for i, w := range want {
		d, err := sub.TryReceive()
		if err != nil || string(d.Value) != w {
			t.Fatalf("message %d: %q, %v; want %q", i, d.Value, err, w)
		}
	}
	if _, err := sub.TryReceive(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("more than Queued were published: %v", err)
	}
}

// TestSendBatchPartialSpill: a SendBatch that spills until the quota is
// full and then cannot wait (its context has ended) reports as queued
// exactly what the queue took: the ring's share and the spill's.
func TestSendBatchPartialSpill(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	q := openQueue(t, Options{Dir: t.TempDir(), Shards: 1, RingSize: 16, MaxMessageBytes: 64 << 10,
		MaxDiskBytes: 4 << 20, Compression: None})
	ms := make([]Message, 1000) // 8 MB, twice the quota
	for i := range ms {
		ms[i].Value = make([]byte, 8<<10)
		copy(ms[i].Value, strconv.Itoa(i))
	}
	queued := queuedOf(t, q.SendBatch(cancelled, ms), context.Canceled)
	st := q.Stats()
	if uint64(queued) != st.Sent || queued <= 16 || queued >= len(ms) {
		t.Fatalf("Queued = %d, Sent = %d (ring 16, spilled %d, of %d)", queued, st.Sent, st.Spilled, len(ms))
	}
}

// TestSendBatchMixed: a keyless batch mixing messages with and without
// headers and keys goes in whole and comes out in order (one shard), keys
// and headers kept: in memory, and through the spill (a ring of 4).
func TestSendBatchMixed(t *testing.T) {
	ctx := context.Background()
	for _, opts := range []Options{{Shards: 1, RingSize: 8}, {Dir: t.TempDir(), Shards: 1, RingSize: 4}} {
		q := openQueue(t, opts)
		ms := []Message{
			{Value: []byte("0")},
			{Value: []byte("1"), Headers: []Header{{Key: "h", Value: []byte("v")}}},
			{Value: []byte("2")},
			{Key: []byte("k"), Value: []byte("3")},
			{Value: []byte("4")},
			{Value: []byte("5")},
		}
		if err := q.SendBatch(ctx, ms); err != nil {
			t.Fatal(err)
		}
		for i := range ms {
			d, err := q.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if string(d.Value) != strconv.Itoa(i) || string(d.Key) != string(ms[i].Key) || len(d.Headers) != len(ms[i].Headers) {
				t.Fatalf("dir %q, message %d: %q key %q headers %v", opts.Dir, i, d.Value, d.Key, d.Headers)
			}
			if i == 1 && (d.Headers[0].Key != "h" || string(d.Headers[0].Value) != "v") {
				t.Fatalf("dir %q: headers %+v", opts.Dir, d.Headers)
			}
		}
	}
}

// TestSendBatchBlocks: under Block, a SendBatch larger than the ring queues
// what fits, waits, and queues more as receivers free room, in order; a
// context that ends or Close stops it with a *BatchError that counts what
// it queued.
func TestSendBatchBlocks(t *testing.T) {
	ctx := context.Background()
	t.Run("drained", func(t *testing.T) {
		q := openQueue(t, Options{Shards: 1, RingSize: 8, Overflow: Block})
		ms := batchOf(100)
		sent := make(chan error, 1)
		go func() { sent <- q.SendBatch(ctx, ms) }()
		dst := make([]Delivery, 3)
		for next := 0; next < len(ms); {
			n, err := q.ReceiveBatch(ctx, dst)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range dst[:n] {
				if want := strconv.Itoa(next); string(d.Value) != want {
					t.Fatalf("message %d: %q", next, d.Value)
				}
				next++
			}
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		if st := q.Stats(); st.Sent != 100 || st.Delivered != 100 || st.Depth != 0 {
			t.Fatalf("stats: %+v", st)
		}
	})
	for _, stop := range []string{"context", "Close"} {
		t.Run(stop, func(t *testing.T) {
			q := openQueue(t, Options{Shards: 1, RingSize: 8, Overflow: Block})
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			sent := make(chan error, 1)
			go func() { sent <- q.SendBatch(sctx, batchOf(20)) }()
			parked := func() bool { return q.shards[0].senders.Len() == 1 }
			testwait.For(t, "the sender to wait for room", parked)
			dst := make([]Delivery, 32)
			if n, err := q.ReceiveBatch(ctx, dst); n != 8 || err != nil {
				t.Fatalf("ReceiveBatch = %d, %v; want the 8 the ring holds", n, err)
			}
			testwait.For(t, "the sender to queue 8 more and wait again", func() bool {
				return q.Stats().Sent == 16 && parked()
			})
			want := ErrClosed
			if stop == "context" {
				cancel()
				want = context.Canceled
			} else {
				closeOK(t, q)
			}
			if got := queuedOf(t, <-sent, want); got != 16 {
				t.Fatalf("Queued = %d, want 16", got)
			}
		})
	}
}
