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
		log.Fatal(err)
	}
	ctx := context.Background()
	for i := range 10 { // more than the ring holds: 6 spill
		if err := q.Send(ctx, spillway.Message{Key: []byte("user-1"), Value: fmt.Appendf(nil, "event %d", i)}); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("spilled:", q.Stats().Spilled)
	for range 10 {
		d, err := q.Receive(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(string(d.Value[6:]), " ")
	}
	fmt.Println()
	if err := q.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// spilled: 6
	// 0 1 2 3 4 5 6 7 8 9
}

// At-least-once delivery: a delivery that is not acked in time comes back.
func ExampleDelivery_Ack() {
	clock := spillway.NewManualClock(time.Unix(0, 0))
	q, err := spillway.OpenQueue(spillway.Options{Ack: spillway.ManualAck, AckTimeout: time.Second, Clock: clock})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := q.Send(ctx, spillway.Message{Value: []byte("charge card")}); err != nil {
		log.Fatal(err)
	}
	d, err := q.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(d.Value), "attempt", d.Attempt)
	if err := d.Nack(0); err != nil { // failed: try again
		log.Fatal(err)
	}
	if d, err = q.Receive(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(d.Value), "attempt", d.Attempt)
	fmt.Println(d.Ack())
	if err := q.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// charge card attempt 1
	// charge card attempt 2
	// <nil>
}

// A topic delivers every message to every subscription.
func ExampleTopic() {
	t, err := spillway.OpenTopic(spillway.Options{Shards: 1})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	billing, err := t.Subscribe("billing")
	if err != nil {
		log.Fatal(err)
	}
	audit, err := t.Subscribe("audit")
	if err != nil {
		log.Fatal(err)
	}
	if err := t.PublishBatch(ctx, []spillway.Message{{Value: []byte("order 1")}, {Value: []byte("order 2")}}); err != nil {
		log.Fatal(err)
	}
	for _, s := range []*spillway.Subscription{billing, audit} {
		dst := make([]spillway.Delivery, 8)
		n, err := s.ReceiveBatch(ctx, dst)
		if err != nil {
			log.Fatal(err)
		}
		for _, d := range dst[:n] {
			fmt.Println(s.Name(), string(d.Value))
		}
	}
	if err := t.Close(); err != nil {
		log.Fatal(err)
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
		log.Fatal(err)
	}
	q, err := spillway.OpenQueue(spillway.Options{Ack: spillway.ManualAck, DeadLetter: dlq})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := q.Send(ctx, spillway.Message{Value: []byte("malformed order")}); err != nil {
		log.Fatal(err)
	}
	d, err := q.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := d.Term(); err != nil { // no use retrying
		log.Fatal(err)
	}
	dead, err := dlq.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(dead.Value), q.Stats().DeadLettered)
	if err := q.Close(); err != nil {
		log.Fatal(err)
	}
	if err := dlq.Close(); err != nil {
		log.Fatal(err)
	}
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
		log.Fatal(err)
	}
	if err := q.Close(); err != nil {
		log.Fatal(err)
	}
}

// Taking what is there without waiting: a loop that drains the queue and
// then goes on with other work.
func ExampleQueue_TryReceive() {
	q, err := spillway.OpenQueue(spillway.Options{Shards: 1})
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range []string{"a", "b", "c"} {
		if err := q.TrySend(spillway.Message{Value: []byte(v)}); err != nil {
			log.Fatal(err)
		}
	}
	for {
		d, err := q.TryReceive()
		if errors.Is(err, spillway.ErrEmpty) {
			fmt.Println("drained")
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(d.Value))
	}
	if err := q.Close(); err != nil {
		log.Fatal(err)
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
		log.Fatal(err)
	}
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
		log.Fatal(err)
	}
	dst := make([]spillway.Delivery, 64)
	n, err := q.ReceiveBatch(ctx, dst)
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range dst[:n] {
		fmt.Print(string(d.Value), "@", d.Offset, " ")
	}
	fmt.Println()
	if err := q.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// m0@0 m1@1 m2@2 m3@3 m4@4
}

