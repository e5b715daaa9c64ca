package spillway

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/spillway-io/spillway/mmap"
)

// tspill is a topic shard's spill: a log holding, from ring position base
// on, every message published to the shard since the first subscription
// fell a ring behind, read by the subShards that did. It lives until the
// last of them rejoins the ring; then its files are removed.
//
// All fields are guarded by the shard's pub, except log and w's read side:
// each reading subShard has its own mmap.Reader.
type tspill struct {
	t       *Topic // nil for a Persistent topic's log
	dir     string
	fs      mmap.FS
	log     *mmap.Log
	w       *mmap.Writer
	base    uint64 // ring position of log offset 0
	end     uint64 // ring position of the next message to write
	readers int    // subShards reading the log
	// pin is a registered log reader that holds back retention at the
	// lowest position a subShard still in the ring could be moved to the
	// spill at: the ring holds at most a ring's worth of unread messages,
	// so that is never below Tail() - Cap().
	pin *mmap.Reader
	// pend gathers the messages written since the last batch went to the
	// writer (nil when there are none), by reference: the writer's
	// goroutines encode them (refBatch). target is the size at which a
	// batch is cut, free the refBatches ready for reuse.
	pend   *refBatch
	target int
	free   chan *refBatch
	// permanent: a Persistent topic shard's log (tdurable), which holds
	// every message at offsets equal to ring positions (base 0), is
	// appended to by publishers directly, and lives as long as the topic.
	// Only log and readers are used then.
	permanent bool
}

// startSpill opens a spill whose log begins with what the ring holds
// from the slowest subShard's cursor on. REQUIRES: s.pub.
func (s *tshard) startSpill() (*tspill, error) {
	t := s.t
	base := s.ring.Tail()
	for _, ss := range s.subs {
		if ss.r != nil {
			base = min(base, ss.r.Cursor())
		}
	}
	base = max(base, s.ring.Oldest())
	dir := filepath.Join(t.opts.Dir, fmt.Sprintf("%st%04d-%d", spillDirPrefix, s.idx, s.spills))
	s.spills++
	log, _, err := mmap.Open(dir, t.dir.logOptions(mmap.Options{SegmentSize: t.dir.segSize, Encoder: t.dir.enc, Quota: t.dir.quota, Cache: t.cache, FS: t.opts.fs}, "topic", filepath.Base(dir)))
	if err != nil {
		return nil, fmt.Errorf("spillway: opening the spill of topic shard %d: %w", s.idx, err)
	}
	pin, err := log.NewReader(0)
	if err != nil {
		_ = log.Close()
		_ = removeSpillDir(t.opts.fs, dir)
		return nil, err
	}
	// While subscriptions read the spill, the ring keeps its last Cap()
	// messages, so that they can rejoin it as soon as they are that close.
	s.ring.KeepPassed(true)
	logEvent(t.opts.Logger, slog.LevelInfo, EventSpillStarted, slog.Int("shard", s.idx), slog.String("dir", t.opts.Dir))
	sp := &tspill{t: t, dir: dir, log: log, base: base, end: base, pin: pin,
		target: int(min(256<<10, t.dir.segSize/4)), free: make(chan *refBatch, 8), fs: t.opts.fs}
	sp.w = log.NewWriter(mmap.WriterOptions{BatchBytes: sp.target})
	// Copy what the ring holds from base on: the subShards about to move
	// to the spill have not read it yet.
	var buf [64]tentry
	var exps []int64
	tab := s.exps.Load()
	if tab != nil {
		exps = make([]int64, len(buf))
	}
	for p := base; p < s.ring.Tail(); {
		n := 0
		for ; n < len(buf) && p+uint64(n) < s.ring.Tail(); n++ {
			buf[n], _ = s.ring.At(p + uint64(n))
			if tab != nil {
				exps[n] = tab.exp[(p+uint64(n))&tab.mask].Load()
			}
		}
		k, err := sp.write(s, buf[:n], sub(exps, 0, n))
		clear(buf[:])
		if k < n || err != nil {
			s.ring.KeepPassed(false)
			sp.close()
			if err == nil {
				err = ErrDiskFull
			}
			return nil, err
		}
		p += uint64(n)
	}
	return sp, nil
}

