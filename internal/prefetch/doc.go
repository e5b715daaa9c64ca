// Package prefetch brings memory into the cache ahead of use, with plain
// loads: Go has no prefetch instruction for user code, but a load whose
// result is not needed yet does the same on an out-of-order core, which goes
// on with the work at hand while the cache miss is served.
//
// The Topic's spill writers use it on the messages they copy into a batch:
// a message's bytes were written by the publisher long before, often on
// another core, and come from memory rather than cache; touching the
// message a few places ahead overlaps those misses with encoding the
// current one (faster in the slow-subscriber case, compression none:
// docs/MEASUREMENTS.md). The Queue's spill, where the producer copies messages
// while compression sets the pace, gained nothing from it.
package prefetch
