package spillway

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestDedupEndAfterTurn: an id whose stripe turned (cur became prev)
// between its begin and its end is settled where it is, in prev: no id
// stays pending after its end; a retry that waited on a pending id is a
// duplicate once it ends, and the stripe forgets its waits.
func TestDedupEndAfterTurn(t *testing.T) {
	ctx := context.Background()
	d := newDedup(&Options{DedupWindow: time.Hour, DedupMaxIDs: 2 * dedupStripes}) // one id per generation
	now := lifeStart.UnixNano()
	st := d.stripeOf(hashID("a"))
	var same []string // ids of a's stripe
	for i := 0; len(same) < 2; i++ {
		if id := fmt.Sprint("id-", i); d.stripeOf(hashID(id)) == st {
			same = append(same, id)
		}
	}
	dup, tka, err := d.begin(ctx, "a", now, true)
	if err != nil || dup {
		t.Fatalf("begin a: %v, %v", dup, err)
	}
	_, tkb, err := d.begin(ctx, same[0], now+1, true) // cur is full: it turns
	if err != nil {
		t.Fatal(err)
	}
	if st.turns != tka.turn+1 {
		t.Fatalf("turns %d, a's %d", st.turns, tka.turn)
	}
	d.end(same[0], tkb, true, now+1)
	d.end("a", tka, true, now)
	for _, m := range []map[string]int64{st.cur, st.prev} {
		for id, at := range m {
			if at == pending {
				t.Fatalf("%s still pending", id)
			}
		}
	}
	if at, ok := st.prev["a"]; !ok || at != now {
		t.Fatalf("a in prev: %v, %v (cur: %v)", at, ok, st.cur)
	}
	// A wait on a pending id, then end's shortcut again.
	_, tkc, err := d.begin(ctx, same[1], now+3, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.begin(ctx, same[1], now+3, false); err == nil {
		t.Fatal("a TrySend of a pending id did not fail")
	}
	waited := make(chan bool)
	go func() {
		dup, _, err := d.begin(ctx, same[1], now+4, true)
		waited <- dup && err == nil
	}()
	for {
		st.mu.Lock()
		w := st.waits != nil
		st.mu.Unlock()
		if w {
			break
		}
		runtime_Gosched()
	}
	d.end(same[1], tkc, true, now+3)
	if !<-waited {
		t.Fatal("the waiting retry was not a duplicate")
	}
	if st.waits != nil {
		t.Fatalf("waits %v after the last end", st.waits)
	}
}

// TestDedupModel: seeded random sends of ids (a third of them repeats,
// one in twenty failing), over stripes that turn many times, by the clock
// (and reuse their spare map) or by fullness: a repeat within the window
// is a duplicate unless the stripe evicted it (counted), and nothing
// else is; no id stays pending after its end.
func TestDedupModel(t *testing.T) {
	// 20 ms: some 400 ids in the window, stripes turn by the clock, none
	// evicted; 1 s: they turn by fullness, evicting.
	for _, window := range []time.Duration{20 * time.Millisecond, time.Second} {
		t.Run(fmt.Sprint("window=", window), func(t *testing.T) { testDedupModel(t, window) })
	}
}

func testDedupModel(t *testing.T, window time.Duration) {
	rng := newRand(t)
	ctx := context.Background()
	d := newDedup(&Options{DedupWindow: window, DedupMaxIDs: 64 * dedupStripes})
	now := lifeStart.UnixNano()
	sent := map[string]int64{}
	for i := range 20_000 {
		now += rng.Int64N(int64(100 * time.Microsecond))
		id := fmt.Sprint("id-", i)
		if i > 0 && rng.IntN(3) == 0 {
			id = fmt.Sprint("id-", rng.IntN(i))
		}
		dup, tk, err := d.begin(ctx, id, now, false)
		if err != nil {
			t.Fatal(err)
		}
		at, seen := sent[id]
		_, evicted := d.stats()
		if seen && now-at <= d.window && !dup && evicted == 0 {
			t.Fatalf("%s sent at %d, again at %d: not a duplicate", id, at, now)
		}
		if dup && (!seen || now-at > d.window) {
			t.Fatalf("%s at %d taken for a duplicate (sent: %v at %d)", id, now, seen, at)
		}
		if !dup {
			d.end(id, tk, rng.IntN(20) != 0, now) // one in twenty fails
			if st := tk.st; st.cur[id] == now || st.prev[id] == now {
				sent[id] = now
			}
		}
		if i%997 == 0 {
			for si := range d.stripe {
				st := &d.stripe[si]
				for _, m := range []map[string]int64{st.cur, st.prev} {
					for id, at := range m {
						if at == pending {
							t.Fatalf("stripe %d: %s pending after its end", si, id)
						}
					}
				}
			}
		}
	}
	if _, evicted := d.stats(); (evicted == 0) != (window < time.Second) {
		t.Fatalf("window %v: %d evicted", window, evicted)
	}
}