// write appends es to the log at the spill's end and returns how many it
// took; fewer than len(es) only with an error (ErrDiskFull, wrapped, when
// the quota or the disk is full). REQUIRES: s.pub.
//
// It only gathers references to the messages (refBatch); each batch is
// handed to the writer when it reaches the target size, and a batch the
// writer has no room for yet waits here, full, for the next write or flush.
func (sp *tspill) write(s *tshard, es []tentry, exps []int64) (int, error) {
	n := 0
	var err error
	for n < len(es) {
		if sp.pend != nil && sp.pend.bytes >= sp.target {
			s.pub.Slow() // the writer may have no batch free yet: submit waits
			if err = sp.submit(); err != nil {
				break
			}
		}
		if sp.pend == nil {
			sp.pend = sp.newBatch()
		}
		var exp int64
		if exps != nil {
			exp = exps[n]
		}
		sp.pend.add(&es[n], s.stamps.timeOf(sp.base+sp.end+uint64(n)), exp)
		n++
	}
	if err == nil && sp.pend != nil && sp.pend.bytes >= sp.target {
		s.pub.Slow()
		_ = sp.submit() // now, to start compressing; failing, it waits in pend
	}
	sp.noteFull(s)
	sp.end += uint64(n)
	s.spilled += uint64(n)
	return n, err
}

// applyLimits lets the spill's log retire the segments past the limits of
// Retention (Limits only: under Interest an Ephemeral topic keeps what its
// subscriptions have not read, and nothing else), whoever still reads
// them: they skip ahead (Stats.Trimmed). Called once per batch handed to
// the writer. REQUIRES: s.pub.
func (sp *tspill) applyLimits() {
	t := sp.t
	if t == nil {
		return // a Persistent topic's log: retain does it
	}
	r := t.opts.Retention
	if r.Policy != Limits {
		return
	}
	if segs := sp.log.Segments(); len(segs) > 1 {
		if floor := t.limitFloor(segs); floor > 0 {
			sp.log.Trim(floor)
		}
	}
}

// newBatch returns an empty refBatch, reused if one is free.
func (sp *tspill) newBatch() *refBatch {
	select {
	case b := <-sp.free:
		return b
	default:
		return &refBatch{free: sp.free}
	}
}

// submit hands the pending batch, if any, to the writer. REQUIRES: s.pub.
func (sp *tspill) submit() error {
	if sp.pend == nil || len(sp.pend.es) == 0 {
		return nil
	}
	if err := sp.w.WriteDeferred(sp.pend, len(sp.pend.es)); err != nil {
		if errors.Is(err, mmap.ErrDiskFull) {
			err = fmt.Errorf("%w: %w", ErrDiskFull, err)
		}
		return err
	}
	sp.pend = nil
	sp.applyLimits()
	return nil
}

// pinTo moves the retention pin up to the lowest position a subShard in
// the ring could still be moved to the spill at, if that is at least step
// past the pin. Publishers move it lazily (lazyPinStep); a writer short of
// room moves it by any step. REQUIRES: s.pub.
func (sp *tspill) pinTo(s *tshard, tail, step uint64) {
	c := uint64(s.ring.Cap())
	if tail < sp.base+c {
		return
	}
	want := min(tail-c-sp.base, sp.log.NextOffset())
	if want < sp.pin.Offset()+max(step, 1) {
		return
	}
	if pin, err := sp.log.NewReader(want); err == nil {
		_ = sp.pin.Close()
		sp.pin = pin
	}
}

// lazyPinStep is how far publishers let the pin lag before they move it: a
// ring's worth, and no less than 4096 positions, so that a publish rarely
// opens a reader.
func (s *tshard) lazyPinStep() uint64 { return max(uint64(s.ring.Cap()), 4096) }

