package spillway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// topicKillChildEnv carries the topic kill test child's directory, sync
// policy and base index.
const topicKillChildEnv = "SPILLWAY_TOPIC_KILL_CHILD"

func topicKillOptions(dir string, sync SyncPolicy) Options {
	return Options{Dir: dir, Durability: Persistent, Sync: sync, Shards: 4, RingSize: 64, segmentSize: 256 << 10}
}

// topicKillSubs are the child's subscriptions: "fast" with two receivers,
// "slow" with one that dawdles, so that it reads the log.
var topicKillSubs = []string{"fast", "slow"}

// runTopicKillChild is the child of TestPersistentTopicKill9: two
// publishers publish keyed messages (each owns its keys), the
// subscriptions receive, until the child is killed. It reports on stdout,
// after each call returned: "P k i" (Publish) and "R sub k i" (received).
func runTopicKillChild() {
	f := strings.Fields(os.Getenv(topicKillChildEnv))
	if len(f) != 3 {
		fmt.Println("error: bad", topicKillChildEnv, f)
		os.Exit(2)
	}
	policy, err1 := strconv.Atoi(f[1])
	base, err2 := strconv.Atoi(f[2])
	if err := errors.Join(err1, err2); err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	tp, err := OpenTopic(topicKillOptions(f[0], SyncPolicy(policy)))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if _, err := fmt.Fprintf(out, format+"\n", args...); err != nil {
			os.Exit(2)
		}
		if err := out.Flush(); err != nil {
			os.Exit(2)
		}
	}
	fail := func(err error) {
		report("error %v", err)
		os.Exit(2)
	}
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
					report("R %s %d %d", name, k, i)
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
func TestPersistentTopicKill9(t *testing.T) {
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
		for _, name := range topicKillSubs {
			got[name], gotSet[name] = map[int]int{}, map[string]bool{}
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d", topicKillChildEnv, dir, policy, base))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 100 + rng.IntN(3000)
		sc := bufio.NewScanner(stdout)
		record := func(line string) {
			f := strings.Fields(line)
			if len(f) < 3 || f[0] == "error" {
				t.Fatalf("round %d: child: %s", round, line)
			}
			nums := f[1:]
			name := ""
			if f[0] == "R" {
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
			}
		}
		for n := 0; sc.Scan(); n++ {
			record(sc.Text())
			if n == killAfter {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		for sc.Scan() {
			record(sc.Text())
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); !killed(err) {
			t.Fatalf("round %d: the child ended with %v, want a SIGKILL", round, err)
		}

		tp, err := OpenTopic(topicKillOptions(dir, policy))
		if err != nil {
			t.Fatalf("round %d (%v): reopen after kill -9: %v", round, policy, err)
		}
		for _, name := range topicKillSubs {
			sub, err := tp.Subscribe(name)
			if err != nil {
				t.Fatal(err)
			}
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
				case gotSet[name][v]:
					t.Fatalf("round %d (%v): %s: %s was handed out before the kill, and comes back", round, policy, name, short(v))
				case i < base:
					t.Fatalf("round %d (%v): %s: %s is from an earlier round, which was drained", round, policy, name, short(v))
				case ok && i != p+1:
					t.Fatalf("round %d (%v): %s: key %d: message %d after %d", round, policy, name, k, i, p)
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
				from, ok := got[name][k]
				for _, i := range idxs {
					switch {
					case ok && i <= from:
					case firsts[k] == 0 || i < firsts[k]:
						lost++
					case i > last[k]:
						t.Fatalf("round %d (%v): %s: key %d: message %d was published and not handed out, and after the reopen the last is %d (recovery %+v)", round, policy, name, k, i, last[k], tp.Recovery())
					}
				}
			}
			if receivers := map[string]int{"fast": 2, "slow": 1}[name]; lost > receivers {
				t.Fatalf("round %d (%v): %s: %d messages published and not handed out before the kill are missing; its %d receivers could have held at most %d", round, policy, name, lost, receivers, receivers)
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
