package spillway

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/spillway-io/spillway/mmap"
)

// crashOptions are a Persistent queue's options on a MemFS, with segments
// small enough that a round of a crash test rolls several.
func crashOptions(fs mmap.FS, sync SyncPolicy, clock Clock) Options {
	return Options{
		Dir: "/q", Durability: Persistent, Sync: sync, Shards: 2, RingSize: 16,
		Ack: ManualAck, AckTimeout: time.Hour, Clock: clock,
		fs: fs, segmentSize: 128 << 10, journalSize: 64 << 10,
	}
}

// ledger is what a crash test knows of the messages it sent: which Sends
// and Acks returned, and which were covered by a sync that returned.
type ledger struct {
	sent, acked     map[string]bool // by value
	durable, ackDur map[string]bool // sent (acked) before a sync that returned
	order           []string        // values in the order Send returned
}

func newLedger() *ledger {
	return &ledger{sent: map[string]bool{}, acked: map[string]bool{}, durable: map[string]bool{}, ackDur: map[string]bool{}}
}

// synced records that everything returned so far is durable.
func (l *ledger) synced() {
	for v := range l.sent {
		l.durable[v] = true
	}
	for v := range l.acked {
		l.ackDur[v] = true
	}
}

// drainAll receives everything a reopened queue has, without waiting.
func drainAll(t *testing.T, q *Queue) []Delivery {
	t.Helper()
	var out []Delivery
	var empties int
	for empties < 3 {
		d, err := q.TryReceive()
		if errors.Is(err, ErrEmpty) {
			// TryReceive may miss a batch a receiver left half read, or
			// a shard locked a moment: look a few times.
			empties++
			runtime_Gosched()
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		empties = 0
		out = append(out, d)
	}
	return out
}

// checkRecovered checks what a reopened queue delivers against the
// ledger: nothing corrupted, invented or twice, per key in order; every
// message whose Send returned and was made durable (mustHave) is there
// unless its Ack was durable too; and no message whose Ack was durable
// (ackGone) comes back.
func checkRecovered(t *testing.T, got []Delivery, l *ledger, mustHave, ackGone map[string]bool) {
	t.Helper()
	seen := map[string]bool{}
	last := map[int]int{}
	for _, d := range got {
		v := string(d.Value)
		k, i := parseKeyed(t, d.Value)
		if seen[v] {
			t.Fatalf("%s delivered twice after the reopen", short(v))
		}
		seen[v] = true
		if !l.sent[v] {
			t.Fatalf("%s was never sent", short(v))
		}
		if ackGone[v] {
			t.Fatalf("%s came back although its ack was durable", short(v))
		}
		if p, ok := last[k]; ok && i <= p && d.Attempt == 1 {
			t.Fatalf("key %d: message %d after %d", k, i, p)
		}
		if d.Attempt == 1 {
			last[k] = i
		}
	}
	for v := range mustHave {
		if !seen[v] && !ackGone[v] && !l.acked[v] {
			t.Fatalf("%s was durable and not acked, and is missing after the reopen (%d delivered)", short(v), len(got))
		}
	}
}

// runCrashRound drives one Persistent queue on a MemFS with random sends,
// receives, acks and syncs, then simulates a power loss (keeping each
// unsynced page with probability keep) and checks what a reopen recovers.
func runCrashRound(t *testing.T, rng *rand.Rand, sync SyncPolicy, keep float64, enc *Encryption) {
	fs := mmap.NewMemFS()
	clock := NewManualClock(time.Unix(1e9, 0))
	opts := crashOptions(fs, sync, clock)
	opts.Encryption = enc
	q := openPersistent(t, opts)
	l := newLedger()
	ctx := context.Background()
	next := map[int]int{}
	var held []Delivery
	for range 200 + rng.IntN(400) {
		switch r := rng.IntN(100); {
		case r < 60:
			k := rng.IntN(6)
			m := keyedMessage(k, next[k])
			next[k]++
			if err := q.Send(ctx, m); err != nil {
				t.Fatal(err)
			}
			l.sent[string(m.Value)] = true
			l.order = append(l.order, string(m.Value))
		case r < 80:
			d, err := q.TryReceive()
			if errors.Is(err, ErrEmpty) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, d)
		case r < 92 && len(held) > 0:
			i := rng.IntN(len(held))
			if err := held[i].Ack(); err != nil {
				t.Fatal(err)
			}
			l.acked[string(held[i].Value)] = true
			held = append(held[:i], held[i+1:]...)
		case r < 96:
			if sync == SyncInterval {
				// A tick of the interval: wait for its round.
				before := q.sy.rounds.Load()
				clock.Advance(opts.SyncEvery + defaultSyncEvery)
				waitFor(t, "the interval's sync round", func() bool { return q.sy.rounds.Load() > before })
				l.synced()
			}
		default:
			if err := q.Sync(); err != nil {
				t.Fatal(err)
			}
			l.synced()
		}
		if sync == SyncAlways {
			l.synced() // every call that returned is durable
		}
	}
	crashed := fs.CrashClone(mmap.CrashOptions{KeepUnsynced: keep, Rand: rng})
	closeQueue(t, q) // the old queue goes on on the old file system: the clone keeps what it had

	opts.fs = crashed
	q2, err := OpenQueue(opts)
	if err != nil {
		t.Fatalf("reopen after a power loss (%v, keep %v): %v", sync, keep, err)
	}
	defer closeQueue(t, q2)
	got := drainAll(t, q2)
	mustHave, ackGone := l.durable, l.ackDur
	if keep == 1 { // nothing lost: everything a call returned is there
		mustHave, ackGone = l.sent, l.acked
	}
	checkRecovered(t, got, l, mustHave, ackGone)
}

