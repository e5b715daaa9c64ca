package spillway

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Queue is a sharded point-to-point queue: producers Send, competing
// consumers Receive, each message is delivered to one receiver. Memory is
// bounded by the shards' rings; what does not fit is handled by the
// Overflow policy, by default spilled to disk and read back in order.
//
// A Queue is safe for concurrent use by any number of senders and
// receivers.
//
// How a message travels: Send picks the shard (by key, or at random) and
// pushes the message into the shard's ring, shared by all senders. A
// receiver takes a batch from one shard at a time, and never waits for
// another receiver: one that finds a shard taken moves on to the next.
// Receivers start at the same shard, which moves on after 16 messages
// taken from it, or to where the messages are when it is found empty: a
// round robin, so a shard with messages waits at most until each other
// shard has given 16. The message's offset is its position in the
// shard's FIFO order.
//
// When a shard's ring is full and the policy is SpillToDisk, the shard turns
// spilling: from then on every message for it goes to its spill log, behind
// the ones already there, so newer messages never overtake older ones.
// Receivers drain the ring first; once it is empty they take from the log,
// a decoded batch at a time (never pushed back through the ring). When the
// log is drained (everything spilled has been read back), the shard turns
// back to the memory path and its spill files are removed.
type Queue struct {
	group  // receivers, closed, and what leases need
	opts   Options
	shards []*qshard // Priorities lanes of Shards shards (queue_life.go)
	queueLife
	dir spillDir // with Dir: the lock, the spill encoder, the quota shared by the shards' logs

	// Persistent only (queue_durable*.go): the syncer, the first storage failure
	// (sticky), what the open recovered, and fdatasync calls made.
	persistent bool
	always     bool // Sync is SyncAlways
	sy         *syncer
	storage    atomic.Pointer[error]
	recovery   Recovery
	fsyncs     atomic.Uint64
	housekeeps atomic.Uint64 // housekeeping passes done (tests wait on it)
	// housekeepHook, when set (by tests only), runs in the housekeeping
	// before it waits for the sync that lets it delete segments.
	housekeepHook func()

	// ManualAck: the reaper advances every shard's lease wheel once per
	// tick of the lease clock, until stop is closed.
	stop chan struct{}
	wg   sync.WaitGroup

	// statsHook, when set (by tests only), runs while Stats holds a shard's
	// receiver lock.
	statsHook func()
	// emptyRingHook, when set (by tests only), runs when a take found a
	// shard's ring empty, before it looks whether the shard spills.
	emptyRingHook func()
	// logReadHook, when set (by tests only), runs when a receiver of a
	// spilling Persistent shard has loaded where it may read the log up to,
	// before it reads.
	logReadHook func()
	// appendHook, when set (by tests only), runs when a sender of a
	// Persistent queue has decided whether its append resumes pushing
	// into the ring, before it appends (holding appendMu).
	appendHook func(resume bool)
	// switchHook, when set (by tests only), runs when a receiver of a
	// spilling Persistent shard has found, without appendMu, that it read
	// the log as far as it may, before it takes appendMu to switch.
	switchHook func()
}

