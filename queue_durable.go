package spillway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/internal/invariants"
	"github.com/spillway-io/spillway/internal/park"
	"github.com/spillway-io/spillway/mmap"
)

// durable is a Persistent shard's disk: its log (every message, in the
// shard's order), its cursor file (how far receivers got) and its state
// journal (ManualAck's settles and attempts).
//
// Who may do what:
//   - Senders append under appendMu, and push into the ring under it too,
//     so that what the ring holds is a run of the log in the log's order.
//   - When the ring has no room, the shard spills (s.spilling, set and
//     cleared under appendMu): from spillFrom on, senders only append,
//     and receivers, once they have taken what the ring held, read the log
//     from spillFrom. As soon as the ring is empty again a sender resumes
//     pushing: it stores resumeAt, the offset of its message, appends the
//     message and pushes it; receivers read the log up to resumeAt, then
//     take from the ring. A read that began before resumeAt was stored
//     may have read past it: receivers load resumeAt after each read and
//     cut the run there (resumeAt is stored before the append, so a read
//     that saw the append sees it). If
//     the ring fills up before that, nextSpill says where the log takes
//     over again after the ring's run. At the switch (under appendMu) the
//     receiver makes nextSpill the new spillFrom, or ends the spill. Each of
//     spillFrom, resumeAt and nextSpill is stored before the pushes and the
//     flag that depend on it.
//   - A receiver takes from the ring while the shard spills only what it
//     saw published before it saw resumeAt unset (durableRingRoom): a
//     sender sets resumeAt only while the ring is empty, and before it
//     pushes, so entries seen with resumeAt unset all came before the spill.
//   - The receiver holding the shard's recvMu reads the log (reader), and
//     stores the cursor after each take; delivered publishes it.
//   - Under SyncAlways the shard always spills and never resumes, and
//     receivers read no further than synced, the offset below which the
//     syncer has made the log durable: nothing is seen before it is kept.
//
// Offsets: a message's Delivery.Offset is its log offset. The ring's
// position p holds log offset p + s.direct for the run it holds.
type durable struct {
	dir     string
	log     *mmap.Log
	cursor  *cursorFile
	journal *journal

	// The senders' line, apart from what receivers poll.
	_        pad
	appendMu sync.Mutex
	recs     []codec.Record // scratch for appends, kept zero; guarded by appendMu
	hdrs     []codec.Header // scratch for appends; guarded by appendMu

	_         pad
	spillFrom atomic.Uint64
	resumeAt  atomic.Uint64 // 0: none (offsets that resume are past spillFrom, so never 0)
	nextSpill atomic.Uint64 // 0: none

	_         pad
	synced    atomic.Uint64 // SyncAlways: the log is durable below it
	delivered atomic.Uint64 // the cursor: the first offset never handed out

	// Guarded by the shard's recvMu.
	reader  *mmap.Reader // reading the log while the shard spills; nil otherwise
	skipped uint64       // reader.Skipped() already counted as dropped
	drops   atomic.Uint64

	// Set at open.
	base     uint64 // delivered at open
	sentBase uint64 // the log's next offset at open
}

// batchCap bounds the bytes one append of a SendBatch run writes as one
// batch; a longer run is appended in several.
const batchCap = 1 << 20

// records converts ms into d.recs for the log. Only the messages st times
// carry a timestamp: a clock read costs more than the rest of an append.
// A message with an ID (sent at idAt) carries it in a last header of its
// own (idHeader), for the duplicate window to be rebuilt at the next open.
// REQUIRES: appendMu.
func (d *durable) records(ms []Message, st stamps, idAt int64) []codec.Record {
	recs := growRecords(d.recs, len(ms))
	hdrs := d.hdrs[:0]
	for i := range ms {
		m, r := &ms[i], &recs[i]
		r.Key, r.Value, r.Timestamp = m.Key, m.Value, st.take()
		if !m.ExpiresAt.IsZero() {
			r.ExpiresAt = m.ExpiresAt.UnixNano()
		}
		if !m.DeliverAt.IsZero() {
			r.DeliverAt, r.Timestamp = m.DeliverAt.UnixNano(), 0
		}
		if len(m.Headers) > 0 || m.ID != "" {
			start := len(hdrs)
			for _, h := range m.Headers {
				hdrs = append(hdrs, codec.Header{Key: unsafe.Slice(unsafe.StringData(h.Key), len(h.Key)), Value: h.Value})
			}
			if m.ID != "" {
				hdrs = append(hdrs, codec.Header{Key: []byte(idHeader), Value: appendIDValue(nil, idAt, m.ID)})
			}
			r.Headers = hdrs[start:len(hdrs):len(hdrs)]
		}
	}
	d.hdrs = hdrs
	return recs
}

