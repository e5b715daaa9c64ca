package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	spillway "github.com/spillway-io/spillway"
	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/internal/benchenv"
	"github.com/spillway-io/spillway/mmap"
)

// topicSubs is how many subscriptions the Persistent topic benchmarks fan
// out to.
const topicSubs = 3

// BenchmarkPersistentTopic publishes 128-byte events, one at a time, to a
// topic kept on disk with three subscriptions, each received by its own
// goroutine while the publisher runs; ns/op is per message published (and
// delivered to all three). Like with like:
//
//   - Spillway Persistent with SyncNever; JetStream embedded in the
//     process with file storage and its default sync (every 2 minutes:
//     never within a run), async publish, three durable pull consumers
//     fetching 256 at a time.
//   - ack=auto: Spillway AutoAck, JetStream AckNone. ack=manual: Spillway
//     ManualAck and JetStream AckExplicit, each message acked on each
//     subscription.
func BenchmarkPersistentTopic(b *testing.B) {
	msgs, _ := messages(msgPool)
	for _, ack := range []spillway.AckMode{spillway.AutoAck, spillway.ManualAck} {
		name := map[spillway.AckMode]string{spillway.AutoAck: "auto", spillway.ManualAck: "manual"}[ack]
		b.Run("ack="+name+"/impl=spillway", func(b *testing.B) { persistentTopicFanOut(b, msgs, ack) })
		b.Run("ack="+name+"/impl=jetstream", func(b *testing.B) { jetStreamFanOut(b, msgs, ack == spillway.ManualAck) })
	}
}

func persistentTopicFanOut(b *testing.B, msgs [][]byte, ack spillway.AckMode) {
	t, err := spillway.OpenTopic(spillway.Options{Dir: b.TempDir(), Durability: spillway.Persistent, Ack: ack})
	if err != nil {
		b.Fatal(err)
	}
	defer closeOK(b, t)
	subs := make([]*spillway.Subscription, topicSubs)
	for i := range subs {
		if subs[i], err = t.Subscribe(fmt.Sprintf("s%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	fanOut(b, func() {
		for i := range b.N {
			if err := t.Publish(ctx, spillway.Message{Value: msgs[i%msgPool]}); err != nil {
				b.Error(err)
				return
			}
		}
	}, perSub(func(i int) {
		dst := make([]spillway.Delivery, 64)
		for got := 0; got < b.N; {
			n, err := subs[i].ReceiveBatch(ctx, dst)
			if err != nil {
				b.Error(err)
				return
			}
			if ack == spillway.ManualAck {
				for j := range n {
					if err := dst[j].Ack(); err != nil {
						b.Error(err)
						return
					}
				}
			}
			got += n
		}
	}))
}

// perSub returns consume(i) for each subscription, for fanOut.
func perSub(consume func(i int)) []func() {
	out := make([]func(), topicSubs)
	for i := range out {
		out[i] = func() { consume(i) }
	}
	return out
}

func jetStreamFanOut(b *testing.B, msgs [][]byte, acked bool) {
	js, stop := startJetStream(b, false)
	defer stop()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "BENCH", Subjects: []string{"bench"}, Storage: jetstream.FileStorage,
		Retention: jetstream.InterestPolicy,
	})
	if err != nil {
		b.Fatal(err)
	}
	policy := jetstream.AckNonePolicy
	if acked {
		policy = jetstream.AckExplicitPolicy
	}
	cons := make([]jetstream.Consumer, topicSubs)
	for i := range cons {
		if cons[i], err = stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable: fmt.Sprintf("c%d", i), AckPolicy: policy, MaxAckPending: 1 << 16,
		}); err != nil {
			b.Fatal(err)
		}
	}
	fanOut(b, func() {
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
	}, perSub(func(i int) { fetchAll(b, cons[i], acked) }))
}

// BenchmarkTopicReplay replays a Persistent topic's log of b.N 128-byte
// events (published one at a time, so one record per batch: the worst
// case for reading back) from Earliest, into a new subscription, 256 at a
// time; ns/op is per message replayed. Reported beside it, from the same
// run: publish-ns/op, what publishing the log cost per message (the live
// path); readback-ns/op, reading the same log files with package mmap
// alone (ReadRecords, the floor for the same bytes and codec); and
// attime-ns, how long AtTime takes to find the middle of the log
// (Topic.PositionAt).
//
// publish=batch64 builds the log with PublishBatch, 64 messages at a time
// (a batch of 64 records per append), and compares with that publish path.
func BenchmarkTopicReplay(b *testing.B) {
	msgs, _ := messages(msgPool)
	for _, batch := range []int{1, 64} {
		name := "one-by-one"
		if batch > 1 {
			name = fmt.Sprintf("batch%d", batch)
		}
		b.Run("publish="+name, func(b *testing.B) { topicReplay(b, msgs, batch) })
	}
}

