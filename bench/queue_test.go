package bench

import (
	"context"
	"math/bits"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grandecola/bigqueue"
	diskqueue "github.com/nsqio/go-diskqueue"

	spillway "github.com/spillway-io/spillway"
	"github.com/spillway-io/spillway/internal/benchenv"
)

var ctx = context.Background()

// queueCap is the capacity the channel baselines get: the queue's total
// (ring size times shards, with the default GOMAXPROCS shards).
func queueCap() int { return 4096 * runtime.GOMAXPROCS(0) }

// BenchmarkQueue is the memory path, one producer and one consumer, 128-byte
// values: Send and Receive one message at a time (one-by-one), and
// SendBatch/ReceiveBatch of 64 (batch=64), next to a buffered chan []byte,
// and, for batches, next to the floor a minimal ring sets (handoffFloor).
// ns/op is per message.
func BenchmarkQueue(b *testing.B) {
	msgs, _ := messages(msgPool)
	b.Run("mode=one-by-one/impl=spillway", func(b *testing.B) {
		q, err := spillway.OpenQueue(spillway.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer closeOK(b, q)
		pair(b, func() {
			for i := range b.N {
				if err := q.Send(ctx, spillway.Message{Value: msgs[i%msgPool]}); err != nil {
					b.Error(err)
					return
				}
			}
		}, func() {
			for range b.N {
				if _, err := q.Receive(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("mode=batch=64/impl=spillway", func(b *testing.B) {
		queueBatches(b, spillway.Options{}, msgs)
	})
	b.Run("mode=batch=64/impl=floor", func(b *testing.B) {
		handoffFloor(b, 1<<bits.Len(uint(queueCap()-1)), msgs)
	})
	for _, mode := range []string{"one-by-one", "batch=64"} {
		b.Run("mode="+mode+"/impl=chan", func(b *testing.B) {
			chanPair(b, queueCap(), msgs)
		})
	}
}

// BenchmarkQueueSmallRing is BenchmarkQueue's batch mode with rings of 256
// (four batches of 64 per shard), next to a channel of the same total
// capacity: the sender fills a ring in a few microseconds and must wait
// for room, so the figure shows how well each side's waits track the
// other's pace.
func BenchmarkQueueSmallRing(b *testing.B) {
	msgs, _ := messages(msgPool)
	const ringSize = 256
	b.Run("mode=batch=64/impl=spillway", func(b *testing.B) {
		queueBatches(b, spillway.Options{RingSize: ringSize}, msgs)
	})
	b.Run("mode=batch=64/impl=chan", func(b *testing.B) {
		chanPair(b, ringSize*runtime.GOMAXPROCS(0), msgs)
	})
}

// queueBatches moves b.N messages through a Queue opened with opts: one
// goroutine sends them in batches of 64, the other receives them in
// batches of up to 64.
func queueBatches(b *testing.B, opts spillway.Options, msgs [][]byte) {
	q, err := spillway.OpenQueue(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer closeOK(b, q)
	pair(b, func() {
		batch := make([]spillway.Message, 64)
		for i := 0; i < b.N; i += len(batch) {
			n := min(len(batch), b.N-i)
			for j := range n {
				batch[j] = spillway.Message{Value: msgs[(i+j)%msgPool]}
			}
			if err := q.SendBatch(ctx, batch[:n]); err != nil {
				b.Error(err)
				return
			}
		}
	}, func() {
		dst := make([]spillway.Delivery, 64)
		for got := 0; got < b.N; {
			n, err := q.ReceiveBatch(ctx, dst)
			if err != nil {
				b.Error(err)
				return
			}
			got += n
		}
	})
}

// chanPair moves b.N messages through a buffered channel of capacity
// size, one goroutine sending, the other receiving.
func chanPair(b *testing.B, size int, msgs [][]byte) {
	ch := make(chan []byte, size)
	pair(b, func() {
		for i := range b.N {
			ch <- msgs[i%msgPool]
		}
	}, func() {
		for range b.N {
			<-ch
		}
	})
}

// BenchmarkQueueOneGoroutine is BenchmarkQueue's batch mode done by one
// goroutine: send 64, receive 64, over and over. Without a second core
// nothing crosses cores, so ns/op is the CPU cost per message of each side's
// own work; the difference from BenchmarkQueue is what moving the messages
// between cores costs.
func BenchmarkQueueOneGoroutine(b *testing.B) {
	msgs, _ := messages(msgPool)
	b.Run("mode=batch=64/impl=spillway", func(b *testing.B) {
		q, err := spillway.OpenQueue(spillway.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer closeOK(b, q)
		batch := make([]spillway.Message, 64)
		dst := make([]spillway.Delivery, 64)
		b.SetBytes(128)
		b.ReportAllocs()
		defer benchenv.Steal(b)()
		b.ResetTimer()
		for i := 0; i < b.N; i += len(batch) {
			n := min(len(batch), b.N-i)
			for j := range n {
				batch[j] = spillway.Message{Value: msgs[(i+j)%msgPool]}
			}
			if err := q.SendBatch(ctx, batch[:n]); err != nil {
				b.Fatal(err)
			}
			for got := 0; got < n; {
				k, err := q.ReceiveBatch(ctx, dst[:n-got])
				if err != nil {
					b.Fatal(err)
				}
				got += k
			}
		}
	})
	b.Run("mode=batch=64/impl=chan", func(b *testing.B) {
		ch := make(chan []byte, queueCap())
		b.SetBytes(128)
		b.ReportAllocs()
		defer benchenv.Steal(b)()
		b.ResetTimer()
		for i := 0; i < b.N; i += 64 {
			n := min(64, b.N-i)
			for j := range n {
				ch <- msgs[(i+j)%msgPool]
			}
			for range n {
				<-ch
			}
		}
	})
}

// BenchmarkQueueAck compares delivery guarantees on the memory path, one
// producer and one consumer: AutoAck (at-most-once) against ManualAck, where
// every delivery is leased and then acked.
func BenchmarkQueueAck(b *testing.B) {
	msgs, _ := messages(msgPool)
	for _, mode := range []spillway.AckMode{spillway.AutoAck, spillway.ManualAck} {
		name := "ack=auto"
		if mode == spillway.ManualAck {
			name = "ack=manual"
		}
		b.Run(name, func(b *testing.B) {
			q, err := spillway.OpenQueue(spillway.Options{Ack: mode})
			if err != nil {
				b.Fatal(err)
			}
			defer closeOK(b, q)
			pair(b, func() {
				for i := range b.N {
					if err := q.Send(ctx, spillway.Message{Value: msgs[i%msgPool]}); err != nil {
						b.Error(err)
						return
					}
				}
			}, func() {
				for range b.N {
					d, err := q.Receive(ctx)
					if err == nil && mode == spillway.ManualAck {
						err = d.Ack()
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkQueueSpill forces everything through disk: a Queue with rings of
// 16 messages is sent b.N 128-byte messages (in batches of 64), then they are
// all received, next to bigqueue and go-diskqueue doing the same.
func BenchmarkQueueSpill(b *testing.B) {
	msgs, _ := messages(msgPool)
	for _, c := range []spillway.Compression{spillway.Zstd, spillway.S2} {
		name := map[spillway.Compression]string{spillway.Zstd: "zstd", spillway.S2: "s2"}[c]
		b.Run("impl="+name, func(b *testing.B) {
			dir := b.TempDir()
			q, err := spillway.OpenQueue(spillway.Options{Dir: dir, RingSize: 16, Compression: c})
			if err != nil {
				b.Fatal(err)
			}
			defer closeOK(b, q)
			batch := make([]spillway.Message, 64)
			dst := make([]spillway.Delivery, 64)
			b.SetBytes(128)
			b.ReportAllocs()
			defer benchenv.Steal(b)()
			b.ResetTimer()
			for i := 0; i < b.N; i += len(batch) {
				n := min(len(batch), b.N-i)
				for j := range n {
					batch[j] = spillway.Message{Value: msgs[(i+j)%msgPool]}
				}
				if err := q.SendBatch(ctx, batch[:n]); err != nil {
					b.Fatal(err)
				}
			}
			if err := q.Flush(); err != nil {
				b.Fatal(err)
			}
			written := b.Elapsed()
			st := q.Stats()
			for got := 0; got < b.N; {
				n, err := q.ReceiveBatch(ctx, dst)
				if err != nil {
					b.Fatal(err)
				}
				got += n
			}
			b.StopTimer()
			b.ReportMetric(100*float64(st.DataBytes)/float64(128*b.N), "stored%")
			reportPhases(b, written)
		})
	}
	b.Run("impl=bigqueue", func(b *testing.B) {
		q, err := bigqueue.NewMmapQueue(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		defer closeOK(b, q)
		b.SetBytes(128)
		b.ReportAllocs()
		defer benchenv.Steal(b)()
		b.ResetTimer()
		for i := range b.N {
			if err := q.Enqueue(msgs[i%msgPool]); err != nil {
				b.Fatal(err)
			}
		}
		written := b.Elapsed()
		for range b.N {
			if _, err := q.Dequeue(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		reportPhases(b, written)
	})
	b.Run("impl=diskqueue", func(b *testing.B) {
		q := diskqueue.New("bench", b.TempDir(), 100<<20, 0, 1<<20, 2500, 2*time.Second,
			func(diskqueue.LogLevel, string, ...interface{}) {})
		defer closeOK(b, q)
		b.SetBytes(128)
		b.ReportAllocs()
		defer benchenv.Steal(b)()
		b.ResetTimer()
		for i := range b.N {
			if err := q.Put(msgs[i%msgPool]); err != nil {
				b.Fatal(err)
			}
		}
		for range b.N {
			<-q.ReadChan()
		}
	})
}

// pair runs produce on a new goroutine and consume on the benchmark's.
func pair(b *testing.B, produce, consume func()) {
	b.SetBytes(128)
	b.ReportAllocs()
	defer benchenv.Steal(b)()
	b.ResetTimer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		produce()
	}()
	consume()
	<-done
}

// reportPhases splits a write-then-read benchmark's ns/op into its two
// phases: write-ns/op up to written (the elapsed time when the last message
// was written), read-ns/op after it. Call it with the timer stopped.
func reportPhases(b *testing.B, written time.Duration) {
	b.ReportMetric(float64(written.Nanoseconds())/float64(b.N), "write-ns/op")
	b.ReportMetric(float64((b.Elapsed()-written).Nanoseconds())/float64(b.N), "read-ns/op")
}

// BenchmarkQueueCompeting is one producer and four competing consumers,
// one message at a time, next to a buffered channel with four receivers:
// more goroutines than the two Ps, so waiters compete with workers for the
// processors. Every consumer counts what it took with one atomic add per
// message, on both sides. ns/op is per message.
func BenchmarkQueueCompeting(b *testing.B) {
	msgs, _ := messages(msgPool)
	const consumers = 4
	b.Run("consumers=4/impl=spillway", func(b *testing.B) {
		q, err := spillway.OpenQueue(spillway.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer closeOK(b, q)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var left atomic.Int64
		left.Store(int64(b.N))
		recv := make([]func(), consumers)
		for i := range recv {
			recv[i] = func() {
				for {
					if _, err := q.Receive(cctx); err != nil {
						return
					}
					if left.Add(-1) == 0 {
						cancel()
					}
				}
			}
		}
		if b.N == 0 {
			cancel()
		}
		fanOut(b, func() {
			for i := range b.N {
				if err := q.Send(ctx, spillway.Message{Value: msgs[i%msgPool]}); err != nil {
					b.Error(err)
					return
				}
			}
		}, recv)
	})
	b.Run("consumers=4/impl=chan", func(b *testing.B) {
		ch := make(chan []byte, queueCap())
		var left atomic.Int64
		left.Store(int64(b.N))
		recv := make([]func(), consumers)
		for i := range recv {
			recv[i] = func() {
				for range ch {
					left.Add(-1)
				}
			}
		}
		fanOut(b, func() {
			for i := range b.N {
				ch <- msgs[i%msgPool]
			}
			close(ch)
		}, recv)
	})
}
