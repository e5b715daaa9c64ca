package spillway

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/spillway-io/spillway/mmap"
	"github.com/spillway-io/spillway/ring"
)

// Topic is publish-subscribe inside one process: every named subscription
// gets every message published after it was created, and the receivers of
// one subscription compete for its messages, as on a Queue.
//
// A Topic is safe for concurrent use by any number of publishers,
// subscribers and receivers.
//
// How a message travels: Publish picks the shard (by key; keyless messages
// go to one shard 64 at a time, then to the next, or to a free one while
// another publisher holds it) and pushes the message, once, into the
// shard's broadcast ring; each subscription has its own cursor over it
// (zero copies per subscription). A subscription whose cursor falls a whole ring behind would
// make the publisher wait. With Dir set it does so only briefly: a
// subscription that does not make room for a quarter of the ring within
// lagGrace (10 ms) is slow, and the publisher moves it to the shard's spill
// log, which from then on receives every message published to the shard
// (written once, however many subscriptions lag); the ring stops waiting for
// it. The subscription reads the log until it is within half a ring of the
// publisher (the ring keeps its last Cap() messages while a spill lasts),
// then rejoins the ring, in the receive call that catches up, or (when a
// publisher held the shard at that moment: receivers never wait for it) in
// its next one. Once no subscription reads the log, its files are removed.
// With MaxDiskBytes reached, the log's writer holds what does not fit in
// memory until readers free segments; each read, and each subscription
// leaving a spill, retries those batches for every shard. (A subscription
// that keeps up but is slower than the publisher paces it, at no less than
// a quarter ring per lagGrace, rather than spilling: moving it to the disk
// would only slow it further.) Without Dir, Overflow decides: Block waits
// for the slowest,
// DropOldest skips the slowest subscription past its oldest messages
// (counted in its Stats.Dropped), Reject fails with ErrFull.
type Topic struct {
	opts   Options
	shards []*tshard
	dir    spillDir         // with Dir: the lock, the spill encoder, the quota shared by the shards' logs
	cache  *mmap.BatchCache // decompressed batches shared by lagging subscriptions
	clock  *leaseClock

	mu     sync.Mutex                               // guards subscription changes
	subs   atomic.Pointer[map[string]*subscription] // copy-on-write
	groups atomic.Pointer[[]*subscription]          // the same, as a slice for publishers to wake
	closed atomic.Bool

	// sticky is the shard keyless publishes try first (see lockShard):
	// read by every keyless publish, written once per stickyRun of them,
	// on a line of its own.
	_      pad
	sticky atomic.Uint32
	_      pad

	stop chan struct{}
	wg   sync.WaitGroup

	// statsHook, when set (by tests only), runs while a subscription's
	// Stats holds a subShard's receiver lock.
	statsHook func()
}

// subscription is one named subscription: a group of competing receivers,
// with one subShard per topic shard.
type subscription struct {
	group
	name   string
	shards []*subShard
}

// OpenTopic opens a topic with the Queue's options and their meanings.
// DeadLetter, if set, receives the dead letters of every subscription.
func OpenTopic(opts Options) (*Topic, error) {
	shardsGiven := opts.Shards
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Durability == Persistent {
		return nil, fmt.Errorf("%w: a Persistent topic is not built yet; topics are Ephemeral", ErrInvalidOptions)
	}
	t := &Topic{opts: opts, stop: make(chan struct{})}
	t.subs.Store(&map[string]*subscription{})
	t.groups.Store(new([]*subscription))
	if opts.Dir != "" {
		if t.dir, err = openDir(&t.opts, "topic", shardsGiven); err != nil {
			return nil, err
		}
		t.cache = mmap.NewBatchCache(64<<20, 16<<20)
	}
	t.shards = make([]*tshard, opts.Shards)
	for i := range t.shards {
		t.shards[i] = &tshard{t: t, idx: i, ring: ring.NewBroadcast[tentry](opts.RingSize)}
	}
	t.clock = newLeaseClock(opts.Clock, opts.AckTimeout)
	if opts.Ack == ManualAck {
		c, stop := opts.Clock.Ticker(t.clock.tick)
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.clock.reap(c, stop, t.stop, func(fn func(*ackBook)) {
				for _, sub := range *t.subs.Load() {
					for _, ss := range sub.shards {
						fn(&ss.ackBook)
					}
				}
			})
		}()
	}
	return t, nil
}
