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

// drainSub receives everything a reopened topic's subscription has,
// without waiting.
func drainSub(t *testing.T, sub *Subscription) []Delivery {
	t.Helper()
	var out []Delivery
	for {
		d, err := sub.TryReceive()
		if errors.Is(err, ErrEmpty) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
}

// runTopicCrashRound drives a Persistent ManualAck topic with two
// subscriptions on a MemFS with random publishes, receives, acks and
// syncs, then simulates a power loss (keeping each unsynced page with
// probability keep) and checks what each subscription gets after a reopen
// against its ledger (see checkRecovered).
func runTopicCrashRound(t *testing.T, rng *rand.Rand, sync SyncPolicy, keep float64, enc *Encryption) {
	fs := mmap.NewMemFS()
	clock := NewManualClock(time.Unix(1e9, 0))
	opts := crashOptions(fs, sync, clock)
	opts.Encryption = enc
	tp, err := OpenTopic(opts)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "b"}
	subs := map[string]*Subscription{}
	ledgers := map[string]*ledger{}
	held := map[string][]Delivery{}
	for _, name := range names {
		if subs[name], err = tp.Subscribe(name); err != nil {
			t.Fatal(err)
		}
		ledgers[name] = newLedger()
	}
	ctx := context.Background()
	next := map[int]int{}
	synced := func() {
		for _, l := range ledgers {
			l.synced()
		}
	}
	for range 200 + rng.IntN(400) {
		name := names[rng.IntN(len(names))]
		switch r := rng.IntN(100); {
		case r < 50:
			k := rng.IntN(6)
			m := keyedMessage(k, next[k])
			next[k]++
			if err := tp.Publish(ctx, m); err != nil {
				t.Fatal(err)
			}
			for _, l := range ledgers {
				l.sent[string(m.Value)] = true
			}
		case r < 75:
			d, err := subs[name].TryReceive()
			if errors.Is(err, ErrEmpty) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			held[name] = append(held[name], d)
		case r < 92 && len(held[name]) > 0:
			i := rng.IntN(len(held[name]))
			if err := held[name][i].Ack(); err != nil {
				t.Fatal(err)
			}
			ledgers[name].acked[string(held[name][i].Value)] = true
			held[name] = append(held[name][:i], held[name][i+1:]...)
		case r < 96:
			if sync == SyncInterval {
				before := tp.sy.rounds.Load()
				clock.Advance(opts.SyncEvery + defaultSyncEvery)
				waitFor(t, "the interval's sync round", func() bool { return tp.sy.rounds.Load() > before })
				synced()
			}
		default:
			if err := tp.Sync(); err != nil {
				t.Fatal(err)
			}
			synced()
		}
		if sync == SyncAlways {
			synced() // every call that returned is durable
		}
	}
	crashed := fs.CrashClone(mmap.CrashOptions{KeepUnsynced: keep, Rand: rng})
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	opts.fs = crashed
	tp, err = OpenTopic(opts)
	if err != nil {
		t.Fatalf("reopen after a power loss (%v, keep %v): %v", sync, keep, err)
	}
	defer func() {
		if err := tp.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	for _, name := range names {
		sub, err := tp.Subscribe(name)
		if err != nil {
			t.Fatal(err)
		}
		l := ledgers[name]
		mustHave, ackGone := l.durable, l.ackDur
		if keep == 1 {
			mustHave, ackGone = l.sent, l.acked
		}
		checkRecovered(t, drainSub(t, sub), l, mustHave, ackGone)
	}
}

// TestPersistentTopicPowerLoss simulates power losses (mmap.MemFS) under
// each sync policy, keeping none, some or all of what was not synced: a
// reopen always succeeds, and each subscription gets every message the
// policy promised to keep, and none whose ack it promised to keep, nothing
// corrupted or twice, per key in order.
func TestPersistentTopicPowerLoss(t *testing.T) {
	rng := newRand(t)
	for _, enc := range []*Encryption{nil, testEncryption(2)} {
		for _, sync := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
			for _, keep := range []float64{0, 0.5, 1} {
				t.Run(fmt.Sprintf("sealed=%v/%v/keep=%v", enc != nil, sync, keep), func(t *testing.T) {
					for range 4 * *stressScale {
						runTopicCrashRound(t, rng, sync, keep, enc)
					}
				})
			}
		}
	}
}

// TestTopicSubscriptionsPowerLoss: a subscription whose SubscribeAt
// returned, and the deletion of one whose Unsubscribe returned, survive a
// power loss that keeps nothing unsynced, under every sync policy.
func TestTopicSubscriptionsPowerLoss(t *testing.T) {
	for _, sync := range []SyncPolicy{SyncNever, SyncInterval, SyncAlways} {
		fs := mmap.NewMemFS()
		opts := crashOptions(fs, sync, nil)
		tp, err := OpenTopic(opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"kept", "gone"} {
			if _, err := tp.SubscribeAt(name, Earliest()); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tp.SubscribeAt("late", AtPosition(newPosition([]uint64{0, 0}))); err != nil {
			t.Fatal(err)
		}
		if err := tp.Unsubscribe("gone"); err != nil { // last: nothing after it syncs for it
			t.Fatal(err)
		}
		crashed := fs.CrashClone(mmap.CrashOptions{KeepUnsynced: 0})
		if err := tp.Close(); err != nil {
			t.Fatal(err)
		}
		opts.fs = crashed
		tp, err = OpenTopic(opts)
		if err != nil {
			t.Fatalf("%v: reopen after a power loss: %v", sync, err)
		}
		if got := tp.Subscriptions(); fmt.Sprint(got) != "[kept late]" {
			t.Fatalf("%v: after a power loss the subscriptions are %v, want [kept late]", sync, got)
		}
		if err := tp.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
