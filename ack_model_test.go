package spillway

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestManualAckModel runs random sequences of sends, receives, Ack, Nack
// (now or after a delay), Extend, Term and clock advances on a one-shard
// ManualAck Queue (in memory, or with a ring so small that it spills), and
// checks every step against a model of where each message is: waiting
// for its first delivery (FIFO), leased, ready for redelivery, delayed,
// settled or dead-lettered.
//   - A receive hands out the ready redeliveries first (in any order),
//     then the first deliveries in order; each with the attempt the model
//     expects and the offset of its first delivery, key and headers intact;
//     nothing when the model has nothing due.
//   - Settling a live lease succeeds; settling one that was settled or ran
//     out fails with ErrLeaseExpired.
//   - A lease that runs out, or a Nack, redelivers the message, until it
//     has been delivered MaxAttempts times: then it is dead-lettered, as is
//     a message terminated by Term, and the dead-letter queue gets it.
//   - Stats agree with the model after every step.
func TestManualAckModel(t *testing.T) {
	for _, kind := range []string{"queue", "topic"} {
		for _, spill := range []bool{false, true} {
			name := kind + "/memory"
			if spill {
				name = kind + "/spill"
			}
			t.Run(name, func(t *testing.T) {
				rng := newRand(t)
				var spilled uint64
				for range 6 {
					spilled += runManualAckModel(t, rng, kind, spill)
				}
				if spill && spilled == 0 {
					t.Fatal("nothing went through the spill")
				}
			})
		}
	}
}

// ackTarget is what the ManualAck model drives: a Queue, or one
// subscription of a Topic.
type ackTarget struct {
	send    func(Message) error // never waits: ErrFull when memory is full
	receive func(context.Context, []Delivery) (int, error)
	stats   func() Stats // Sent and Spilled included
	clock   *leaseClock
}

func openAckTarget(t *testing.T, kind string, opts Options) ackTarget {
	if kind == "queue" {
		q := openQueue(t, opts)
		return ackTarget{send: q.TrySend, receive: q.ReceiveBatch, stats: q.Stats, clock: q.clock}
	}
	if opts.Dir == "" {
		opts.Overflow = Reject // Block would wait for this goroutine's own receive
	}
	tp := openTopic(t, opts)
	sub := subscribe(t, tp, "s")
	return ackTarget{
		send:    func(m Message) error { return tp.Publish(context.Background(), m) },
		receive: sub.ReceiveBatch,
		stats: func() Stats {
			st, tst := sub.Stats(), tp.Stats()
			st.Sent, st.Spilled = tst.Sent, tst.Spilled
			return st
		},
		clock: tp.clock,
	}
}

// Where a message of the model is.
const (
	ackWaiting = iota // not delivered yet
	ackLeased
	ackReady   // due for redelivery
	ackDelayed // nacked with a delay, or its lease extended past the next advance
	ackSettled
	ackDead
)

type ackMsg struct {
	state    int
	attempts int      // deliveries so far
	offset   uint64   // of the first delivery
	d        Delivery // the latest delivery
	due      int      // the advance at which the lease or the delay runs out
}