// room returns how many messages s may take now under the overflow
// policy: SpillToDisk takes any number (the log is the limit), the others
// what the ring has room for, or, while the shard spills, what keeps the
// messages waiting within RingSize. REQUIRES: appendMu.
func (q *Queue) room(s *qshard, want int) int {
	if q.opts.Overflow == SpillToDisk {
		return want
	}
	if !s.spilling.Load() {
		return min(want, s.ring.Cap()-s.ring.Len())
	}
	backlog := s.d.log.NextOffset() - s.d.delivered.Load()
	if backlog >= uint64(q.opts.RingSize) {
		return 0
	}
	return min(want, q.opts.RingSize-int(backlog))
}

// appendSome appends as many of ms (all for shard s) as the policy lets it
// now, as one batch, and pushes them into the ring when the shard does not
// spill. It returns how many it appended; none with ErrFull when there is
// no room, ErrDiskFull when the disk has none, or the queue's failure.
func (q *Queue) appendSome(s *qshard, ms []Message, idAt int64) (int, error) {
	d := s.d
	d.appendMu.Lock()
	defer d.appendMu.Unlock()
	if q.closed.Load() {
		return 0, ErrClosed
	}
	if err := q.storageErr(); err != nil {
		return 0, err
	}
	n := q.room(s, len(ms))
	if n == 0 {
		return 0, ErrFull
	}
	if n > 1 {
		size := 0
		for i := range n {
			if size += ms[i].size(); size > batchCap && i > 0 {
				n = i
				break
			}
		}
	}
	// A spilling shard whose ring has emptied resumes pushing with this
	// append: resumeAt goes out before the append does, so that a
	// receiver that reads this append from the log sees it (see durable).
	resume := !q.syncAlways() && s.spilling.Load() && d.nextSpill.Load() == 0 && (d.resumeAt.Load() != 0 || s.ring.Len() == 0)
	if resume && d.resumeAt.Load() == 0 {
		d.resumeAt.Store(d.log.NextOffset())
	}
	if q.appendHook != nil {
		q.appendHook(resume)
	}
	recs := d.records(ms[:n], q.lat.stampsAt(d.log.NextOffset(), n), idAt)
	first, err := d.log.AppendRecords(recs)
	clear(recs)
	clear(d.hdrs)
	d.recs, d.hdrs = recs[:0], d.hdrs[:0]
	if err != nil {
		if errors.Is(err, mmap.ErrDiskFull) {
			return 0, fmt.Errorf("%w: shard %d: %w", ErrDiskFull, s.idx, err)
		}
		return 0, q.failStorage(fmt.Errorf("shard %d: appending to %s: %w", s.idx, d.dir, err))
	}
	pushed := 0
	switch {
	case q.syncAlways():
	case !s.spilling.Load():
		if pushed = s.pushInPlace(ms[:n], true); pushed < n {
			d.spillFrom.Store(first + uint64(pushed))
			s.spilling.Store(true)
		}
	case resume:
		if pushed = s.pushInPlace(ms[:n], true); pushed < n {
			d.nextSpill.Store(first + uint64(pushed))
		}
	}
	s.spilled.Add(uint64(n - pushed))
	return n, nil
}

// sendDurable queues ms, all for shard s, in a Persistent queue: appended
// to the shard's log, a batch per run, before it returns; under SyncAlways
// also synced. With wait, it waits where the policy says to (Block, a full
// disk) until ctx ends; DropOldest drops to make room. It returns how many
// it queued.
func (q *Queue) sendDurable(ctx context.Context, s *qshard, ms []Message, wait bool, idAt int64) (int, error) {
	done, err := q.appendAll(ctx, s, ms, wait, idAt)
	if done > 0 && q.syncAlways() {
		if cerr := q.sy.wait(needLog); cerr != nil {
			return 0, cerr
		}
	}
	if err != nil && q.closed.Load() && !errors.Is(err, ErrClosed) {
		err = ErrClosed
	}
	return done, err
}

