package natsjs

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	spillway "github.com/spillway-io/spillway"
)

// benchValue is a 128-byte event.
var benchValue = []byte(fmt.Sprintf("%-128s", `{"type":"purchase","user":"u-42","amount":12.5}`))

// BenchmarkForward moves b.N 128-byte messages into a file-storage stream
// of JetStream in the process: impl=forward drains a ManualAck Queue
// holding them (PubAck-gated acks, 256 in flight), impl=nats is a bare
// nats.go async-publish loop of the same messages (256 in flight), the
// floor of the same work without a local queue. ns/op is per message.
func BenchmarkForward(b *testing.B) {
	for _, impl := range []string{"forward", "nats"} {
		b.Run("impl="+impl, func(b *testing.B) {
			js, _ := startJetStream(b)
			ctx := context.Background()
			st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}, Storage: jetstream.FileStorage})
			if err != nil {
				b.Fatal(err)
			}
			var q *spillway.Queue
			if impl == "forward" {
				if q, err = spillway.OpenQueue(spillway.Options{Ack: spillway.ManualAck, RingSize: 1 << 20}); err != nil {
					b.Fatal(err)
				}
				defer func() {
					if err := q.Close(); err != nil {
						b.Error(err)
					}
				}()
				for range b.N {
					if err := q.Send(ctx, spillway.Message{Value: benchValue}); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.SetBytes(int64(len(benchValue)))
			b.ReportAllocs()
			b.ResetTimer()
			if impl == "forward" {
				var stats Stats
				fctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- Forward(fctx, q, js, "s", WithStats(&stats)) }()
				for stats.Forwarded.Load() < uint64(b.N) {
					select {
					case err := <-done:
						b.Fatal(err)
					default:
					}
					time.Sleep(100 * time.Microsecond) // the benchmark's look at its counter, not a synchronization
				}
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					b.Fatal(err)
				}
			} else {
				futs := make([]jetstream.PubAckFuture, 0, 256)
				for i := range b.N {
					m := nats.NewMsg("s")
					m.Data = benchValue
					m.Header.Set(jetstream.MsgIDHeader, fmt.Sprint("n:0:", i))
					f, err := js.PublishMsgAsync(m)
					if err != nil {
						b.Fatal(err)
					}
					if futs = append(futs, f); len(futs) == cap(futs) {
						waitAll(b, futs)
						futs = futs[:0]
					}
				}
				waitAll(b, futs)
			}
			b.StopTimer()
			info, err := st.Info(ctx)
			if err != nil || info.State.Msgs != uint64(b.N) {
				b.Fatalf("the stream holds %d messages, %d sent (%v)", info.State.Msgs, b.N, err)
			}
		})
	}
}

func waitAll(b *testing.B, futs []jetstream.PubAckFuture) {
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
}

// BenchmarkIngest moves b.N 128-byte messages from a file-storage stream
// through a durable pull consumer: impl=ingest into a Queue (each acked
// once sent, acks confirmed), impl=nats a bare fetch and AckSync loop of
// the same batches, the floor of the same work without a local queue.
func BenchmarkIngest(b *testing.B) {
	for _, impl := range []string{"ingest", "nats"} {
		b.Run("impl="+impl, func(b *testing.B) {
			js, _ := startJetStream(b)
			ctx := context.Background()
			st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}, Storage: jetstream.FileStorage})
			if err != nil {
				b.Fatal(err)
			}
			futs := make([]jetstream.PubAckFuture, 0, 256)
			for range b.N {
				f, err := js.PublishAsync("s", benchValue)
				if err != nil {
					b.Fatal(err)
				}
				if futs = append(futs, f); len(futs) == cap(futs) {
					waitAll(b, futs)
					futs = futs[:0]
				}
			}
			waitAll(b, futs)
			cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1 << 16})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(benchValue)))
			b.ReportAllocs()
			b.ResetTimer()
			if impl == "ingest" {
				q, err := spillway.OpenQueue(spillway.Options{RingSize: 1 << 20})
				if err != nil {
					b.Fatal(err)
				}
				var stats Stats
				ictx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- Ingest(ictx, cons, q, WithStats(&stats), BatchSize(256)) }()
				for stats.Ingested.Load() < uint64(b.N) {
					select {
					case err := <-done:
						b.Fatal(err)
					default:
					}
					time.Sleep(100 * time.Microsecond) // the benchmark's look at its counter, not a synchronization
				}
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					b.Fatal(err)
				}
				if err := q.Close(); err != nil {
					b.Fatal(err)
				}
			} else {
				for got := 0; got < b.N; {
					batch, err := cons.Fetch(min(256, b.N-got), jetstream.FetchMaxWait(time.Second))
					if err != nil {
						b.Fatal(err)
					}
					for m := range batch.Messages() {
						if err := m.DoubleAck(ctx); err != nil {
							b.Fatal(err)
						}
						got++
					}
				}
			}
		})
	}
}
