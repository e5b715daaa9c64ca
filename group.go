package spillway

import (
	"context"
	"sync/atomic"

	"github.com/spillway-io/spillway/internal/park"
)

// group is what a set of competing receivers shares: a Queue, or one
// subscription of a Topic. Its shards' ackBooks point back to it.
//
// opts and clock are set before the group is used and never change; closed
// is set once, by Close (or Unsubscribe); receivers are parked on it.
type group struct {
	opts  *Options
	clock *leaseClock
	// Persistent only: commit returns once what the caller wrote is as
	// durable as the sync policy promises (SyncAlways: synced), or the
	// storage failure that keeps it from being; fail records such a
	// failure, for every later call to report.
	commit    func() error
	fail      func(error)
	_         pad
	receivers park.Waiters // receivers parked on an empty group
	closed    atomic.Bool
	_         pad
	// takeAt is the shard receivers look at first (see takeHint): read by
	// every take, written once per takeRun messages taken from a shard, or
	// when the shard it names was found empty; on a line of its own.
	takeAt atomic.Uint32
	_      pad
}

// takeRun is how many messages receivers take from one shard before the
// group's first shard moves on to the next: a shard with messages waits at
// most until each other shard has given takeRun (a round robin), and the
// hint is written once per takeRun messages.
const takeRun = 16

// tookFrom updates the group's first shard after a take of k > 0 messages
// from shard idx that asked for more than k (drained: it took all the shard
// had) or not, found after skipping only empty shards (skippedEmpty) or
// not. run counts the messages taken from the shard in a row, under its
// consumer lock. Only takes that leave messages behind count toward
// takeRun: a shard that gets drained lets the others have their turn anyway,
// and moving on from it would only send the next take to a shard that may
// be empty (a publisher or sender filling one shard at a time).
func (g *group) tookFrom(idx, k int, run *uint32, drained, skippedEmpty bool) {
	switch {
	case drained:
		*run = 0
	case *run+uint32(k) >= takeRun:
		*run = 0
		g.takeAt.Store(uint32(idx + 1))
		return
	default:
		*run += uint32(k)
	}
	if skippedEmpty {
		g.takeAt.Store(uint32(idx))
	}
}

// await parks a receiver of g until take takes something (it returns how
// many, and how many it found: those and what the shard still holds) or
// done reports the receiver finished (then ErrClosed), or ctx ends.
// inFlight is nil, or reports messages whose senders publish them with a
// release store and which take may not have seen yet
// (park.AwaitPublished); light says that senders publish with a light
// store (a Topic's rings, ring.Broadcast: park.AwaitLight) instead.
func (g *group) await(ctx context.Context, take func() (n, seen int), done func() bool, inFlight func() bool, light bool) (int, error) {
	var n int
	cond := func() int {
		var seen int
		if n, seen = take(); n > 0 {
			return seen
		}
		if done() {
			return -1
		}
		return 0
	}
	var err error
	if light {
		err = park.AwaitLight(ctx, &g.receivers, g.opts.RingSize, cond)
	} else {
		err = park.AwaitPublished(ctx, &g.receivers, g.opts.RingSize, cond, inFlight)
	}
	switch {
	case n > 0:
		return n, nil
	case err != nil:
		return 0, err
	default:
		return 0, ErrClosed
	}
}

// durable is commit, for the group's ackBooks: nil on an Ephemeral queue.
func (g *group) durable() error {
	if g.commit == nil {
		return nil
	}
	return g.commit()
}

// report hands err, a failure no call can return, to Options.OnError.
// Callers hold no lock of the group's.
func (g *group) report(err error) {
	if f := g.opts.OnError; f != nil {
		f(err)
	}
}