// appendAll is sendDurable without the sync.
func (q *Queue) appendAll(ctx context.Context, s *qshard, ms []Message, wait bool, idAt int64) (int, error) {
	done := 0
	appended := func(n int) {
		done += n
		if !q.syncAlways() {
			q.receivers.Wake(n) // under SyncAlways the syncer wakes them
		}
	}
	for done < len(ms) {
		n, err := q.appendSome(s, ms[done:], idAt)
		if n > 0 {
			appended(n)
			continue
		}
		full := errors.Is(err, ErrFull)
		switch {
		case full && q.opts.Overflow == DropOldest:
			s.dropOldestDurable()
			continue
		case full && q.opts.Overflow == Reject, !wait, !full && !errors.Is(err, ErrDiskFull):
			return done, err
		}
		// Wait for room, appending as soon as there is: receivers (and,
		// for a full disk, the housekeeping that deletes what they
		// consumed) wake the shard's senders.
		werr := park.AwaitN(ctx, &s.senders, s.ring.Cap(), func() int {
			n, aerr := q.appendSome(s, ms[done:], idAt)
			switch {
			case n > 0:
				appended(n)
				return n
			case errors.Is(aerr, ErrFull) || errors.Is(aerr, ErrDiskFull):
				return 0
			}
			err = aerr
			return -1
		})
		if werr != nil {
			return done, werr
		}
		if err != nil && !errors.Is(err, ErrFull) && !errors.Is(err, ErrDiskFull) {
			return done, err
		}
	}
	return done, nil
}

// noteDelivered stores the cursor after a take: the offset of the first
// message never handed out. REQUIRES: s.recvMu.
func (s *qshard) noteDelivered() {
	var next uint64
	if s.lo < s.hi {
		next = s.localHead + uint64(s.lo) + s.direct
	} else {
		next = s.ring.Head() + s.direct
	}
	if d := s.d; next != d.delivered.Load() {
		d.cursor.store(next)
		d.delivered.Store(next)
	}
}

// readLimit is where receivers stop reading the log: where the ring's run
// resumes, or under SyncAlways what is synced of it; otherwise no offset
// (the log's end stops the reader anyway, and loading its next offset
// would pull the appender's line on every look).
func (q *Queue) readLimit(d *durable) uint64 {
	if q.syncAlways() {
		return d.synced.Load()
	}
	if r := d.resumeAt.Load(); r != 0 {
		return r
	}
	return ^uint64(0)
}

// durableRingRoom bounds what a receiver may take from the ring of a
// spilling shard: what the ring held before the spill, or nothing if the
// ring's run resumes after the log (see durable). REQUIRES: s.recvMu, s
// spilling.
func (s *qshard) durableRingRoom(room int) int {
	k := s.ring.Peek(room) // first: entries seen here were published ...
	if k == 0 || s.d.resumeAt.Load() != 0 {
		return 0 // ... after resumeAt was stored, if it is set now
	}
	return k
}

// refillDurable loads carry with the next run of messages from the log,
// while the shard spills. At the point where the ring's run resumes, it
// switches to the ring; at the end of the log, it ends the spill (senders
// use the ring again), unless under SyncAlways. It reports whether carry
// got anything. REQUIRES: s.recvMu, carry empty.
func (s *qshard) refillDurable() bool {
	d, q := s.d, s.q
	if d.reader == nil {
		r, err := d.log.NewPeekReader(d.spillFrom.Load())
		if err != nil {
			s.failure = errors.Join(s.failure, q.failStorage(fmt.Errorf("shard %d: reading %s: %w", s.idx, d.dir, err)))
			return false
		}
		d.reader, d.skipped = r, 0
	}
	limit := q.readLimit(d)
	if q.logReadHook != nil {
		q.logReadHook()
	}
	first, recs, err := d.reader.ReadRecords(s.carry[:0], limit, 256<<10)
	if lost := d.reader.Skipped() - d.skipped; lost > 0 {
		d.skipped += lost
		s.dropped.Add(lost)
		s.failure = errors.Join(s.failure, fmt.Errorf("%w: shard %d skipped %d messages in %s it could not read back (counted in Stats.Dropped): %v", ErrSpillFailed, s.idx, lost, d.dir, err))
	}
	if errors.Is(err, io.EOF) {
		if !q.syncAlways() {
			s.switchToRing()
		}
		return false
	}
	if err != nil && !errors.Is(err, mmap.ErrCorrupt) {
		s.failure = errors.Join(s.failure, fmt.Errorf("%w: shard %d reading %s: %w", ErrSpillFailed, s.idx, d.dir, err))
		return false
	}
	if r := d.resumeAt.Load(); r != 0 && first+uint64(len(recs)) > r {
		// A sender resumed pushing at r after the read began: what the
		// log holds from r on, the ring holds too, and delivers. (Loaded
		// after the read: a sender stores resumeAt before the append it
		// resumes with.)
		recs = recs[:r-min(first, r)]
		if len(recs) == 0 {
			s.switchToRing()
			return false
		}
	}
	if len(recs) == 0 {
		return false
	}
	if invariants.Enabled && s.durableRingRoom(1) > 0 {
		invariants.Failf("shard %d: reading the log at %d while the ring holds messages from before the spill", s.idx, first)
	}
	s.carry, s.carryNext = recs, 0
	s.carryHdrs, s.carryHdrNext = convertHeaders(recs), 0
	s.direct = first - s.ring.Head() // carry[0] is at offset first
	return true
}

