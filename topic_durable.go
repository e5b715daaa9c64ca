package spillway

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/internal/invariants"
	"github.com/spillway-io/spillway/mmap"
	"github.com/spillway-io/spillway/ring"
)

// tdurable is a Persistent topic shard's log: every message published to
// the shard, in order, at log offsets that are also its ring positions.
//
// Who may do what:
//   - The holder of the shard's pub appends to the log and then pushes the
//     same messages into the ring, so ring.Tail() == log.NextOffset()
//     whenever pub is free: the ring is a read cache of the log's tail,
//     keeping its last Cap() messages (KeepPassed) so that a subShard
//     reading the log can rejoin it.
//   - A subShard reads the ring (ss.r) while it keeps up. When the ring is
//     full, the publisher moves the subShards that hold it back to the
//     log (evictToLog: nothing is copied, the log has it all), where they
//     read on their own, and rejoin the ring at the log's end.
//   - Under SyncAlways nothing reads the ring: subShards read the log up to
//     synced, which the syncer advances after each round, so nothing is
//     delivered before it is durable.
//   - Every message of one append carries one timestamp, the publish time,
//     never below the shard's previous one (last): the log's time index
//     (mmap.Log.OffsetAt) rests on that.
type tdurable struct {
	dir  string
	log  *mmap.Log
	recs []codec.Record // scratch; guarded by pub
	hdrs []codec.Header // scratch; guarded by pub
	last int64          // the last append's time; guarded by pub

	synced atomic.Uint64 // SyncAlways: the log is durable below it
	base   uint64        // the log's next offset at open

	// sent holds the publish time of the last positions pushed, by
	// position & sentMask, for Delivery.SentAt of what subscriptions take
	// from the ring: stored by the publisher before the push publishes
	// the positions, loaded by a ring reader right after it popped them.
	// It spans 2×Cap()+128 positions or more: the publisher stamps at most
	// 64 past the tail and fills no slot past a ring reader's cursor+Cap(),
	// so what a reader just popped keeps its time (see topicStamps).
	sent     []atomic.Int64
	sentMask uint64
}

// topicShardDir is the directory of a Persistent topic shard's log.
func topicShardDir(dir string, i int) string { return filepath.Join(dir, shardDirName(i)) }

// openLogs opens every shard's log (Persistent): torn tails cut, corrupt
// runs quarantined, as for a Queue; each shard's ring then starts at its
// log's next offset.
func (t *Topic) openLogs() error {
	fsys := t.opts.fs
	logSync := mmap.SyncManual
	if t.opts.Sync == SyncNever {
		logSync = mmap.SyncNever
	}
	for i := range t.shards {
		dir := topicShardDir(t.opts.Dir, i)
		if err := fsys.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		log, lrec, err := mmap.Open(dir, t.dir.logOptions(mmap.Options{
			SegmentSize: t.dir.segSize,
			Mapped:      true,
			Sync:        logSync,
			Quota:       t.dir.quota,
			FS:          fsys,
			Now:         t.opts.Clock.Now, // segments' times are the records' (the publish times) or this clock's
		}, "topic", shardDirName(i)))
		if err != nil {
			return fmt.Errorf("%w: opening topic shard %d's log in %s: %w", ErrStorage, i, dir, err)
		}
		t.recovery.Segments += lrec.Segments
		t.recovery.Scanned += lrec.Segments - lrec.Trusted
		t.recovery.Lost += lrec.LostRecords()
		for _, loss := range lrec.Dropped {
			if loss.Tail {
				t.recovery.TruncatedBytes += loss.Bytes
			} else {
				t.recovery.Quarantined += loss.Batches
			}
		}
		if err := log.Sync(); err != nil { // what recovery kept, before anything builds on it
			_ = log.Close()
			return fmt.Errorf("%w: syncing topic shard %d's log: %w", ErrStorage, i, err)
		}
		t.shards[i] = &tshard{t: t, idx: i, d: &tdurable{dir: dir, log: log}, spill: &tspill{log: log, permanent: true}}
		if err := t.rebuildDedup(log, t.opts.Clock.Now().UnixNano()); err != nil {
			return fmt.Errorf("%w: topic shard %d: reading the duplicate window back: %w", ErrStorage, i, err)
		}
	}
	return fsys.SyncDir(t.opts.Dir)
}

