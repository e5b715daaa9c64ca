// Package invariants holds the switch for the checks of invariants that the
// code's comments state (the model is pebble's invariants package): cheap
// assertions in the rings, the shards and the log that panic when a state
// the design rules out shows up. They are compiled in with the build tag
// invariants (make test runs the suite once so) and compiled out without
// it: Enabled is then a false constant and every check is dead code.
//
// A check reads
//
//	if invariants.Enabled && !(head <= tail) {
//		invariants.Failf("ring: head %d past tail %d", head, tail)
//	}
//
// so that its arguments are not evaluated in a normal build.
package invariants

import "fmt"

// Failf panics with a message that says an invariant does not hold: a bug
// in Spillway, never a user's error.
func Failf(format string, args ...any) {
	panic("spillway: invariant violated: " + fmt.Sprintf(format, args...))
}