// Competing receivers of one subscription share its messages; another
// subscription gets all of them again.
func ExampleTopic_Subscribe() {
	t, err := spillway.OpenTopic(spillway.Options{Shards: 1})
	if err != nil {
		log.Fatal(err)
	}
	var subs [3]*spillway.Subscription
	for i, name := range []string{"workers", "workers", "audit"} { // two receivers of one subscription
		if subs[i], err = t.Subscribe(name); err != nil {
			log.Fatal(err)
		}
	}
	ctx := context.Background()
	for _, v := range []string{"a", "b", "c", "d"} {
		if err := t.Publish(ctx, spillway.Message{Value: []byte(v)}); err != nil {
			log.Fatal(err)
		}
	}
	got := 0
	for _, w := range subs[:2] {
		for {
			_, err := w.TryReceive()
			if errors.Is(err, spillway.ErrEmpty) {
				break
			}
			if err != nil {
				log.Fatal(err)
			}
			got++
		}
	}
	fmt.Println("workers got", got, "between them")
	dst := make([]spillway.Delivery, 8)
	n, err := subs[2].ReceiveBatch(ctx, dst)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("audit got", n)
	if err := t.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// workers got 4 between them
	// audit got 4
}

// What a directory holds, read without opening it: a Persistent queue's
// shards, their messages and how far receivers got. (The spillway command's
// inspect, verify and dump are built on it.)
func ExampleInspectDir() {
	dir, cleanup := tempDir()
	defer cleanup()
	q, err := spillway.OpenQueue(spillway.Options{Dir: dir, Durability: spillway.Persistent, Shards: 1})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for _, v := range []string{"a", "b", "c"} {
		if err := q.Send(ctx, spillway.Message{Value: []byte(v)}); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := q.Receive(ctx); err != nil {
		log.Fatal(err)
	}
	if err := q.Close(); err != nil {
		log.Fatal(err)
	}
	rep, err := spillway.InspectDir(dir, spillway.InspectOptions{Verify: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rep.Kind, rep.Durability, "clean:", rep.Clean())
	for _, l := range rep.Logs {
		fmt.Println(l.Name, "records:", l.Log.Segments[0].Records, "cursor:", l.Cursor)
	}
	// Output:
	// queue persistent clean: true
	// shard-0000 records: 3 cursor: 1
}

// A Persistent topic keeps its messages and its subscriptions: a new
// subscription can start at the earliest message, a subscription resumes
// after a reopen where it was, and Seek moves one back.
func ExampleTopic_SubscribeAt() {
	dir, cleanup := tempDir()
	defer cleanup()
	opts := spillway.Options{Dir: dir, Durability: spillway.Persistent, Shards: 1}
	t, err := spillway.OpenTopic(opts)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for _, v := range []string{"a", "b", "c"} {
		if err := t.Publish(ctx, spillway.Message{Value: []byte(v)}); err != nil {
			log.Fatal(err)
		}
	}
	late, err := t.SubscribeAt("late", spillway.Earliest()) // created after the publishes
	if err != nil {
		log.Fatal(err)
	}
	d, err := late.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("late starts at", string(d.Value), "at", late.Position())
	if err := t.Close(); err != nil {
		log.Fatal(err)
	}

	if t, err = spillway.OpenTopic(opts); err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := t.Close(); err != nil {
			log.Fatal(err)
		}
	}()
	if late, err = t.Subscribe("late"); err != nil { // resumes
		log.Fatal(err)
	}
	if d, err = late.Receive(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("after the reopen:", string(d.Value))
	if err := late.Seek(spillway.Earliest()); err != nil {
		log.Fatal(err)
	}
	if d, err = late.Receive(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("after Seek(Earliest()):", string(d.Value))
	// Output:
	// late starts at a at 1
	// after the reopen: b
	// after Seek(Earliest()): a
}
