package spillway

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/spillway-io/spillway/mmap"
	"github.com/spillway-io/spillway/shard"
)

// topicModel is what a Persistent ManualAck topic must do, in the
// simplest terms: per shard the log of every message published (offset =
// index: nothing is trimmed here), with its publish time; per
// subscription, per shard, the position of its next first delivery and a
// FIFO of unsettled messages ready for redelivery (which go first); the
// deliveries the test holds; each message's attempts so far.
type topicModel struct {
	log   [][]string
	times [][]time.Time
	shard map[string]int
	subs  map[string]*durSubModel
	max   int // MaxAttempts
}

type durSubModel struct {
	pos      []int
	ready    [][]string
	held     map[string]Delivery
	attempts map[string]int
}

func newTopicModel(shards, maxAttempts int) *topicModel {
	return &topicModel{log: make([][]string, shards), times: make([][]time.Time, shards),
		shard: map[string]int{}, subs: map[string]*durSubModel{}, max: maxAttempts}
}

func (m *topicModel) published(v string, s int, at time.Time) {
	m.log[s] = append(m.log[s], v)
	m.times[s] = append(m.times[s], at)
	m.shard[v] = s
}

// offset is v's offset in its shard's log.
func (m *topicModel) offset(v string) int {
	return slices.Index(m.log[m.shard[v]], v)
}

// start resolves a StartAt the way the topic must.
func (m *topicModel) start(st StartAt) []int {
	pos := make([]int, len(m.log))
	for s := range m.log {
		switch st.kind {
		case startEarliest:
		case startLatest:
			pos[s] = len(m.log[s])
		case startTime:
			pos[s] = len(m.log[s])
			for i, at := range m.times[s] {
				if !at.Before(st.at) {
					pos[s] = i
					break
				}
			}
		case startPosition:
			pos[s] = int(st.pos.Offsets()[s])
		}
	}
	return pos
}

func (m *topicModel) subscribe(name string, st StartAt) {
	m.subs[name] = &durSubModel{pos: m.start(st), ready: make([][]string, len(m.log)), held: map[string]Delivery{}, attempts: map[string]int{}}
}

func (sm *durSubModel) empty(m *topicModel) bool {
	for s := range m.log {
		if len(sm.ready[s]) > 0 || sm.pos[s] < len(m.log[s]) {
			return false
		}
	}
	return true
}

// expect checks a delivery to sub against the model and applies it.
func (m *topicModel) expect(t *testing.T, what string, sub string, d Delivery) {
	t.Helper()
	sm := m.subs[sub]
	s, v := d.Shard, string(d.Value)
	var want string
	switch {
	case len(sm.ready[s]) > 0:
		want, sm.ready[s] = sm.ready[s][0], sm.ready[s][1:]
	case sm.pos[s] < len(m.log[s]):
		want = m.log[s][sm.pos[s]]
		sm.pos[s]++
	default:
		t.Fatalf("%s: %s: shard %d delivered %s; the model holds nothing for it", what, sub, s, short(v))
	}
	if v != want {
		t.Fatalf("%s: %s: shard %d delivered %s (attempt %d, offset %d); the model says %s", what, sub, s, short(v), d.Attempt, d.Offset, short(want))
	}
	sm.attempts[v]++
	off := m.offset(v)
	if d.Attempt != sm.attempts[v] || d.Offset != uint64(off) || !d.SentAt.Equal(m.times[s][off]) {
		t.Fatalf("%s: %s: %s came as attempt %d at offset %d sent %v; the model says attempt %d, offset %d, sent %v",
			what, sub, short(v), d.Attempt, d.Offset, d.SentAt, sm.attempts[v], off, m.times[s][off])
	}
	sm.held[v] = d
}

// reopened: every held delivery is unsettled, and comes back, with the
// ready ones, in offset order.
func (m *topicModel) reopened() {
	for _, sm := range m.subs {
		for v := range sm.held {
			s := m.shard[v]
			sm.ready[s] = append(sm.ready[s], v)
		}
		clear(sm.held)
		for s := range sm.ready {
			slices.SortFunc(sm.ready[s], func(a, b string) int { return m.offset(a) - m.offset(b) })
		}
	}
}

