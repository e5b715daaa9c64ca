package bench

import (
	"sync"
	"testing"
	"time"

	spillway "github.com/spillway-io/spillway"
	"github.com/spillway-io/spillway/internal/benchenv"
)

// fanOut runs one publisher on the benchmark's goroutine and a receiver per
// subscription on its own, until every receiver has b.N messages. ns/op is
// per message published.
func fanOut(b *testing.B, publish func(), receivers []func()) {
	b.SetBytes(128)
	b.ReportAllocs()
	defer benchenv.Steal(b)()
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, r := range receivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r()
		}()
	}
	publish()
	wg.Wait()
}

// topicReceivers returns a receiver per subscription that takes n messages
// in batches of up to 64.
func topicReceivers(b *testing.B, tp *spillway.Topic, subs int, n func() int) []func() {
	var out []func()
	for i := range subs {
		s, err := tp.Subscribe(string(rune('a' + i)))
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, func() {
			dst := make([]spillway.Delivery, 64)
			for got := 0; got < n(); {
				k, err := s.ReceiveBatch(ctx, dst)
				if err != nil {
					b.Error(err)
					return
				}
				got += k
			}
		})
	}
	return out
}

// BenchmarkTopicFanOut: one publisher, three subscriptions that keep up
// (one receiver each), 128-byte values, next to sending each message to
// three buffered channels with a receiver each. ns/op is per message.
func BenchmarkTopicFanOut(b *testing.B) {
	msgs, _ := messages(msgPool)
	for _, mode := range []string{"one-by-one", "batch=64"} {
		b.Run("mode="+mode+"/impl=spillway", func(b *testing.B) {
			tp, err := spillway.OpenTopic(spillway.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer closeOK(b, tp)
			recv := topicReceivers(b, tp, 3, func() int { return b.N })
			fanOut(b, func() {
				if mode == "one-by-one" {
					for i := range b.N {
						if err := tp.Publish(ctx, spillway.Message{Value: msgs[i%msgPool]}); err != nil {
							b.Error(err)
							return
						}
					}
					return
				}
				batch := make([]spillway.Message, 64)
				for i := 0; i < b.N; i += len(batch) {
					n := min(len(batch), b.N-i)
					for j := range n {
						batch[j] = spillway.Message{Value: msgs[(i+j)%msgPool]}
					}
					if err := tp.PublishBatch(ctx, batch[:n]); err != nil {
						b.Error(err)
						return
					}
				}
			}, recv)
		})
		b.Run("mode="+mode+"/impl=chan", func(b *testing.B) {
			chans := make([]chan []byte, 3)
			var recv []func()
			for i := range chans {
				ch := make(chan []byte, queueCap())
				chans[i] = ch
				recv = append(recv, func() {
					for range b.N {
						<-ch
					}
				})
			}
			fanOut(b, func() {
				for i := range b.N {
					for _, ch := range chans {
						ch <- msgs[i%msgPool]
					}
				}
			}, recv)
		})
	}
}

// BenchmarkPublishCost compares a Topic's publisher with a Queue's sender:
// one producer and one consumer each (one subscription for the topic),
// 128-byte values, one message at a time. ns/op is per message.
func BenchmarkPublishCost(b *testing.B) {
	msgs, _ := messages(msgPool)
	b.Run("impl=queue", func(b *testing.B) {
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
	b.Run("impl=topic", func(b *testing.B) {
		tp, err := spillway.OpenTopic(spillway.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer closeOK(b, tp)
		s, err := tp.Subscribe("only")
		if err != nil {
			b.Fatal(err)
		}
		pair(b, func() {
			for i := range b.N {
				if err := tp.Publish(ctx, spillway.Message{Value: msgs[i%msgPool]}); err != nil {
					b.Error(err)
					return
				}
			}
		}, func() {
			for range b.N {
				if _, err := s.Receive(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkTopicSlowSubscriber: one publisher (one message at a time) and
// two subscriptions that keep up (they receive in batches of up to 64), with and without a third that is far slower:
// it takes 64 messages, then waits 1 ms (a stand-in for a slow database),
// so it reads at most 64k messages/s, more than 10x slower than the
// others. ns/op is per message, until both fast subscriptions have b.N
// messages: the fast subscriptions' throughput. With Dir set, the slow one
// goes through the spill (written once, compressed as given); with
// channels, the publisher waits for the slowest (head-of-line blocking).
func BenchmarkTopicSlowSubscriber(b *testing.B) {
	msgs, _ := messages(msgPool)
	for _, c := range []spillway.Compression{spillway.Zstd, spillway.S2, spillway.None} {
		name := map[spillway.Compression]string{spillway.Zstd: "zstd", spillway.S2: "s2", spillway.None: "none"}[c]
		for _, slow := range []bool{false, true} {
			subs := "fast=2"
			if slow {
				subs = "fast=2+slow"
			}
			b.Run("impl=spillway-"+name+"/subs="+subs, func(b *testing.B) {
				tp, err := spillway.OpenTopic(spillway.Options{Dir: b.TempDir(), Compression: c})
				if err != nil {
					b.Fatal(err)
				}
				defer closeOK(b, tp)
				recv := topicReceivers(b, tp, 2, func() int { return b.N })
				stop := make(chan struct{})
				var slowDone sync.WaitGroup
				if slow {
					s, err := tp.Subscribe("slow")
					if err != nil {
						b.Fatal(err)
					}
					slowDone.Add(1)
					go func() {
						defer slowDone.Done()
						dst := make([]spillway.Delivery, 64)
						for {
							if _, err := s.ReceiveBatch(ctx, dst); err != nil {
								return
							}
							select {
							case <-stop:
								return
							case <-time.After(time.Millisecond):
							}
						}
					}()
				}
				fanOut(b, func() {
					for i := range b.N {
						if err := tp.Publish(ctx, spillway.Message{Value: msgs[i%msgPool]}); err != nil {
							b.Fatal(err)
						}
					}
				}, recv)
				b.StopTimer()
				b.ReportMetric(100*float64(tp.Stats().Spilled)/float64(b.N), "spilled%")
				close(stop)
				if err := tp.Close(); err != nil {
					b.Error(err)
				}
				slowDone.Wait()
			})
		}
	}
	b.Run("impl=chan/subs=fast=2+slow", func(b *testing.B) {
		chans := make([]chan []byte, 3)
		for i := range chans {
			chans[i] = make(chan []byte, queueCap())
		}
		var recv []func()
		for _, ch := range chans[:2] {
			recv = append(recv, func() {
				for range b.N {
					<-ch
				}
			})
		}
		stop := make(chan struct{})
		slowDone := make(chan struct{})
		go func() {
			defer close(slowDone)
			for {
				for range 64 {
					select {
					case <-chans[2]:
					case <-stop:
						return
					}
				}
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
			}
		}()
		fanOut(b, func() {
			for i := range b.N {
				for _, ch := range chans {
					ch <- msgs[i%msgPool]
				}
			}
		}, recv)
		b.StopTimer()
		close(stop)
		<-slowDone
	})
}
