package spillway

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestTopicLifecycle: at a Topic, deduplication and delay apply at
// publish: a duplicate ID is published once (every subscription gets one
// copy, duplicates inside a PublishBatch too); a delayed message is
// published when due, to the subscriptions there are then; expiry and
// priorities are refused, not ignored.
func TestTopicLifecycle(t *testing.T) {
	clock := NewManualClock(lifeStart)
	tp, err := OpenTopic(Options{Shards: 2, Clock: clock, DedupWindow: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, tp)
	ctx := context.Background()
	early, err := tp.Subscribe("early")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a1", "a2"} {
		if err := tp.Publish(ctx, Message{ID: "a", Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tp.PublishBatch(ctx, []Message{{ID: "b", Value: []byte("b1")}, {ID: "b", Value: []byte("b2")}, {Value: []byte("plain")}}); err != nil {
		t.Fatal(err)
	}
	if err := tp.Publish(ctx, Message{Value: []byte("later"), DeliverAt: clock.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a1", "b1", "plain"} {
		if d := recvN(t, early, 1)[0]; string(d.Value) != want {
			t.Fatalf("got %q, want %q", d.Value, want)
		}
	}
	if d, err := early.TryReceive(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("got %q, %v before the delayed one was due", d.Value, err)
	}
	late, err := tp.Subscribe("late") // after the publish, before it is due
	if err != nil {
		t.Fatal(err)
	}
	if st := tp.Stats(); st.Deduplicated != 2 || st.Delayed != 1 || st.Sent != 4 {
		t.Fatalf("stats %+v", st)
	}
	before := tp.delay.fires.Load()
	clock.Advance(time.Minute + 20*time.Millisecond)
	waitFor(t, "the delay mover", func() bool { return tp.delay.fires.Load() > before })
	for _, sub := range []*Subscription{early, late} {
		if d := recvN(t, sub, 1)[0]; string(d.Value) != "later" {
			t.Fatalf("got %q", d.Value)
		}
	}
	if st := tp.Stats(); st.Delayed != 0 || st.Sent != 4 {
		t.Fatalf("stats %+v", st)
	}
	// The window ends by the clock.
	clock.Advance(time.Minute)
	if err := tp.Publish(ctx, Message{ID: "a", Value: []byte("a3")}); err != nil {
		t.Fatal(err)
	}
	if d := recvN(t, late, 1)[0]; string(d.Value) != "a3" {
		t.Fatalf("got %q", d.Value)
	}

	if err := tp.Publish(ctx, Message{ExpiresAt: clock.Now().Add(time.Hour)}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("ExpiresAt: %v", err)
	}
	if err := tp.Publish(ctx, Message{Priority: 1}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("Priority: %v", err)
	}
	for _, o := range []Options{{Priorities: 2}, {MessageTTL: time.Minute}} {
		if _, err := OpenTopic(o); !errors.Is(err, ErrInvalidOptions) {
			t.Fatalf("%+v: %v", o, err)
		}
	}
	ptp, err := OpenTopic(Options{Dir: t.TempDir(), Durability: Persistent})
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, ptp)
	if err := ptp.Publish(ctx, Message{DeliverAt: time.Now().Add(time.Hour)}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("delayed on a Persistent topic: %v", err)
	}
}

// TestDelayedDroppedAtClose: what the delay holds when an Ephemeral
// Queue or Topic closes is dropped and counted; Close joins the mover.
func TestDelayedDroppedAtClose(t *testing.T) {
	clock := NewManualClock(lifeStart)
	q, err := OpenQueue(Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if err := q.Send(ctx, Message{DeliverAt: clock.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Dropped != 3 || st.Sent != 3 || st.Delayed != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := q.Send(ctx, Message{DeliverAt: clock.Now().Add(time.Hour)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