// appendAll makes the log hold everything written to the spill so far, as
// far as the quota allows. When the writer holds batches the quota had no
// room for, the retention pin may be what holds the space, since
// publishers move it lazily (see pinTo): it moves to where it must be now,
// which may free segments, and the writer retries. Receivers of the other
// subscriptions may have parked at the log's end after a appendAll of their own
// found no room: whatever this one appends, it wakes them. REQUIRES: s.pub.
func (sp *tspill) appendAll(s *tshard) error {
	s.pub.Slow() // it waits for the writer
	end := sp.log.NextOffset()
	err := sp.appendOnce()
	if errors.Is(err, mmap.ErrDiskFull) { // sp.submit's ErrDiskFull wraps it too
		sp.pinTo(s, s.ring.Tail(), 1)
		err = sp.appendOnce()
	}
	sp.noteFull(s)
	if sp.log.NextOffset() > end {
		s.t.wakeReceivers(1)
	}
	return err
}

// appendOnce submits the pending batch and flushes the writer. A pending
// batch the writer had no room for is submitted again after the flush
// retried the batches that held its buffers.
func (sp *tspill) appendOnce() error {
	err := sp.submit()
	if err != nil && !errors.Is(err, ErrDiskFull) {
		return err
	}
	if err = sp.w.Flush(); err != nil || sp.pend == nil {
		return err
	}
	if err = sp.submit(); err != nil {
		return err
	}
	return sp.w.Flush()
}

// noteFull keeps s.spillFull up to date with the writer. REQUIRES: s.pub.
func (sp *tspill) noteFull(s *tshard) {
	if full := sp.w.Stalled(); full != s.spillFull.Load() {
		s.spillFull.Store(full)
	}
}

// retrySpills retries the held batches of every shard whose spill writer
// waits for room. It is called wherever room may have been freed (a spill
// reader moved on, a subscription left a spill), since with no publisher
// about nobody else would, and receivers parked at the end of a spill
// would wait for them for good. A shard whose pub is taken has a publisher
// (whose next write retries) or a receiver flushing that same spill.
func (t *Topic) retrySpills() {
	for _, s := range t.shards {
		if s.spillFull.Load() && s.pub.TryLock() {
			if s.spill != nil {
				_ = s.spill.appendAll(s) // a failure stays with the writer, for the readers' next appendSpill
			}
			s.pub.Unlock()
		}
	}
}

// close stops the spill's writer and removes its files. Its last reader
// has left: what a failure here could cost is disk space, and files it
// leaves behind, the next open removes.
func (sp *tspill) close() {
	sp.pend = nil
	_ = sp.w.Close() // what it still held is for nobody now
	_ = sp.pin.Close()
	_ = sp.log.Close()
	_ = removeSpillDir(sp.fs, sp.dir)
}

// evict moves ss from the ring to the spill, starting one if needed.
// REQUIRES: s.pub.
func (s *tshard) evict(ss *subShard) error {
	ss.recvMu.Lock()
	defer ss.recvMu.Unlock()
	if ss.r == nil {
		return nil
	}
	if s.spill == nil {
		sp, err := s.startSpill()
		if err != nil {
			return err
		}
		s.spill = sp
	}
	c := ss.r.Cursor() // stable: ss's receivers are held off by recvMu
	if c < s.spill.base {
		return fmt.Errorf("spillway: internal error: cursor %d below the spill's base %d", c, s.spill.base)
	}
	// The log may not have c yet (the writer batches): until ss reads,
	// a registered reader at or below c holds its segments.
	hold, err := s.spill.log.NewReader(min(c-s.spill.base, s.spill.log.NextOffset()))
	if err != nil {
		return err
	}
	ss.pin = hold
	ss.r.Close()
	ss.r = nil
	ss.spill, ss.pos = s.spill, c
	s.spill.readers++
	s.evictions.Add(1)
	return nil
}

