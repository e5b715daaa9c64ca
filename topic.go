package spillway

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-io/spillway/histogram"
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
// (zero copies per subscription). A subscription whose cursor falls a
// whole ring behind would make the publisher wait. With Dir set it does so only briefly: a
// subscription that does not make room for a quarter of the ring within
// 10 ms is slow, and the publisher moves it to the shard's spill
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
// a quarter ring per 10 ms, rather than spilling: moving it to the disk
// would only slow it further.) Without Dir, Overflow decides: Block waits
// for the slowest, DropOldest skips the slowest subscription past its oldest messages
// (counted in its Stats.Dropped), Reject fails with ErrFull.
type Topic struct {
	opts   Options
	shards []*tshard
	dir    spillDir         // with Dir: the lock, the spill encoder, the quota shared by the shards' logs
	cache  *mmap.BatchCache // decompressed batches shared by lagging subscriptions
	clock  *leaseClock
	lat    timing // the publishers' clock for timed messages; its histograms are unused

	mu     sync.Mutex                               // guards subscription changes
	subs   atomic.Pointer[map[string]*subscription] // copy-on-write
	groups atomic.Pointer[[]*subscription]          // the same, as a slice for publishers to wake
	closed atomic.Bool
	topicLife

	// sticky is the shard keyless publishes try first (see lockShard):
	// read by every keyless publish, written once per stickyRun of them,
	// on a line of its own.
	_      pad
	sticky atomic.Uint32
	_      pad

	stop chan struct{}
	wg   sync.WaitGroup

	// Persistent only.
	recovery Recovery
	always   bool    // Sync is SyncAlways
	sy       *syncer // nil for an Ephemeral topic
	storage  atomic.Pointer[error]
	filesMu  sync.Mutex    // held while subscriptions' cursor files are synced, or closed
	retains  atomic.Uint64 // retention passes done (tests wait on it)

	// statsHook, when set (by tests only), runs while a subscription's
	// Stats holds a subShard's receiver lock.
	statsHook func()
}

