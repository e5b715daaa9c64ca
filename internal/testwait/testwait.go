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

// Within is For with another safety net than Deadline, for conditions that
// wait on something slow by nature (a cluster electing a leader).
func Within(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		runtime.Gosched()
	}
}
