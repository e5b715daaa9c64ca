package spillway

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/spillway-io/spillway/shard"
)

// TestQueueModel runs random sequences of Send, SendBatch, TrySend,
// Receive, ReceiveBatch and Flush on a one-shard Queue with a tiny ring,
// under each overflow policy and codec, and checks every step against a
// FIFO model of what waits:
//   - what comes out is the model's front, in order, each message with its
//     key, headers and offset (its index among the accepted messages);
//   - nothing comes out when the model is empty;
//   - Stats agree with the model after every step (Sent, Delivered,
//     Dropped, Depth), and nothing stays on disk once it is drained;
//   - SpillToDisk accepts everything; Reject refuses only while the ring is
//     full; DropOldest drops the oldest waiting messages, at most one per
//     message sent and only while the ring is full.
func TestQueueModel(t *testing.T) {
	for _, policy := range []Overflow{SpillToDisk, DropOldest, Reject} {
		t.Run(policy.String(), func(t *testing.T) {
			rng := newRand(t)
			for range 12 {
				runQueueModel(t, rng, policy)
			}
		})
	}
}

// openModelQueue opens a queue of shards shards for a model run: a random
// ring of 1 to 8 messages and a random codec, spilling to a fresh directory
// under SpillToDisk. It is closed when the test ends.
func openModelQueue(t *testing.T, rng *rand.Rand, policy Overflow, shards int) (*Queue, Options) {
	opts := Options{
		Shards:          shards,
		RingSize:        1 << rng.IntN(4),
		Overflow:        policy,
		Compression:     []Compression{Zstd, S2, None}[rng.IntN(3)],
		MaxMessageBytes: 4096,
	}
	if policy == SpillToDisk {
		opts.Dir, opts.MaxDiskBytes = t.TempDir(), 64<<20
	}
	return openQueue(t, opts), opts
}

func runQueueModel(t *testing.T, rng *rand.Rand, policy Overflow) {
	q, opts := openModelQueue(t, rng, policy, 1)
	defer closeOK(t, q)
	ringSize := opts.RingSize
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var (
		model     []int           // sequence numbers waiting, oldest first
		offset    = map[int]int{} // sequence number -> offset
		next      int             // next sequence number
		accepted  int             // messages the queue took
		delivered int
		dropped   int
	)
	step := 0
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("ring %d, %v, %v, step %d: "+format, append([]any{ringSize, policy, opts.Compression, step}, args...)...)
	}
	// sent accounts for an operation that tried to send sent messages, of
	// which the queue took the first took: they join the model, and then
	// whatever the queue reports dropped leaves its front.
	sent := func(n int, err error) {
		t.Helper()
		st := q.Stats()
		took := int(st.Sent) - accepted
		if took < 0 || took > n {
			fail("Sent went from %d to %d for %d messages", accepted, st.Sent, n)
		}
		switch {
		case policy == Reject && took < n:
			if !errors.Is(err, ErrFull) {
				fail("took %d of %d with %v, want ErrFull", took, n, err)
			}
		case err != nil:
			fail("sending %d: %v", n, err)
		}
		if policy == Reject && err != nil && len(model)+took < ringSize {
			fail("ErrFull with %d waiting in a ring of %d", len(model)+took, ringSize)
		}
		for i := range took {
			offset[next-n+i] = accepted + i
			model = append(model, next-n+i)
		}
		accepted += took
		d := int(st.Dropped) - dropped
		if d < 0 || d > took || d > 0 && policy != DropOldest {
			fail("%d dropped while sending %d", d, took)
		}
		if d > 0 && len(model) < ringSize+d {
			fail("dropped %d with %d waiting in a ring of %d", d, len(model), ringSize)
		}
		model = model[d:]
		dropped += d
	}
	check := func(d Delivery) {
		t.Helper()
		if len(model) == 0 {
			fail("received a message from an empty queue")
		}
		_, seq, _ := unmsg(t, d)
		if seq != model[0] || d.Offset != uint64(offset[seq]) || d.Shard != 0 || d.Attempt != 1 {
			fail("received %d at offset %d (attempt %d), want %d at %d", seq, d.Offset, d.Attempt, model[0], offset[model[0]])
		}
		model = model[1:]
		delivered++
	}
	dst := make([]Delivery, 40)
	for ; step < 150; step++ {
		switch op := rng.IntN(100); {
		case op < 25:
			next++
			sent(1, q.Send(ctx, msg(0, next-1, next%3)))
		case op < 35:
			ms := make([]Message, 1+rng.IntN(40))
			for i := range ms {
				ms[i] = msg(0, next+i, (next+i)%3)
			}
			next += len(ms)
			sent(len(ms), q.SendBatch(ctx, ms))
		case op < 45:
			next++
			sent(1, q.TrySend(msg(0, next-1, next%3)))
		case op < 60:
			if len(model) == 0 {
				if k := q.tryReceive(dst[:1]); k != 0 {
					fail("received %d from an empty queue", k)
				}
				continue
			}
			d, err := q.Receive(ctx)
			if err != nil {
				fail("Receive: %v", err)
			}
			check(d)
		case op < 95:
			want := 1 + rng.IntN(len(dst))
			if len(model) == 0 {
				if k := q.tryReceive(dst[:want]); k != 0 {
					fail("received %d from an empty queue", k)
				}
				continue
			}
			k, err := q.ReceiveBatch(ctx, dst[:want])
			if err != nil || k < 1 || k > want {
				fail("ReceiveBatch of %d: %d, %v", want, k, err)
			}
			for _, d := range dst[:k] {
				check(d)
			}
		default:
			if err := q.Flush(); err != nil {
				fail("Flush: %v", err)
			}
		}
		st := q.Stats()
		if st.Sent != uint64(accepted) || st.Delivered != uint64(delivered) || st.Dropped != uint64(dropped) || st.Depth != int64(len(model)) {
			fail("stats %+v, want Sent %d, Delivered %d, Dropped %d, Depth %d", st, accepted, delivered, dropped, len(model))
		}
	}
	for len(model) > 0 {
		k, err := q.ReceiveBatch(ctx, dst)
		if err != nil {
			fail("draining: %v", err)
		}
		for _, d := range dst[:k] {
			check(d)
		}
	}
	if st := q.Stats(); st.Depth != 0 || st.DiskBytes != 0 || st.Sent != st.Delivered+st.Dropped {
		fail("drained: %+v", st)
	}
}