// readDisk moves the next batch of ss's spill into carry, or, at the end of
// what the log holds, rejoins the ring if it still holds ss's next message.
// It reports whether ss has something new to deliver, or is back in the
// ring. REQUIRES: ss.recvMu; ss reads the spill.
func (ss *subShard) readDisk() bool {
	if ss.spill.permanent {
		return ss.readLog()
	}
	s, sp := ss.ts, ss.spill
	if s.ring.Tail()-ss.pos <= uint64(s.ring.Cap()/2) && ss.rejoin(nil) && ss.r != nil {
		return true // close enough to the publisher: back to the ring
	}
	if ss.disk == nil {
		off := ss.pos - sp.base
		if off > sp.log.NextOffset() && !ss.appendSpill() {
			return false
		}
		if first := sp.log.FirstOffset(); off < first {
			ss.trimmed.Add(first - off) // retention took them (Limits)
			ss.pos += first - off
			off = first
		}
		d, err := sp.log.NewReader(off)
		if err != nil {
			return ss.rejoin(err)
		}
		ss.disk = d
		_ = ss.pin.Close()
		ss.pin = nil
	}
	first, recs, err := ss.disk.Next()
	if errors.Is(err, mmap.ErrClosed) {
		return false
	}
	if errors.Is(err, io.EOF) {
		if ss.skipping {
			return ss.rejoinAfterSkip()
		}
		return ss.rejoin(nil)
	}
	if errors.Is(err, mmap.ErrCorrupt) && !ss.skipping {
		// A batch that cannot be decoded: the reader moved past it; read
		// on. (A second failure in a row, which an unreadable header
		// gives, makes the subscription rejoin the ring.)
		ss.skipping = true
		ss.failure = errors.Join(ss.failure, fmt.Errorf("%w: shard %d skipped a batch it could not read back (its messages are counted in Stats.Dropped): %w", ErrSpillFailed, s.idx, err))
		return ss.readDisk()
	}
	if err != nil {
		return ss.rejoin(err)
	}
	ss.skipping = false
	ss.skipTo(sp.base + first)
	ss.carry = appendEntries(ss.carry[:0], recs)
	ss.carryNext, ss.carryAt = 0, sp.base+first
	ss.pos = ss.carryAt + uint64(len(recs))
	s.diskReads.Add(1)
	s.room.WakeAll()  // publishers waiting for disk space
	s.t.retrySpills() // reading may have freed the room held batches wait for
	return true
}

// appendSpill makes the log hold everything written to the spill so far. If
// the spill failed for good (a write error: the log is read-only), ss
// gives it up and rejoins the ring (rejoin with the cause: what it skips is
// counted, the failure reported), rather than wait for a log that will
// never hold more. It reports whether ss can make progress.
// REQUIRES: ss.recvMu.
func (ss *subShard) appendSpill() bool {
	s := ss.ts
	if !s.pub.TryLock() {
		return false // a publisher is busy; it wakes receivers when done
	}
	err := ss.spill.appendAll(s)
	s.pub.Unlock()
	if err != nil && !errors.Is(err, mmap.ErrDiskFull) && !errors.Is(err, ErrDiskFull) {
		return ss.rejoin(fmt.Errorf("writing the spill: %w", err))
	}
	return err == nil
}

// errSkipped is the cause rejoinAfterSkip gives rejoin.
var errSkipped = errors.New("the batch could not be decoded")

// rejoinAfterSkip: the spill reader came to the end of the log after
// passing over a batch it could not decode. Once the log holds everything
// published to the spill (a flush), either there is more to read, or the
// skipped batch was the last: then ss rejoins the ring where it is, if the
// ring still holds that message, or at the oldest message the ring holds,
// counting what it passes over as dropped. REQUIRES: ss.recvMu; ss reads the
// spill.
func (ss *subShard) rejoinAfterSkip() bool {
	s, sp := ss.ts, ss.spill
	if !s.pub.TryLock() {
		return false // a publisher is busy; it wakes receivers when done
	}
	err := sp.appendAll(s)
	end := sp.log.NextOffset()
	s.pub.Unlock()
	if err != nil {
		return ss.rejoin(err)
	}
	if ss.disk.Offset() < end {
		return ss.readDisk() // the flush appended more
	}
	ss.skipping = false
	return ss.rejoin(errSkipped)
}

