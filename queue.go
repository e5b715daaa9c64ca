package spillway

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/cpu"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/mmap"
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
// pushes the message into the shard's ring, an MPSC ring shared by all
// senders. A receiver takes a shard's consumer lock with TryLock (so
// receivers never wait for each other; they move on to the next shard),
// pops a batch, and releases it. Receivers start at the group's first shard,
// a hint that moves on after takeRun messages taken from a shard, or to
// where the messages are when it finds its shard empty: a round robin that
// costs one load per receive. The message's offset is its position in
// the shard's FIFO order.
//
// When a shard's ring is full and the policy is SpillToDisk, the shard turns
// spilling: from then on every message for it goes to its spill log, behind
// the ones already there, so newer messages never overtake older ones.
// Receivers drain the ring first; once it is empty they take from the log,
// a decoded batch at a time (never pushed back through the ring). When the
// log is drained (everything spilled has been read back), the shard turns
// back to the memory path and its spill files are removed.
type Queue struct {
	group   // receivers, closed, and what leases need
	opts    Options
	shards  []*qshard
	enc     *codec.Encoder // spill encoder, shared by the shards' logs
	quota   *mmap.Quota    // MaxDiskBytes, shared by the shards' logs
	segSize int64
	lock    io.Closer // the spill directory's lock

	// ManualAck: the reaper advances every shard's lease wheel once per
	// tick of the lease clock, until stop is closed.
	stop chan struct{}
	wg   sync.WaitGroup

	// statsHook, when set (by tests only), runs while Stats holds a shard's
	// receiver lock.
	statsHook func()
}

// OpenQueue opens a queue. With Dir set it takes the directory (refusing one
// another open Queue holds) and removes spill files an earlier process left.
func OpenQueue(opts Options) (*Queue, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	q := &Queue{opts: opts, stop: make(chan struct{})}
	q.group.opts = &q.opts
	if opts.Dir != "" {
		if err := q.openDir(); err != nil {
			return nil, err
		}
	}
	q.shards = make([]*qshard, opts.Shards)
	for i := range q.shards {
		q.shards[i] = newShard(q, i)
	}
	q.clock = newLeaseClock(opts.Clock, opts.AckTimeout)
	if opts.Ack == ManualAck {
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

func (q *Queue) openDir() error {
	d, err := openSpillDir(&q.opts)
	if err != nil {
		return err
	}
	q.enc, q.quota, q.segSize, q.lock = d.enc, d.quota, d.segSize, d.lock
	return nil
}

// spillDir is what a Queue or Topic with Dir holds: the directory's lock,
// the spill encoder, the shared quota and the segment size.
type spillDir struct {
	enc     *codec.Encoder
	quota   *mmap.Quota
	segSize int64
	lock    io.Closer
}

// openSpillDir takes o.Dir (refusing one another open Queue or Topic holds)
// and removes the spill files an earlier process left there.
func openSpillDir(o *Options) (spillDir, error) {
	var d spillDir
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return d, err
	}
	lock, err := mmap.OSFS{}.Lock(filepath.Join(o.Dir, "LOCK"))
	if err != nil {
		if errors.Is(err, mmap.ErrLocked) {
			return d, fmt.Errorf("%w: %s is used by another open queue or topic", ErrInvalidOptions, o.Dir)
		}
		return d, err
	}
	fail := func(err error) (spillDir, error) {
		lock.Close()
		return spillDir{}, err
	}
	// Spill files do not outlive their queue: remove what a crashed one left.
	entries, err := os.ReadDir(o.Dir)
	if err != nil {
		return fail(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), spillDirPrefix) {
			if err := os.RemoveAll(filepath.Join(o.Dir, e.Name())); err != nil {
				return fail(err)
			}
		}
	}
	// Segments hold several batches, and several fit in the quota.
	d.segSize = 64 << 20
	if o.MaxDiskBytes > 0 {
		d.segSize = min(d.segSize, o.MaxDiskBytes/int64(2*o.Shards+2))
	}
	d.segSize = max(d.segSize, 2*int64(o.MaxMessageBytes)+256<<10) &^ (64<<10 - 1)
	if o.MaxDiskBytes > 0 {
		if o.MaxDiskBytes < 2*d.segSize {
			return fail(fmt.Errorf("%w: MaxDiskBytes %d cannot hold two spill segments of %d bytes (MaxMessageBytes %d)",
				ErrInvalidOptions, o.MaxDiskBytes, d.segSize, o.MaxMessageBytes))
		}
		d.quota = mmap.NewQuota(o.MaxDiskBytes)
	}
	if d.enc, err = codec.NewEncoder(codec.WithCompression(o.Compression.codec())); err != nil {
		return fail(err)
	}
	d.lock = lock
	return d, nil
}

// Close closes the queue. Blocked senders and receivers wake with
// ErrClosed, and so does every later call; messages still waiting are
// dropped (and counted in Stats.Dropped), and the spill files are removed.
// Deliveries already handed out can no longer be acked. Close is
// idempotent: later calls return ErrClosed. It joins every goroutine the
// queue started.
func (q *Queue) Close() error {
	if q.closed.Swap(true) {
		return ErrClosed
	}
	close(q.stop)
	q.wg.Wait()
	for _, s := range q.shards {
		s.ring.Close()
	}
	q.receivers.WakeAll()
	var err error
	for _, s := range q.shards {
		s.senders.WakeAll()
		if cerr := s.close(); err == nil {
			err = cerr
		}
	}
	if q.enc != nil {
		q.enc.Close()
	}
	if q.lock != nil {
		os.Remove(filepath.Join(q.opts.Dir, "LOCK"))
		if lerr := q.lock.Close(); err == nil {
			err = lerr
		}
	}
	return err
}

// Stats are a queue's counters and gauges. Counters only grow. Under
// concurrent use Stats is a snapshot assembled from per-shard parts; when the
// queue is quiet it is exact.
type Stats struct {
	Sent         uint64 // messages accepted by Send, SendBatch and TrySend
	Delivered    uint64 // deliveries handed to receivers, redeliveries included
	Acked        uint64 // ManualAck deliveries acked
	Redelivered  uint64 // deliveries of messages that had been delivered before
	DeadLettered uint64 // messages that ran out of attempts or were terminated
	Dropped      uint64 // messages lost to DropOldest, a full dead-letter queue, a failed spill, or Close
	Spilled      uint64 // messages written to a spill log

	Depth     int64 // messages waiting to be delivered: in rings, on disk, or waiting for redelivery
	InFlight  int64 // ManualAck deliveries not yet settled
	DiskBytes int64 // bytes the spill files reserve on disk
	DataBytes int64 // bytes of compressed batches the spill files hold (at most DiskBytes)
}

// Stats returns the queue's statistics. It takes each shard's receiver
// lock for a moment (what receivers hold is counted there rather than with
// an atomic operation on every receive), so it costs receivers a little;
// call it for monitoring, not per message.
func (q *Queue) Stats() Stats {
	var st Stats
	for _, s := range q.shards {
		s.addStats(&st)
	}
	return st
}

// pad separates hot fields written by different goroutines.
type pad = cpu.CacheLinePad