// checkTopicOptions refuses what a Topic cannot do with opts.
func checkTopicOptions(o *Options) error {
	r := o.Retention
	switch {
	case r.MaxAge < 0 || r.MaxBytes < 0:
		return fmt.Errorf("%w: negative Retention", ErrInvalidOptions)
	case r.Policy != Interest && r.Policy != Limits:
		return fmt.Errorf("%w: retention policy %d", ErrInvalidOptions, r.Policy)
	case r != (Retention{}) && o.Dir == "":
		return fmt.Errorf("%w: Retention applies to a topic's logs: give it a Dir (Persistent, or Ephemeral for its spill)", ErrInvalidOptions)
	}
	return nil
}

// openDurable opens a Persistent topic's logs and subscriptions, and
// starts its syncer and housekeeper. Each subscription resumes reading
// the log at its cursor; each ring starts at its log's end.
func (t *Topic) openDurable() error {
	start := time.Now()
	t.always = t.opts.Sync == SyncAlways
	t.sy = newSyncer(t)
	if err := t.openLogs(); err != nil {
		_ = t.closeLogs()
		return err
	}
	stored, err := t.readSubs()
	if err != nil {
		_ = t.closeLogs()
		return err
	}
	subs := make([]*subscription, len(stored))
	starts := make([][]uint64, len(stored))
	fail := func(err error) error { // closes what was opened
		t.filesMu.Lock()
		for _, o := range subs {
			if o != nil {
				_ = t.closeSubCursors(o)
			}
		}
		t.filesMu.Unlock()
		_ = t.closeLogs()
		return err
	}
	for k, st := range stored {
		subs[k] = t.newSubscription(st.name, st.start)
		if starts[k], err = t.openSubFiles(subs[k]); err != nil {
			subs[k] = nil // openSubFiles closed its own
			return fail(err)
		}
	}
	for i, s := range t.shards {
		log := s.d.log
		// A cursor ahead of its log: a power loss took back the log's tail
		// but not the cursor. Those offsets are never given to new messages.
		hi := log.NextOffset()
		for _, offs := range starts {
			hi = max(hi, offs[i])
		}
		if hi > log.NextOffset() {
			t.recovery.Lost += hi - log.NextOffset()
			if err := log.SkipTo(hi); err != nil {
				return fail(fmt.Errorf("%w: topic shard %d: %w", ErrStorage, i, err))
			}
		}
		s.d.base = log.NextOffset()
		if segs := log.Segments(); len(segs) > 0 {
			s.d.last = segs[len(segs)-1].LastAt // publish times go on from there
		}
		s.d.synced.Store(log.NextOffset())
		s.ring = ring.NewBroadcastAt[tentry](t.opts.RingSize, log.NextOffset())
		s.ring.KeepPassed(true)
		n := 1 << bits.Len64(2*uint64(s.ring.Cap())+128-1)
		s.d.sent, s.d.sentMask = make([]atomic.Int64, n), uint64(n-1)
	}
	next := map[string]*subscription{}
	for k, sub := range subs {
		for i, ss := range sub.shards {
			ss.attachLog(starts[k][i])
			t.recovery.Messages += t.shards[i].d.log.NextOffset() - max(starts[k][i], t.shards[i].d.log.FirstOffset())
		}
		next[sub.name] = sub
	}
	t.setSubs(next)
	t.recovery.Took = time.Since(start)
	logEvent(t.opts.Logger, slog.LevelInfo, EventRecovered, slog.String("dir", t.opts.Dir),
		slog.Uint64("messages", t.recovery.Messages), slog.Uint64("lost", t.recovery.Lost),
		slog.Int64("truncated_bytes", t.recovery.TruncatedBytes), slog.Int("quarantined", t.recovery.Quarantined),
		slog.Int("segments", t.recovery.Segments), slog.Int("scanned", t.recovery.Scanned), slog.Duration("took", t.recovery.Took))
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.sy.loop()
	}()
	c, stop := t.opts.Clock.Ticker(t.opts.SyncEvery)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer stop()
		t.housekeeper(c, t.stop)
	}()
	return nil
}

// Recovery returns what opening a Persistent topic found in its
// directory: Messages counts those waiting for the subscriptions (summed
// over them), Lost those the files no longer held whole.
func (t *Topic) Recovery() Recovery { return t.recovery }

// attachLog makes ss read its shard's log from off (or the log's first
// offset, if that is later). REQUIRES: s.pub, or ss not yet visible.
func (ss *subShard) attachLog(off uint64) {
	s := ss.ts
	ss.pos = off
	ss.localAt = make([]int64, len(ss.local))
	ss.spill = s.spill
	s.spill.readers++
	s.subs = append(s.subs, ss)
	ss.saved.Store(off)
}

