package bench

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	spillway "github.com/spillway-io/spillway"
)

// BenchmarkLifecycle measures what the message lifecycle costs a Send:
// one goroutine sends 128-byte values into a queue of one shard whose ring
// has room for all of them (faulted in beforehand; nothing is received,
// so that ns/op is the Send alone), each message plain (send=plain),
// carrying an ID (send=id: a duplicate window of 2 minutes full at its
// default 1 Mi ids, every id new; window=16Ki: one that fits in cache;
// impl=floor: a plain Send plus the map work alone, for each), or a Priority on a queue of four
// levels (send=priority), or a DeliverAt an hour ahead with a million
// messages already waiting (send=delayed; heap-B/pending is the heap each
// held message costs beyond its own bytes, measured over that million).
// Run it with -benchtime of at most 4194304x (the ring's room).
func BenchmarkLifecycle(b *testing.B) {
	msgs, _ := messages(msgPool)
	// Four times the window's default DedupMaxIDs: an id comes back only
	// long after the window forgot it, so that every send is queued.
	ids := make([]string, 1<<22)
	for i := range ids {
		ids[i] = "order-" + strconv.Itoa(i)
	}
	const room = 1 << 22
	run := func(b *testing.B, opts spillway.Options, msg func(i int) spillway.Message) {
		if b.N > room {
			b.Skipf("b.N %d is more than the ring's room %d", b.N, room)
		}
		opts.Shards, opts.RingSize = 1, room
		q, err := spillway.OpenQueue(opts)
		if err != nil {
			b.Fatal(err)
		}
		defer closeOK(b, q)
		// Fault the ring in: a first pass over every slot.
		batch := make([]spillway.Message, 1024)
		for i := range batch {
			batch[i] = spillway.Message{Value: msgs[0]}
		}
		dst := make([]spillway.Delivery, 1024)
		for range room / len(batch) {
			if err := q.SendBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		for got := 0; got < room; {
			k, err := q.ReceiveBatch(ctx, dst)
			if err != nil {
				b.Fatal(err)
			}
			got += k
		}
		b.SetBytes(128)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := q.Send(ctx, msg(i)); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if st := q.Stats(); st.Depth != int64(b.N) {
			b.Fatalf("Depth %d, want %d", st.Depth, b.N)
		}
	}
	b.Run("send=plain", func(b *testing.B) {
		run(b, spillway.Options{}, func(i int) spillway.Message { return spillway.Message{Value: msgs[i%msgPool]} })
	})
	b.Run("send=id", func(b *testing.B) {
		run(b, spillway.Options{}, func(i int) spillway.Message {
			return spillway.Message{Value: msgs[i%msgPool], ID: ids[i&(len(ids)-1)]}
		})
	})
	b.Run("send=id-window=16Ki", func(b *testing.B) {
		run(b, spillway.Options{DedupMaxIDs: 1 << 14}, func(i int) spillway.Message {
			return spillway.Message{Value: msgs[i%msgPool], ID: ids[i&(len(ids)-1)]}
		})
	})
	// The least a Send with an ID costs: a plain Send plus one map lookup
	// and insert of a new id, in two generations of half the window as it
	// keeps them, without lock or clock, in the same loop (the ring's
	// writes evict the maps' lines as they do the window's).
	floor := func(b *testing.B, half int) {
		cur, prev := make(map[string]int64), map[string]int64(nil)
		run(b, spillway.Options{}, func(i int) spillway.Message {
			id := ids[i&(len(ids)-1)]
			if _, ok := cur[id]; ok {
				b.Fatal("seen")
			}
			if _, ok := prev[id]; ok {
				b.Fatal("seen")
			}
			cur[id] = int64(i)
			if len(cur) == half {
				prev, cur = cur, make(map[string]int64, half)
			}
			return spillway.Message{Value: msgs[i%msgPool]}
		})
	}
	b.Run("send=id/impl=floor", func(b *testing.B) { floor(b, 1<<19) })
	b.Run("send=id-window=16Ki/impl=floor", func(b *testing.B) { floor(b, 1<<13) })
	b.Run("send=priority", func(b *testing.B) {
		run(b, spillway.Options{Priorities: 4}, func(i int) spillway.Message {
			return spillway.Message{Value: msgs[i%msgPool], Priority: uint8(i & 3)}
		})
	})
	b.Run("send=delayed", func(b *testing.B) {
		q, err := spillway.OpenQueue(spillway.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer closeOK(b, q)
		due := time.Now().Add(time.Hour)
		const pending = 1 << 20
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range pending {
			if err := q.Send(ctx, spillway.Message{Value: msgs[0], DeliverAt: due}); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.SetBytes(128)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := q.Send(ctx, spillway.Message{Value: msgs[i%msgPool], DeliverAt: due}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/pending, "heap-B/pending")
		if st := q.Stats(); st.Delayed != int64(pending+b.N) {
			b.Fatalf("Delayed %d, want %d", st.Delayed, pending+b.N)
		}
	})
}
