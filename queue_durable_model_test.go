package spillway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/spillway-io/spillway/mmap"
	"github.com/spillway-io/spillway/shard"
)

// durableModel is what a Persistent ManualAck queue must do, in the
// simplest terms: per shard a FIFO of messages never delivered, and a FIFO
// of unsettled ones ready for redelivery (which go first); the deliveries
// the test holds; each message's log offset and attempts so far.
type durableModel struct {
	pending, ready [][]string
	held           map[string]Delivery
	offset         map[string]uint64
	attempts       map[string]int
	shardOf        map[string]int
	next           []uint64 // per shard: the next log offset
	maxAttempts    int
	dead           int
	trace          []string
}

func newDurableModel(shards, maxAttempts int) *durableModel {
	return &durableModel{
		pending: make([][]string, shards), ready: make([][]string, shards),
		held: map[string]Delivery{}, offset: map[string]uint64{}, attempts: map[string]int{},
		shardOf: map[string]int{}, next: make([]uint64, shards), maxAttempts: maxAttempts,
	}
}

func (m *durableModel) sent(v string, s int) {
	m.pending[s] = append(m.pending[s], v)
	m.offset[v], m.shardOf[v] = m.next[s], s
	m.next[s]++
}

// expect checks a delivery from shard s against the model and applies it.
func (m *durableModel) expect(t *testing.T, step int, d Delivery) {
	t.Helper()
	s := d.Shard
	v := string(d.Value)
	var want string
	switch {
	case len(m.ready[s]) > 0:
		want, m.ready[s] = m.ready[s][0], m.ready[s][1:]
	case len(m.pending[s]) > 0:
		want, m.pending[s] = m.pending[s][0], m.pending[s][1:]
	default:
		t.Fatalf("step %d: shard %d delivered %s, the model holds nothing for it", step, s, short(v))
	}
	if v != want {
		for _, e := range m.trace[max(0, len(m.trace)-60):] {
			t.Log(e)
		}
		t.Fatalf("step %d: shard %d delivered %s (attempt %d, offset %d), the model says %s (ready %v pending %v)", step, s, short(v), d.Attempt, d.Offset, short(want), shorts(m.ready[s]), shorts(m.pending[s][:min(3, len(m.pending[s]))]))
	}
	m.trace = append(m.trace, fmt.Sprintf("%d: recv %s s%d a%d", step, short(v), s, d.Attempt))
	m.attempts[v]++
	if d.Attempt != m.attempts[v] || d.Offset != m.offset[v] {
		t.Fatalf("step %d: %s delivered as attempt %d at offset %d; the model says attempt %d, offset %d", step, short(v), d.Attempt, d.Offset, m.attempts[v], m.offset[v])
	}
	m.held[v] = d
}

// reopened: every held delivery is unsettled, and comes back, with the
// ready ones, in offset order.
func (m *durableModel) reopened() {
	for v := range m.held {
		s := m.shardOf[v]
		m.ready[s] = append(m.ready[s], v)
	}
	clear(m.held)
	for s := range m.ready {
		slices.SortFunc(m.ready[s], func(a, b string) int { return int(m.offset[a]) - int(m.offset[b]) })
	}
}

func (m *durableModel) empty() bool {
	for s := range m.pending {
		if len(m.pending[s])+len(m.ready[s]) > 0 {
			return false
		}
	}
	return true
}

// TestPersistentModel runs random sequences of send, receive, ack, nack,
// sync, close and reopen, and kill -9 (a crash clone keeping the page
// cache) on a Persistent ManualAck queue, and checks every delivery
// against durableModel: which message, from which shard, at which offset,
// which attempt; and that receive finds nothing exactly when the model
// holds nothing.
func TestPersistentModel(t *testing.T) {
	rng := newRand(t)
	for _, policy := range []SyncPolicy{SyncNever, SyncAlways} {
		for run := range 2 * *stressScale {
			fs := mmap.NewMemFS()
			opts := crashOptions(fs, policy, nil)
			opts.MaxAttempts = 3
			q := openPersistent(t, opts)
			m := newDurableModel(opts.Shards, opts.MaxAttempts)
			ctx := context.Background()
			next := map[int]int{}
			steps := 400 + rng.IntN(400)
			for step := range steps {
				switch r := rng.IntN(100); {
				case r < 40:
					k := rng.IntN(8)
					msg := keyedMessage(k, next[k])
					next[k]++
					if err := q.Send(ctx, msg); err != nil {
						t.Fatal(err)
					}
					m.sent(string(msg.Value), shard.Of(msg.Key, opts.Shards))
				case r < 68:
					d, err := q.TryReceive()
					if errors.Is(err, ErrEmpty) {
						if !m.empty() {
							t.Fatalf("run %d step %d: TryReceive found nothing; the model holds messages", run, step)
						}
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					m.expect(t, step, d)
				case r < 84 && len(m.held) > 0:
					v := pick(rng, m.held)
					d := m.held[v]
					if err := d.Ack(); err != nil {
						t.Fatalf("run %d step %d: Ack of %s: %v", run, step, short(v), err)
					}
					m.trace = append(m.trace, fmt.Sprintf("%d: ack %s", step, short(v)))
					delete(m.held, v)
				case r < 92 && len(m.held) > 0:
					v := pick(rng, m.held)
					d := m.held[v]
					if err := d.Nack(0); err != nil {
						t.Fatalf("run %d step %d: Nack of %s: %v", run, step, short(v), err)
					}
					delete(m.held, v)
					m.trace = append(m.trace, fmt.Sprintf("%d: nack %s", step, short(v)))
					if m.attempts[v] >= m.maxAttempts {
						m.dead++ // dead-lettered: no dead-letter queue, so dropped
					} else {
						s := m.shardOf[v]
						m.ready[s] = append(m.ready[s], v)
					}
				case r < 94:
					if err := q.Sync(); err != nil {
						t.Fatal(err)
					}
				case r < 97:
					closeQueue(t, q)
					q = openPersistent(t, opts)
					m.reopened()
					m.trace = append(m.trace, fmt.Sprintf("%d: reopen", step))
				default:
					// kill -9: the page cache survives, the process does not.
					crashed := fs.CrashClone(mmap.CrashOptions{KeepUnsynced: 1})
					closeQueue(t, q)
					fs = crashed
					opts.fs = fs
					q = openPersistent(t, opts)
					m.reopened()
					m.trace = append(m.trace, fmt.Sprintf("%d: crash", step))
				}
			}
			if st := q.Stats(); st.DeadLettered != uint64(m.dead) && m.dead > 0 && st.DeadLettered > uint64(m.dead) {
				t.Fatalf("run %d: %d dead-lettered, the model says at most %d", run, st.DeadLettered, m.dead)
			}
			closeQueue(t, q)
		}
	}
}

// pick returns a random key of m.
func pick(rng interface{ IntN(int) int }, m map[string]Delivery) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys[rng.IntN(len(keys))]
}

func shorts(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = short(v)
	}
	return out
}
