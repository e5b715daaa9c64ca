package spillway

import (
	"flag"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: pick one and print it)")

var stressScale = flag.Int("stress.scale", 1, "multiplies the work of stress tests (make stress raises it)")

func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reproduce with: go test . -run '^%s$' -seed %d", t.Name(), seed)
		}
	})
	return rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
}

func openQueue(t testing.TB, opts Options) *Queue {
	t.Helper()
	q, err := OpenQueue(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// waitFor waits until cond holds, yielding between checks; it synchronizes
// on state, with a deadline only as a safety net.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

func newRandFrom(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed>>7)) }

func runtime_Gosched() { runtime.Gosched() }