// TestQueueModelShards is TestQueueModel over four shards and keyed
// messages, under SpillToDisk and Reject: each delivery comes from the
// shard its key selects and is the front of that shard's FIFO model, with
// its offset (its index among the messages that shard accepted); Stats add
// up over the shards.
func TestQueueModelShards(t *testing.T) {
	for _, policy := range []Overflow{SpillToDisk, Reject} {
		t.Run(policy.String(), func(t *testing.T) {
			rng := newRand(t)
			for range 6 {
				runQueueModelShards(t, rng, policy)
			}
		})
	}
}

func runQueueModelShards(t *testing.T, rng *rand.Rand, policy Overflow) {
	const shards, keys = 4, 11
	q, opts := openModelQueue(t, rng, policy, shards)
	defer closeOK(t, q)
	ringSize := opts.RingSize
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var (
		models    [shards][]int // sequence numbers waiting in each shard, oldest first
		accepted  [shards]int
		offset    = map[int]int{}
		next      int
		sent      int
		delivered int
		step      int
	)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("ring %d, %v, %v, step %d: "+format, append([]any{ringSize, policy, opts.Compression, step}, args...)...)
	}
	shardOf := func(seq int) int { return shard.Of(msg(0, seq, seq%keys).Key, shards) }
	waiting := func() (n int) {
		for _, m := range models {
			n += len(m)
		}
		return n
	}
	// took accounts for the first k of the messages from seq from on,
	// which the queue accepted.
	took := func(from, k int) {
		for seq := from; seq < from+k; seq++ {
			s := shardOf(seq)
			offset[seq] = accepted[s]
			accepted[s]++
			models[s] = append(models[s], seq)
		}
		sent += k
	}
	dst := make([]Delivery, 40)
	for ; step < 150; step++ {
		switch op := rng.IntN(100); {
		case op < 40:
			n := 1 + rng.IntN(20)
			ms := make([]Message, n)
			for i := range ms {
				ms[i] = msg(0, next+i, (next+i)%keys)
			}
			err := q.SendBatch(ctx, ms)
			k := int(q.Stats().Sent) - sent
			switch {
			case k < 0 || k > n:
				fail("Sent moved by %d for %d messages", k, n)
			case k < n && !errors.Is(err, ErrFull), k == n && err != nil:
				fail("took %d of %d with %v", k, n, err)
			}
			took(next, k)
			if s := shardOf(next + k); k < n && len(models[s]) < ringSize {
				fail("ErrFull for shard %d holding %d in a ring of %d", s, len(models[s]), ringSize)
			}
			next += n
		default:
			want := 1 + rng.IntN(len(dst))
			if waiting() == 0 {
				if k := q.tryReceive(dst[:want]); k != 0 {
					fail("received %d from an empty queue", k)
				}
				continue
			}
			k, err := q.ReceiveBatch(ctx, dst[:want])
			if err != nil || k < 1 || k > want {
				fail("ReceiveBatch of %d: %d, %v", want, k, err)
			}
			for _, d := range dst[:k] {
				_, seq, _ := unmsg(t, d)
				s := shardOf(seq)
				if d.Shard != s || len(models[s]) == 0 || models[s][0] != seq || d.Offset != uint64(offset[seq]) {
					fail("received %d from shard %d at offset %d; want shard %d's next, %v, at %d", seq, d.Shard, d.Offset, s, models[s][:min(len(models[s]), 1)], offset[seq])
				}
				models[s] = models[s][1:]
				delivered++
			}
		}
		if st := q.Stats(); st.Sent != uint64(sent) || st.Delivered != uint64(delivered) || st.Dropped != 0 || st.Depth != int64(waiting()) {
			fail("stats %+v, want Sent %d, Delivered %d, Depth %d", st, sent, delivered, waiting())
		}
	}
}
