package spillway

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/spillway-io/spillway/internal/park"
)

// group is what a set of competing receivers shares: a Queue, or one
// subscription of a Topic. Its shards' ackBooks point back to it.
//
// opts, clock and lat are set before the group is used and never change; closed
// is set once, by Close (or Unsubscribe); receivers are parked on it.
type group struct {
	opts  *Options
	clock *leaseClock
	name  string // in dead-letter headers: the Queue's Options.Name, or "topic/subscription"
	// Persistent only: commit returns once what the caller wrote is as
	// durable as the sync policy promises (SyncAlways: synced), or the
	// storage failure that keeps it from being; fail records such a
	// failure, for every later call to report.
	commit    func() error
	fail      func(error)
	_         pad
	receivers park.Waiters // receivers parked on an empty group
	closed    atomic.Bool
	// expiring is set, for good, before the first message with an expiry
	// (or, on a Persistent queue, a delay) can reach a receiver: from then
	// on takes look for expired and delayed ones (lifeTaken). Until then
	// they pay nothing for the lifecycle.
	expiring atomic.Bool
	_        pad
	lat      timing // set before the group is used
	// takeAt is the shard receivers look at first (see tookFrom): read by
	// every take, written once per takeRun messages taken from a shard, or
	// when the shard it names was found empty; on a line of its own.
	takeAt atomic.Uint32
	_      pad
}

// noteExpiring sets g.expiring if it is not set (a load first: the line
// stays shared once it is).
func (g *group) noteExpiring() {
	if !g.expiring.Load() {
		g.expiring.Store(true)
	}
}

// initTiming sets g.lat up from g.opts.
func (g *group) initTiming() { g.lat.init(g.opts) }

// takeRun is how many messages receivers take from one shard before the
// group's first shard moves on to the next: a shard with messages waits at
// most until each other shard has given takeRun (a round robin), and the
// hint is written once per takeRun messages.
const takeRun = 16

// tookFrom updates the group's first shard after a take of k > 0 messages
// from shard idx that asked for more than k (drained: it took all the shard
// had) or not, found after skipping only empty shards (skippedEmpty) or
// not. run counts the messages taken from the shard in a row, under its
// recvMu. Only takes that leave messages behind count toward
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

// look says who takes from a group's shards: a receiver that returns when
// it finds nothing, or one that waits for messages between its looks and
// so also counts, when it fills dst, what the ring still holds (see
// Queue.takeSome).
type look uint8

const (
	lookOnce    look = iota // TryReceive, and a Receive's first look
	lookWaiting             // a Receive's looks in awaitPublished or awaitLight
)

// awaitPublished parks a receiver of g until take takes something (it
// returns how many, and how many it found: those and what the shard still
// holds) or done reports the receiver finished (then ErrClosed), or ctx
// ends. inFlight reports messages whose senders publish them with a
// release store and which take may not have seen yet
// (park.AwaitPublished): a Queue's rings, ring.MPSC.
func (g *group) awaitPublished(ctx context.Context, take func() (n, seen int), done func() bool, inFlight func() bool) (int, error) {
	var n int
	err := park.AwaitPublished(ctx, &g.receivers, g.opts.RingSize, lookUntil(take, done, &n), inFlight)
	return awaited(n, err)
}

// awaitLight is awaitPublished for messages their publisher stores with a
// light store (park.AwaitLight): a Topic's rings, ring.Broadcast.
func (g *group) awaitLight(ctx context.Context, take func() (n, seen int), done func() bool) (int, error) {
	var n int
	err := park.AwaitLight(ctx, &g.receivers, g.opts.RingSize, lookUntil(take, done, &n))
	return awaited(n, err)
}

// lookUntil is the condition a parked receiver checks: what take found
// once it took something (and sets *n), -1 once done, else 0.
func lookUntil(take func() (n, seen int), done func() bool, n *int) func() int {
	return func() int {
		var seen int
		if *n, seen = take(); *n > 0 {
			return seen
		}
		if done() {
			return -1
		}
		return 0
	}
}

// awaited is what an await returns once park returned err with n taken.
func awaited(n int, err error) (int, error) {
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
	g.event(slog.LevelError, EventFailure, slog.Any("error", err))
	if f := g.opts.OnError; f != nil {
		f(err)
	}
}
