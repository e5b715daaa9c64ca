package spillway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var lifeStart = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

// recvN receives n messages, failing the test if they do not come within
// a safety deadline.
func recvN(t *testing.T, r interface {
	Receive(context.Context) (Delivery, error)
}, n int) []Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := make([]Delivery, 0, n)
	for range n {
		d, err := r.Receive(ctx)
		if err != nil {
			t.Fatalf("after %d of %d: %v", len(out), n, err)
		}
		out = append(out, d)
	}
	return out
}

// advanceDelay moves clock by d (at least one DelayTick) and waits until
// q's delay mover has fired for it.
func advanceDelay(t *testing.T, q *Queue, clock *ManualClock, d time.Duration) {
	t.Helper()
	before := q.delay.fires.Load()
	running := q.delay.waiting.Load() > 0
	clock.Advance(d)
	if running {
		waitFor(t, "the delay mover", func() bool { return q.delay.fires.Load() > before })
	}
}

// TestQueueDelay: messages delayed from 1 ms to 30 days come out at the
// first tick at or after their DeliverAt, never before, in due order
// (messages due at once in the order sent), through spill; Stats.Delayed
// counts those held.
func TestQueueDelay(t *testing.T) {
	for _, spill := range []bool{false, true} {
		t.Run(fmt.Sprintf("spill=%v", spill), func(t *testing.T) {
			rng := newRand(t)
			clock := NewManualClock(lifeStart)
			opts := Options{Shards: 1, Clock: clock, DelayTick: 10 * time.Millisecond}
			if spill {
				opts.Dir, opts.RingSize = t.TempDir(), 16
			}
			q := openQueue(t, opts)
			ctx := context.Background()
			spans := []time.Duration{time.Millisecond, 7 * time.Millisecond, time.Second, time.Minute, time.Hour, 30 * 24 * time.Hour}
			type sent struct {
				at time.Time
				id int
			}
			var all []sent
			for id := range 400 {
				d := spans[rng.IntN(len(spans))]
				d = time.Duration(1 + rng.Int64N(int64(d)))
				if id%100 < 40 {
					d = time.Hour // a crowd due at once: more than a ring
				}
				at := clock.Now().Add(d)
				v := binary.AppendUvarint(nil, uint64(id))
				if err := q.Send(ctx, Message{Value: v, DeliverAt: at}); err != nil {
					t.Fatal(err)
				}
				all = append(all, sent{at, id})
			}
			if st := q.Stats(); st.Delayed != 400 || st.Depth != 0 || st.Sent != 400 {
				t.Fatalf("held: Delayed %d Depth %d Sent %d", st.Delayed, st.Depth, st.Sent)
			}
			slices.SortStableFunc(all, func(a, b sent) int { return a.at.Compare(b.at) })
			tick := opts.DelayTick
			next := 0
			for next < len(all) {
				at := all[next].at
				// Just before the tick it is due at: nothing due later comes.
				if before := at.Add(-tick).Sub(clock.Now()); before >= tick {
					advanceDelay(t, q, clock, before)
				}
				// One tick on: it and every other message due by now come.
				advanceDelay(t, q, clock, max(at.Sub(clock.Now())+tick, tick))
				// Ticks fall every DelayTick from the queue's open: what is due
				// by the last one has come.
				now := clock.Now()
				boundary := lifeStart.Add(now.Sub(lifeStart) / tick * tick)
				k := next
				for k < len(all) && !all[k].at.After(boundary) {
					k++
				}
				got := recvN(t, q, k-next)
				for i, d := range got {
					id, _ := binary.Uvarint(d.Value)
					want := all[next+i]
					if int(id) != want.id {
						t.Fatalf("got message %d, want %d (due %v, now %v)", id, want.id, want.at, now)
					}
				}
				if d, err := q.TryReceive(); err == nil {
					id, _ := binary.Uvarint(d.Value)
					t.Fatalf("message %d came early at %v", id, now)
				}
				next = k
				if st := q.Stats(); st.Delayed != int64(len(all)-next) {
					t.Fatalf("Delayed %d, %d held", st.Delayed, len(all)-next)
				}
			}
			st := q.Stats()
			if st.Delivered != 400 || st.Sent != 400 || st.Delayed != 0 || st.Depth != 0 {
				t.Fatalf("stats: %+v", st)
			}
			if spill && st.Spilled == 0 {
				t.Fatal("nothing spilled")
			}
		})
	}
}