// TestPersistentPowerLoss simulates power losses (mmap.MemFS) under each
// sync policy, keeping none, some or all of what was not synced, with and
// without encryption: a reopen always succeeds and delivers every message
// the policy promised to keep and no ack it promised to keep, nothing
// corrupted or twice, per key in order.
func TestPersistentPowerLoss(t *testing.T) {
	rng := newRand(t)
	rounds := 4 * *stressScale
	for _, enc := range []*Encryption{nil, testEncryption(1)} {
		for _, sync := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
			for _, keep := range []float64{0, 0.5, 1} {
				t.Run(fmt.Sprintf("sealed=%v/%v/keep=%v", enc != nil, sync, keep), func(t *testing.T) {
					for range rounds {
						runCrashRound(t, rng, sync, keep, enc)
					}
				})
			}
		}
	}
}

// short names a keyedMessage value by its key and index.
func short(v string) string {
	var k, i int
	if _, err := fmt.Sscanf(v, "k%d-i%d-", &k, &i); err != nil {
		return fmt.Sprintf("%.20q", v)
	}
	return fmt.Sprintf("k%d-i%d", k, i)
}

// TestPersistentAutoAckPowerLoss: under AutoAck a message handed to a
// receiver is settled in the cursor; after a power loss, those handed out
// before the cursor's last sync (here a Sync) stay delivered, those after
// it may come back, and every message not yet handed out is there.
func TestPersistentAutoAckPowerLoss(t *testing.T) {
	for _, sync := range []SyncPolicy{SyncNever, SyncAlways} {
		t.Run(sync.String(), func(t *testing.T) {
			fs := mmap.NewMemFS()
			opts := crashOptions(fs, sync, nil)
			opts.Ack, opts.Shards = AutoAck, 1
			q := openPersistent(t, opts)
			for i := range 100 {
				if err := q.Send(context.Background(), keyedMessage(0, i)); err != nil {
					t.Fatal(err)
				}
			}
			receiveN(t, q, 30)
			if err := q.Sync(); err != nil {
				t.Fatal(err)
			}
			receiveN(t, q, 20) // handed out after the sync: may come back
			crashed := fs.CrashClone(mmap.CrashOptions{})
			closeQueue(t, q)
			opts.fs = crashed
			got, _ := drainIndexes(t, opts)
			if len(got) < 50 || len(got) > 70 || got[len(got)-1] != 99 || got[0] < 30 {
				t.Fatalf("after a power loss: %d messages, %v...; want 50 to 70 ending at 99, none of the first 30", len(got), got[:min(len(got), 5)])
			}
			for i := 1; i < len(got); i++ {
				if got[i] != got[i-1]+1 {
					t.Fatalf("a hole after %d: %v", got[i-1], got)
				}
			}
		})
	}
}
