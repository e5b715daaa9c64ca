package spillway

import (
	"sync/atomic"

	"github.com/spillway-io/spillway/internal/park"
	"github.com/spillway-io/spillway/internal/xsync"
	"github.com/spillway-io/spillway/ring"
)

// tshard is one shard of a Topic.
//
// Who may do what:
//   - pub is the writer role of ring: only its holder pushes, and only its
//     holder changes subs, spill, or moves a subShard between the ring and the
//     spill (which also takes that subShard's recvMu).
//   - While spill is set, every message pushed to ring is first written to
//     spill's log, at log offset (ring position - spill.base): the log holds every
//     position from spill.base to ring.Tail(), once, for all the subShards
//     reading it.
//   - Receivers of a subShard hold its recvMu. They never wait for pub (they
//     TryLock it), while the holder of pub may wait for a recvMu: a receiver
//     holds recvMu only to copy out a batch, never across user code.
//   - pub is an xsync.TryMutex, whose Unlock is a plain store (a publish
//     one at a time is a TryLock, a push and an Unlock): a holder that may
//     wait (makeRoom, and the subscription changes that wait for a recvMu)
//     calls Slow first, so that other publishers park behind it rather
//     than spin.
//
// Lock order: pub, then a subShard's recvMu. (A receiver holding recvMu only
// ever TryLocks pub.)
type tshard struct {
	t      *Topic
	idx    int
	ring   *ring.Broadcast[tentry]
	stamps topicStamps // publish times of the timed positions
	d      *tdurable   // Persistent only: the shard's log
	// exps is the expiry table (topic_life.go), nil until the shard's
	// first message with an expiry; set under pub.
	exps atomic.Pointer[expTable]
	// dues is a Persistent topic's table of DeliverAt by position, as
	// exps (topic_life.go), nil until the shard's first delayed message.
	dues atomic.Pointer[expTable]

	// The publisher's line: pub and what it guards.
	_      pad
	pub    xsync.TryMutex
	subs   []*subShard // every subscription's part of this shard; guarded by pub
	spill  *tspill     // the spill, while some subShard reads it; guarded by pub
	spills int         // spills so far; guarded by pub
	closed bool        // guarded by pub
	// spilled counts messages written to spill logs; guarded by pub (a
	// plain field: an atomic add per message, a locked instruction, would
	// wait for the spill copy's stores to drain).
	spilled uint64
	// spillFull: spill's writer holds batches the disk or quota had no room
	// for. Stored under pub when that changes; loaded by spill readers,
	// which retry those batches once they may have freed room (see
	// Topic.retrySpills).
	spillFull  atomic.Bool
	keylessRun uint64 // keyless messages since the Topic's sticky shard last moved here; guarded by pub

	// The receivers' line: every take looks at room, so nothing the
	// publisher writes per message may share it.
	_         pad
	room      park.Waiters  // publishers waiting for room (Block, lagGrace, a full disk)
	evictions atomic.Uint64 // subShards moved from the ring to the spill
	rejoins   atomic.Uint64 // subShards moved back from the spill to the ring
	diskReads atomic.Uint64 // batches read back from spill logs: progress that may free disk space
	_         pad
}
