package spillway

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/spillway-io/spillway/mmap"
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
		t.Fatalf("Priority 1 of 1 level: %v", err)
	}
}

// TestTopicPriorities: with Priorities, each subscription takes the
// highest-priority message it has waiting, FIFO per key within a level,
// through the spill (Ephemeral) and the log, across a reopen (Persistent,
// whose manifest keeps the levels); a high one overtakes a subscription's
// backlog of low ones, whatever another subscription's pace; a
// redelivery keeps its priority.
func TestTopicPriorities(t *testing.T) {
	for _, durability := range []Durability{Ephemeral, Persistent} {
		t.Run(durability.String(), func(t *testing.T) {
			rng := newRand(t)
			ctx := context.Background()
			opts := Options{Shards: 2, Priorities: 4, RingSize: 16, Dir: t.TempDir(), Durability: durability, Ack: ManualAck}
			tp, err := OpenTopic(opts)
			if err != nil {
				t.Fatal(err)
			}
			names := []string{"a", "b"}
			subs := map[string]*Subscription{}
			for _, name := range names {
				if subs[name], err = tp.Subscribe(name); err != nil {
					t.Fatal(err)
				}
			}
			const n = 600
			for i := range n {
				p := uint8(rng.IntN(4))
				m := Message{Key: []byte{byte(i % 3)}, Value: binary.AppendUvarint([]byte{p}, uint64(i)), Priority: p}
				if i%2 == 1 { // keyless too
					m.Key = nil
				}
				if err := tp.Publish(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			if durability == Persistent {
				closeOK(t, tp)
				opts.Priorities = 2
				if _, err := OpenTopic(opts); !errors.Is(err, ErrInvalidOptions) {
					t.Fatalf("reopened with other levels: %v", err)
				}
				rep, err := InspectDir(opts.Dir, InspectOptions{Verify: true})
				if err != nil || rep.Priorities != 4 || len(rep.Logs) != 8 || len(rep.Subscriptions) != 2 || len(rep.Subscriptions[0].Shards) != 8 {
					t.Fatalf("inspect: %+v, %v", rep, err)
				}
				opts.Priorities = 0 // the stored levels
				if tp, err = OpenTopic(opts); err != nil {
					t.Fatal(err)
				}
				for _, name := range names {
					if subs[name], err = tp.Subscribe(name); err != nil {
						t.Fatal(err)
					}
				}
			}
			defer closeOK(t, tp)
			if st, err := tp.SubscriptionStats("a", StatsOptions{}); err != nil || st.Depth != n || (durability == Ephemeral && st.SpillingShards == 0) {
				t.Fatalf("a: %+v, %v", st, err)
			}
			for _, name := range names {
				last := map[[2]int]int{}
				prio := 3
				for j, d := range recvN(t, subs[name], n) {
					p := int(d.Value[0])
					i, _ := binary.Uvarint(d.Value[1:])
					if int(d.Priority) != p {
						t.Fatalf("%s: message %d of priority %d delivered with %d", name, i, p, d.Priority)
					}
					if p > prio {
						t.Fatalf("%s: message %d of priority %d after one of %d", name, i, p, prio)
					}
					prio = p
					if len(d.Key) > 0 {
						k := [2]int{p, int(d.Key[0])}
						if prev, ok := last[k]; ok && int(i) < prev {
							t.Fatalf("%s: priority %d key %d: %d after %d", name, p, d.Key[0], i, prev)
						}
						last[k] = int(i)
					}
					if j == 0 {
						// A redelivery keeps its priority.
						if err := d.Nack(0); err != nil {
							t.Fatal(err)
						}
						r := recvN(t, subs[name], 1)[0]
						if r.Attempt != 2 || r.Priority != d.Priority || !bytes.Equal(r.Value, d.Value) {
							t.Fatalf("%s: redelivered %v attempt %d priority %d, was %v priority %d", name, r.Value, r.Attempt, r.Priority, d.Value, d.Priority)
						}
						d = r
					}
					if err := d.Ack(); err != nil {
						t.Fatal(err)
					}
				}
			}
			// A backlog of low ones on b (a is drained as it goes), then one
			// high: b's next receive takes it.
			for i := range 100 {
				if err := tp.Publish(ctx, Message{Value: []byte{0, byte(i)}}); err != nil {
					t.Fatal(err)
				}
				d := recvN(t, subs["a"], 1)[0]
				if err := d.Ack(); err != nil {
					t.Fatal(err)
				}
			}
			if err := tp.Publish(ctx, Message{Value: []byte{3, 0}, Priority: 3}); err != nil {
				t.Fatal(err)
			}
			for _, name := range names {
				d := recvN(t, subs[name], 1)[0]
				if d.Priority != 3 {
					t.Fatalf("%s: got priority %d first", name, d.Priority)
				}
				if err := d.Ack(); err != nil {
					t.Fatal(err)
				}
			}
			if err := tp.Publish(ctx, Message{Priority: 4}); !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("Priority 4 of 4 levels: %v", err)
			}
		})
	}
}

// TestPersistentTopicDelay: a Persistent topic's delayed messages (1 ms
// to 30 days) are in the log when Publish returns; each subscription
// that comes to one early parks it until its DeliverAt (recorded in its
// journal, under AutoAck too), and it stays delayed across a close, a
// kill -9 and a power loss; each subscription gets it once, at the first
// lease tick at or after its DeliverAt, never before; one subscribed
// after the publish (Latest) does not get it, one subscribed from
// Earliest does.
func TestPersistentTopicDelay(t *testing.T) {
	for _, ack := range []AckMode{AutoAck, ManualAck} {
		for _, keep := range []float64{-1, 1, 0, 0.5} {
			t.Run(fmt.Sprintf("ack=%v/keep=%v", ack, keep), func(t *testing.T) {
				rng := newRand(t)
				clock := NewManualClock(lifeStart)
				fs := mmap.NewMemFS()
				opts := Options{Dir: "/t", Durability: Persistent, Sync: SyncAlways, Shards: 2, RingSize: 16,
					Ack: ack, AckTimeout: 256 * time.Millisecond, Clock: clock, fs: fs, segmentSize: 128 << 10}
				tp, err := OpenTopic(opts)
				if err != nil {
					t.Fatal(err)
				}
				names := []string{"a", "b"}
				subscribeAll := func(tp *Topic) []*Subscription {
					var subs []*Subscription
					for _, name := range names {
						sub, err := tp.Subscribe(name)
						if err != nil {
							t.Fatal(err)
						}
						subs = append(subs, sub)
					}
					return subs
				}
				subs := subscribeAll(tp)
				const n = 200
				due := sendDelayedMix(t, tp.Publish, clock, rng, n)
				if _, err := tp.Subscribe("late"); err != nil {
					t.Fatal(err)
				}
				for si, sub := range subs {
					recvImmediate(t, sub, n-len(due), due, ack) // the delayed ones are parked
					if st, err := tp.SubscriptionStats(names[si], StatsOptions{}); err != nil || st.Delayed != int64(len(due)) || st.Delivered != n/4 {
						t.Fatalf("%s: stats %+v, %v", names[si], st, err)
					}
				}
				if keep >= 0 {
					opts.fs = fs.CrashClone(mmap.CrashOptions{KeepUnsynced: keep, Rand: rng})
				}
				closeOK(t, tp)
				if tp, err = OpenTopic(opts); err != nil {
					t.Fatal(err)
				}
				defer closeOK(t, tp)
				subs = subscribeAll(tp)
				power := keep >= 0 && keep < 1
				for _, name := range names {
					if st, err := tp.SubscriptionStats(name, StatsOptions{}); err != nil || (!power && st.Delayed != int64(len(due))) {
						// (After a power loss the parks may be gone with the
						// cursor: the messages wait in the log, to be parked
						// again.)
						t.Fatalf("reopened %s: %+v, %v; want Delayed %d", name, st, err, len(due))
					}
				}
				late, err := tp.Subscribe("late")
				if err != nil {
					t.Fatal(err)
				}
				early, err := tp.SubscribeAt("early", Earliest())
				if err != nil {
					t.Fatal(err)
				}
				if ack == ManualAck {
					// Earliest's immediate ones first: awaitDelayed wants none.
					for range n / 4 {
						d, err := early.TryReceive()
						if err != nil {
							t.Fatal(err)
						}
						if err := d.Ack(); err != nil {
							t.Fatal(err)
						}
					}
				} else {
					recvN(t, early, n/4)
				}
				awaitDelayed(t, clock, tp.clock, due, power, ack, subs[0], subs[1], early)
				if d, err := late.TryReceive(); !errors.Is(err, ErrEmpty) {
					t.Fatalf("late got %v, %v", d.Value, err)
				}
				for _, name := range append(names, "early") {
					if st, err := tp.SubscriptionStats(name, StatsOptions{}); err != nil || st.Delayed != 0 || st.Depth != 0 || st.Redelivered != 0 || st.InFlight != 0 {
						t.Fatalf("%s: stats %+v, %v", name, st, err)
					}
				}
			})
		}
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

// TestSeekParked: a Seek lets go of the subscription's parked delayed
// messages: back to Earliest, each is read and parked again and comes
// once when due (not twice); forward to Latest, it is skipped.
func TestSeekParked(t *testing.T) {
	for _, ack := range []AckMode{AutoAck, ManualAck} {
		t.Run(ack.String(), func(t *testing.T) {
			clock := NewManualClock(lifeStart)
			tp := openPersistentTopic(t, t.TempDir(), Options{Clock: clock, Ack: ack, AckTimeout: 256 * time.Millisecond})
			defer closeOK(t, tp)
			sub, err := tp.Subscribe("s")
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			due := map[int]time.Time{}
			for i := range 20 {
				m := Message{Key: []byte{byte(i % 3)}, Value: binary.AppendUvarint(nil, uint64(i))}
				if i%2 == 0 {
					m.DeliverAt = lifeStart.Add(time.Hour)
					due[i] = m.DeliverAt
				}
				if err := tp.Publish(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			parked := func(want int64) {
				t.Helper()
				if st := sub.Stats(); st.Delayed != want {
					t.Fatalf("Delayed %d, want %d", st.Delayed, want)
				}
			}
			recvImmediate(t, sub, 10, due, ack)
			parked(10)
			if err := sub.Seek(Earliest()); err != nil {
				t.Fatal(err)
			}
			parked(0)
			recvImmediate(t, sub, 10, due, ack) // again, parking the delayed ones again
			parked(10)
			awaitDelayed(t, clock, tp.clock, due, false, ack, sub) // each once
			parked(0)

			// Parked, then skipped by a Seek forward.
			for i := range 5 {
				m := Message{Value: binary.AppendUvarint(nil, uint64(100+i)), DeliverAt: clock.Now().Add(time.Hour)}
				if err := tp.Publish(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := sub.TryReceive(); !errors.Is(err, ErrEmpty) {
				t.Fatalf("TryReceive: %v", err)
			}
			parked(5)
			if err := sub.Seek(Latest()); err != nil {
				t.Fatal(err)
			}
			parked(0)
			before := tp.clock.reaped.Load()
			clock.Advance(2 * time.Hour)
			waitFor(t, "the reaper", func() bool { return tp.clock.reaped.Load() > before })
			if d, err := sub.TryReceive(); !errors.Is(err, ErrEmpty) {
				t.Fatalf("a skipped delayed message came: %v, %v", d.Value, err)
			}
		})
	}
}
