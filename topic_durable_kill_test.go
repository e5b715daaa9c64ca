package spillway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// topicKillChildEnv carries the topic kill test child's directory, sync
// policy and base index.
const topicKillChildEnv = "SPILLWAY_TOPIC_KILL_CHILD"

func topicKillOptions(dir string, sync SyncPolicy, ack AckMode) Options {
	return Options{Dir: dir, Durability: Persistent, Sync: sync, Ack: ack, AckTimeout: time.Hour,
		Shards: 4, RingSize: 64, segmentSize: 256 << 10}
}

// topicKillSubs are the child's subscriptions: "fast" with two receivers,
// "slow" with one that dawdles, so that it reads the log.
var topicKillSubs = []string{"fast", "slow"}

// runTopicKillChild is the child of TestPersistentTopicKill9: two
// publishers publish keyed messages (each owns its keys), the
// subscriptions receive, until the child is killed. It reports on stdout,
// after each call returned: "P k i" (Publish) and "R sub k i a" (received,
// attempt a); under ManualAck, receivers ack four in five, reporting "a
// sub k i" before the Ack (it may land from then on) and "A sub k i" after.
func runTopicKillChild() {
	f := strings.Fields(os.Getenv(topicKillChildEnv))
	if len(f) != 4 {
		fmt.Println("error: bad", topicKillChildEnv, f)
		os.Exit(2)
	}
	policy, err1 := strconv.Atoi(f[1])
	base, err2 := strconv.Atoi(f[2])
	ack, err3 := strconv.Atoi(f[3])
	if err := errors.Join(err1, err2, err3); err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	tp, err := OpenTopic(topicKillOptions(f[0], SyncPolicy(policy), AckMode(ack)))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	report, fail := childReporter()
	ctx := context.Background()
	for _, name := range topicKillSubs {
		n := 2
		if name == "slow" {
			n = 1
		}
		for range n {
			sub, err := tp.Subscribe(name)
			if err != nil {
				fail(err)
			}
			go func() {
				for {
					d, err := sub.Receive(ctx)
					if err != nil {
						fail(err)
					}
					var k, i int
					if _, err := fmt.Sscanf(string(d.Value), "k%d-i%d-", &k, &i); err != nil {
						fail(fmt.Errorf("value %q: %w", d.Value, err))
					}
					report("R %s %d %d %d", name, k, i, d.Attempt)
					if AckMode(ack) == ManualAck && (k+i)%5 != 0 {
						report("a %s %d %d", name, k, i)
						if err := d.Ack(); err != nil {
							fail(err)
						}
						report("A %s %d %d", name, k, i)
					}
					if name == "slow" {
						for range 50 {
							runtime.Gosched()
						}
					}
				}
			}()
		}
	}
	for g := range 2 {
		go func() {
			for n := 0; ; n++ {
				k := g + 2*(n%3) // keys g, g+2, g+4: this publisher's
				i := base + n/3
				if err := tp.Publish(ctx, keyedMessage(k, i)); err != nil {
					fail(err)
				}
				report("P %d %d", k, i)
			}
		}()
	}
	select {} // until killed
}

// TestPersistentTopicKill9 kills a child process that publishes to a
// Persistent topic and receives on two subscriptions (AutoAck), with
// SIGKILL at a random moment, and checks what each subscription gets
// after a reopen against what the child reported returned: nothing it
// was handed before comes back; per key its messages come in order,
// without gaps or duplicates; every message whose Publish returned and
// that it was not handed is there, except at most one per receiver: the
// one a receiver was handed when the kill came, before it could report it
// (AutoAck is at-most-once). Rounds alternate the sync policies on one
// directory.
func TestPersistentTopicKill9(t *testing.T) { testTopicKill9(t, AutoAck) }

// TestPersistentTopicKill9ManualAck is TestPersistentTopicKill9 under
// ManualAck, where nothing may be lost: after the reopen each subscription
// gets every message whose Publish returned and whose Ack had not been
// called, once, those it had been handed coming back with a later
// Attempt, and no message whose Ack returned.
func TestPersistentTopicKill9ManualAck(t *testing.T) { testTopicKill9(t, ManualAck) }

