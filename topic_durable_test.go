package spillway

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// openPersistentTopic opens a Persistent topic in dir with small rings
// and segments, so that tests cross both.
func openPersistentTopic(t testing.TB, dir string, opts Options) *Topic {
	t.Helper()
	opts.Dir, opts.Durability = dir, Persistent
	if opts.Shards == 0 {
		opts.Shards = 2
	}
	if opts.RingSize == 0 {
		opts.RingSize = 64
	}
	if opts.segmentSize == 0 {
		opts.segmentSize = 64 << 10
	}
	tp, err := OpenTopic(opts)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// publishN publishes messages from..to-1, keyed so that each shard's
// messages are in key order: "k<i%keys>" / "v<i>".
func publishN(t testing.TB, tp *Topic, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		m := Message{Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, "v%d", i)}
		if err := tp.Publish(context.Background(), m); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
}

// receiveValues receives n messages and returns their values, checking
// that each shard's come in offset order.
func receiveValues(t testing.TB, sub *Subscription, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	last := map[int]uint64{}
	var out []string
	for len(out) < n {
		d, err := sub.Receive(ctx)
		if err != nil {
			t.Fatalf("receive %d of %d: %v", len(out), n, err)
		}
		if prev, ok := last[d.Shard]; ok && d.Offset <= prev {
			t.Fatalf("shard %d: offset %d after %d", d.Shard, d.Offset, prev)
		}
		last[d.Shard] = d.Offset
		out = append(out, string(d.Value))
	}
	return out
}

// expectEmpty checks that sub has nothing more to deliver.
func expectEmpty(t testing.TB, sub *Subscription) {
	t.Helper()
	if d, err := sub.TryReceive(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("TryReceive = %q, %v; want ErrEmpty", d.Value, err)
	}
}

func valueSet(vs []string) map[string]bool {
	m := make(map[string]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m
}

func wantValues(t testing.TB, got []string, from, to int) {
	t.Helper()
	set := valueSet(got)
	if len(set) != len(got) {
		t.Fatalf("%d values, %d distinct: duplicates", len(got), len(set))
	}
	for i := from; i < to; i++ {
		if !set[fmt.Sprintf("v%d", i)] {
			t.Fatalf("v%d missing (got %d values)", i, len(got))
		}
	}
	if len(got) != to-from {
		t.Fatalf("%d values, want %d", len(got), to-from)
	}
}

// TestPersistentTopicResume: subscriptions survive Close, each resuming
// where it was (a fast one in the ring, a slow one a ring behind), and
// messages published while a subscription was away reach it.
func TestPersistentTopicResume(t *testing.T) {
	dir := t.TempDir()
	tp := openPersistentTopic(t, dir, Options{})
	fast, err := tp.Subscribe("fast")
	if err != nil {
		t.Fatal(err)
	}
	slow, err := tp.Subscribe("slow")
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, tp, 0, 500) // slow falls rings behind: it reads the log
	wantValues(t, receiveValues(t, fast, 500), 0, 500)
	got := receiveValues(t, slow, 120)
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}

	tp = openPersistentTopic(t, dir, Options{Shards: 0})
	defer closeTopic(t, tp)
	if names := tp.Subscriptions(); fmt.Sprint(names) != "[fast slow]" {
		t.Fatalf("Subscriptions() = %v after reopen", names)
	}
	publishN(t, tp, 500, 600)
	fast, err = tp.Subscribe("fast")
	if err != nil {
		t.Fatal(err)
	}
	wantValues(t, receiveValues(t, fast, 100), 500, 600)
	expectEmpty(t, fast)
	slow, err = tp.Subscribe("slow")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, receiveValues(t, slow, 480)...)
	wantValues(t, got, 0, 600)
	expectEmpty(t, slow)
	st := tp.Stats()
	if st.Sent != 100 {
		t.Fatalf("Stats.Sent = %d after reopen and 100 publishes", st.Sent)
	}
}

