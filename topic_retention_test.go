package spillway

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// tickTopic advances the clock by SyncEvery, twice, and waits each time
// for the retention pass it runs.
func tickTopic(t *testing.T, tp *Topic, clock *ManualClock) {
	t.Helper()
	for range 2 {
		before := tp.retains.Load()
		clock.Advance(tp.opts.SyncEvery)
		waitFor(t, "the retention pass", func() bool { return tp.retains.Load() > before })
	}
}

// publishValues publishes n keyless messages of 1 KiB named from on, one
// shard.
func publishValues(t *testing.T, tp *Topic, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		v := make([]byte, 1024)
		copy(v, fmt.Sprintf("v%d ", i))
		if err := tp.Publish(context.Background(), Message{Value: v}); err != nil {
			t.Fatal(err)
		}
	}
}

// receiveIndexes receives n messages and returns the index each names.
func receiveIndexes(t *testing.T, sub *Subscription, n int) []int {
	t.Helper()
	out := make([]int, 0, n)
	for _, v := range receiveValues(t, sub, n) {
		var i int
		if _, err := fmt.Sscanf(v, "v%d ", &i); err != nil {
			t.Fatal(err)
		}
		out = append(out, i)
	}
	return out
}

func wantRun(t *testing.T, got []int, from int) {
	t.Helper()
	for j, i := range got {
		if i != from+j {
			t.Fatalf("message %d of the run is v%d, want v%d", j, i, from+j)
		}
	}
}

func retentionTopic(t *testing.T, r Retention) (*Topic, *ManualClock) {
	clock := NewManualClock(time.Unix(1_700_000_000, 0))
	tp := openPersistentTopic(t, t.TempDir(), Options{Shards: 1, Clock: clock, Retention: r})
	return tp, clock
}

// TestTopicRetentionInterest: segments go once every subscription has
// passed them, and never one a subscription still needs, whatever the
// limits say.
func TestTopicRetentionInterest(t *testing.T) {
	tp, clock := retentionTopic(t, Retention{MaxAge: time.Minute, MaxBytes: 128 << 10})
	defer closeTopic(t, tp)
	fast, err := tp.Subscribe("fast")
	if err != nil {
		t.Fatal(err)
	}
	slow, err := tp.Subscribe("slow")
	if err != nil {
		t.Fatal(err)
	}
	publishValues(t, tp, 0, 600) // about ten segments
	clock.Advance(time.Hour)     // past MaxAge
	wantRun(t, receiveIndexes(t, fast, 600), 0)
	wantRun(t, receiveIndexes(t, slow, 300), 0)
	tickTopic(t, tp, clock)
	log := tp.shards[0].d.log
	if first := log.FirstOffset(); first == 0 || first > 300 {
		t.Fatalf("after the pass the log starts at %d; want past 0 and at most slow's 300", first)
	}
	wantRun(t, receiveIndexes(t, slow, 300), 300)
	if st := slow.Stats(); st.Trimmed != 0 || st.Dropped != 0 {
		t.Fatalf("slow lost messages: %+v", st)
	}
	tickTopic(t, tp, clock)
	if segs := log.Segments(); len(segs) != 1 {
		t.Fatalf("%d segments after every subscription read everything, want only the active one", len(segs))
	}
}

// TestTopicRetentionLimits: MaxBytes and MaxAge drop whole segments
// whatever the subscriptions did; one that falls behind skips ahead and
// counts the skip in Stats.Trimmed.
func TestTopicRetentionLimits(t *testing.T) {
	tp, clock := retentionTopic(t, Retention{MaxBytes: 200 << 10, Policy: Limits})
	defer closeTopic(t, tp)
	lag, err := tp.Subscribe("lag")
	if err != nil {
		t.Fatal(err)
	}
	publishValues(t, tp, 0, 1000)
	tickTopic(t, tp, clock)
	log := tp.shards[0].d.log
	var data int64
	segs := log.Segments()
	for _, s := range segs[1:] {
		data += s.DataBytes
	}
	if data > 200<<10 || log.FirstOffset() == 0 {
		t.Fatalf("after the pass: %d bytes in %d segments past the first, log from %d", data, len(segs), log.FirstOffset())
	}
	first := int(log.FirstOffset())
	wantRun(t, receiveIndexes(t, lag, 1000-first), first)
	if st := lag.Stats(); st.Trimmed != uint64(first) || st.Dropped != 0 {
		t.Fatalf("Trimmed %d, Dropped %d; want %d and 0", st.Trimmed, st.Dropped, first)
	}
	expectEmpty(t, lag)
}

