// Package release publishes a word with a release store: every write the
// caller made before Store is visible to a goroutine that loads the new
// value (with sync/atomic's Load), and nothing more is promised.
//
// sync/atomic's Store is sequentially consistent, which on amd64 is an
// XCHG: a locked instruction that waits for the store buffer to drain and
// holds the cache line meanwhile. A ring that publishes a slot that way
// pays for a fence it does not need: the reader only needs to see the slot
// written before the word that publishes it, which x86's total store order
// gives every plain store. On amd64 (without the race detector) Store is
// therefore a plain MOV, inlined. Elsewhere, and under the race detector,
// it is sync/atomic's Store.
//
// What keeps the compiler from moving a plain store: the gc compiler emits
// a goroutine's stores in program order (each takes the memory state the
// one before left, the SSA memory chain, and the scheduler keeps that
// chain's order), and every sync/atomic operation is a link of the same
// chain, so nothing is moved across Store either way. The build
// constraints require gc; other compilers get sync/atomic's Store. Store
// was an assembly function (opaque to the compiler) until a call, whose
// cost with its ABI wrapper was a large part of an SPSC push and pop one
// at a time (docs/MEASUREMENTS.md).
//
// What a release store does not give: a later load may be performed before
// the store is visible to other cores (store-load reordering). A waker that
// release-stores a condition and then loads a waiter count can miss a
// waiter that registered and then looked at the condition; callers must
// close that window some other way (see ring.MPSC: the waiter looks at the
// producers' sequentially consistent claim, not at the released word).
//
// # Guarding the bet
//
// The build tag spillway_atomic makes Store and StoreLight sync/atomic's
// Store everywhere, and Heavy a no-op, as the race detector does: make test
// runs the suite both ways, so a failure that shows only with plain stores
// points at the bet. The litmus tests check both halves of it on the
// toolchain at hand: TestCompiledStoreOrder reads the machine code the
// compiler emitted for a publication (the publishing MOV after the data's),
// TestMessagePassing and TestAsymmetricStoreBuffer run the CPU's side. They
// passed on go1.26.8 linux/amd64 (go.mod: go 1.26). A change of Go version
// in go.mod must pass them again before it lands: go test -count=20
// ./internal/release, then make test (README, Contributing).
package release