// skipTo moves ss's spill position to pos, if it is behind, counting the
// messages it passes over as dropped: they were in batches the spill
// reader could not decode. REQUIRES: ss.recvMu; ss reads the spill.
func (ss *subShard) skipTo(pos uint64) {
	if pos <= ss.pos {
		return
	}
	// What lies below the log's first offset, retention took (Limits).
	if low := ss.spill.base + ss.spill.log.FirstOffset(); low > ss.pos {
		n := min(low, pos) - ss.pos
		ss.trimmed.Add(n)
		ss.pos += n
	}
	ss.dropped.Add(pos - ss.pos)
	ss.pos = pos
}

// rejoin moves ss back to the ring at its position, if the ring still
// holds it, and otherwise flushes the writer so the log has more to read.
// With cause (the spill failed: a write error, corrupt data), or when that
// flush fails for good, it rejoins the ring at the oldest message the ring
// holds, counting what it skips as dropped, and leaves the failure in
// ss.failure for the receiver to report. It reports whether ss can make
// progress. REQUIRES: ss.recvMu.
func (ss *subShard) rejoin(cause error) bool {
	s := ss.ts
	if !s.pub.TryLock() {
		return false
	}
	var done *tspill
	ok := false
	r, in := s.ring.AddReaderAt(ss.pos)
	if !in && cause == nil {
		if err := ss.spill.appendAll(s); err == nil {
			ok = true // the log now holds what the writer had
		} else if !errors.Is(err, mmap.ErrDiskFull) && !errors.Is(err, ErrDiskFull) {
			// The spill failed for good (a write error): the log will
			// never hold more. Rejoin at the oldest message, as for a
			// cause.
			cause = fmt.Errorf("writing the spill: %w", err)
		}
	}
	if in {
		ss.r, ok = r, true
		s.rejoins.Add(1)
	} else if cause != nil {
		oldest := s.ring.Oldest()
		if r, in := s.ring.AddReaderAt(oldest); in {
			lost := oldest - ss.pos
			ss.dropped.Add(lost)
			ss.pos = oldest
			ss.r, ok = r, true
			err := fmt.Errorf("%w: subscription shard %d lost %d messages: %w", ErrSpillFailed, s.idx, lost, cause)
			ss.failure = errors.Join(ss.failure, err)
		}
	}
	if ss.r != nil {
		done = ss.leaveSpill()
	}
	s.pub.Unlock()
	if done != nil {
		done.close()
		s.room.WakeAll()
		s.t.retrySpills() // the spill's files are gone, and their room with them
	}
	return ok
}

// leaveSpill detaches ss from its spill and returns the spill if ss was
// its last reader (for the caller to close once it released pub).
// REQUIRES: ss.recvMu and s.pub.
func (ss *subShard) leaveSpill() *tspill {
	sp := ss.spill
	if ss.disk != nil {
		_ = ss.disk.Close()
		ss.disk = nil
	}
	if ss.pin != nil {
		_ = ss.pin.Close()
		ss.pin = nil
	}
	ss.spill = nil
	sp.readers--
	if sp.readers > 0 {
		return nil
	}
	ss.ts.spill = nil
	ss.ts.spillFull.Store(false)
	logEvent(ss.ts.t.opts.Logger, slog.LevelInfo, EventSpillEnded, slog.Int("shard", ss.ts.idx), slog.Uint64("spilled", sp.end-sp.base))
	ss.ts.ring.KeepPassed(false)
	// A publisher waiting for disk space watches diskReads: the spill's end
	// frees all of it. (The caller wakes room once it released pub.)
	ss.ts.diskReads.Add(1)
	return sp
}