// createDurable creates a subscription of a Persistent topic at start: on
// disk first (createSubDir), then in each shard, reading the log from
// where start says. REQUIRES: t.mu.
func (t *Topic) createDurable(name string, start StartAt) (*subscription, error) {
	if err := checkSubName(name); err != nil {
		return nil, err
	}
	if err := t.storageErr(); err != nil {
		return nil, err
	}
	offs, err := t.startOffsets(start)
	if err != nil {
		return nil, err
	}
	if err := t.createSubDir(name, start, offs); err != nil {
		return nil, fmt.Errorf("%w: creating subscription %q: %w", ErrStorage, name, err)
	}
	sub := t.newSubscription(name, start)
	if offs, err = t.openSubFiles(sub); err != nil {
		return nil, err
	}
	for i, ss := range sub.shards {
		s := ss.ts
		s.pub.Lock()
		ss.attachLog(offs[i])
		s.pub.Unlock()
	}
	return sub, nil
}

// closeLogs closes every shard's log that is open.
func (t *Topic) closeLogs() error {
	var errs []error
	for _, s := range t.shards {
		if s != nil && s.d != nil {
			if t.storageErr() == nil {
				errs = append(errs, s.d.log.Sync())
			}
			errs = append(errs, s.d.log.Close())
		}
	}
	return errors.Join(errs...)
}

// records converts es, expiring at exps (nil: none), into d.recs for the
// log, every one stamped at; lf, if set, gives the one message of es its
// DeliverAt and ID. REQUIRES: pub.
func (d *tdurable) records(es []tentry, exps []int64, at int64, lf *recordLife) []codec.Record {
	recs := growRecords(d.recs, len(es))
	hdrs := d.hdrs[:0]
	for i := range es {
		e := es[i].unpack()
		if exps != nil {
			e.exp = exps[i]
		}
		hdrs = codecRecord(&recs[i], &e, hdrs)
		recs[i].Timestamp = at
	}
	if lf != nil {
		recs[0].DeliverAt = lf.due
		if lf.id != "" {
			hdrs = append(hdrs, codec.Header{Key: []byte(idHeader), Value: appendIDValue(nil, lf.idAt, lf.id)})
			recs[0].Headers = hdrs[:len(hdrs):len(hdrs)]
		}
	}
	d.hdrs = hdrs
	return recs
}

// recordLife is what a Persistent topic's log keeps of a message's
// lifecycle besides its expiry: when it is due (unix ns; 0: now) and its
// ID (sent at idAt), for the duplicate window of the next open.
type recordLife struct {
	due  int64
	id   string
	idAt int64
}

// publishDurable appends es to the shard's log, as one batch (with lf:
// see records), then pushes them into the ring, and releases pub; under
// SyncAlways it then waits for the sync. It returns how many it
// published: all of es, or none. It never waits for room: a full disk
// (or MaxDiskBytes) fails it with ErrDiskFull.
// REQUIRES: s.pub, which it releases.
func (s *tshard) publishDurable(es []tentry, exps []int64, lf *recordLife) (int, error) {
	t, d := s.t, s.d
	if s.closed {
		s.pub.Unlock()
		return 0, ErrClosed
	}
	if err := t.storageErr(); err != nil {
		s.pub.Unlock()
		return 0, err
	}
	if invariants.Enabled && s.ring.Tail() != d.log.NextOffset() {
		invariants.Failf("topic shard %d: ring tail %d, log at %d", s.idx, s.ring.Tail(), d.log.NextOffset())
	}
	at := max(t.lat.now(), d.last)
	d.last = at
	recs := d.records(es, exps, at, lf)
	_, err := d.log.AppendRecords(recs)
	clear(recs)
	clear(d.hdrs)
	d.recs, d.hdrs = recs[:0], d.hdrs[:0]
	if err != nil {
		s.pub.Unlock()
		if errors.Is(err, mmap.ErrDiskFull) {
			return 0, fmt.Errorf("%w: topic shard %d: %w", ErrDiskFull, s.idx, err)
		}
		return 0, t.failStorage(fmt.Errorf("topic shard %d: appending to %s: %w", s.idx, d.dir, err))
	}
	// The ring keeps up with the log: the subShards that would keep it from
	// taking these read the log instead.
	if room := s.ring.Room(len(es)); room < len(es) {
		s.pub.Slow() // it takes recvMus
		for _, ss := range s.gating(len(es)) {
			s.evictToLog(ss)
		}
	}
	s.stamp(s.ring.Tail(), len(es))
	s.noteExps(s.ring.Tail(), len(es), exps)
	if lf != nil || s.dues.Load() != nil {
		s.noteDue(s.ring.Tail(), len(es), lf)
	}
	for p := s.ring.Tail(); p < s.ring.Tail()+uint64(len(es)); p++ {
		d.sent[p&d.sentMask].Store(at)
	}
	if pushed := s.ring.PushBatch(es); pushed != len(es) {
		// Nothing gates the ring now; a ring too small for the batch
		// (a PublishBatch run is at most 64 messages) cannot happen.
		s.pub.Unlock()
		return 0, t.failStorage(fmt.Errorf("internal error: topic shard %d's ring took %d of %d messages", s.idx, pushed, len(es)))
	}
	s.pub.Unlock()
	if t.always {
		if err := t.sy.wait(needLog); err != nil {
			return 0, err
		}
	}
	t.wakeReceivers(len(es))
	return len(es), nil
}

