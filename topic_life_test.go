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
// published when due, to the subscriptions there are then; priorities are
// refused, not ignored.
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

	if err := tp.Publish(ctx, Message{Priority: 1}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("Priority: %v", err)
	}
	for _, o := range []Options{{Priorities: 2}} {
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

// TestTopicExpiry: expiry applies per subscription, at delivery: a
// subscription that takes a message in time gets it (with its
// ExpiresAt), one that comes to it after its expiry does not, and
// dead-letters it with itself as the source; from the ring, a spill and a
// Persistent topic's log (across a reopen), with ExpiresAt and with
// MessageTTL.
func TestTopicExpiry(t *testing.T) {
	for _, mode := range []string{"ring", "spill", "persistent"} {
		t.Run(mode, func(t *testing.T) {
			clock := NewManualClock(lifeStart)
			dlq := openQueue(t, Options{Shards: 1})
			opts := Options{Name: "events", Shards: 2, Clock: clock, DeadLetter: dlq, MessageTTL: time.Hour}
			switch mode {
			case "spill":
				opts.Dir, opts.RingSize = t.TempDir(), 8
			case "persistent":
				opts.Dir, opts.Durability = t.TempDir(), Persistent
			}
			tp, err := OpenTopic(opts)
			if err != nil {
				t.Fatal(err)
			}
			fast, err := tp.Subscribe("fast")
			if err != nil {
				t.Fatal(err)
			}
			slow, err := tp.Subscribe("slow")
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			soon := clock.Now().Add(time.Minute)
			const n = 60
			for i := range n {
				m := Message{Key: []byte{byte(i % 7)}, Value: []byte{byte(i)}}
				if i%3 == 0 {
					m.ExpiresAt = soon
				}
				if err := tp.Publish(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			for _, d := range recvN(t, fast, n) {
				want := soon
				if d.Value[0]%3 != 0 {
					want = lifeStart.Add(time.Hour) // MessageTTL from the publish
				}
				if !d.ExpiresAt.Equal(want) {
					t.Fatalf("message %d: ExpiresAt %v, want %v", d.Value[0], d.ExpiresAt, want)
				}
			}
			if mode == "persistent" {
				closeOK(t, tp)
				if tp, err = OpenTopic(opts); err != nil {
					t.Fatal(err)
				}
				if slow, err = tp.Subscribe("slow"); err != nil {
					t.Fatal(err)
				}
			}
			defer closeOK(t, tp)
			clock.Advance(2 * time.Minute)
			got := recvN(t, slow, n-n/3)
			for _, d := range got {
				if d.Value[0]%3 == 0 {
					t.Fatalf("message %d delivered to slow after it expired", d.Value[0])
				}
			}
			if d, err := slow.TryReceive(); err == nil {
				t.Fatalf("message %d delivered", d.Value[0])
			}
			st, err := tp.SubscriptionStats("slow", StatsOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Expired != n/3 || st.DeadLettered != n/3 || st.Depth != 0 {
				t.Fatalf("slow: %+v", st)
			}
			for _, d := range recvN(t, dlq, n/3) {
				if h := headerMap(d.Headers); h[HeaderDeadReason] != DeadExpired || h[HeaderDeadSource] != "events/slow" {
					t.Fatalf("headers %v", h)
				}
			}
		})
	}
}