// OpenTopic opens a topic with the Queue's options and their meanings.
// DeadLetter, if set, receives the dead letters of every subscription.
func OpenTopic(opts Options) (*Topic, error) {
	shardsGiven, prioritiesGiven := opts.Shards, opts.Priorities
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkTopicOptions(&opts); err != nil {
		return nil, err
	}
	t := &Topic{opts: opts, stop: make(chan struct{})}
	t.initLife()
	t.subs.Store(&map[string]*subscription{})
	t.groups.Store(new([]*subscription))
	t.clock = newLeaseClock(opts.Clock, opts.AckTimeout)
	t.lat.init(&t.opts)
	t.shards = make([]*tshard, opts.Shards*opts.Priorities)
	if opts.Dir != "" {
		if t.dir, err = openDir(&t.opts, "topic", shardsGiven, prioritiesGiven); err != nil {
			return nil, err
		}
		if opts.Durability == Persistent {
			t.shards = make([]*tshard, t.opts.Shards*t.opts.Priorities) // the stored counts
			if err := t.openDurable(); err != nil {
				_ = t.dir.closeDir(&t.opts)
				return nil, err
			}
		} else {
			t.cache = mmap.NewBatchCache(64<<20, 16<<20)
		}
	}
	for i := range t.shards {
		if t.shards[i] == nil {
			t.shards[i] = &tshard{t: t, idx: i, ring: ring.NewBroadcast[tentry](opts.RingSize)}
		}
		t.shards[i].stamps.init(t.shards[i].ring.Cap(), t.lat.every)
	}
	if opts.Ack == ManualAck || opts.Durability == Persistent { // Persistent: delayed messages wait on the lease wheels
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

// Subscribe creates the named subscription, which then gets every message
// published after Subscribe returns (SubscribeAt with Latest), or, if it
// exists, attaches another competing receiver to it, where it is (on a
// Persistent topic, where it was when the topic closed).
func (t *Topic) Subscribe(name string) (*Subscription, error) {
	return t.subscribe(name, Latest(), false)
}

// SubscribeAt creates the named subscription at start, or, if it exists,
// attaches another receiver to it where it is, if it was created with the
// same start (otherwise it fails with ErrInvalidOptions, naming both:
// Seek moves an existing subscription). Earliest, AtTime and AtPosition
// need a Persistent topic; on an Ephemeral one only Latest is accepted.
// On a Persistent topic the subscription is on disk when SubscribeAt
// returns, and its name is 1 to 100 bytes.
func (t *Topic) SubscribeAt(name string, start StartAt) (*Subscription, error) {
	return t.subscribe(name, start, true)
}

func (t *Topic) subscribe(name string, start StartAt, check bool) (*Subscription, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return nil, ErrClosed
	}
	if sub, ok := (*t.subs.Load())[name]; ok {
		if check && sub.start.String() != start.String() {
			return nil, fmt.Errorf("%w: subscription %q exists, created at %s, not %s (Seek moves it)", ErrInvalidOptions, name, sub.start, start)
		}
		sub.attached.Add(1)
		return &Subscription{sub: sub, t: t}, nil
	}
	var sub *subscription
	if t.sy != nil {
		var err error
		if sub, err = t.createDurable(name, start); err != nil {
			return nil, err
		}
	} else {
		if start.kind != startLatest {
			return nil, fmt.Errorf("%w: starting at %s needs a Persistent topic (an Ephemeral one keeps no history)", ErrInvalidOptions, start)
		}
		sub = t.newSubscription(name, start)
		for _, ss := range sub.shards {
			s := ss.ts
			s.pub.Lock()
			ss.r = s.ring.AddReader()
			s.subs = append(s.subs, ss)
			s.pub.Unlock()
		}
	}
	next := maps.Clone(*t.subs.Load())
	next[name] = sub
	t.setSubs(next)
	if t.expiring.Load() { // after setSubs: see Topic.noteExpiring
		sub.noteExpiring()
	}
	sub.attached.Add(1)
	return &Subscription{sub: sub, t: t}, nil
}

// newSubscription returns a subscription with a subShard per shard,
// attached to none of them yet.
func (t *Topic) newSubscription(name string, start StartAt) *subscription {
	sub := &subscription{name: name, start: start, shards: make([]*subShard, len(t.shards))}
	sub.group.opts, sub.group.clock = &t.opts, t.clock
	sub.group.name = name
	if t.opts.Name != "" {
		sub.group.name = t.opts.Name + "/" + name
	}
	if t.sy != nil {
		sub.group.fail = func(err error) { _ = t.failStorage(err) }
		sub.group.commit = func() error {
			if t.always {
				return t.sy.wait(needJournal) // an ack is durable when it returns
			}
			return t.storageErr()
		}
	}
	sub.group.initTiming()
	sub.group.lat.shareClock(&t.lat)
	if t.expiring.Load() {
		sub.noteExpiring()
	}
	for i, s := range t.shards {
		ss := &subShard{ts: s}
		ss.ackBook.init(&sub.group, i)
		ss.track = t.opts.Ack == ManualAck || t.opts.Durability == Persistent // Persistent: parked delayed messages
		sub.shards[i] = ss
	}
	return sub
}

// Unsubscribe deletes the named subscription: its backlog is released (and
// counted as dropped in its Stats), its spill files are removed once no
// other subscription reads them, its receivers wake with ErrClosed, and a
// publisher waiting for it goes on.
func (t *Topic) Unsubscribe(name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return ErrClosed
	}
	sub, ok := (*t.subs.Load())[name]
	if !ok {
		return fmt.Errorf("%w: no subscription %q", ErrInvalidOptions, name)
	}
	next := maps.Clone(*t.subs.Load())
	delete(next, name)
	t.setSubs(next)
	sub.closed.Store(true)
	sub.receivers.WakeAll()
	for _, ss := range sub.shards {
		s := ss.ts
		s.pub.Lock()
		s.pub.Slow() // waiting for recvMu, which a receiver may hold while it reads the spill
		ss.recvMu.Lock()
		done := ss.detach()
		s.subs = deleteFirst(s.subs, ss)
		ss.recvMu.Unlock()
		s.pub.Unlock()
		if done != nil {
			done.close()
		}
		s.room.WakeAll()
	}
	if t.sy != nil {
		t.filesMu.Lock()
		err := t.closeSubCursors(sub)
		t.filesMu.Unlock()
		if rerr := removeSubDir(t.opts.fs, filepath.Join(t.opts.Dir, subDirName(name))); rerr != nil {
			err = errors.Join(err, rerr)
		}
		if err != nil {
			return fmt.Errorf("%w: deleting subscription %q: %w", ErrStorage, name, err)
		}
		return nil
	}
	t.retrySpills() // what only this subscription held is gone: room for the others' held batches
	return nil
}

// Subscriptions returns the names of the topic's subscriptions, sorted.
func (t *Topic) Subscriptions() []string {
	return slices.Sorted(maps.Keys(*t.subs.Load()))
}

// SubscriptionStats returns the named subscription's Stats (as its
// Subscription's StatsWith would), without attaching a receiver. It fails
// with ErrInvalidOptions if there is no such subscription.
func (t *Topic) SubscriptionStats(name string, o StatsOptions) (Stats, error) {
	sub, ok := (*t.subs.Load())[name]
	if !ok {
		return Stats{}, fmt.Errorf("%w: no subscription %q", ErrInvalidOptions, name)
	}
	return sub.stats(o), nil
}