// evictToLog moves ss from the ring to the log at its cursor.
// REQUIRES: s.pub.
func (s *tshard) evictToLog(ss *subShard) {
	ss.recvMu.Lock()
	defer ss.recvMu.Unlock()
	if ss.r == nil {
		return
	}
	ss.pos = ss.r.Cursor()
	ss.r.Close()
	ss.r = nil
	ss.spill = s.spill
	s.spill.readers++
	s.evictions.Add(1)
}

// storageErr returns the topic's storage failure, if any.
func (t *Topic) storageErr() error {
	if p := t.storage.Load(); p != nil {
		return *p
	}
	return nil
}

// failStorage records err as the topic's storage failure (the first one
// stays) and returns it, as ErrStorage: as for a Queue, nothing more is
// accepted after a failed write or sync until the topic is reopened.
func (t *Topic) failStorage(err error) error {
	if !errors.Is(err, ErrStorage) {
		err = fmt.Errorf("%w: %w", ErrStorage, err)
	}
	if t.storage.CompareAndSwap(nil, &err) {
		if f := t.opts.OnError; f != nil {
			f(err)
		}
		logEvent(t.opts.Logger, slog.LevelError, EventFailure, slog.Any("error", err))
		for _, sub := range *t.groups.Load() {
			sub.receivers.WakeAll()
		}
		for _, s := range t.shards {
			s.room.WakeAll()
		}
	}
	return t.storageErr()
}

// syncAll syncs the dirty logs (needLog) and subscription cursors
// (needCursor) of every shard, in parallel, and publishes, per shard, how
// much of the log is durable. A failure is sticky.
func (t *Topic) syncAll(need syncNeed) error {
	if err := t.storageErr(); err != nil {
		return err
	}
	t.filesMu.Lock()
	defer t.filesMu.Unlock()
	var jobs []func() error
	marks := make([]uint64, len(t.shards))
	for i, s := range t.shards {
		marks[i] = s.d.log.NextOffset()
		if need&needLog != 0 && s.d.log.Dirty() {
			jobs = append(jobs, s.d.log.Sync)
		}
	}
	for _, sub := range *t.groups.Load() {
		for _, ss := range sub.shards {
			if c := ss.cur; need&needCursor != 0 && c != nil && c.dirty.Load() {
				jobs = append(jobs, c.sync)
			}
			if j := ss.j; need&needJournal != 0 && j != nil && j.dirty.Load() {
				jobs = append(jobs, j.sync)
			}
		}
	}
	if err := runAll(jobs); err != nil {
		return t.failStorage(err)
	}
	if need&needLog != 0 {
		for i, s := range t.shards {
			if s.d.synced.Load() < marks[i] {
				s.d.synced.Store(marks[i])
			}
		}
		if t.always {
			t.wakeReceivers(1 << 20)
		}
	}
	return nil
}

// Sync makes everything published so far, and every subscription's
// position, durable: after it returns nil, a power loss takes none of it
// back. It fails with ErrStorage if the disk failed (now or before),
// ErrClosed after Close; on an Ephemeral topic it does nothing.
func (t *Topic) Sync() error {
	if t.closed.Load() {
		return ErrClosed
	}
	if t.sy == nil {
		return nil
	}
	return t.sy.wait(needAll)
}

// housekeeper runs a Persistent topic's periodic work every SyncEvery:
// under SyncInterval a sync round, then retention (retain).
func (t *Topic) housekeeper(tick <-chan time.Time, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-tick:
		}
		if t.opts.Sync == SyncInterval {
			if err := t.sy.waitRound(needAll); err != nil {
				continue // sticky, and reported by failStorage
			}
		}
		t.retain()
	}
}