// TestQueueExpiry: a message past its ExpiresAt (or MessageTTL after its
// send) is never delivered, from the ring, the spill or a redelivery; it
// goes to the dead-letter queue with reason expired and the delivery
// history it had, or is dropped; Stats count it either way.
func TestQueueExpiry(t *testing.T) {
	for _, spill := range []bool{false, true} {
		t.Run(fmt.Sprintf("spill=%v", spill), func(t *testing.T) {
			clock := NewManualClock(lifeStart)
			dlq := openQueue(t, Options{Shards: 1})
			opts := Options{Name: "jobs", Shards: 2, Clock: clock, DeadLetter: dlq}
			if spill {
				opts.Dir, opts.RingSize = t.TempDir(), 8
			}
			q := openQueue(t, opts)
			ctx := context.Background()
			soon, later := clock.Now().Add(time.Minute), clock.Now().Add(time.Hour)
			for i := range 100 {
				m := Message{Key: []byte{byte(i % 5)}, Value: []byte{byte(i)}}
				switch i % 3 {
				case 0:
					m.ExpiresAt = soon
				case 1:
					m.ExpiresAt = later
				}
				if err := q.Send(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			// Expired on arrival: accepted, never queued.
			if err := q.Send(ctx, Message{Value: []byte("stale"), ExpiresAt: clock.Now().Add(-time.Second)}); err != nil {
				t.Fatal(err)
			}
			clock.Advance(2 * time.Minute)
			got := recvN(t, q, 66)
			for _, d := range got {
				i := int(d.Value[0])
				if i%3 == 0 {
					t.Fatalf("message %d delivered after it expired", i)
				}
				if want := map[int]time.Time{1: later, 2: {}}[i%3]; !d.ExpiresAt.Equal(want) {
					t.Fatalf("message %d: ExpiresAt %v, want %v", i, d.ExpiresAt, want)
				}
			}
			if d, err := q.TryReceive(); err == nil {
				t.Fatalf("message %v delivered", d.Value)
			}
			st := q.Stats()
			if st.Expired != 35 || st.DeadLettered != 35 || st.Delivered != 66 || st.Sent != 101 || st.Depth != 0 || st.Dropped != 0 {
				t.Fatalf("stats: %+v", st)
			}
			if spill && st.Spilled == 0 {
				t.Fatal("nothing spilled")
			}
			dead := recvN(t, dlq, 35)
			for _, d := range dead {
				h := headerMap(d.Headers)
				if h[HeaderDeadReason] != DeadExpired || h[HeaderDeadSource] != "jobs" || h[HeaderDeadAttempts] != "0" || h[HeaderDeadLastDelivery] != "" {
					t.Fatalf("dead-letter headers %v", h)
				}
				if !d.ExpiresAt.IsZero() {
					t.Fatalf("dead letter keeps its expiry %v", d.ExpiresAt)
				}
			}
		})
	}
}

// TestQueueExpiryRedelivery: a ManualAck message nacked and expired
// before its redelivery is not redelivered: it is dead-lettered with its
// attempts and delivery times. Without a dead-letter queue an expired
// message is counted in Expired only.
func TestQueueExpiryRedelivery(t *testing.T) {
	clock := NewManualClock(lifeStart)
	dlq := openQueue(t, Options{Shards: 1})
	q := openQueue(t, Options{Shards: 1, Clock: clock, Ack: ManualAck, AckTimeout: time.Minute, DeadLetter: dlq})
	ctx := context.Background()
	if err := q.Send(ctx, Message{Value: []byte("x"), ExpiresAt: clock.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	d := recvN(t, q, 1)[0]
	if err := d.Nack(0); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	if d, err := q.TryReceive(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("redelivered %q (%v) after its expiry", d.Value, err)
	}
	h := headerMap(recvN(t, dlq, 1)[0].Headers)
	if h[HeaderDeadReason] != DeadExpired || h[HeaderDeadAttempts] != "1" || h[HeaderDeadFirstDelivery] == "" || h[HeaderDeadLastDelivery] == "" {
		t.Fatalf("headers %v", h)
	}
	if st := q.Stats(); st.Expired != 1 || st.DeadLettered != 1 || st.InFlight != 0 || st.Depth != 0 {
		t.Fatalf("stats %+v", st)
	}

	// MessageTTL, no dead-letter queue.
	clock2 := NewManualClock(lifeStart)
	q2 := openQueue(t, Options{Shards: 1, Clock: clock2, MessageTTL: time.Minute})
	if err := q2.Send(ctx, Message{Value: []byte("ttl")}); err != nil {
		t.Fatal(err)
	}
	if err := q2.Send(ctx, Message{Value: []byte("own"), ExpiresAt: clock2.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := q2.SendBatch(ctx, []Message{{Value: []byte("batch")}}); err != nil {
		t.Fatal(err)
	}
	clock2.Advance(2 * time.Minute)
	if got := recvN(t, q2, 1)[0]; string(got.Value) != "own" {
		t.Fatalf("got %q", got.Value)
	}
	if d, err := q2.TryReceive(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("got %q, %v", d.Value, err)
	}
	if st := q2.Stats(); st.Expired != 2 || st.DeadLettered != 0 || st.Dropped != 0 || st.Depth != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestQueueLifeBadInput: what contradicts itself or the options fails
// with a clear error and queues nothing.
func TestQueueLifeBadInput(t *testing.T) {
	clock := NewManualClock(lifeStart)
	q := openQueue(t, Options{Shards: 1, Clock: clock, Priorities: 3})
	ctx := context.Background()
	now := clock.Now()
	for name, tc := range map[string]struct {
		m   Message
		err error
	}{
		"priority":          {Message{Priority: 3}, ErrInvalidMessage},
		"due after expiry":  {Message{DeliverAt: now.Add(time.Hour), ExpiresAt: now.Add(time.Minute)}, ErrInvalidMessage},
		"id too long":       {Message{ID: strings.Repeat("i", MaxIDBytes+1)}, ErrTooLarge},
		"id too long batch": {Message{ID: strings.Repeat("i", MaxIDBytes+1)}, ErrTooLarge},
	} {
		err := q.Send(ctx, tc.m)
		if strings.HasSuffix(name, "batch") {
			err = q.SendBatch(ctx, []Message{{Value: []byte("ok")}, tc.m})
			var be *BatchError
			if !errors.As(err, &be) || be.Queued != 1 {
				t.Fatalf("%s: %v", name, err)
			}
			recvN(t, q, 1)
		}
		if !errors.Is(err, tc.err) {
			t.Fatalf("%s: %v, want %v", name, err, tc.err)
		}
	}
	if err := q.TrySend(Message{Priority: 9}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Sent != 1 || st.Depth != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, o := range []Options{{Priorities: MaxPriorities + 1}, {DelayTick: time.Microsecond}, {MessageTTL: -1}} {
		if _, err := OpenQueue(o); !errors.Is(err, ErrInvalidOptions) {
			t.Fatalf("%+v: %v", o, err)
		}
	}
}
