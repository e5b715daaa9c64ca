package spillway

import (
	"context"
	"testing"
	"time"
)

// headerMap returns the last value of each header.
func headerMap(hs []Header) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		m[h.Key] = string(h.Value)
	}
	return m
}

// TestDeadLetterHeaders: a message that ran out of attempts, and one that
// was terminated, reach the dead-letter queue with their own headers
// first and then the reason, the source, the attempts and the first and
// last delivery times; from a topic's subscription the source names both.
func TestDeadLetterHeaders(t *testing.T) {
	clock := NewManualClock(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	dlq, err := OpenQueue(Options{Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQueue(t, dlq)
	q, err := OpenQueue(Options{Name: "orders", Shards: 1, Ack: ManualAck, MaxAttempts: 2, AckTimeout: time.Minute, DeadLetter: dlq, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQueue(t, q)
	ctx := context.Background()
	for _, v := range []string{"tired", "doomed"} {
		if err := q.Send(ctx, Message{Value: []byte(v), Headers: []Header{{Key: "trace", Value: []byte("t-" + v)}}}); err != nil {
			t.Fatal(err)
		}
	}
	first := clock.Now()
	tired, err := q.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	doomed, err := q.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := doomed.Term(); err != nil {
		t.Fatal(err)
	}
	if err := tired.Nack(0); err != nil {
		t.Fatal(err)
	}
	before := q.clock.reaped.Load()
	clock.Advance(2 * time.Second) // the reaper's ticks: the nacked message becomes ready
	waitFor(t, "the reaper", func() bool { return q.clock.reaped.Load() > before })
	again, err := q.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := clock.Now()
	if err := again.Nack(0); err != nil { // its second attempt: out of attempts
		t.Fatal(err)
	}
	got := map[string]map[string]string{}
	for range 2 {
		d, err := dlq.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d.Headers[0].Key != "trace" {
			t.Fatalf("%s: the message's own header is not first: %v", d.Value, d.Headers)
		}
		got[string(d.Value)] = headerMap(d.Headers)
	}
	tick := q.clock.tick
	near := func(v string, want time.Time) bool {
		at, err := time.Parse(time.RFC3339Nano, v)
		return err == nil && at.Sub(want).Abs() <= tick
	}
	h := got["tired"]
	if h[HeaderDeadReason] != DeadMaxAttempts || h[HeaderDeadSource] != "orders" || h[HeaderDeadAttempts] != "2" ||
		!near(h[HeaderDeadFirstDelivery], first) || !near(h[HeaderDeadLastDelivery], last) || h["trace"] != "t-tired" {
		t.Fatalf("tired: %v (first delivery near %v, last near %v)", h, first, last)
	}
	h = got["doomed"]
	if h[HeaderDeadReason] != DeadTerminated || h[HeaderDeadAttempts] != "1" || !near(h[HeaderDeadFirstDelivery], first) {
		t.Fatalf("doomed: %v", h)
	}

	tp, err := OpenTopic(Options{Name: "events", Shards: 1, Ack: ManualAck, DeadLetter: dlq})
	if err != nil {
		t.Fatal(err)
	}
	defer closeTopic(t, tp)
	sub, err := tp.Subscribe("audit")
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Publish(ctx, Message{Value: []byte("bad")}); err != nil {
		t.Fatal(err)
	}
	d, err := sub.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Term(); err != nil {
		t.Fatal(err)
	}
	dead, err := dlq.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h := headerMap(dead.Headers); h[HeaderDeadSource] != "events/audit" || h[HeaderDeadReason] != DeadTerminated {
		t.Fatalf("from a subscription: %v", h)
	}
}