// OpenQueue opens a queue. With Dir set it takes the directory (refusing one
// another open Queue or Topic holds): an Ephemeral queue removes the spill
// files an earlier process left, a Persistent one resumes from what it
// finds (see Recovery).
func OpenQueue(opts Options) (*Queue, error) {
	shardsGiven, prioritiesGiven := opts.Shards, opts.Priorities
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Retention != (Retention{}) {
		return nil, fmt.Errorf("%w: Retention applies to a Persistent Topic, not a Queue (a Queue deletes what is settled)", ErrInvalidOptions)
	}
	q := &Queue{opts: opts, stop: make(chan struct{})}
	q.group.opts, q.group.name = &q.opts, opts.Name
	q.group.initTiming()
	if opts.Dir != "" {
		if q.dir, err = openDir(&q.opts, "queue", shardsGiven, prioritiesGiven); err != nil {
			return nil, err
		}
		opts = q.opts
	}
	q.shards = make([]*qshard, opts.Shards*opts.Priorities)
	for i := range q.shards {
		q.shards[i] = newShard(q, i)
	}
	q.initLife()
	for _, s := range q.shards {
		s.simple = opts.Ack == AutoAck && opts.Durability == Ephemeral && s.prio == 0
	}
	q.clock = newLeaseClock(opts.Clock, opts.AckTimeout)
	if opts.Durability == Persistent {
		q.persistent, q.always = true, opts.Sync == SyncAlways
		q.group.fail = func(err error) { _ = q.failStorage(err) } // it returns err, wrapped, for callers that return it
		q.group.commit = func() error {
			if q.always {
				return q.sy.wait(needJournal)
			}
			return q.storageErr()
		}
		if err := q.openDurable(); err != nil {
			_ = q.dir.closeDir(&q.opts)
			return nil, err
		}
	}
	if opts.Ack == ManualAck || q.persistent { // Persistent: delayed messages wait on the lease wheels
		c, stop := opts.Clock.Ticker(q.clock.tick) // before Open returns, so no tick is missed
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			q.clock.reap(c, stop, q.stop, func(fn func(*ackBook)) {
				for _, s := range q.shards {
					fn(&s.ackBook)
				}
			})
		}()
	}
	return q, nil
}

// Close closes the queue. Blocked senders and receivers wake with
// ErrClosed, and so does every later call. Deliveries already handed out
// can no longer be acked. On an Ephemeral queue, messages still waiting are
// dropped (and counted in Stats.Dropped), and the spill files are removed.
// A Persistent queue drops nothing: it syncs its logs, cursor and journal
// (with a final checkpoint, in which unsettled deliveries wait to be
// delivered again), and the next open resumes. Close is idempotent: later
// calls return ErrClosed. It joins every goroutine the queue started.
func (q *Queue) Close() error {
	if q.closed.Swap(true) {
		return ErrClosed
	}
	q.life.close()
	close(q.stop)
	if q.persistent {
		close(q.sy.stop) // its final round serves whoever still waits
	}
	q.wg.Wait()
	for _, s := range q.shards {
		s.ring.Close()
	}
	q.receivers.WakeAll()
	var err error
	for _, s := range q.shards {
		s.senders.WakeAll()
		var cerr error
		if s.d != nil {
			cerr = s.closeDurable()
		} else {
			cerr = s.close()
		}
		if err == nil {
			err = cerr
		}
	}
	if q.persistent {
		close(q.sy.closed)
	}
	if q.dir.lock != nil {
		if derr := q.dir.closeDir(&q.opts); err == nil {
			err = derr
		}
	}
	return err
}

// Stats returns the queue's statistics. It takes each shard's receiver
// lock for a moment (what receivers hold is counted there rather than with
// an atomic operation on every receive), so it costs receivers a little;
// call it for monitoring, not per message.
func (q *Queue) Stats() Stats { return q.StatsWith(StatsOptions{}) }

// StatsWith is Stats with what o asks for besides: each shard's part.
func (q *Queue) StatsWith(o StatsOptions) Stats {
	var st Stats
	var oldest, now int64
	if o.Shards {
		st.Shards = make([]ShardStats, 0, len(q.shards))
		if q.lat.every != 0 {
			now = q.lat.now()
		}
	}
	for i, s := range q.shards {
		var part Stats
		var at int64
		if s.d != nil {
			at = s.addStatsDurable(&part)
		} else {
			at = s.addStats(&part)
		}
		spilling := s.spilling.Load()
		if spilling {
			part.SpillingShards = 1
		}
		st.add(&part)
		oldest = older(oldest, at)
		if o.Shards {
			st.Shards = append(st.Shards, shardPart(i, &part, spilling, at, now))
		}
	}
	st.Syncs += q.fsyncs.Load()
	q.addLifeStats(&st)
	q.finishTiming(&st, oldest, o.Histograms)
	return st
}
