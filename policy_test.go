package spillway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/spillway-io/spillway/shard"
)

// TestCloseWakesBlocked: senders blocked on a full queue and receivers
// blocked on an empty one all wake with ErrClosed; later calls fail the same
// way; a second Close returns ErrClosed; what was waiting is counted.
func TestCloseWakesBlocked(t *testing.T) {
	ctx := context.Background()
	full := openQueue(t, Options{Shards: 1, RingSize: 2})
	empty := openQueue(t, Options{Shards: 2})
	for range 2 {
		if err := full.Send(ctx, Message{Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 6)
	for range 3 {
		go func() { errs <- full.Send(ctx, Message{Value: []byte("blocked")}) }()
		go func() { _, err := empty.Receive(ctx); errs <- err }()
	}
	waitFor(t, "senders to park", func() bool { return full.shards[0].senders.Len() == 3 })
	waitFor(t, "receivers to park", func() bool { return empty.receivers.Len() == 3 })
	if err := full.Close(); err != nil {
		t.Fatal(err)
	}
	if err := empty.Close(); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked call returned %v, want ErrClosed", err)
		}
	}
	if err := full.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if err := full.Send(ctx, Message{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
	if err := full.TrySend(Message{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("TrySend after Close = %v", err)
	}
	if _, err := full.Receive(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Receive after Close = %v", err)
	}
	if st := full.Stats(); st.Dropped != 2 || st.Sent != 2 || st.Delivered != 0 {
		t.Fatalf("stats after Close: %+v", st)
	}
}

// TestDropOldest: a full shard makes room by dropping its oldest message,
// and counts it.
func TestDropOldest(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, Options{Shards: 1, RingSize: 4, Overflow: DropOldest})
	for i := range 10 {
		if err := q.Send(ctx, Message{Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for want := 6; want < 10; want++ {
		d, err := q.Receive(ctx)
		if err != nil || d.Value[0] != byte(want) {
			t.Fatalf("got %v, %v; want %d", d.Value, err, want)
		}
	}
	if st := q.Stats(); st.Dropped != 6 || st.Sent != 10 || st.Delivered != 4 || st.Depth != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDropOldestAfterPartialReceive: messages a one-at-a-time receiver
// has taken out of the ring but not yet been handed are the oldest, and
// DropOldest drops them first, but only one per message that did not fit:
// dropping them must also make room in the ring.
func TestDropOldestAfterPartialReceive(t *testing.T) {
	for _, c := range []struct{ ring, drops int }{
		{4, 2},   // the receiver took the whole ring
		{64, 40}, // it took a buffer's worth (32); the drops outnumber those
	} {
		t.Run(fmt.Sprintf("ring=%d", c.ring), func(t *testing.T) {
			ctx := context.Background()
			q := openQueue(t, Options{Shards: 1, RingSize: c.ring, Overflow: DropOldest})
			send := func(from, to int) {
				for i := from; i < to; i++ {
					if err := q.Send(ctx, Message{Value: []byte{byte(i >> 8), byte(i)}}); err != nil {
						t.Fatal(err)
					}
				}
			}
			recv := func(want int) {
				t.Helper()
				d, err := q.Receive(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if got := int(d.Value[0])<<8 | int(d.Value[1]); got != want || d.Offset != uint64(want) {
					t.Fatalf("got message %d at offset %d, want %d", got, d.Offset, want)
				}
			}
			taken := min(c.ring, 32) // what the first Receive takes out of the ring
			send(0, c.ring)
			recv(0)
			// taken more fill the ring again; each one after that drops the
			// oldest: 1, 2, ...
			total := c.ring + taken + c.drops
			send(c.ring, total)
			for want := 1 + c.drops; want < total; want++ {
				recv(want)
			}
			st := q.Stats()
			if st.Dropped != uint64(c.drops) || st.Sent != uint64(total) || st.Delivered != uint64(total-c.drops) || st.Depth != 0 {
				t.Fatalf("stats %+v, want Dropped %d, Sent %d, Delivered %d, Depth 0", st, c.drops, total, total-c.drops)
			}
		})
	}
}

// TestRejectAndTrySend: Reject fails at once with ErrFull; under Block,
// TrySend fails with ErrFull where Send would wait, and Send waits until
// ctx ends.
func TestRejectAndTrySend(t *testing.T) {
	ctx := context.Background()
	rej := openQueue(t, Options{Shards: 1, RingSize: 4, Overflow: Reject})
	blk := openQueue(t, Options{Shards: 1, RingSize: 4})
	for _, q := range []*Queue{rej, blk} {
		for range 4 {
			if err := q.TrySend(Message{Value: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.TrySend(Message{Value: []byte("x")}); !errors.Is(err, ErrFull) {
			t.Fatalf("%v: TrySend on a full queue = %v", q.opts.Overflow, err)
		}
	}
	if err := rej.Send(ctx, Message{}); !errors.Is(err, ErrFull) {
		t.Fatalf("Reject: Send = %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := blk.Send(short, Message{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Block: Send with a short deadline = %v", err)
	}
	if st := blk.Stats(); st.Sent != 4 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDiskQuota: once the spill reaches MaxDiskBytes, TrySend fails with
// ErrDiskFull and Send waits; consumers draining the spill let it go on,
// and nothing is lost.
func TestDiskQuota(t *testing.T) {
	ctx := context.Background()
	const msgSize = 8 << 10
	q := openQueue(t, Options{Dir: t.TempDir(), Shards: 1, RingSize: 16, MaxMessageBytes: 64 << 10,
		MaxDiskBytes: 4 << 20, Compression: None})
	value := func(i int) []byte {
		v := make([]byte, msgSize)
		copy(v, fmt.Sprint(i))
		for j := 16; j < len(v); j++ { // incompressible anyway: Compression None
			v[j] = byte(i*31 + j*7)
		}
		return v
	}
	sent := 0
	for ; sent < 10000; sent++ {
		if err := q.TrySend(Message{Value: value(sent)}); err != nil {
			if !errors.Is(err, ErrDiskFull) {
				t.Fatal(err)
			}
			break
		}
	}
	if sent == 10000 {
		t.Fatal("the quota never filled")
	}
	if st := q.Stats(); st.DiskBytes > 4<<20 {
		t.Fatalf("spill reserves %d bytes, quota %d", st.DiskBytes, 4<<20)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := q.Send(short, Message{Value: value(sent)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send past the quota = %v, want it to wait", err)
	}
	// A consumer drains; a sender blocked on the quota goes through.
	done := make(chan error, 1)
	go func() {
		for i := sent; i < sent+100; i++ {
			if err := q.Send(ctx, Message{Value: value(i)}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for want := 0; want < sent+100; want++ {
		d, err := q.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got int
		if _, err := fmt.Sscan(string(d.Value[:16]), &got); err != nil {
			t.Fatalf("message %q: %v", d.Value[:16], err)
		}
		if got != want {
			t.Fatalf("message %d, want %d", got, want)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Dropped != 0 || st.Depth != 0 || st.DiskBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDiskQuotaDrainsWithoutSenders: after the quota filled, a consumer
// alone (nobody sends any more) receives every message Send accepted,
// including those the spill's writer still held for want of room, down to
// the smallest quota OpenQueue accepts (two segments).
func TestDiskQuotaDrainsWithoutSenders(t *testing.T) {
	const msgSize, maxMsg = 8 << 10, 64 << 10
	twoSegments := int64(2 * ((2*maxMsg + 256<<10) &^ (64<<10 - 1))) // see OpenQueue
	for _, quota := range []int64{4 << 20, twoSegments} {
		t.Run(fmt.Sprintf("quota=%d", quota), func(t *testing.T) {
			q := openQueue(t, Options{Dir: t.TempDir(), Shards: 1, RingSize: 16, MaxMessageBytes: maxMsg,
				MaxDiskBytes: quota, Compression: None})
			sent := 0
			for ; sent < 10000; sent++ {
				v := make([]byte, msgSize)
				copy(v, fmt.Sprint(sent))
				if err := q.TrySend(Message{Value: v}); err != nil {
					if !errors.Is(err, ErrDiskFull) {
						t.Fatal(err)
					}
					break
				}
			}
			if sent == 10000 {
				t.Fatal("the quota never filled")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for want := range sent {
				d, err := q.Receive(ctx)
				if err != nil {
					t.Fatalf("message %d of %d: %v; stats %+v", want, sent, err, q.Stats())
				}
				var got int
				if _, err := fmt.Sscan(string(d.Value[:16]), &got); err != nil {
					t.Fatalf("message %q: %v", d.Value[:16], err)
				}
				if got != want {
					t.Fatalf("message %d, want %d", got, want)
				}
			}
			if st := q.Stats(); st.Dropped != 0 || st.Depth != 0 || st.DiskBytes != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestBadInput: oversized messages, invalid options, a directory another
// queue holds.
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, Options{MaxMessageBytes: 100})
	big := Message{Value: make([]byte, 90), Headers: []Header{{Key: "h", Value: make([]byte, 20)}}}
	if err := q.Send(ctx, big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Send = %v", err)
	}
	if err := q.TrySend(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("TrySend = %v", err)
	}
	if err := q.SendBatch(ctx, []Message{{Value: []byte("ok")}, big}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("SendBatch = %v", err)
	}
	if d, err := q.Receive(ctx); err != nil || string(d.Value) != "ok" {
		t.Fatalf("the message before the oversized one: %q, %v", d.Value, err)
	}
	for _, o := range []Options{{Shards: -1}, {Overflow: SpillToDisk}, {Overflow: 9}, {Compression: 7}, {Ack: 3}, {Shards: 1 << 20}} {
		if _, err := OpenQueue(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("OpenQueue(%+v) = %v", o, err)
		}
	}
	dir := t.TempDir()
	openQueue(t, Options{Dir: dir})
	if _, err := OpenQueue(Options{Dir: dir}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("second queue on one directory: %v", err)
	}
}

// TestZeroCopy: on the memory path the receiver gets the sender's bytes,
// not a copy.
func TestZeroCopy(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t, Options{})
	v := []byte("payload")
	if err := q.Send(ctx, Message{Key: []byte("k"), Value: v}); err != nil {
		t.Fatal(err)
	}
	d, err := q.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.SliceData(d.Value) != unsafe.SliceData(v) {
		t.Fatal("the value was copied")
	}
}

// TestKeyAndHeaderBounds: a message carries at most MaxKeyBytes of key and
// MaxHeaders headers (their lengths share one word of a Topic's ring
// entry). One past either bound fails every send and publish with
// ErrTooLarge; messages at and just under the bounds come back whole,
// through memory and through the spill, on a Queue and on a Topic.
func TestKeyAndHeaderBounds(t *testing.T) {
	ctx := context.Background()
	opts := Options{MaxMessageBytes: 8 << 20, Shards: 1}
	longKey := Message{Key: make([]byte, MaxKeyBytes+1)}
	manyHeaders := Message{Headers: make([]Header, MaxHeaders+1)}
	q := openQueue(t, opts)
	tp := openTopic(t, opts)
	for _, m := range []Message{longKey, manyHeaders} {
		for name, err := range map[string]error{
			"Send":         q.Send(ctx, m),
			"TrySend":      q.TrySend(m),
			"SendBatch":    q.SendBatch(ctx, []Message{m}),
			"Publish":      tp.Publish(ctx, m),
			"PublishBatch": tp.PublishBatch(ctx, []Message{m}),
		} {
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("%s(%d-byte key, %d headers) = %v, want ErrTooLarge", name, len(m.Key), len(m.Headers), err)
			}
		}
	}

	// Message i has a key of MaxKeyBytes-i bytes, MaxHeaders-i headers and
	// an (i+1)-byte value: at the bounds, and just under them in patterns
	// that a shift or mask off by one would not keep.
	edge := func(i int) Message {
		m := Message{Key: bytes.Repeat([]byte{byte(i)}, MaxKeyBytes-i), Value: bytes.Repeat([]byte{byte(i)}, i+1), Headers: make([]Header, MaxHeaders-i)}
		for j := range m.Headers {
			m.Headers[j] = Header{Key: "h", Value: []byte{byte(j)}}
		}
		return m
	}
	check := func(t *testing.T, d Delivery, i int) {
		t.Helper()
		nk, nh := MaxKeyBytes-i, MaxHeaders-i
		if len(d.Key) != nk || d.Key[0] != byte(i) || d.Key[nk-1] != byte(i) || len(d.Headers) != nh ||
			d.Headers[nh-1].Value[0] != byte(nh-1) || len(d.Value) != i+1 || d.Value[i] != byte(i) {
			t.Fatalf("message %d came back with a %d-byte key, %d headers, value %v", i, len(d.Key), len(d.Headers), d.Value)
		}
	}
	receive := func(t *testing.T, recv func(context.Context) (Delivery, error), from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			d, err := recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			check(t, d, i)
		}
	}
	for _, dir := range []string{"", t.TempDir()} {
		o := opts
		o.Dir, o.RingSize = dir, 2 // with a Dir, most of them spill
		q := openQueue(t, o)
		for i := range 6 {
			if err := q.Send(ctx, edge(i)); err != nil {
				t.Fatalf("dir %q: Send at the bounds: %v", dir, err)
			}
			if dir == "" { // Block: receive before the ring fills
				receive(t, q.Receive, i, i+1)
			}
		}
		if dir != "" {
			if q.Stats().Spilled == 0 {
				t.Fatal("nothing spilled")
			}
			receive(t, q.Receive, 0, 6)
		}
	}
	// A Topic packs the lengths tighter still (tentry): through its ring,
	// and through its spill for a subscription that lags.
	o := opts
	o.Dir, o.RingSize = t.TempDir(), 2
	tp = openTopic(t, o)
	sub := subscribe(t, tp, "s")
	for i := range 6 {
		if err := tp.Publish(ctx, edge(i)); err != nil {
			t.Fatalf("Publish at the bounds: %v", err)
		}
	}
	if tp.Stats().Spilled == 0 {
		t.Fatal("the topic spilled nothing")
	}
	receive(t, sub.Receive, 0, 6)
	if err := tp.Publish(ctx, edge(7)); err != nil {
		t.Fatal(err)
	}
	receive(t, sub.Receive, 7, 8)
	if strconv.IntSize == 64 {
		if _, err := OpenQueue(Options{MaxMessageBytes: 1 << 32}); !errors.Is(err, ErrInvalidOptions) {
			t.Fatalf("MaxMessageBytes 4 GiB: %v, want ErrInvalidOptions", err)
		}
	}
}

// TestReceiveFairness: receivers take from the group's first shard, which
// moves on to the next after takeRun messages and follows the messages when
// it finds its shard empty, so a shard with one message is served while
// another holds a thousand: its message comes within takeRun + shards
// receives, whichever size they take.
func TestReceiveFairness(t *testing.T) {
	const shards = 4
	keys := make([][]byte, shards) // keys[i] goes to shard i
	for i, found := 0, 0; found < shards; i++ {
		k := fmt.Appendf(nil, "k%d", i)
		if s := shard.Of(k, shards); keys[s] == nil {
			keys[s] = k
			found++
		}
	}
	kinds := []struct {
		name string
		open fairnessOpener
	}{
		{"queue", func(t *testing.T) (sendFunc, receiveBatchFunc) {
			q := openQueue(t, Options{Shards: shards, RingSize: 2048})
			return q.Send, q.ReceiveBatch
		}},
		{"topic", func(t *testing.T) (sendFunc, receiveBatchFunc) {
			tp := openTopic(t, Options{Shards: shards, RingSize: 2048})
			sub := subscribe(t, tp, "s")
			return tp.Publish, sub.ReceiveBatch
		}},
	}
	for _, kd := range kinds {
		for _, size := range []int{1, 64} {
			t.Run(fmt.Sprintf("%s/receive=%d", kd.name, size), func(t *testing.T) {
				fairness(t, kd.open, keys, size)
			})
		}
	}
}

type (
	sendFunc         = func(context.Context, Message) error
	receiveBatchFunc = func(context.Context, []Delivery) (int, error)
	fairnessOpener   = func(t *testing.T) (sendFunc, receiveBatchFunc)
)

// fairness sends 1000 messages to the shard of keys[0] and one to each
// other key's, then receives size at a time until the other shards'
// messages have all come, failing past takeRun + shards receives.
func fairness(t *testing.T, open fairnessOpener, keys [][]byte, size int) {
	shards := len(keys)
	ctx := context.Background()
	send, receive := open(t)
	for range 1000 {
		if err := send(ctx, Message{Key: keys[0], Value: []byte("hot")}); err != nil {
			t.Fatal(err)
		}
	}
	for s := 1; s < shards; s++ {
		if err := send(ctx, Message{Key: keys[s], Value: []byte("cold")}); err != nil {
			t.Fatal(err)
		}
	}
	dst := make([]Delivery, size)
	cold := 0
	for calls := 0; cold < shards-1; calls++ {
		if calls == takeRun+shards {
			t.Fatalf("%d receives served %d of the %d cold shards", calls, cold, shards-1)
		}
		k, err := receive(ctx, dst)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dst[:k] {
			if string(d.Value) == "cold" {
				cold++
			}
		}
	}
}
