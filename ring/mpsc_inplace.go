package ring

import (
	"github.com/spillway-io/spillway/internal/invariants"
	"github.com/spillway-io/spillway/internal/release"
)

// In-place access to an MPSC ring's slots, for callers that would otherwise
// copy each item twice: into a buffer of their own and then into the ring
// (or out of the ring and then out of their buffer). A producer claims
// positions, fills their slots through At, and publishes them; the consumer
// peeks at what is published, reads (and zeroes) the slots through At, and
// releases them. The batch operations are these steps with a copy.
//
// Who may call what: Claim and Publish from any producer, At on the
// positions it claimed and has not published yet; Peek and Release from the
// consumer, At on the positions Peek reported and it has not released.
// Every claimed range must be published, soon: the consumer cannot read
// past an unpublished one.

// Claim reserves up to n positions for the caller to fill and publish. It
// returns the first and how many it reserved: 0 when the ring is full or
// closed, or n < 1.
func (r *MPSC[T]) Claim(n int) (first uint64, k int) {
	if n < 1 {
		return 0, 0
	}
	t, c := r.claim(uint64(n))
	return t, int(c)
}

// At returns the slot of position p, which the caller must own: a claimed
// position not yet published (producer) or a peeked one not yet released
// (consumer).
func (r *MPSC[T]) At(p uint64) *T { return &r.slots[p&r.mask].val }

// Publish hands the k positions from first on, which one Claim returned
// and the caller has filled, to the consumer. (TryPush and PushBatch do the
// same inline: a call would be a large part of their one-at-a-time path.)
func (r *MPSC[T]) Publish(first uint64, k int) {
	s := &r.slots[first&r.mask]
	s.run = uint64(k)
	release.Store(&s.seq, first+1)
	r.notEmpty.Wake(1)
}

// Peek reports how many items, up to max, are published from Head() on:
// positions Head() to Head()+Peek(max)-1 can be read through At. REQUIRES:
// consumer.
func (r *MPSC[T]) Peek(max int) int {
	h := r.head.Load()
	k := uint64(0)
	for k < uint64(max) && r.ready(h+k) {
		k = min(r.readyUntil-h, uint64(max))
	}
	return int(k)
}

// Release returns the n slots from Head() on, which Peek reported and the
// caller has read and zeroed (so that the ring keeps no references), to the
// producers, with one atomic store. REQUIRES: consumer.
func (r *MPSC[T]) Release(n int) {
	if n <= 0 {
		return
	}
	if invariants.Enabled {
		checkSpan("MPSC release", r.head.Load()+uint64(n), r.readyUntil, len(r.slots))
	}
	r.head.Store(r.head.Load() + uint64(n))
	r.notFull.Wake(n)
}
