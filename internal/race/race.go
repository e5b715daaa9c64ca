//go:build !race

// Package race reports whether the race detector is on, for tests whose
// figures it distorts (allocation counts: sync.Pool drops Puts at random
// under -race).
package race

// Enabled is true when built with -race.
const Enabled = false
