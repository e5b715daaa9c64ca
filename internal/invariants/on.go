//go:build invariants

package invariants

// Enabled reports whether this build checks invariants (the invariants tag).
const Enabled = true