// runManualAckModel runs one sequence and returns how many messages spilled.
func runManualAckModel(t *testing.T, rng *rand.Rand, kind string, spill bool) uint64 {
	const maxAttempts = 3
	clock := NewManualClock(time.Unix(0, 0))
	dlq, err := OpenQueue(Options{Shards: 1, RingSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, dlq)
	opts := Options{Shards: 1, RingSize: 1 << rng.IntN(4), Ack: ManualAck, AckTimeout: time.Second,
		MaxAttempts: maxAttempts, DeadLetter: dlq, Clock: clock, Compression: S2}
	if spill {
		opts.Dir = t.TempDir()
	}
	q := openAckTarget(t, kind, opts)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var (
		msgs       []*ackMsg // by sequence number
		waiting    []int     // sequence numbers not delivered yet, in order
		advances   int       // clock advances so far
		delivered  int
		redeliver  int
		acked      int
		dead       []int
		nextOffset uint64
	)
	step := 0
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("ring %d, spill %v, step %d: "+format, append([]any{opts.RingSize, spill, step}, args...)...)
	}
	count := func(state int) (n int) {
		for _, m := range msgs {
			if m.state == state {
				n++
			}
		}
		return n
	}
	// pick returns a random message in state, or -1.
	pick := func(state int) int {
		var in []int
		for i, m := range msgs {
			if m.state == state {
				in = append(in, i)
			}
		}
		if len(in) == 0 {
			return -1
		}
		return in[rng.IntN(len(in))]
	}
	// retry is what happens to a leased message that is nacked or runs out.
	retry := func(i int) {
		if m := msgs[i]; m.attempts >= maxAttempts {
			m.state = ackDead
			dead = append(dead, i)
		} else {
			m.state = ackReady
		}
	}
	receive := func(want int, dst []Delivery) {
		ready := count(ackReady)
		if ready == 0 && len(waiting) == 0 {
			if k, err := q.receive(canceled, dst[:want]); k != 0 || !errors.Is(err, context.Canceled) {
				fail("received %d with nothing due (%v)", k, err)
			}
			return
		}
		k, err := q.receive(ctx, dst[:want])
		if err != nil || k < 1 {
			fail("ReceiveBatch: %d, %v", k, err)
		}
		for j, d := range dst[:k] {
			_, seq, _ := unmsg(t, d)
			if seq < 0 || seq >= len(msgs) {
				fail("received unknown message %d", seq)
			}
			m := msgs[seq]
			switch {
			case j < ready:
				if m.state != ackReady {
					fail("delivery %d of %d is message %d, in state %d; want one of the %d ready", j, k, seq, m.state, ready)
				}
			case len(waiting) == 0 || waiting[0] != seq:
				fail("delivery %d of %d is message %d; want the next waiting, %v", j, k, seq, waiting[:min(len(waiting), 1)])
			default:
				waiting = waiting[1:]
				m.offset = nextOffset
				nextOffset++
			}
			m.attempts++
			if d.Attempt != m.attempts || d.Offset != m.offset || d.Shard != 0 {
				fail("message %d: attempt %d at offset %d, want attempt %d at %d", seq, d.Attempt, d.Offset, m.attempts, m.offset)
			}
			if m.attempts > 1 {
				redeliver++
			}
			delivered++
			m.state, m.d, m.due = ackLeased, d, advances+1
		}
	}
	dst := make([]Delivery, 16)
	for ; step < 200; step++ {
		switch op := rng.IntN(100); {
		case op < 20:
			// One message, or sometimes a burst that overflows the ring.
			n := 1
			if rng.IntN(4) == 0 {
				n = 2 + rng.IntN(20)
			}
			for range n {
				seq := len(msgs)
				if err := q.send(msg(0, seq, seq%3)); err != nil {
					if !spill && errors.Is(err, ErrFull) && len(waiting) >= opts.RingSize {
						break
					}
					fail("TrySend with %d waiting: %v", len(waiting), err)
				}
				msgs = append(msgs, &ackMsg{state: ackWaiting})
				waiting = append(waiting, seq)
			}
		case op < 45:
			receive(1+rng.IntN(len(dst)), dst)
		case op < 60:
			if i := pick(ackLeased); i >= 0 {
				if err := msgs[i].d.Ack(); err != nil {
					fail("Ack of message %d: %v", i, err)
				}
				msgs[i].state = ackSettled
				acked++
			}
		case op < 70:
			if i := pick(ackLeased); i >= 0 {
				if rng.IntN(2) == 0 {
					if err := msgs[i].d.Nack(0); err != nil {
						fail("Nack of message %d: %v", i, err)
					}
					retry(i)
				} else {
					// Due after the second advance from now (2.5 s; each
					// advance moves the clock 1 s and two ticks).
					if err := msgs[i].d.Nack(2500 * time.Millisecond); err != nil {
						fail("Nack with a delay of message %d: %v", i, err)
					}
					if msgs[i].attempts >= maxAttempts {
						retry(i)
					} else {
						msgs[i].state, msgs[i].due = ackDelayed, advances+3
					}
				}
			}
		case op < 74:
			if i := pick(ackLeased); i >= 0 {
				if err := msgs[i].d.Extend(2500 * time.Millisecond); err != nil {
					fail("Extend of message %d: %v", i, err)
				}
				msgs[i].due = advances + 3
			}
		case op < 77:
			if i := pick(ackLeased); i >= 0 {
				if err := msgs[i].d.Term(); err != nil {
					fail("Term of message %d: %v", i, err)
				}
				msgs[i].state = ackDead
				dead = append(dead, i)
			}
		case op < 82:
			// Settling a delivery that is no longer leased fails.
			for _, state := range []int{ackSettled, ackReady, ackDead} {
				if i := pick(state); i >= 0 {
					if err := msgs[i].d.Ack(); !errors.Is(err, ErrLeaseExpired) {
						fail("Ack of message %d in state %d: %v, want ErrLeaseExpired", i, state, err)
					}
				}
			}
		default:
			before := q.clock.reaped.Load()
			clock.Advance(time.Second + 2*q.clock.tick)
			waitFor(t, "the reaper", func() bool { return q.clock.reaped.Load() > before })
			advances++
			for i, m := range msgs {
				switch {
				case m.state == ackLeased && m.due <= advances:
					retry(i)
				case m.state == ackDelayed && m.due <= advances:
					m.state = ackReady
				}
			}
		}
		st := q.stats()
		depth := len(waiting) + count(ackReady) + count(ackDelayed)
		if st.Sent != uint64(len(msgs)) || st.Delivered != uint64(delivered) || st.Redelivered != uint64(redeliver) ||
			st.Acked != uint64(acked) || st.DeadLettered != uint64(len(dead)) || st.Dropped != 0 ||
			st.InFlight != int64(count(ackLeased)) || st.Depth != int64(depth) {
			fail("stats %+v; want Sent %d, Delivered %d, Redelivered %d, Acked %d, DeadLettered %d, InFlight %d, Depth %d",
				st, len(msgs), delivered, redeliver, acked, len(dead), count(ackLeased), depth)
		}
	}
	var got []int
	for k := receiveNow(dlq, dst); k > 0; k = receiveNow(dlq, dst) {
		for _, d := range dst[:k] {
			_, seq, _ := unmsg(t, d)
			got = append(got, seq)
		}
	}
	slices.Sort(got)
	slices.Sort(dead)
	if !slices.Equal(got, dead) {
		fail("dead-letter queue holds %v, want %v", got, dead)
	}
	return q.stats().Spilled
}
