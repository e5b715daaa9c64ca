package bench

import (
	"testing"

	"github.com/Workiva/go-datastructures/queue"

	"github.com/spillway-io/spillway/ring"
)

// BenchmarkRing hands b.N 128-byte messages from one producer to one
// consumer through Spillway's MPMC ring, Workiva's RingBuffer (an MPMC
// ring of interface{} values, the Disruptor-style peer) and a buffered
// channel, all of capacity 4096. ns/op is per message.
func BenchmarkRing(b *testing.B) {
	msgs, _ := messages(msgPool)
	const capacity = 4096
	b.Run("impl=spillway", func(b *testing.B) {
		r := ring.NewMPMC[[]byte](capacity)
		defer r.Close()
		pair(b, func() {
			for i := range b.N {
				if err := r.Push(ctx, msgs[i%msgPool]); err != nil {
					b.Error(err)
					return
				}
			}
		}, func() {
			for range b.N {
				if _, err := r.Pop(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("impl=workiva", func(b *testing.B) {
		r := queue.NewRingBuffer(capacity)
		defer r.Dispose()
		pair(b, func() {
			for i := range b.N {
				if err := r.Put(msgs[i%msgPool]); err != nil {
					b.Error(err)
					return
				}
			}
		}, func() {
			for range b.N {
				if _, err := r.Get(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("impl=chan", func(b *testing.B) {
		chanPair(b, capacity, msgs)
	})
}
