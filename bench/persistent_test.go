package bench

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/grandecola/bigqueue"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	diskqueue "github.com/nsqio/go-diskqueue"

	spillway "github.com/spillway-io/spillway"
	"github.com/spillway-io/spillway/internal/benchenv"
)

// BenchmarkPersistent moves 128-byte events from one producer to one
// consumer, running at once, through queues that keep them on disk; ns/op
// is per message sent and received. Like with like:
//
//   - ack=auto: Spillway Persistent with SyncNever and AutoAck, against
//     grandecola/bigqueue (mmap files, page cache only, no acks, no
//     checksums; not safe for concurrent use, so behind a mutex, as its
//     documentation says), and the floor (persistentFloor).
//   - ack=manual: Spillway with ManualAck, each message acked, against NATS
//     JetStream embedded in the process: a file-storage stream, its
//     default sync (every 2 minutes: never within a run), async publish,
//     a durable pull consumer fetching 256 at a time, each message acked.
//   - sync=never and sync=200ms: Spillway SyncNever against go-diskqueue
//     with a syncEvery and syncTimeout too large to trigger, and Spillway
//     SyncInterval(200ms) against go-diskqueue's syncTimeout of 200ms.
func BenchmarkPersistent(b *testing.B) {
	msgs, _ := messages(msgPool)
	for _, ack := range []spillway.AckMode{spillway.AutoAck, spillway.ManualAck} {
		name := map[spillway.AckMode]string{spillway.AutoAck: "auto", spillway.ManualAck: "manual"}[ack]
		b.Run("ack="+name+"/impl=spillway", func(b *testing.B) {
			persistentPair(b, msgs, spillway.Options{Durability: spillway.Persistent, Ack: ack}, false)
		})
	}
	b.Run("ack=auto/impl=bigqueue", func(b *testing.B) {
		q, err := bigqueue.NewMmapQueue(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		defer closeOK(b, q)
		var mu sync.Mutex
		pair(b, func() {
			for i := range b.N {
				mu.Lock()
				err := q.Enqueue(msgs[i%msgPool])
				mu.Unlock()
				if err != nil {
					b.Error(err)
					return
				}
			}
		}, func() {
			for got := 0; got < b.N; {
				mu.Lock()
				_, err := q.Dequeue()
				mu.Unlock()
				switch {
				case errors.Is(err, bigqueue.ErrEmptyQueue):
					runtime.Gosched()
				case err != nil:
					b.Error(err)
					return
				default:
					got++
				}
			}
		})
	})
	b.Run("ack=auto/impl=floor", func(b *testing.B) { persistentFloor(b, msgs) })
	b.Run("ack=manual/impl=jetstream", func(b *testing.B) {
		jetStreamPair(b, msgs, false)
	})
	for _, sync := range []time.Duration{0, 200 * time.Millisecond} {
		name := "never"
		opts := spillway.Options{Durability: spillway.Persistent}
		if sync > 0 {
			name = sync.String()
			opts.Sync, opts.SyncEvery = spillway.SyncInterval, sync
		}
		b.Run("sync="+name+"/impl=spillway", func(b *testing.B) {
			persistentPair(b, msgs, opts, false)
		})
		b.Run("sync="+name+"/impl=diskqueue", func(b *testing.B) {
			timeout := sync
			if timeout == 0 {
				timeout = time.Hour
			}
			q := diskqueue.New("bench", b.TempDir(), 64<<20, 0, 1<<20, 1<<62, timeout,
				func(diskqueue.LogLevel, string, ...interface{}) {})
			defer closeOK(b, q)
			pair(b, func() {
				for i := range b.N {
					if err := q.Put(msgs[i%msgPool]); err != nil {
						b.Error(err)
						return
					}
				}
			}, func() {
				for range b.N {
					<-q.ReadChan()
				}
			})
		})
	}
}

// BenchmarkPersistentBatch is BenchmarkPersistent's ack=auto for Spillway
// in batches of 64 (SendBatch, ReceiveBatch), next to the Ephemeral queue
// in the same batches: what durability costs when the calls are few.
func BenchmarkPersistentBatch(b *testing.B) {
	msgs, _ := messages(msgPool)
	b.Run("mode=batch=64/impl=persistent", func(b *testing.B) {
		persistentPair(b, msgs, spillway.Options{Durability: spillway.Persistent}, true)
	})
	b.Run("mode=batch=64/impl=ephemeral", func(b *testing.B) {
		persistentPair(b, msgs, spillway.Options{}, true)
	})
	b.Run("mode=one-by-one/impl=persistent", func(b *testing.B) {
		persistentPair(b, msgs, spillway.Options{Durability: spillway.Persistent}, false)
	})
	b.Run("mode=one-by-one/impl=ephemeral", func(b *testing.B) {
		persistentPair(b, msgs, spillway.Options{}, false)
	})
}

// persistentPair runs one producer and one consumer through a Spillway
// queue opened with opts (in a fresh directory if Persistent), one message
// or a batch of 64 at a time; under ManualAck the consumer acks each.
func persistentPair(b *testing.B, msgs [][]byte, opts spillway.Options, batch bool) {
	if opts.Durability == spillway.Persistent {
		opts.Dir = b.TempDir()
	}
	q, err := spillway.OpenQueue(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := q.Close(); err != nil {
			b.Error(err)
		}
	}()
	pair(b, func() {
		if batch {
			ms := make([]spillway.Message, 64)
			for i := 0; i < b.N; i += len(ms) {
				n := min(len(ms), b.N-i)
				for j := range n {
					ms[j] = spillway.Message{Value: msgs[(i+j)%msgPool]}
				}
				if err := q.SendBatch(ctx, ms[:n]); err != nil {
					b.Error(err)
					return
				}
			}
			return
		}
		for i := range b.N {
			if err := q.Send(ctx, spillway.Message{Value: msgs[i%msgPool]}); err != nil {
				b.Error(err)
				return
			}
		}
	}, func() {
		dst := make([]spillway.Delivery, 64)
		if !batch {
			dst = dst[:1]
		}
		for got := 0; got < b.N; {
			n, err := q.ReceiveBatch(ctx, dst)
			if err != nil {
				b.Error(err)
				return
			}
			if opts.Ack == spillway.ManualAck {
				for i := range n {
					if err := dst[i].Ack(); err != nil {
						b.Error(err)
						return
					}
				}
			}
			got += n
		}
	})
	st := q.Stats()
	b.ReportMetric(100*float64(st.Spilled)/float64(max(st.Sent, 1)), "from-disk%")
}

// startJetStream starts a NATS server with JetStream on a loopback port the
// system picks, storing in a fresh directory, with sync_interval always
// when syncAlways (else its default), and connects to it.
func startJetStream(b *testing.B, syncAlways bool) (jetstream.JetStream, func()) {
	b.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: b.TempDir(), SyncAlways: syncAlways,
	})
	if err != nil {
		b.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		b.Fatal("the NATS server did not start")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	return js, func() {
		nc.Close()
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// jetStreamPair runs one publisher (async publish, at most 4096 pending)
// and one consumer (a durable pull consumer, fetch 256, ack each) through
// a file-storage stream.
func jetStreamPair(b *testing.B, msgs [][]byte, syncAlways bool) {
	js, stop := startJetStream(b, syncAlways)
	defer stop()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "BENCH", Subjects: []string{"bench"}, Storage: jetstream.FileStorage,
		Retention: jetstream.WorkQueuePolicy,
	})
	if err != nil {
		b.Fatal(err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1 << 16,
	})
	if err != nil {
		b.Fatal(err)
	}
	pair(b, func() {
		for i := range b.N {
			if _, err := js.PublishAsync("bench", msgs[i%msgPool], jetstream.WithStallWait(time.Minute)); err != nil {
				b.Error(err)
				return
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Error("publishes not acknowledged within a minute")
		}
	}, func() { fetchAll(b, cons, true) })
}

// fetchAll takes b.N messages from cons, 256 at a time, acking each if
// ack says so.
func fetchAll(b *testing.B, cons jetstream.Consumer, ack bool) {
	for got := 0; got < b.N; {
		batch, err := cons.Fetch(min(256, b.N-got), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			b.Error(err)
			return
		}
		for m := range batch.Messages() {
			if ack {
				if err := m.Ack(); err != nil {
					b.Error(err)
					return
				}
			}
			got++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			b.Error(err)
			return
		}
	}
}

// BenchmarkSyncAlways sends 128-byte events under SyncAlways, from one
// sender and from 32 at once (keyless, so over every shard), while one
// consumer takes them; ns/op is per message. msgs/sync is the messages per
// fdatasync (of logs, journals and cursors) the run made. Next to it,
// JetStream with sync_interval always, 32 publishers publishing
// synchronously.
func BenchmarkSyncAlways(b *testing.B) {
	msgs, _ := messages(msgPool)
	for _, senders := range []int{1, 32} {
		b.Run(fmt.Sprintf("senders=%d/impl=spillway", senders), func(b *testing.B) {
			q, err := spillway.OpenQueue(spillway.Options{Dir: b.TempDir(), Durability: spillway.Persistent, Sync: spillway.SyncAlways})
			if err != nil {
				b.Fatal(err)
			}
			defer closeOK(b, q)
			before := q.Stats()
			pair(b, func() {
				var wg sync.WaitGroup
				for g := range senders {
					wg.Go(func() {
						for i := g; i < b.N; i += senders {
							if err := q.Send(ctx, spillway.Message{Value: msgs[i%msgPool]}); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
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
			st := q.Stats()
			b.ReportMetric(float64(st.Sent-before.Sent)/float64(max(st.Syncs-before.Syncs, 1)), "msgs/sync")
		})
	}
	b.Run("senders=32/impl=jetstream", func(b *testing.B) {
		js, stop := startJetStream(b, true)
		defer stop()
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: "BENCH", Subjects: []string{"bench"}, Storage: jetstream.FileStorage,
		}); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(128)
		b.ReportAllocs()
		defer benchenv.Steal(b)()
		b.ResetTimer()
		var wg sync.WaitGroup
		for g := range 32 {
			wg.Go(func() {
				for i := g; i < b.N; i += 32 {
					if _, err := js.Publish(ctx, "bench", msgs[i%msgPool]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	})
}

// BenchmarkReopen opens a Persistent queue that holds 1 M or 10 M 128-byte
// messages (written once, outside the timer) and closes it again; ns/op is
// one open and close. What Open reads does not grow with the backlog:
// sealed segments are taken at their seals' word, only each shard's active
// segment is scanned.
func BenchmarkReopen(b *testing.B) {
	msgs, _ := messages(msgPool)
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("backlog=%dM", n/1_000_000), func(b *testing.B) {
			dir := b.TempDir()
			opts := spillway.Options{Dir: dir, Durability: spillway.Persistent}
			q, err := spillway.OpenQueue(opts)
			if err != nil {
				b.Fatal(err)
			}
			batch := make([]spillway.Message, 1024)
			for i := 0; i < n; i += len(batch) {
				for j := range batch {
					batch[j] = spillway.Message{Value: msgs[(i+j)%msgPool]}
				}
				if err := q.SendBatch(ctx, batch[:min(len(batch), n-i)]); err != nil {
					b.Fatal(err)
				}
			}
			if err := q.Close(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				q, err := spillway.OpenQueue(opts)
				if err != nil {
					b.Fatal(err)
				}
				if rec := q.Recovery(); rec.Messages != uint64(n) {
					b.Fatalf("reopen recovered %+v, want %d messages", rec, n)
				}
				b.ReportMetric(float64(q.Recovery().Segments), "segments")
				if err := q.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
