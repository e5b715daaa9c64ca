package spillway

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"
)

// receiveInOrder receives n messages from q, which were sent as m0, m1,
// ... from first on, and fails unless each comes once, in order, at the
// offset it was sent at.
func receiveInOrder(t *testing.T, q *Queue, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		d, err := q.TryReceive()
		if err != nil {
			t.Fatalf("receiving m%d: %v", i, err)
		}
		if want := fmt.Sprintf("m%d", i); string(d.Value) != want || d.Offset != uint64(i) {
			t.Fatalf("got %s at offset %d, want %s at %d", d.Value, d.Offset, want, i)
		}
	}
}

func sendNumbered(t *testing.T, q *Queue, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := q.Send(context.Background(), Message{Value: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// A receiver of a Persistent shard finds the ring empty; before it looks
// whether the shard spills, senders fill the ring and spill. The ring's
// messages come first: the receiver must not read the log, past them.
// (It did: they were delivered with the log's offsets, then again.)
func TestPersistentRingFilledAfterLook(t *testing.T) {
	q := openQueue(t, Options{Dir: t.TempDir(), Durability: Persistent, Shards: 1, RingSize: 16})
	var once sync.Once
	q.emptyRingHook = func() {
		once.Do(func() {
			sendNumbered(t, q, 0, 20) // 16 in the ring, 4 in the log only
			if !q.shards[0].spilling.Load() {
				t.Error("the sends did not make the shard spill")
			}
		})
	}
	if _, err := q.TryReceive(); err != nil {
		t.Fatal(err) // the hook ran inside: something is there now
	}
	q.emptyRingHook = nil
	// That first one was m0 (checked below by the offsets that follow).
	receiveInOrder(t, q, 1, 19)
	if st := q.Stats(); st.Depth != 0 || st.Delivered != 20 {
		t.Fatalf("after all: %+v", st)
	}
}

// A receiver of a spilling Persistent shard loads where it may read the
// log up to (nowhere yet: no sender has resumed); before it reads, a
// sender finds the ring empty and resumes pushing, its message in the log
// and the ring both. The receiver's read must stop where the ring's run
// begins. (It did not: the message came from the log, then from the ring.)
func TestPersistentResumeDuringLogRead(t *testing.T) {
	q := openQueue(t, Options{Dir: t.TempDir(), Durability: Persistent, Shards: 1, RingSize: 16})
	sendNumbered(t, q, 0, 26) // 16 in the ring, then the shard spills: 10 in the log only
	var once sync.Once
	q.logReadHook = func() {
		once.Do(func() {
			sendNumbered(t, q, 26, 1)
			if q.shards[0].d.resumeAt.Load() != 26 {
				t.Error("the send did not resume pushing at 26")
			}
		})
	}
	receiveInOrder(t, q, 0, 27)
	if st := q.Stats(); st.Depth != 0 || st.Delivered != 27 {
		t.Fatalf("after all: %+v", st)
	}
	if _, err := q.TryReceive(); err != ErrEmpty {
		t.Fatalf("a 28th message: %v", err)
	}
}

// One sender as fast as it goes, one receiver, a Persistent queue whose
// shards keep going from the ring to the log and back: every message is
// delivered once, in its shard's order. (The two races above, each a
// duplicate delivery, showed here one run in three or so at a million
// messages; this scale finds them less often, make stress more.)
func TestPersistentStressNoDuplicates(t *testing.T) {
	n := 200_000 * *stressScale
	q := openQueue(t, Options{Dir: t.TempDir(), Durability: Persistent, Sync: SyncNever, Shards: 2, RingSize: 64})
	ctx := context.Background()
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if err := q.Send(ctx, Message{Value: binary.LittleEndian.AppendUint64(nil, uint64(i))}); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	seen := make([]bool, n)
	next := make([]uint64, 2) // each shard's next offset
	stuck := watchdog(time.Minute)
	for got := range n {
		select {
		case <-stuck:
			t.Fatalf("stuck after %d of %d: %+v", got, n, q.Stats())
		default:
		}
		d, err := q.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := binary.LittleEndian.Uint64(d.Value)
		if seen[i] {
			t.Fatalf("message %d delivered twice, the second time at shard %d offset %d", i, d.Shard, d.Offset)
		}
		if d.Offset != next[d.Shard] {
			t.Fatalf("shard %d delivered offset %d, want %d", d.Shard, d.Offset, next[d.Shard])
		}
		seen[i] = true
		next[d.Shard]++
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Depth != 0 || st.Delivered != uint64(n) || st.Dropped != 0 {
		t.Fatalf("after all: %+v", st)
	}
}

// A sender decides its append will not resume pushing (the ring still
// holds the last message from before the spill); the receiver then takes
// that message, reads the log to its end and finds, without the lock,
// nothing more to read; the sender appends; another sender finds the ring
// empty and resumes. The receiver, switching to the ring, must first read
// the message the log got in between. (It skipped it.)
func TestPersistentSwitchAfterLateAppend(t *testing.T) {
	q := openQueue(t, Options{Dir: t.TempDir(), Durability: Persistent, Shards: 1, RingSize: 16})
	sendNumbered(t, q, 0, 17) // 16 in the ring, m16 in the log only: the shard spills
	decided := make(chan bool, 1)
	proceed := make(chan struct{})
	q.appendHook = func(resume bool) {
		decided <- resume
		<-proceed
	}
	sent := make(chan error, 1)
	go func() { sent <- q.Send(context.Background(), Message{Value: []byte("m17")}) }()
	if <-decided {
		t.Fatal("m17 resumed pushing with 16 messages in the ring")
	}
	q.appendHook = nil // set again only by the test goroutine, after m17's append
	var once sync.Once
	q.switchHook = func() {
		once.Do(func() {
			close(proceed) // m17 appends now, to the log only
			if err := <-sent; err != nil {
				t.Error(err)
				return
			}
			sendNumbered(t, q, 18, 1) // the ring is empty: m18 resumes at 18
			if q.shards[0].d.resumeAt.Load() != 18 {
				t.Error("m18 did not resume pushing at 18")
			}
		})
	}
	receiveInOrder(t, q, 0, 19)
	if st := q.Stats(); st.Depth != 0 || st.Delivered != 19 {
		t.Fatalf("after all: %+v", st)
	}
}
