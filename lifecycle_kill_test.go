package spillway

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// delayKillChildEnv carries the delay kill test child's kind ("queue" or
// "topic"), directory and seed.
const delayKillChildEnv = "SPILLWAY_DELAY_KILL_CHILD"

func delayKillOptions(dir string) Options {
	return Options{Dir: dir, Durability: Persistent, Sync: SyncNever, Shards: 2, RingSize: 16,
		AckTimeout: 256 * time.Millisecond, segmentSize: 128 << 10}
}

// delayReceiver is what the test receives from: a Persistent queue, or a
// Persistent topic's subscription "s".
type delayReceiver interface {
	Receive(context.Context) (Delivery, error)
	Close() error
}

// openDelayed opens the kind's Persistent queue or topic in dir, and
// returns what to receive from and what to send with.
func openDelayed(kind, dir string) (delayReceiver, func(context.Context, Message) error, error) {
	if kind == "queue" {
		q, err := OpenQueue(delayKillOptions(dir))
		if err != nil {
			return nil, nil, err
		}
		return q, q.Send, nil
	}
	tp, err := OpenTopic(delayKillOptions(dir))
	if err != nil {
		return nil, nil, err
	}
	sub, err := tp.Subscribe("s")
	if err != nil {
		return nil, nil, errors.Join(err, tp.Close())
	}
	return topicReceiver{sub, tp}, tp.Publish, nil
}

type topicReceiver struct {
	*Subscription
	tp *Topic
}

func (r topicReceiver) Close() error { return errors.Join(r.Subscription.Close(), r.tp.Close()) }

// runDelayKillChild is the child of TestDelayedKill9: one sender sends
// numbered messages, three in four with a DeliverAt up to 400 ms ahead,
// one receiver takes them, until the child is killed. It reports on
// stdout, after each call returned: "S i due" (sent, due at unix ns; 0:
// now) and "R i at" (received at unix ns).
func runDelayKillChild() {
	f := strings.Fields(os.Getenv(delayKillChildEnv))
	if len(f) != 3 {
		fmt.Println("error: bad", delayKillChildEnv, f)
		os.Exit(2)
	}
	seed, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	recv, send, err := openDelayed(f[0], f[1])
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	report, fail := childReporter()
	ctx := context.Background()
	go func() {
		for {
			d, err := recv.Receive(ctx)
			if err != nil {
				fail(err)
			}
			at := time.Now().UnixNano()
			i, err := strconv.Atoi(string(d.Value))
			if err != nil {
				fail(err)
			}
			report("R %d %d", i, at)
		}
	}()
	rng := rand.New(rand.NewPCG(seed, seed>>7))
	for i := 0; ; i++ {
		m := Message{Key: []byte{byte(i % 7)}, Value: strconv.AppendInt(nil, int64(i), 10)}
		var due int64
		if i%4 != 0 {
			m.DeliverAt = time.Now().Add(time.Duration(rng.Int64N(int64(400 * time.Millisecond))))
			due = m.DeliverAt.UnixNano()
		}
		if err := send(ctx, m); err != nil {
			fail(err)
		}
		report("S %d %d", i, due)
		if i%16 == 0 {
			time.Sleep(time.Millisecond) // pace: let some come due while the child lives
		}
	}
}

// TestDelayedKill9 kills, with SIGKILL at a random moment, a child process
// that sends delayed and immediate messages to a Persistent queue (then a
// Persistent topic's subscription) and receives them, and checks, after a
// reopen, against what the child reported: no message is delivered
// before its DeliverAt, in the child or after; every message whose Send
// returned is delivered, but at most one (the receiver's, handed when the
// kill came: AutoAck is at most once); after the reopen none comes twice,
// and none the child reported received comes again unless it was delayed
// (a park whose settle the kill took may come once more: at least once).
func TestDelayedKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	rng := newRand(t)
	for _, kind := range []string{"queue", "topic"} {
		for round := range 2 * *stressScale {
			dir := t.TempDir()
			due := map[int]int64{} // sent: index -> due (0: now)
			got := map[int]int64{} // reported received: index -> when
			what := fmt.Sprintf("%s round %d", kind, round)
			record := func(line string) {
				f := strings.Fields(line)
				if len(f) != 3 {
					t.Fatalf("%s: child: %s", what, line)
				}
				i, err1 := strconv.Atoi(f[1])
				at, err2 := strconv.ParseInt(f[2], 10, 64)
				if err := errors.Join(err1, err2); err != nil {
					t.Fatalf("%s: child: %s: %v", what, line, err)
				}
				switch f[0] {
				case "S":
					due[i] = at
				case "R":
					got[i] = at
				default:
					t.Fatalf("%s: child: %s", what, line)
				}
			}
			killAfter := 300 + rng.IntN(3000)
			runChildUntilKilled(t, fmt.Sprintf("%s=%s %s %d", delayKillChildEnv, kind, dir, rng.Uint64()), killAfter, record)
			for i, at := range got {
				// (One received before the child wrote its "S" line, or
				// killed before, has no due: it is not checked.)
				if d, ok := due[i]; ok && at < d {
					t.Fatalf("%s: the child got %d at %d, due %d", what, i, at, d)
				}
			}

			recv, _, err := openDelayed(kind, dir)
			if err != nil {
				t.Fatalf("%s: reopen after kill -9: %v", what, err)
			}
			missing := 0
			for i := range due {
				if _, ok := got[i]; !ok {
					missing++
				}
			}
			again := map[int]bool{}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			for missing > 1 {
				d, err := recv.Receive(ctx)
				if err != nil {
					t.Fatalf("%s: %d sent messages never came: %v", what, missing, err)
				}
				at := time.Now().UnixNano()
				i, err := strconv.Atoi(string(d.Value))
				if err != nil {
					t.Fatal(err)
				}
				d0, sent := due[i]
				_, before := got[i]
				switch {
				case sent && at < d0:
					t.Fatalf("%s: %d came at %d, due %d", what, i, at, d0)
				case again[i]:
					t.Fatalf("%s: %d came twice after the reopen", what, i)
				case before && sent && d0 == 0:
					t.Fatalf("%s: %d, not delayed, came again after the reopen", what, i)
				case sent && !before:
					missing--
				}
				again[i] = true
			}
			cancel()
			if err := recv.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}