// TestPersistentTopicUnsubscribe: a deleted subscription stays deleted.
func TestPersistentTopicUnsubscribe(t *testing.T) {
	dir := t.TempDir()
	tp := openPersistentTopic(t, dir, Options{})
	if _, err := tp.Subscribe("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Subscribe("b"); err != nil {
		t.Fatal(err)
	}
	publishN(t, tp, 0, 10)
	if err := tp.Unsubscribe("a"); err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	tp = openPersistentTopic(t, dir, Options{})
	defer closeTopic(t, tp)
	if names := tp.Subscriptions(); fmt.Sprint(names) != "[b]" {
		t.Fatalf("Subscriptions() = %v after reopen, want [b]", names)
	}
}

// TestPersistentTopicReplay: Earliest replays the whole log while
// publishing goes on; AtPosition resumes exactly at a saved Position;
// AtTime picks the first message at or after a time in every shard.
func TestPersistentTopicReplay(t *testing.T) {
	clock := NewManualClock(time.Unix(1_700_000_000, 0))
	tp := openPersistentTopic(t, t.TempDir(), Options{Clock: clock})
	defer closeTopic(t, tp)
	first, err := tp.Subscribe("first")
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, tp, 0, 300)
	clock.Advance(time.Second)
	mark := clock.Now()
	publishN(t, tp, 300, 600)

	all, err := tp.SubscribeAt("all", Earliest())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 600; i < 700; i++ {
			m := Message{Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, "v%d", i)}
			if err := tp.Publish(context.Background(), m); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
		}
	}()
	wantValues(t, receiveValues(t, all, 700), 0, 700)
	<-done

	late, err := tp.SubscribeAt("late", AtTime(mark))
	if err != nil {
		t.Fatal(err)
	}
	wantValues(t, receiveValues(t, late, 400), 300, 700)
	expectEmpty(t, late)

	// A Position: first got 250 of them; a new subscription at its
	// position gets exactly the rest.
	receiveValues(t, first, 250)
	pos := first.Position()
	parsed, err := ParsePosition(pos.String())
	if err != nil || parsed != pos {
		t.Fatalf("ParsePosition(%q) = %v, %v", pos, parsed, err)
	}
	rest, err := tp.SubscribeAt("rest", AtPosition(parsed))
	if err != nil {
		t.Fatal(err)
	}
	a := receiveValues(t, first, 450)
	b := receiveValues(t, rest, 450)
	if fmt.Sprint(valueSet(a)) != fmt.Sprint(valueSet(b)) {
		t.Fatal("a subscription at another's Position got other messages than it")
	}

	// Seek: back to the beginning, and forward to the end.
	if err := rest.Seek(Earliest()); err != nil {
		t.Fatal(err)
	}
	wantValues(t, receiveValues(t, rest, 700), 0, 700)
	if err := all.Seek(AtTime(mark)); err != nil {
		t.Fatal(err)
	}
	wantValues(t, receiveValues(t, all, 400), 300, 700)
	if err := late.Seek(Latest()); err != nil {
		t.Fatal(err)
	}
	expectEmpty(t, late)
}

// TestTopicStartAtErrors: bad positions and starts get ErrInvalidOptions
// with a reason; Seek after Close gets ErrClosed.
func TestTopicStartAtErrors(t *testing.T) {
	tp := openPersistentTopic(t, t.TempDir(), Options{Shards: 2})
	sub, err := tp.SubscribeAt("s", Earliest())
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"", "1", "1,2,3", "1,x", "-1,2", "1,,2"} {
		p, err := ParsePosition(text)
		if err == nil {
			_, err = tp.SubscribeAt("p"+text, AtPosition(p))
		}
		if !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("position %q: %v, want ErrInvalidOptions", text, err)
		}
	}
	if _, err := tp.SubscribeAt("s", Latest()); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("SubscribeAt an existing subscription at another start: %v", err)
	}
	if _, err := tp.SubscribeAt("s", Earliest()); err != nil {
		t.Errorf("SubscribeAt an existing subscription at its start: %v", err)
	}
	if _, err := tp.SubscribeAt("future", AtPosition(newPosition([]uint64{5, 0}))); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("a position past the log's end: %v", err)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sub.Seek(Earliest()); !errors.Is(err, ErrClosed) {
		t.Errorf("Seek after Close: %v, want ErrClosed", err)
	}

	eph, err := OpenTopic(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeTopic(t, eph)
	if _, err := eph.SubscribeAt("e", Earliest()); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Earliest on an Ephemeral topic: %v", err)
	}
	es, err := eph.SubscribeAt("e", Latest())
	if err != nil {
		t.Fatal(err)
	}
	if err := es.Seek(Earliest()); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Seek on an Ephemeral topic: %v", err)
	}
}

