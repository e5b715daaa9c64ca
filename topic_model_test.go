package spillway

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// TestTopicModel runs random sequences of Publish, PublishBatch and
// receives on two subscriptions of a one-shard Topic with a tiny ring,
// under DropOldest, Reject and SpillToDisk, and checks every step against
// one FIFO model per subscription:
//   - each subscription receives its model's front, in order, with the
//     message's offset (its index among the published messages), and
//     nothing when its model is empty;
//   - each subscription's Stats agree with its model after every step
//     (Delivered, Dropped, Depth), and the spill is gone once all is read;
//   - SpillToDisk accepts everything; Reject refuses only while the ring is
//     full; DropOldest drops a subscription's oldest waiting messages, at
//     most one per message published, only while it is a ring behind.
func TestTopicModel(t *testing.T) {
	for _, policy := range []Overflow{SpillToDisk, DropOldest, Reject} {
		t.Run(policy.String(), func(t *testing.T) {
			rng := newRand(t)
			for range 8 {
				runTopicModel(t, rng, policy)
			}
		})
	}
}

// subModel is what a subscription has yet to receive, and its counts.
type subModel struct {
	s         *Subscription
	waiting   []int // sequence numbers, oldest first
	delivered int
	dropped   int
}

func runTopicModel(t *testing.T, rng *rand.Rand, policy Overflow) {
	ringSize := 1 << rng.IntN(4)
	opts := Options{
		Shards:          1,
		RingSize:        ringSize,
		Overflow:        policy,
		Compression:     []Compression{Zstd, S2, None}[rng.IntN(3)],
		MaxMessageBytes: 4096,
	}
	if policy == SpillToDisk {
		opts.Dir, opts.MaxDiskBytes = t.TempDir(), 64<<20
	}
	tp, err := OpenTopic(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, tp)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	subs := []*subModel{{s: subscribe(t, tp, "a")}, {s: subscribe(t, tp, "b")}}

	next := 0 // next sequence number; also the next message's offset
	step := 0
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("ring %d, %v, %v, step %d: "+format, append([]any{ringSize, policy, opts.Compression, step}, args...)...)
	}
	// published accounts for an operation that tried to publish n messages
	// from sequence number from on: the topic took the first took of them,
	// and each subscription drops, from its front, what its Stats say.
	published := func(from, n int, err error) {
		t.Helper()
		took := int(tp.Stats().Sent) - from
		if took < 0 || took > n {
			fail("Sent went from %d to %d for %d messages", from, from+took, n)
		}
		switch {
		case policy == Reject && took < n:
			if !errors.Is(err, ErrFull) {
				fail("took %d of %d with %v, want ErrFull", took, n, err)
			}
		case err != nil:
			fail("publishing %d: %v", n, err)
		}
		next = from + took
		behind := false
		for _, m := range subs {
			for i := range took {
				m.waiting = append(m.waiting, from+i)
			}
			behind = behind || len(m.waiting) >= ringSize
			d := int(m.s.Stats().Dropped) - m.dropped
			if d < 0 || d > took || d > 0 && policy != DropOldest {
				fail("subscription %s dropped %d while %d were published", m.s.Name(), d, took)
			}
			if d > 0 && len(m.waiting) < ringSize+d {
				fail("subscription %s dropped %d with %d waiting in a ring of %d", m.s.Name(), d, len(m.waiting), ringSize)
			}
			m.waiting = m.waiting[d:]
			m.dropped += d
		}
		if policy == Reject && err != nil && !behind {
			fail("ErrFull with no subscription a ring behind")
		}
	}
	check := func(m *subModel, d Delivery) {
		t.Helper()
		if len(m.waiting) == 0 {
			fail("subscription %s received a message it was not due", m.s.Name())
		}
		_, seq, _ := unmsg(t, d)
		if want := m.waiting[0]; seq != want || d.Offset != uint64(want) || d.Attempt != 1 {
			fail("subscription %s received %d at offset %d (attempt %d), want %d", m.s.Name(), seq, d.Offset, d.Attempt, want)
		}
		m.waiting = m.waiting[1:]
		m.delivered++
	}
	receive := func(m *subModel, want int, dst []Delivery) {
		t.Helper()
		if len(m.waiting) == 0 {
			if k := m.s.sub.tryReceive(dst[:want]); k != 0 {
				fail("subscription %s received %d with nothing due", m.s.Name(), k)
			}
			return
		}
		k, err := m.s.ReceiveBatch(ctx, dst[:want])
		if err != nil || k < 1 || k > want {
			fail("ReceiveBatch of %d: %d, %v", want, k, err)
		}
		for _, d := range dst[:k] {
			check(m, d)
		}
	}
	dst := make([]Delivery, 40)
	for ; step < 120; step++ {
		switch op := rng.IntN(100); {
		case op < 30:
			published(next, 1, tp.Publish(ctx, msg(0, next, next%3)))
		case op < 45:
			ms := make([]Message, 1+rng.IntN(40))
			for i := range ms {
				ms[i] = msg(0, next+i, (next+i)%3)
			}
			published(next, len(ms), tp.PublishBatch(ctx, ms))
		default:
			// Subscription b reads a third as often as a: it lags.
			m := subs[0]
			if rng.IntN(3) == 0 {
				m = subs[1]
			}
			receive(m, 1+rng.IntN(len(dst)), dst)
		}
		for _, m := range subs {
			st := m.s.Stats()
			if st.Delivered != uint64(m.delivered) || st.Dropped != uint64(m.dropped) || st.Depth != int64(len(m.waiting)) {
				fail("subscription %s: %+v, want Delivered %d, Dropped %d, Depth %d", m.s.Name(), st, m.delivered, m.dropped, len(m.waiting))
			}
		}
	}
	for _, m := range subs {
		for len(m.waiting) > 0 {
			receive(m, len(dst), dst)
		}
	}
	if st := tp.Stats(); st.Depth != 0 || st.DiskBytes != 0 {
		fail("drained: %+v", st)
	}
}
