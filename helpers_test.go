package spillway

import (
	"flag"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/spillway-io/spillway/internal/testwait"
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
	t.Cleanup(func() { closeOK(t, q) })
	return q
}

// watchdog fires when a stress test has run for d times the stress scale
// (make stress scales the work): the deadline after which it is stuck, not
// a wait for work to finish.
func watchdog(d time.Duration) <-chan time.Time {
	return time.After(d * time.Duration(*stressScale))
}

// waitFor is testwait.For: it synchronizes on state, with a deadline only
// as a safety net.
var waitFor = testwait.For

func newRandFrom(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed>>7)) }

func runtime_Gosched() { runtime.Gosched() }
