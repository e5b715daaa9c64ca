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
	st := d.stripeOf("a")
	var same []string // ids of a's stripe
	for i := 0; len(same) < 2; i++ {
		if id := fmt.Sprint("id-", i); d.stripeOf(id) == st {
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