// TestTopicRetentionMaxAge: under Limits, segments whose last message is
// older than MaxAge go, by the topic's clock; a new subscription at
// Earliest starts at what is left.
func TestTopicRetentionMaxAge(t *testing.T) {
	tp, clock := retentionTopic(t, Retention{MaxAge: time.Hour, Policy: Limits})
	defer closeTopic(t, tp)
	publishValues(t, tp, 0, 600)
	clock.Advance(2 * time.Hour)
	publishValues(t, tp, 600, 100)
	tickTopic(t, tp, clock)
	log := tp.shards[0].d.log
	first := int(log.FirstOffset())
	if first == 0 || first > 600 {
		t.Fatalf("the log starts at %d, want within the old messages' last segment (0, 600]", first)
	}
	cutoff := clock.Now().Add(-time.Hour).UnixNano()
	for _, s := range log.Segments() {
		if s.Sealed && s.LastAt < cutoff {
			t.Fatalf("segment %s (last at %d) is past MaxAge and stays", s.Name, s.LastAt)
		}
	}
	all, err := tp.SubscribeAt("all", Earliest())
	if err != nil {
		t.Fatal(err)
	}
	wantRun(t, receiveIndexes(t, all, 700-first), first)
	// A time before the retained range starts at the earliest message.
	early, err := tp.SubscribeAt("early", AtTime(time.Unix(0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	wantRun(t, receiveIndexes(t, early, 700-first), first)
	expectEmpty(t, early)
}

// TestTopicRetentionEphemeralLimits: on an Ephemeral topic, Limits bound
// the spill: a subscription that lags skips what the limits took, counted
// in Stats.Trimmed, and reads the rest in order; under Interest (the
// default) the same topic keeps everything for it.
func TestTopicRetentionEphemeralLimits(t *testing.T) {
	for _, policy := range []RetentionPolicy{Limits, Interest} {
		t.Run(policy.String(), func(t *testing.T) {
			tp, err := OpenTopic(Options{Dir: t.TempDir(), Shards: 1, RingSize: 64, Compression: None,
				segmentSize: 64 << 10, Retention: Retention{MaxBytes: 128 << 10, Policy: policy}})
			if err != nil {
				t.Fatal(err)
			}
			defer closeTopic(t, tp)
			lag, err := tp.Subscribe("lag")
			if err != nil {
				t.Fatal(err)
			}
			const n = 2000
			publishValues(t, tp, 0, n)
			var got []int
			for uint64(len(got))+lag.Stats().Trimmed < n { // what was trimmed is counted as the reader passes it
				got = append(got, receiveIndexes(t, lag, 1)...)
			}
			st := lag.Stats()
			if st.Dropped != 0 || uint64(len(got))+st.Trimmed != n {
				t.Fatalf("%d received, Trimmed %d, Dropped %d; want %d in all, none dropped", len(got), st.Trimmed, st.Dropped, n)
			}
			if policy == Interest && st.Trimmed != 0 || policy == Limits && st.Trimmed < n/2 {
				t.Fatalf("%v: Trimmed %d of %d (the spill held about %d KiB past a 128 KiB limit)", policy, st.Trimmed, n, n)
			}
			wantRun(t, got, int(st.Trimmed))
			expectEmpty(t, lag)
		})
	}
}

// TestTopicRetentionStraggler: under Interest, one unacked message no
// longer keeps its segment once the subscription has read two segments
// past it: its bytes move to the subscription's journal, the segments go,
// and after a reopen it is redelivered, with its attempt and publish time.
// Under Limits, the unsettled messages of trimmed segments move there too.
func TestTopicRetentionStraggler(t *testing.T) {
	for _, policy := range []RetentionPolicy{Interest, Limits} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			clock := NewManualClock(time.Unix(1_700_000_000, 0))
			r := Retention{Policy: policy}
			if policy == Limits {
				r.MaxBytes = 128 << 10
			}
			opts := Options{Shards: 1, Clock: clock, Ack: ManualAck, AckTimeout: time.Hour, Retention: r, journalSize: 64 << 10}
			tp := openPersistentTopic(t, dir, opts)
			sub, err := tp.Subscribe("s")
			if err != nil {
				t.Fatal(err)
			}
			publishValues(t, tp, 0, 600)
			ctx := context.Background()
			held, err := sub.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for range 599 {
				d, err := sub.Receive(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := d.Ack(); err != nil {
					t.Fatal(err)
				}
			}
			tickTopic(t, tp, clock)
			log := tp.shards[0].d.log
			if log.FirstOffset() == 0 {
				t.Fatalf("the held message still keeps the first segment (%d segments)", len(log.Segments()))
			}
			if tp.subs.Load() == nil || (*tp.subs.Load())["s"].shards[0].moved.n != 1 {
				t.Fatal("the held message was not moved to the journal")
			}
			closeTopic(t, tp)
			tp = openPersistentTopic(t, dir, opts)
			defer closeTopic(t, tp)
			sub, err = tp.Subscribe("s")
			if err != nil {
				t.Fatal(err)
			}
			d, err := sub.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if string(d.Value) != string(held.Value) || d.Attempt != 2 || !d.SentAt.Equal(held.SentAt) || d.Offset != held.Offset {
				t.Fatalf("after the reopen: %.8q attempt %d sent %v offset %d; want %.8q attempt 2 sent %v offset %d",
					d.Value, d.Attempt, d.SentAt, d.Offset, held.Value, held.SentAt, held.Offset)
			}
			if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
			expectEmpty(t, sub)
		})
	}
}