// TestPersistentTopicManualAckSeek: under ManualAck, a Seek forward is
// not mistaken, after a reopen, for deliveries never settled; a delivery
// held across the Seek is still redelivered if it was not acked.
func TestPersistentTopicManualAckSeek(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Shards: 1, Ack: ManualAck, AckTimeout: time.Hour}
	tp := openPersistentTopic(t, dir, opts)
	sub, err := tp.SubscribeAt("s", Earliest())
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, tp, 0, 100)
	ctx := context.Background()
	held, err := sub.Receive(ctx) // v0, never acked
	if err != nil {
		t.Fatal(err)
	}
	for range 9 { // v1..v9, acked
		d, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if got := sub.Position().Offsets()[0]; got != held.Offset {
		t.Fatalf("Position %d with offset %d held, want %d", got, held.Offset, held.Offset)
	}
	if err := sub.Seek(AtPosition(newPosition([]uint64{60}))); err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	tp = openPersistentTopic(t, dir, opts)
	defer closeTopic(t, tp)
	sub, err = tp.Subscribe("s")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for {
		d, err := sub.TryReceive()
		if errors.Is(err, ErrEmpty) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[string(d.Value)] = d.Attempt
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 41 || got["v0"] != 2 {
		t.Fatalf("after the reopen: %d messages (want v0 again, attempt 2, and v60..v99): %v", len(got), got)
	}
	for i := 60; i < 100; i++ {
		if got[fmt.Sprintf("v%d", i)] != 1 {
			t.Fatalf("v%d: attempt %d, want a first delivery", i, got[fmt.Sprintf("v%d", i)])
		}
	}
}

// TestPersistentTopicSentAt: every delivery carries its publish time, from
// the ring, from the log, after a reopen and on a redelivery.
func TestPersistentTopicSentAt(t *testing.T) {
	dir := t.TempDir()
	clock := NewManualClock(time.Unix(1_700_000_000, 0))
	opts := Options{Shards: 1, Clock: clock, Ack: ManualAck, AckTimeout: time.Hour}
	tp := openPersistentTopic(t, dir, opts)
	ring, err := tp.Subscribe("ring")
	if err != nil {
		t.Fatal(err)
	}
	lagging, err := tp.Subscribe("lagging")
	if err != nil {
		t.Fatal(err)
	}
	sentAt := map[string]time.Time{}
	for i := range 300 { // lagging falls rings behind: it reads the log
		if i%50 == 0 {
			clock.Advance(time.Second)
		}
		v := fmt.Sprintf("v%d", i)
		sentAt[v] = clock.Now()
		if err := tp.Publish(context.Background(), Message{Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, d Delivery) {
		t.Helper()
		if want := sentAt[string(d.Value)]; !d.SentAt.Equal(want) {
			t.Fatalf("%s: %s SentAt %v, want %v", what, d.Value, d.SentAt, want)
		}
	}
	ctx := context.Background()
	for range 300 {
		d, err := ring.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		check("ring", d)
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	first, err := lagging.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("log", first)
	if err := first.Nack(0); err != nil {
		t.Fatal(err)
	}
	again, err := lagging.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.Attempt != 2 {
		t.Fatalf("after a Nack: %s attempt %d, want the redelivery", again.Value, again.Attempt)
	}
	check("redelivery", again)
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	tp = openPersistentTopic(t, dir, opts)
	defer closeTopic(t, tp)
	lagging, err = tp.Subscribe("lagging")
	if err != nil {
		t.Fatal(err)
	}
	for range 300 {
		d, err := lagging.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		check("after the reopen", d)
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
}

// closeTopic closes tp, failing the test on an error.
func closeTopic(t testing.TB, tp *Topic) {
	t.Helper()
	if err := tp.Close(); err != nil {
		t.Error(err)
	}
}