// switchToRing moves a spilling shard whose reader has read all it may
// back to the ring: at resumeAt, to the ring's run (and, if the ring filled
// up meanwhile, to the spill after it); at the log's end, out of spilling.
// REQUIRES: s.recvMu, carry empty.
func (s *qshard) switchToRing() {
	d := s.d
	at := d.reader.Offset()
	resume := d.resumeAt.Load()
	if resume == 0 && at < d.log.NextOffset() || resume != 0 && at < resume {
		return
	}
	if s.q.switchHook != nil {
		s.q.switchHook()
	}
	d.appendMu.Lock()
	resume = d.resumeAt.Load()
	switch {
	case resume != 0 && at < resume:
		// A sender appended and resumed pushing since the look above:
		// the log holds messages before the ring's run. Read them first.
		d.appendMu.Unlock()
		return
	case resume != 0:
		// The ring holds the run from resume on, untouched: its head is
		// at that offset.
		s.direct = resume - s.ring.Head()
		if next := d.nextSpill.Load(); next != 0 {
			d.spillFrom.Store(next) // before the reset below lets receivers take the ring
			d.nextSpill.Store(0)
		} else {
			s.spilling.Store(false)
		}
		d.resumeAt.Store(0)
	case at >= d.log.NextOffset():
		// Read up to the end, which senders cannot move now, and they
		// have not resumed: the ring is empty, and its next position is
		// the next offset.
		s.spilling.Store(false)
		s.direct = at - s.ring.Head()
	default:
		d.appendMu.Unlock()
		return
	}
	d.appendMu.Unlock()
	_ = d.reader.Close()
	d.reader = nil
	s.senders.WakeAll()
}

// logPending reports whether the log holds messages past what receivers
// have read, up to where they may read. REQUIRES: s.recvMu.
func (s *qshard) logPending() bool {
	d := s.d
	at := d.spillFrom.Load()
	if d.reader != nil {
		at = d.reader.Offset()
	}
	return at < min(s.q.readLimit(d), d.log.NextOffset())
}

// dropOldestDurable drops the shard's oldest waiting message (DropOldest):
// the cursor moves past it, so that it is not delivered after a reopen
// either.
func (s *qshard) dropOldestDurable() {
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	ringOK := !s.spilling.Load() || s.durableRingRoom(1) > 0
	switch {
	case s.lo < s.hi:
		s.local[s.lo] = entry{}
		s.lo++
	case ringOK && s.ring.Len() > 0:
		if _, ok := s.ring.TryPop(); !ok {
			return
		}
	case s.carryNext < len(s.carry) || s.spilling.Load() && s.refillDurable():
		s.carry[s.carryNext] = codec.Record{}
		s.carryNext++
		s.direct++
	default:
		return
	}
	s.d.drops.Add(1)
	s.dropped.Add(1)
	s.noteDelivered()
}

// syncAlways reports whether the queue syncs every write before it
// returns (SyncAlways).
func (q *Queue) syncAlways() bool { return q.always }

// addStatsDurable adds a Persistent shard's part of the statistics.
func (s *qshard) addStatsDurable(st *Stats) (oldest int64) {
	d := s.d
	s.recvMu.Lock()
	delivered, drops := d.delivered.Load(), d.drops.Load()
	oldest = s.oldestLocked()
	wake := s.q.receivers.Pending() && (s.lo < s.hi || s.ring.Len() > 0 || s.readyLen.Load() > 0 || s.spilling.Load() && (s.carryNext < len(s.carry) || s.logPending()))
	s.recvMu.Unlock()
	if wake {
		s.q.receivers.Wake(1)
	}
	next := d.log.NextOffset()
	st.Sent += next - d.sentBase
	st.Delivered += delivered - d.base - drops - s.expiredFresh.Load()
	st.Spilled += s.spilled.Load()
	st.Depth += int64(next - delivered)
	s.ackBook.addStats(st)
	ls := d.log.Stats()
	st.DiskBytes += ls.DiskBytes
	st.DataBytes += ls.DataBytes
	st.Syncs += ls.Syncs
	return oldest
}
