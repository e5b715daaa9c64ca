package spillway

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/spillway-io/spillway/internal/race"
)

// allocCheck runs f once to warm up (free lists, local buffers), then
// checks that it allocates nothing per run and never fails: a step that
// failed (an error returned, or a receive that found nothing) would pass an
// allocation count of zero without having done its work.
func allocCheck(t *testing.T, name string, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var failed error
	n := testing.AllocsPerRun(200, func() {
		if err := f(); err != nil && failed == nil {
			failed = err
		}
	})
	if failed != nil {
		t.Fatalf("%s: %v", name, failed)
	}
	if n != 0 {
		t.Errorf("%s: %v allocations per run", name, n)
	}
}

// receiveAll receives exactly n messages with rb, failing on an error or a
// receive that returns none (which would spin).
func receiveAll(rb func([]Delivery) (int, error), dst []Delivery, n int) error {
	for got := 0; got < n; {
		k, err := rb(dst[:min(len(dst), n-got)])
		if err != nil {
			return err
		}
		if k == 0 {
			return errors.New("a receive returned no message and no error")
		}
		got += k
	}
	return nil
}

// TestHotPathAllocs: the memory paths allocate nothing per message: Send
// and Receive, SendBatch and ReceiveBatch, TrySend and TryReceive (empty
// too), ManualAck's lease and Ack, and a Topic's Publish and Receive. (make
// test runs the Allocs tests without -race, which distorts allocation
// counts.) Every call's result is checked.
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
	q := openQueue(t, Options{Shards: 2})
	allocCheck(t, "Queue Send+Receive", func() error {
		if err := q.Send(ctx, m); err != nil {
			return err
		}
		_, err := q.Receive(ctx)
		return err
	})
	allocCheck(t, "Queue SendBatch+ReceiveBatch", func() error {
		if err := q.SendBatch(ctx, batch); err != nil {
			return err
		}
		return receiveAll(func(d []Delivery) (int, error) { return q.ReceiveBatch(ctx, d) }, dst, len(batch))
	})
	allocCheck(t, "Queue TrySend+TryReceive, and TryReceive empty", func() error {
		if err := q.TrySend(m); err != nil {
			return err
		}
		if _, err := q.TryReceive(); err != nil {
			return err
		}
		if _, err := q.TryReceive(); !errors.Is(err, ErrEmpty) {
			return fmt.Errorf("TryReceive on an empty queue: %v, want ErrEmpty", err)
		}
		return nil
	})
	mq := openQueue(t, Options{Shards: 2, Ack: ManualAck})
	allocCheck(t, "ManualAck Send+Receive+Ack", func() error {
		if err := mq.Send(ctx, m); err != nil {
			return err
		}
		d, err := mq.Receive(ctx)
		if err != nil {
			return err
		}
		return d.Ack()
	})
	tp := openTopic(t, Options{Shards: 2})
	a, b := subscribe(t, tp, "a"), subscribe(t, tp, "b")
	allocCheck(t, "Topic Publish+Receive", func() error {
		if err := tp.Publish(ctx, m); err != nil {
			return err
		}
		for _, s := range []*Subscription{a, b} {
			if _, err := s.Receive(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	allocCheck(t, "Topic Publish+TryReceive", func() error {
		if err := tp.Publish(ctx, m); err != nil {
			return err
		}
		for _, s := range []*Subscription{a, b} {
			if _, err := s.TryReceive(); err != nil {
				return err
			}
		}
		if _, err := a.TryReceive(); !errors.Is(err, ErrEmpty) {
			return fmt.Errorf("TryReceive on an empty subscription: %v, want ErrEmpty", err)
		}
		return nil
	})
	allocCheck(t, "Topic PublishBatch+ReceiveBatch", func() error {
		if err := tp.PublishBatch(ctx, batch); err != nil {
			return err
		}
		for _, s := range []*Subscription{a, b} {
			if err := receiveAll(func(d []Delivery) (int, error) { return s.ReceiveBatch(ctx, d) }, dst, len(batch)); err != nil {
				return err
			}
		}
		return nil
	})
}
