package spillway

import (
	"context"
	"testing"

	"github.com/spillway-io/spillway/internal/race"
)

// TestHotPathAllocs: the memory paths allocate nothing per message: Send
// and Receive, SendBatch and ReceiveBatch, TrySend and TryReceive (empty
// too), ManualAck's lease and Ack, and a Topic's Publish and Receive. (make
// test runs the Allocs tests without -race, which distorts allocation
// counts.)
func TestHotPathAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts are distorted under -race")
	}
	ctx := context.Background()
	m := Message{Key: []byte("k"), Value: make([]byte, 128)}
	batch := make([]Message, 64)
	for i := range batch {
		batch[i] = m
	}
	dst := make([]Delivery, 64)
	check := func(name string, f func()) {
		t.Helper()
		f() // warm up: free lists, local buffers
		if n := testing.AllocsPerRun(200, f); n != 0 {
			t.Errorf("%s: %v allocations per run", name, n)
		}
	}
	q := openQueue(t, Options{Shards: 2})
	check("Queue Send+Receive", func() {
		q.Send(ctx, m)
		q.Receive(ctx)
	})
	check("Queue SendBatch+ReceiveBatch", func() {
		q.SendBatch(ctx, batch)
		for got := 0; got < len(batch); {
			n, _ := q.ReceiveBatch(ctx, dst)
			got += n
		}
	})
	check("Queue TrySend+TryReceive, and TryReceive empty", func() {
		q.TrySend(m)
		q.TryReceive()
		q.TryReceive()
	})
	mq := openQueue(t, Options{Shards: 2, Ack: ManualAck})
	check("ManualAck Send+Receive+Ack", func() {
		mq.Send(ctx, m)
		d, _ := mq.Receive(ctx)
		d.Ack()
	})
	tp := openTopic(t, Options{Shards: 2})
	a, b := subscribe(t, tp, "a"), subscribe(t, tp, "b")
	check("Topic Publish+Receive", func() {
		tp.Publish(ctx, m)
		a.Receive(ctx)
		b.Receive(ctx)
	})
	check("Topic Publish+TryReceive", func() {
		tp.Publish(ctx, m)
		a.TryReceive()
		b.TryReceive()
		a.TryReceive()
	})
	check("Topic PublishBatch+ReceiveBatch", func() {
		tp.PublishBatch(ctx, batch)
		for _, s := range []*Subscription{a, b} {
			for got := 0; got < len(batch); {
				n, _ := s.ReceiveBatch(ctx, dst)
				got += n
			}
		}
	})
}
