package spillway_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	spillway "github.com/spillway-io/spillway"
)

// A queue with a spill directory: what does not fit in memory goes to disk
// and comes back in order.
func ExampleQueue() {
	dir, cleanup := tempDir()
	defer cleanup()
	q, err := spillway.OpenQueue(spillway.Options{Dir: dir, Shards: 1, RingSize: 4})
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()
	for i := range 10 { // more than the ring holds: 6 spill
		if err := q.Send(ctx, spillway.Message{Key: []byte("user-1"), Value: fmt.Appendf(nil, "event %d", i)}); err != nil {
			panic(err)
		}
	}
	fmt.Println("spilled:", q.Stats().Spilled)
	for range 10 {
		d, err := q.Receive(ctx)
		if err != nil {
			panic(err)
		}
		fmt.Print(string(d.Value[6:]), " ")
	}
	fmt.Println()
	// Output:
	// spilled: 6
	// 0 1 2 3 4 5 6 7 8 9
}

// At-least-once delivery: a delivery that is not acked in time comes back.
func ExampleDelivery_Ack() {
	clock := spillway.NewManualClock(time.Unix(0, 0))
	q, err := spillway.OpenQueue(spillway.Options{Ack: spillway.ManualAck, AckTimeout: time.Second, Clock: clock})
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()
	q.Send(ctx, spillway.Message{Value: []byte("charge card")})
	d, _ := q.Receive(ctx)
	fmt.Println(string(d.Value), "attempt", d.Attempt)
	d.Nack(0) // failed: try again
	d, _ = q.Receive(ctx)
	fmt.Println(string(d.Value), "attempt", d.Attempt)
	fmt.Println(d.Ack())
	// Output:
	// charge card attempt 1
	// charge card attempt 2
	// <nil>
}

// A topic delivers every message to every subscription.
func ExampleTopic() {
	t, err := spillway.OpenTopic(spillway.Options{Shards: 1})
	if err != nil {
		panic(err)
	}
	defer t.Close()
	ctx := context.Background()
	billing, _ := t.Subscribe("billing")
	audit, _ := t.Subscribe("audit")
	t.PublishBatch(ctx, []spillway.Message{{Value: []byte("order 1")}, {Value: []byte("order 2")}})
	for _, s := range []*spillway.Subscription{billing, audit} {
		dst := make([]spillway.Delivery, 8)
		n, _ := s.ReceiveBatch(ctx, dst)
		for _, d := range dst[:n] {
			fmt.Println(s.Name(), string(d.Value))
		}
	}
	// Output:
	// billing order 1
	// billing order 2
	// audit order 1
	// audit order 2
}

// A message that cannot be processed goes to the dead-letter queue: at
// once with Term, or after MaxAttempts deliveries that were not acked.
func ExampleDelivery_Term() {
	dlq, err := spillway.OpenQueue(spillway.Options{})
	if err != nil {
		panic(err)
	}
	defer dlq.Close()
	q, err := spillway.OpenQueue(spillway.Options{Ack: spillway.ManualAck, DeadLetter: dlq})
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()
	q.Send(ctx, spillway.Message{Value: []byte("malformed order")})
	d, _ := q.Receive(ctx)
	d.Term() // no use retrying
	dead, _ := dlq.Receive(ctx)
	fmt.Println(string(dead.Value), q.Stats().DeadLettered)
	// Output:
	// malformed order 1
}

// Failures that no call can return, because they happen after the messages
// were accepted (a spill that cannot be written or read back), are counted
// in Stats.Dropped and handed to OnError, on the receiving goroutine that
// met them.
func ExampleOptions_onError() {
	dir, cleanup := tempDir()
	defer cleanup()
	q, err := spillway.OpenQueue(spillway.Options{
		Dir: dir,
		OnError: func(err error) {
			if errors.Is(err, spillway.ErrSpillFailed) {
				log.Printf("messages dropped: %v", err) // and alert: this is data loss
			}
		},
	})
	if err != nil {
		panic(err)
	}
	defer q.Close()
}

// Taking what is there without waiting: a loop that drains the queue and
// then goes on with other work.
func ExampleQueue_TryReceive() {
	q, err := spillway.OpenQueue(spillway.Options{Shards: 1})
	if err != nil {
		panic(err)
	}
	defer q.Close()
	for _, v := range []string{"a", "b", "c"} {
		if err := q.TrySend(spillway.Message{Value: []byte(v)}); err != nil {
			panic(err)
		}
	}
	for {
		d, err := q.TryReceive()
		if errors.Is(err, spillway.ErrEmpty) {
			fmt.Println("drained")
			break
		}
		if err != nil {
			panic(err)
		}
		fmt.Println(string(d.Value))
	}
	// Output:
	// a
	// b
	// c
	// drained
}

// Batches: one SendBatch claims ring slots for many messages at once, and
// one ReceiveBatch takes up to len(dst) from one shard. Reuse both slices:
// Send takes ownership of the messages' bytes, not of the slice.
func ExampleQueue_SendBatch() {
	q, err := spillway.OpenQueue(spillway.Options{Shards: 1})
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()
	batch := make([]spillway.Message, 0, 64)
	for i := range 5 {
		batch = append(batch, spillway.Message{Value: fmt.Appendf(nil, "m%d", i)})
	}
	if err := q.SendBatch(ctx, batch); err != nil {
		var be *spillway.BatchError // the first be.Queued were queued
		if errors.As(err, &be) {
			log.Printf("queued %d of %d: %v", be.Queued, len(batch), be.Err)
		}
		panic(err)
	}
	dst := make([]spillway.Delivery, 64)
	n, err := q.ReceiveBatch(ctx, dst)
	if err != nil {
		panic(err)
	}
	for _, d := range dst[:n] {
		fmt.Print(string(d.Value), "@", d.Offset, " ")
	}
	fmt.Println()
	// Output:
	// m0@0 m1@1 m2@2 m3@3 m4@4
}

// Competing receivers of one subscription share its messages; another
// subscription gets all of them again.
func ExampleTopic_Subscribe() {
	t, err := spillway.OpenTopic(spillway.Options{Shards: 1})
	if err != nil {
		panic(err)
	}
	defer t.Close()
	w1, _ := t.Subscribe("workers")
	w2, _ := t.Subscribe("workers") // a second receiver of the same subscription
	audit, _ := t.Subscribe("audit")
	ctx := context.Background()
	for _, v := range []string{"a", "b", "c", "d"} {
		t.Publish(ctx, spillway.Message{Value: []byte(v)})
	}
	got := 0
	for _, w := range []*spillway.Subscription{w1, w2} {
		for {
			if _, err := w.TryReceive(); err != nil {
				break
			}
			got++
		}
	}
	fmt.Println("workers got", got, "between them")
	dst := make([]spillway.Delivery, 8)
	n, _ := audit.ReceiveBatch(ctx, dst)
	fmt.Println("audit got", n)
	// Output:
	// workers got 4 between them
	// audit got 4
}
