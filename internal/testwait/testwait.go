// Package testwait is for tests: waiting for a condition other goroutines
// make true, without sleeping for a guessed duration.
package testwait

import (
	"runtime"
	"testing"
	"time"
)

// Deadline is how long For waits before it fails the test: a safety net
// against a hang, never the synchronization itself.
const Deadline = 10 * time.Second

// For waits until cond holds, yielding the processor between looks, or
// fails the test (naming what it waited for) once Deadline has passed.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Deadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}
