package spillway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// killChildEnv carries the child's directory, sync policy and seed.
const killChildEnv = "SPILLWAY_KILL_CHILD"

func killOptions(dir string, sync SyncPolicy) Options {
	return Options{
		Dir: dir, Durability: Persistent, Sync: sync, Shards: 4, RingSize: 64,
		Ack: ManualAck, AckTimeout: time.Hour, segmentSize: 256 << 10,
	}
}

// runKillChild is the child of TestPersistentKill9: it opens the queue,
// sends keyed messages of random sizes from four senders (each owns its
// keys, so per-key order is defined) and receives them on two ManualAck
// receivers that ack most and keep some, until it is killed. It reports
// on stdout, after each call returned: "S k i" (Send), "R k i a" (received,
// attempt a), "A k i" (Ack); and "a k i" before an Ack, which may land
// before the report that it returned. Indexes start at the round's base, so values
// never repeat across rounds.
func runKillChild() {
	f := strings.Fields(os.Getenv(killChildEnv))
	if len(f) != 4 {
		fmt.Println("error: bad", killChildEnv, f)
		os.Exit(2)
	}
	dir := f[0]
	policy, err1 := strconv.Atoi(f[1])
	seed, err2 := strconv.ParseUint(f[2], 10, 64)
	base, err3 := strconv.Atoi(f[3])
	if err := errors.Join(err1, err2, err3); err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	q, err := OpenQueue(killOptions(dir, SyncPolicy(policy)))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	report, fail := childReporter()
	ctx := context.Background()
	for g := range 4 {
		go func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			next := map[int]int{}
			for {
				k := g + 4*rng.IntN(3) // keys g, g+4, g+8: this sender's
				i := base + next[k]
				next[k]++
				if err := q.Send(ctx, keyedMessage(k, i)); err != nil {
					fail(err)
				}
				report("S %d %d", k, i)
			}
		}()
	}
	for g := range 2 {
		go func() {
			rng := rand.New(rand.NewPCG(seed, uint64(100+g)))
			for {
				d, err := q.Receive(ctx)
				if err != nil {
					fail(err)
				}
				var k, i int
				if _, err := fmt.Sscanf(string(d.Value), "k%d-i%d-", &k, &i); err != nil {
					fail(fmt.Errorf("value %q: %w", d.Value, err))
				}
				report("R %d %d %d", k, i, d.Attempt)
				if rng.IntN(10) < 8 {
					report("a %d %d", k, i) // the Ack may land from here on
					if err := d.Ack(); err != nil {
						fail(err)
					}
					report("A %d %d", k, i)
				}
			}
		}()
	}
	select {} // until killed
}

// TestPersistentKill9 kills, with SIGKILL at a random moment, a child
// process that sends, receives and acks, and checks what a reopen
// delivers against what the child reported returned: every message whose
// Send returned and whose Ack had not is delivered; no acked message comes
// back (the journal is in the page cache before Ack returns, under every
// policy); messages delivered and not acked come back with a later
// Attempt; nothing is corrupted or invented, and per key the first
// deliveries keep their order. Rounds alternate the sync policies on one
// directory.
func TestPersistentKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	rng := newRand(t)
	dir := t.TempDir()
	rounds := 2 * *stressScale
	policies := []SyncPolicy{SyncNever, SyncInterval, SyncAlways}
	for round := range rounds * len(policies) {
		policy := policies[round%len(policies)]
		base := (round + 1) * 1_000_000
		sent, acked, received, acking := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
		killAfter := 50 + rng.IntN(2000)
		record := func(line string) {
			f := strings.Fields(line)
			if len(f) < 3 || f[0] == "error" {
				t.Fatalf("round %d: child: %s", round, line)
			}
			k, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			i, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatal(err)
			}
			v := string(keyedMessage(k, i).Value)
			switch f[0] {
			case "S":
				sent[v] = true
			case "R":
				received[v] = true
			case "a":
				acking[v] = true
			case "A":
				acked[v] = true
			}
		}
		runChildUntilKilled(t, fmt.Sprintf("%s=%s %d %d %d", killChildEnv, dir, policy, rng.Uint64(), base), killAfter, record)
		if len(sent) == 0 {
			t.Fatalf("round %d: the child sent nothing", round)
		}

		q, err := OpenQueue(killOptions(dir, policy))
		if err != nil {
			t.Fatalf("round %d (%v): reopen after kill -9: %v", round, policy, err)
		}
		got := drainAll(t, q)
		seen := map[string]bool{}
		last := map[int]int{}
		for _, d := range got {
			v := string(d.Value)
			k, i := parseKeyed(t, d.Value)
			switch {
			case seen[v]:
				t.Fatalf("round %d: %s delivered twice", round, short(v))
			case acked[v]:
				t.Fatalf("round %d (%v): %s came back although its Ack returned", round, policy, short(v))
			case i < base:
				t.Fatalf("round %d: %s is from an earlier round, whose messages were all acked", round, short(v))
			case received[v] && d.Attempt < 2:
				t.Fatalf("round %d: %s was delivered before the kill, and comes back as attempt %d", round, short(v), d.Attempt)
			}
			seen[v] = true
			if d.Attempt == 1 {
				if p, ok := last[k]; ok && i <= p {
					t.Fatalf("round %d: key %d: message %d after %d", round, k, i, p)
				}
				last[k] = i
			}
			if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
		}
		for v := range received {
			if !seen[v] && !acking[v] {
				t.Fatalf("round %d (%v): %s was delivered and not acked before the kill, and does not come back (recovery %+v)", round, policy, short(v), q.Recovery())
			}
		}
		for v := range sent {
			if !seen[v] && !acking[v] {
				t.Fatalf("round %d (%v): %s: its Send returned, it was not acked, and it is missing after the reopen (%d delivered, recovery %+v)", round, policy, short(v), len(got), q.Recovery())
			}
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// childReporter returns what a kill test's child reports with: report
// writes a line to stdout, flushed, one goroutine at a time; fail reports
// an error and ends the child. A report the parent cannot read ends the
// child: the parent then knows less than happened, never more.
func childReporter() (report func(format string, args ...any), fail func(error)) {
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	report = func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if _, err := fmt.Fprintf(out, format+"\n", args...); err != nil {
			os.Exit(2)
		}
		if err := out.Flush(); err != nil {
			os.Exit(2)
		}
	}
	fail = func(err error) {
		report("error %v", err)
		os.Exit(2)
	}
	return report, fail
}

// runChildUntilKilled runs the test binary as a child with env (its
// role's variable set), hands each line it writes on stdout to record,
// sends it SIGKILL after killAfter lines, hands on the lines it wrote
// before the kill landed, and checks that the kill ended it.
func runChildUntilKilled(t *testing.T, env string, killAfter int, record func(line string)) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for n := 0; sc.Scan(); n++ {
		record(sc.Text())
		if n == killAfter {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	for sc.Scan() { // reported before the kill landed
		record(sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); !killed(err) {
		t.Fatalf("the child ended with %v, want a SIGKILL", err)
	}
}

// killed reports whether err is what Wait returns for a child that
// SIGKILL ended.
func killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