// TestPersistentTopicModel runs random sequences of publish, subscribe at
// every kind of start, seek, receive, ack, nack, unsubscribe, sync, close
// and reopen, and kill -9 (a crash clone keeping the page cache) on a
// Persistent ManualAck topic, and checks every delivery against topicModel:
// which message, from which shard, at which offset, which attempt, which
// publish time; and that a receive finds nothing exactly when the model
// holds nothing for the subscription.
func TestPersistentTopicModel(t *testing.T) {
	rng := newRand(t)
	for _, policy := range []SyncPolicy{SyncNever, SyncAlways} {
		for run := range 2 * *stressScale {
			fs := mmap.NewMemFS()
			clock := NewManualClock(time.Unix(1_700_000_000, 0))
			opts := crashOptions(fs, policy, clock)
			opts.MaxAttempts = 3
			opts.Retention = Retention{Policy: Limits} // no limits: everything stays, offsets are indexes
			open := func() *Topic {
				tp, err := OpenTopic(opts)
				if err != nil {
					t.Fatal(err)
				}
				return tp
			}
			tp := open()
			m := newTopicModel(opts.Shards, opts.MaxAttempts)
			handles := map[string]*Subscription{}
			handle := func(name string) *Subscription {
				if h := handles[name]; h != nil {
					return h
				}
				h, err := tp.Subscribe(name)
				if err != nil {
					t.Fatal(err)
				}
				handles[name] = h
				return h
			}
			reopen := func(crash bool) {
				var crashed *mmap.MemFS
				if crash {
					crashed = fs.CrashClone(mmap.CrashOptions{KeepUnsynced: 1})
				}
				if err := tp.Close(); err != nil {
					t.Fatal(err)
				}
				if crash {
					fs = crashed
					opts.fs = fs
				}
				tp = open()
				clear(handles)
				m.reopened()
			}
			randomStart := func() StartAt {
				switch rng.IntN(4) {
				case 0:
					return Earliest()
				case 1:
					return Latest()
				case 2:
					return AtTime(time.Unix(1_700_000_000, 0).Add(time.Duration(rng.IntN(200)) * time.Millisecond))
				}
				offs := make([]uint64, opts.Shards)
				for s := range offs {
					offs[s] = uint64(rng.IntN(len(m.log[s]) + 1))
				}
				return AtPosition(newPosition(offs))
			}
			ctx := context.Background()
			next := map[int]int{}
			names := []string{"a", "b", "c"}
			counts := map[string]int{}
			for step := range 800 + rng.IntN(800) {
				what := fmt.Sprintf("%v run %d step %d", policy, run, step)
				name := names[rng.IntN(len(names))]
				sm := m.subs[name]
				switch r := rng.IntN(100); {
				case r < 35:
					k := rng.IntN(8)
					msg := keyedMessage(k, next[k])
					next[k]++
					if rng.IntN(4) == 0 {
						clock.Advance(time.Millisecond)
					}
					if err := tp.Publish(ctx, msg); err != nil {
						t.Fatal(err)
					}
					m.published(string(msg.Value), shard.Of(msg.Key, opts.Shards), clock.Now())
				case sm == nil:
					st := randomStart()
					if _, err := tp.SubscribeAt(name, st); err != nil {
						t.Fatalf("%s: SubscribeAt(%s, %s): %v", what, name, st, err)
					}
					m.subscribe(name, st)
				case r < 62:
					d, err := handle(name).TryReceive()
					if errors.Is(err, ErrEmpty) {
						if !sm.empty(m) {
							t.Fatalf("%s: %s: TryReceive found nothing; the model holds messages", what, name)
						}
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					m.expect(t, what, name, d)
					counts["receive"]++
					if d.Attempt > 1 {
						counts["redelivery"]++
					}
				case r < 76:
					if len(sm.held) == 0 {
						continue
					}
					v := slices.Sorted(maps.Keys(sm.held))[rng.IntN(len(sm.held))]
					d := sm.held[v]
					if err := d.Ack(); err != nil {
						t.Fatalf("%s: %s: Ack of %s: %v", what, name, short(v), err)
					}
					delete(sm.held, v)
				case r < 84:
					if len(sm.held) == 0 {
						continue
					}
					v := slices.Sorted(maps.Keys(sm.held))[rng.IntN(len(sm.held))]
					d := sm.held[v]
					if err := d.Nack(0); err != nil {
						t.Fatalf("%s: %s: Nack of %s: %v", what, name, short(v), err)
					}
					delete(sm.held, v)
					if sm.attempts[v] < m.max {
						s := m.shard[v]
						sm.ready[s] = append(sm.ready[s], v)
					}
				case r < 91:
					// Seek, with nothing unsettled (the model does not say
					// how deliveries held across a Seek interleave): what
					// is held is acked first.
					for v, d := range sm.held {
						if err := d.Ack(); err != nil {
							t.Fatalf("%s: %s: Ack of %s: %v", what, name, short(v), err)
						}
						delete(sm.held, v)
					}
					if slices.IndexFunc(sm.ready, func(r []string) bool { return len(r) > 0 }) >= 0 {
						continue
					}
					st := randomStart()
					if err := handle(name).Seek(st); err != nil {
						t.Fatalf("%s: %s: Seek(%s): %v", what, name, st, err)
					}
					sm.pos = m.start(st)
					clear(sm.attempts)
					counts["seek"]++
				case r < 92:
					if err := tp.Unsubscribe(name); err != nil {
						t.Fatal(err)
					}
					delete(m.subs, name)
					delete(handles, name)
				case r < 96:
					if err := tp.Sync(); err != nil {
						t.Fatal(err)
					}
				case r < 98:
					reopen(false)
					counts["reopen"]++
				default:
					reopen(true)
					counts["crash"]++
				}
			}
			t.Logf("%v run %d: %v", policy, run, counts)
			if got, want := tp.Subscriptions(), slices.Sorted(maps.Keys(m.subs)); !slices.Equal(got, want) {
				t.Fatalf("%v run %d: Subscriptions() = %v, the model has %v", policy, run, got, want)
			}
			if err := tp.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}