func topicReplay(b *testing.B, msgs [][]byte, batch int) {
	dir := b.TempDir()
	clock := spillway.NewManualClock(time.Unix(1_700_000_000, 0))
	t, err := spillway.OpenTopic(spillway.Options{Dir: dir, Durability: spillway.Persistent, Clock: clock,
		Retention: spillway.Retention{Policy: spillway.Limits}})
	if err != nil {
		b.Fatal(err)
	}
	defer closeOK(b, t)
	var mid time.Time
	ms := make([]spillway.Message, batch)
	start := time.Now()
	for i := 0; i < b.N; i += batch {
		if i%1024 < batch {
			clock.Advance(time.Millisecond)
		}
		if i <= b.N/2 && b.N/2 < i+batch {
			mid = clock.Now()
		}
		n := min(batch, b.N-i)
		for j := range n {
			ms[j] = spillway.Message{Value: msgs[(i+j)%msgPool]}
		}
		if err := t.PublishBatch(ctx, ms[:n]); err != nil {
			b.Fatal(err)
		}
	}
	published := time.Since(start)

	b.SetBytes(128)
	b.ReportAllocs()
	stopSteal := benchenv.Steal(b)
	b.ResetTimer()
	sub, err := t.SubscribeAt("replay", spillway.Earliest())
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]spillway.Delivery, 256)
	for got := 0; got < b.N; {
		n, err := sub.ReceiveBatch(ctx, dst)
		if err != nil {
			b.Fatal(err)
		}
		got += n
	}
	b.StopTimer()
	stopSteal()

	atStart := time.Now()
	pos, err := t.PositionAt(spillway.AtTime(mid))
	atTook := time.Since(atStart)
	if err != nil {
		b.Fatal(err)
	}
	var sum uint64
	for _, o := range pos.Offsets() {
		sum += o
	}
	if want := uint64(b.N / 2); sum > want+uint64(batch) || sum+1024+uint64(batch) < want {
		b.Fatalf("AtTime(middle) is at %s (%d messages in), want about %d", pos, sum, want)
	}
	if err := t.Close(); err != nil {
		b.Fatal(err)
	}
	readStart := time.Now()
	read := readLogs(b, dir)
	readTook := time.Since(readStart)
	if read != b.N {
		b.Fatalf("the logs hold %d messages, %d were published", read, b.N)
	}
	b.ReportMetric(float64(published.Nanoseconds())/float64(b.N), "publish-ns/op")
	b.ReportMetric(float64(readTook.Nanoseconds())/float64(b.N), "readback-ns/op")
	b.ReportMetric(float64(atTook.Nanoseconds()), "attime-ns")
}

// readLogs reads every shard log of a closed Persistent topic in dir with
// package mmap and returns how many records they hold.
func readLogs(b *testing.B, dir string) int {
	shards, err := filepath.Glob(filepath.Join(dir, "shard-*"))
	if err != nil {
		b.Fatal(err)
	}
	total := 0
	var recs []codec.Record
	for _, sd := range shards {
		l, _, err := mmap.Open(sd, mmap.Options{})
		if err != nil {
			b.Fatal(err)
		}
		r, err := l.NewPeekReader(l.FirstOffset())
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, recs, err = r.ReadRecords(recs, ^uint64(0), 256<<10)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			total += len(recs)
		}
		closeOK(b, r)
		closeOK(b, l)
	}
	if total == 0 {
		if _, err := os.Stat(dir); err != nil {
			b.Fatal(err)
		}
	}
	return total
}

// BenchmarkTopicReplayAlongside publishes 128-byte events one at a time to
// a Persistent topic whose log already holds 2 M, with one subscription
// receiving at the head, and (replay=on) another replaying the log from
// Earliest at the same time; ns/op is per message published and received
// at the head. The difference between the two is what a replay costs the
// live path on this machine (two cores: the replay takes one's share).
func BenchmarkTopicReplayAlongside(b *testing.B) {
	msgs, _ := messages(msgPool)
	for _, replay := range []bool{false, true} {
		b.Run(fmt.Sprintf("replay=%v", map[bool]string{false: "off", true: "on"}[replay]), func(b *testing.B) {
			t, err := spillway.OpenTopic(spillway.Options{Dir: b.TempDir(), Durability: spillway.Persistent,
				Retention: spillway.Retention{Policy: spillway.Limits}})
			if err != nil {
				b.Fatal(err)
			}
			defer closeOK(b, t)
			const backlog = 2 << 20
			ms := make([]spillway.Message, 64)
			for i := 0; i < backlog; i += len(ms) {
				for j := range ms {
					ms[j] = spillway.Message{Value: msgs[(i+j)%msgPool]}
				}
				if err := t.PublishBatch(ctx, ms); err != nil {
					b.Fatal(err)
				}
			}
			head, err := t.Subscribe("head")
			if err != nil {
				b.Fatal(err)
			}
			stop := make(chan struct{})
			var replayed sync.WaitGroup
			var read int
			if replay {
				r, err := t.SubscribeAt("replay", spillway.Earliest())
				if err != nil {
					b.Fatal(err)
				}
				replayed.Go(func() {
					dst := make([]spillway.Delivery, 256)
					for read < backlog {
						select {
						case <-stop:
							return
						default:
						}
						n, err := r.ReceiveBatch(ctx, dst)
						if err != nil {
							b.Error(err)
							return
						}
						read += n
					}
				})
			}
			start := time.Now()
			pair(b, func() {
				for i := range b.N {
					if err := t.Publish(ctx, spillway.Message{Value: msgs[i%msgPool]}); err != nil {
						b.Error(err)
						return
					}
				}
			}, func() {
				dst := make([]spillway.Delivery, 64)
				for got := 0; got < b.N; {
					n, err := head.ReceiveBatch(ctx, dst)
					if err != nil {
						b.Error(err)
						return
					}
					got += n
				}
			})
			took := time.Since(start)
			close(stop)
			replayed.Wait()
			if replay {
				b.ReportMetric(float64(read)/took.Seconds(), "replayed/s")
			}
		})
	}
}