// setSubs publishes a new set of subscriptions. REQUIRES: t.mu.
func (t *Topic) setSubs(subs map[string]*subscription) {
	groups := slices.Collect(maps.Values(subs))
	t.subs.Store(&subs)
	t.groups.Store(&groups)
}

// Stats returns the topic's statistics: Sent counts published messages and
// Spilled those written to spill logs (once, however many subscriptions
// read them); DiskBytes and DataBytes describe the spill files; the other
// counters and gauges add up those of every subscription. It takes each
// shard's publisher lock and each subscription's receiver locks for a
// moment: call it for monitoring, not per message.
//
// Its latencies merge those of every subscription; OldestAge is the
// oldest among them (the largest lag in time); SpillingShards counts the
// shards with a spill log.
func (t *Topic) Stats() Stats { return t.StatsWith(StatsOptions{}) }

// StatsWith is Stats with what o asks for besides: each shard's part (the
// subscriptions' parts of it added up).
func (t *Topic) StatsWith(o StatsOptions) Stats {
	var st Stats
	parts := make([]Stats, len(t.shards))
	olds := make([]int64, len(t.shards))
	for i, s := range t.shards {
		part := &parts[i]
		s.pub.Lock() // the tail and spilled together: a shard's part is consistent
		part.Sent = s.ring.Tail()
		if s.d != nil {
			part.Sent -= s.d.base
		}
		part.Spilled = s.spilled
		if s.spill != nil && s.d != nil {
			ls := s.d.log.Stats()
			part.DiskBytes, part.DataBytes, part.Syncs = ls.DiskBytes, ls.DataBytes, ls.Syncs
		} else if s.spill != nil {
			ls := s.spill.log.Stats()
			part.DiskBytes, part.DataBytes = ls.DiskBytes, ls.DataBytes
			part.SpillingShards = 1
		}
		s.pub.Unlock()
		st.add(part)
	}
	subs := *t.groups.Load()
	var oldest int64
	for _, sub := range subs {
		var sst Stats
		sparts := make([]Stats, len(t.shards))
		oldest = older(oldest, sub.addStats(&sst, sparts, olds))
		sst.SpillingShards = 0 // the topic counts shards with a spill log
		st.add(&sst)
		for i := range sparts {
			sparts[i].SpillingShards = 0
			parts[i].add(&sparts[i])
		}
	}
	t.life.addStats(&st)
	if o.Shards {
		st.Shards = shardParts(parts, olds, &t.lat)
	}
	if t.lat.every != 0 {
		if oldest != 0 {
			st.OldestAge = max(time.Duration(t.lat.now()-oldest), 0)
		}
		var local Histograms
		h := o.Histograms
		if h == nil {
			h = &local
		}
		h.QueueWait, h.AckLatency = histogram.Snapshot{}, histogram.Snapshot{}
		var snap histogram.Snapshot
		for _, sub := range subs {
			h.QueueWait.Merge(sub.lat.waits.Snapshot(&snap))
			h.AckLatency.Merge(sub.lat.acks.Snapshot(&snap))
		}
		st.QueueWait, st.AckLatency = latencyOf(&h.QueueWait), latencyOf(&h.AckLatency)
	}
	return st
}

// Close closes the topic. Blocked publishers and receivers wake with
// ErrClosed, and so does every later call; what subscriptions had not
// received is dropped (and counted), and the spill files are removed.
// Close is idempotent: later calls return ErrClosed. It joins every
// goroutine the topic started.
func (t *Topic) Close() error {
	t.mu.Lock()
	if t.closed.Swap(true) {
		t.mu.Unlock()
		return ErrClosed
	}
	subs := *t.subs.Load()
	t.mu.Unlock()
	t.life.close()
	close(t.stop)
	if t.sy != nil {
		close(t.sy.stop) // its final round serves whoever still waits
	}
	t.wg.Wait()
	for _, sub := range subs {
		sub.closed.Store(true)
		sub.receivers.WakeAll()
	}
	for _, s := range t.shards {
		s.pub.Lock()
		s.pub.Slow() // waiting for each recvMu
		s.closed = true
		var spills []*tspill
		for _, ss := range s.subs {
			ss.recvMu.Lock()
			if sp := ss.detach(); sp != nil {
				spills = append(spills, sp)
			}
			ss.recvMu.Unlock()
		}
		s.ring.Close()
		s.pub.Unlock()
		for _, sp := range spills {
			sp.close()
		}
		s.room.WakeAll()
	}
	var errs []error
	if t.sy != nil {
		t.filesMu.Lock()
		for _, sub := range subs {
			errs = append(errs, t.closeSubCursors(sub))
		}
		t.filesMu.Unlock()
		errs = append(errs, t.closeLogs())
		close(t.sy.closed)
	}
	if t.dir.lock != nil {
		errs = append(errs, t.dir.closeDir(&t.opts))
	}
	return errors.Join(errs...)
}