func testTopicKill9(t *testing.T, ack AckMode) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	rng := newRand(t)
	dir := t.TempDir()
	policies := []SyncPolicy{SyncNever, SyncInterval, SyncAlways}
	for round := range 2 * *stressScale * len(policies) {
		policy := policies[round%len(policies)]
		base := (round + 1) * 1_000_000
		published := map[int][]int{}           // key -> indexes, in order
		got := map[string]map[int]int{}        // sub -> key -> last index reported received
		gotSet := map[string]map[string]bool{} // sub -> values reported received
		acking := map[string]map[string]bool{} // sub -> values whose Ack was called
		acked := map[string]map[string]bool{}  // sub -> values whose Ack returned
		for _, name := range topicKillSubs {
			got[name], gotSet[name] = map[int]int{}, map[string]bool{}
			acking[name], acked[name] = map[string]bool{}, map[string]bool{}
		}
		killAfter := 100 + rng.IntN(3000)
		record := func(line string) {
			f := strings.Fields(line)
			if len(f) < 3 || f[0] == "error" {
				t.Fatalf("round %d: child: %s", round, line)
			}
			nums := f[1:]
			name := ""
			if f[0] != "P" {
				name, nums = f[1], f[2:]
			}
			k, err1 := strconv.Atoi(nums[0])
			i, err2 := strconv.Atoi(nums[1])
			if err := errors.Join(err1, err2); err != nil {
				t.Fatal(err)
			}
			switch f[0] {
			case "P":
				published[k] = append(published[k], i)
			case "R":
				got[name][k] = max(got[name][k], i)
				gotSet[name][string(keyedMessage(k, i).Value)] = true
			case "a":
				acking[name][string(keyedMessage(k, i).Value)] = true
			case "A":
				acked[name][string(keyedMessage(k, i).Value)] = true
			}
		}
		runChildUntilKilled(t, fmt.Sprintf("%s=%s %d %d %d", topicKillChildEnv, dir, policy, base, ack), killAfter, record)

		tp, err := OpenTopic(topicKillOptions(dir, policy, ack))
		if err != nil {
			t.Fatalf("round %d (%v): reopen after kill -9: %v", round, policy, err)
		}
		for _, name := range topicKillSubs {
			sub, err := tp.Subscribe(name)
			if err != nil {
				t.Fatal(err)
			}
			what := fmt.Sprintf("round %d (%v): %s", round, policy, name)
			if ack == ManualAck {
				checkManualAfterKill(t, sub, what, base, published, gotSet[name], acking[name], acked[name])
			} else {
				checkAutoAfterKill(t, sub, what, base, published, got[name], gotSet[name])
			}
			if err := sub.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if err := tp.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// checkAutoAfterKill drains sub after a kill under AutoAck (see
// TestPersistentTopicKill9).
func checkAutoAfterKill(t *testing.T, sub *Subscription, what string, base int, published map[int][]int, got map[int]int, gotSet map[string]bool) {
	t.Helper()
	name := sub.Name()
	last, firsts := map[int]int{}, map[int]int{}
	for {
		d, err := sub.TryReceive()
		if errors.Is(err, ErrEmpty) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		v := string(d.Value)
		k, i := parseKeyed(t, d.Value)
		switch p, ok := last[k]; {
		case gotSet[v]:
			t.Fatalf("%s: %s was handed out before the kill, and comes back", what, short(v))
		case i < base:
			t.Fatalf("%s: %s is from an earlier round, which was drained", what, short(v))
		case ok && i != p+1:
			t.Fatalf("%s: key %d: message %d after %d", what, k, i, p)
		}
		last[k] = i
		if firsts[k] == 0 {
			firsts[k] = i
		}
	}
	// What a receiver was handed when the kill came, it never
	// reported: at most one message per receiver is gone, the
	// first of its key after what the subscription reported.
	lost := 0
	for k, idxs := range published {
		from, ok := got[k]
		for _, i := range idxs {
			switch {
			case ok && i <= from:
			case firsts[k] == 0 || i < firsts[k]:
				lost++
			case i > last[k]:
				t.Fatalf("%s: key %d: message %d was published and not handed out, and after the reopen the last is %d (recovery %+v)", what, k, i, last[k], sub.t.Recovery())
			}
		}
	}
	if receivers := map[string]int{"fast": 2, "slow": 1}[name]; lost > receivers {
		t.Fatalf("%s: %d messages published and not handed out before the kill are missing; its %d receivers could have held at most %d", what, lost, receivers, receivers)
	}
}

// checkManualAfterKill drains sub after a kill under ManualAck (see
// TestPersistentTopicKill9ManualAck), acking what it drains.
func checkManualAfterKill(t *testing.T, sub *Subscription, what string, base int, published map[int][]int, received, acking, acked map[string]bool) {
	t.Helper()
	seen := map[string]bool{}
	last := map[int]int{}
	for {
		d, err := sub.TryReceive()
		if errors.Is(err, ErrEmpty) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		v := string(d.Value)
		k, i := parseKeyed(t, d.Value)
		switch {
		case seen[v]:
			t.Fatalf("%s: %s delivered twice", what, short(v))
		case acked[v]:
			t.Fatalf("%s: %s came back although its Ack returned", what, short(v))
		case i < base:
			t.Fatalf("%s: %s is from an earlier round, which was drained and acked", what, short(v))
		case received[v] && d.Attempt < 2:
			t.Fatalf("%s: %s was delivered before the kill, and comes back as attempt %d", what, short(v), d.Attempt)
		}
		seen[v] = true
		if d.Attempt == 1 {
			if p, ok := last[k]; ok && i <= p {
				t.Fatalf("%s: key %d: message %d after %d", what, k, i, p)
			}
			last[k] = i
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	for k, idxs := range published {
		for _, i := range idxs {
			if v := string(keyedMessage(k, i).Value); !seen[v] && !acking[v] {
				t.Fatalf("%s: %s: its Publish returned, it was not acked, and it is missing after the reopen (%d delivered, recovery %+v)", what, short(v), len(seen), sub.t.Recovery())
			}
		}
	}
	for v := range received {
		if !seen[v] && !acking[v] {
			t.Fatalf("%s: %s was delivered and not acked before the kill, and does not come back", what, short(v))
		}
	}
}
