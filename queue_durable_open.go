package spillway

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"time"
	"unsafe"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/mmap"
)

// Recovery says what opening a Persistent queue found in its directory
// and did about it, without a human: every field is zero for a new or an
// Ephemeral queue.
type Recovery struct {
	// Messages waiting for delivery: never delivered before, and
	// unsettled ones (ManualAck) to be delivered again.
	Messages uint64
	// Redelivered: of Messages, those delivered before and not settled,
	// which come back with their Attempt kept.
	Redelivered uint64
	// Skipped: messages still in the logs that were delivered and settled
	// before (their segments go once nothing before them is unsettled).
	Skipped uint64
	// Lost: messages the files no longer held whole (torn or corrupt
	// batches, a tail a power loss took back), as far as offsets tell.
	Lost uint64
	// TruncatedBytes: bytes of torn tails cut off the logs and journals.
	TruncatedBytes int64
	// Quarantined: runs of corrupt bytes (batches) moved aside to .corrupt
	// files in the shards' directories.
	Quarantined int
	// Segments: log segment files kept; Scanned of them were read to be
	// verified (the others were trusted by their seals).
	Segments, Scanned int
	// Took: how long opening the directory took.
	Took time.Duration
}

func (r *Recovery) add(o Recovery) {
	r.Messages += o.Messages
	r.Redelivered += o.Redelivered
	r.Skipped += o.Skipped
	r.Lost += o.Lost
	r.TruncatedBytes += o.TruncatedBytes
	r.Quarantined += o.Quarantined
	r.Segments += o.Segments
	r.Scanned += o.Scanned
}

// Recovery returns what the queue's open found in its directory.
func (q *Queue) Recovery() Recovery { return q.recovery }

func shardDirName(i int) string { return fmt.Sprintf("shard-%04d", i) }

// openDurable opens every shard's log, cursor and journal, recovers them,
// and starts the syncer and the housekeeper.
func (q *Queue) openDurable() error {
	start := time.Now()
	q.sy = newSyncer(q)
	for _, s := range q.shards {
		if err := q.opts.fs.MkdirAll(filepath.Join(q.opts.Dir, shardDirName(s.idx)), 0o700); err != nil {
			return err
		}
	}
	if err := q.opts.fs.SyncDir(q.opts.Dir); err != nil {
		return fmt.Errorf("%w: syncing %s: %w", ErrStorage, q.opts.Dir, err)
	}
	for _, s := range q.shards {
		rec, err := q.openShard(s)
		if err != nil {
			q.closeDurableFiles()
			return err
		}
		q.recovery.add(rec)
	}
	q.recovery.Took = time.Since(start)
	q.logRecovery()
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		q.sy.loop()
	}()
	c, stop := q.opts.Clock.Ticker(q.opts.SyncEvery)
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		defer stop()
		q.housekeeper(c, q.stop)
	}()
	return nil
}

// closeDurableFiles closes what openDurable opened, after a failure.
func (q *Queue) closeDurableFiles() {
	for _, s := range q.shards {
		if d := s.d; d != nil {
			if d.journal != nil {
				_ = d.journal.close()
			}
			if d.cursor != nil {
				_ = d.cursor.close()
			}
			_ = d.log.Close()
		}
	}
}

// openShard recovers one shard: its log (torn tails cut, corrupt runs
// quarantined, sealed segments trusted), its journal and cursor (what was
// delivered, what of it is settled), and loads the unsettled messages for
// redelivery. It then writes the recovered state as a new journal
// generation and syncs it all before anything new is built on it.
func (q *Queue) openShard(s *qshard) (Recovery, error) {
	var rec Recovery
	fsys := q.opts.fs
	dir := filepath.Join(q.opts.Dir, shardDirName(s.idx))
	// The queue syncs its logs itself (group commit, intervals, Sync,
	// Close). Under SyncNever the log syncs nothing on its own either, not
	// even a segment it moved on from before sealing it: nothing is
	// promised against a power loss there, and readers verify every batch.
	logSync := mmap.SyncManual
	if q.opts.Sync == SyncNever {
		logSync = mmap.SyncNever
	}
	log, lrec, err := mmap.Open(dir, q.dir.logOptions(mmap.Options{
		SegmentSize: q.dir.segSize,
		Mapped:      true,
		Sync:        logSync,
		Quota:       q.dir.quota,
		FS:          fsys,
		Now:         q.opts.Clock.Now, // segments' times (the duplicate window keeps them by it)
	}, "queue", shardDirName(s.idx)))
	if err != nil {
		return rec, fmt.Errorf("%w: opening shard %d's log in %s: %w", ErrStorage, s.idx, dir, err)
	}
	d := &durable{dir: dir, log: log}
	s.d = d
	rec.Segments, rec.Scanned = lrec.Segments, lrec.Segments-lrec.Trusted
	rec.Lost += lrec.LostRecords()
	for _, loss := range lrec.Dropped {
		if loss.Tail {
			rec.TruncatedBytes += loss.Bytes
		} else {
			rec.Quarantined += loss.Batches
			q.event(slog.LevelWarn, EventQuarantined, slog.Int("shard", s.idx), slog.String("segment", loss.Segment),
				slog.Int64("position", loss.Position), slog.Int64("bytes", loss.Bytes), slog.Int("batches", loss.Batches),
				slog.Uint64("first", loss.First), slog.Uint64("end", loss.End), slog.String("sidecar", loss.Sidecar),
				slog.Any("reason", loss.Reason))
		}
	}
	js, err := readJournal(fsys, dir)
	if err != nil {
		return rec, err
	}
	if js.damaged > 0 && !js.found && js.gen > 0 {
		// Every generation of the journal is damaged: which deliveries
		// were settled is unknown. Deliver everything the log holds
		// again rather than lose any of it.
		q.report(fmt.Errorf("%w: shard %d's state journal in %s is damaged: every message its log still holds is delivered again", ErrStorage, s.idx, dir))
	}
	rec.TruncatedBytes += js.torn
	cursor, slot, err := openCursor(fsys, dir)
	if err != nil {
		return rec, err
	}
	d.cursor = cursor

	// What was delivered: the cursor, or what the journal shows. Without
	// a journal (a new queue, or one whose journal is gone or damaged)
	// nothing is known settled: everything the log holds is delivered.
	delivered := max(js.delivered, slot, js.next)
	if !js.found {
		delivered = log.FirstOffset()
	}
	unsettled := js.unsettled
	if js.found {
		if err := reparkDelayed(log, unsettled, js.settled, js.delivered, delivered); err != nil {
			return rec, fmt.Errorf("%w: shard %d: %w", ErrStorage, s.idx, err)
		}
	}
	if js.manual {
		for off := js.delivered; off < delivered; off++ {
			if !js.settled[off] && unsettled[off] == nil {
				unsettled[off] = &journalEntry{attempts: 1}
			}
		}
	}
	next := log.NextOffset()
	if delivered > next {
		// The state is ahead of the log: a power loss took back the log's
		// tail but not the cursor or the journal. Those offsets are never
		// given to new messages, or acks recorded for them would apply.
		if err := log.SkipTo(delivered); err != nil {
			return rec, fmt.Errorf("%w: shard %d: %w", ErrStorage, s.idx, err)
		}
	}
	// Unsettled messages the log no longer holds, and the oldest one it
	// must.
	need := delivered
	for off, e := range unsettled {
		if e.batch != nil {
			continue
		}
		if off >= next {
			delete(unsettled, off)
			rec.Lost++
			continue
		}
		need = min(need, off)
	}
	if first := log.FirstOffset(); need < first && need < next {
		return rec, fmt.Errorf("%w: shard %d: messages from offset %d on are not settled, but the log in %s starts at %d: segment files were removed", ErrStorage, s.idx, need, dir, first)
	}
	jctx := q.dir.seal.context("queue", shardDirName(s.idx)+" journal")
	leases, lost, err := loadUnsettled(log, &s.ackBook, unsettled, need, delivered, false, q.dir.seal.decoderOptions(jctx)...)
	if err != nil {
		return rec, err
	}
	rec.Lost += lost
	rec.Redelivered = uint64(len(leases))
	if first := log.FirstOffset(); delivered > first {
		inLog := uint64(len(leases) - countMoved(unsettled))
		rec.Skipped = delivered - first - min(inLog, delivered-first)
	}
	rec.Messages = rec.Redelivered + (log.NextOffset() - delivered)

	// The shard's state, as it resumes.
	d.delivered.Store(delivered)
	d.base, d.sentBase = delivered, log.NextOffset()
	s.direct = delivered // ring position 0 holds offset delivered
	if delivered < log.NextOffset() || q.syncAlways() {
		d.spillFrom.Store(delivered)
		s.spilling.Store(true)
	}
	s.j = &journal{fsys: fsys, dir: dir, gen: js.gen, snapshot: s.snapshot, minSize: journalMinSize}
	if q.dir.seal != nil {
		s.j.keys, s.j.context = q.dir.seal.keys, jctx
	}
	s.track = true
	if q.opts.journalSize > 0 {
		s.j.minSize = q.opts.journalSize
	}
	d.journal = s.j
	s.restore(leases, q.opts.Clock.Now().UnixNano())
	// Build nothing on what recovery read before it is durable: the log's
	// tail (it may be only in the page cache, after a kill), the cursor,
	// and the state as a new journal generation.
	cursor.store(delivered)
	var cp checkpoint
	s.snapshot(&cp)
	if err := s.j.writeGeneration(&cp); err != nil {
		return rec, err
	}
	if err := log.Sync(); err != nil {
		return rec, fmt.Errorf("%w: syncing shard %d's log: %w", ErrStorage, s.idx, err)
	}
	if err := cursor.sync(); err != nil {
		return rec, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	d.synced.Store(log.NextOffset())
	// The duplicate window's ids, from the segments that may hold some,
	// before settled segments go.
	if err := q.rebuildDedup(log, q.opts.Clock.Now().UnixNano()); err != nil {
		return rec, fmt.Errorf("%w: shard %d: reading the duplicate window back: %w", ErrStorage, s.idx, err)
	}
	// Segments wholly settled before the crash, which it kept from being
	// deleted, go now (but those the window needs).
	log.Trim(q.dedupFloor(log.Segments(), s.trimFloor(), q.opts.Clock.Now().UnixNano()))
	return rec, nil
}

// recovered is an unsettled message loaded at open, as a lease ready for
// redelivery.
type recovered struct {
	*lease
	notBefore int64
	moved     bool
}

func countMoved(unsettled map[uint64]*journalEntry) int {
	n := 0
	for _, e := range unsettled {
		if e.batch != nil {
			n++
		}
	}
	return n
}

// loadUnsettled builds a lease of book for each unsettled message: its
// bytes from the journal (moved) or from log, read from offset need up to
// delivered. It returns them in offset order, and how many the log no
// longer held whole.
//
// With sent (a topic's log, whose records all carry their publish time),
// each lease keeps its record's time for Delivery.SentAt.
//
// decOpts open the journal's moved batches (sealed ones need the keys).
func loadUnsettled(log *mmap.Log, book *ackBook, unsettled map[uint64]*journalEntry, need, delivered uint64, sent bool, decOpts ...codec.DecoderOption) ([]recovered, uint64, error) {
	if len(unsettled) == 0 {
		return nil, 0, nil
	}
	offs := make([]uint64, 0, len(unsettled))
	for off := range unsettled {
		offs = append(offs, off)
	}
	slices.Sort(offs)
	type message struct {
		m  Message
		at int64 // the record's timestamp
	}
	found := make(map[uint64]message, len(unsettled))
	var lost uint64
	dec, err := codec.NewDecoder(codec.Limits{}, decOpts...)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = dec.Close() }() // a Decoder's Close returns nil
	for _, off := range offs {
		if e := unsettled[off]; e.batch != nil {
			var b codec.Batch
			if _, err := dec.Decode(e.batch, &b); err != nil || len(b.Records) != 1 || b.Header.FirstOffset != off {
				lost++
				continue
			}
			b.Detach()
			found[off] = message{recordMessage(&b.Records[0]), b.Records[0].Timestamp}
		}
	}
	if need < delivered {
		r, err := log.NewPeekReader(need)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: shard %d: %w", ErrStorage, book.idx, err)
		}
		var recs []codec.Record
		for r.Offset() < delivered {
			var first uint64
			first, recs, err = r.ReadRecords(recs, delivered, 1<<20)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil && !errors.Is(err, mmap.ErrCorrupt) {
				_ = r.Close()
				return nil, 0, fmt.Errorf("%w: shard %d: %w", ErrStorage, book.idx, err)
			}
			for i := range recs {
				if e := unsettled[first+uint64(i)]; e != nil && e.batch == nil {
					found[first+uint64(i)] = message{recordMessage(&recs[i]), recs[i].Timestamp}
				}
			}
		}
		_ = r.Close()
	}
	out := make([]recovered, 0, len(offs))
	for _, off := range offs {
		m, ok := found[off]
		if !ok {
			if unsettled[off].batch == nil {
				lost++
			}
			continue
		}
		e := unsettled[off]
		l := &lease{s: book, msg: leaseEntry(&m.m), offset: off, attempt: int(e.attempts), firstTick: -1} // first delivered before the reopen: when is not kept
		if sent {
			l.sent = m.at
		}
		out = append(out, recovered{lease: l, notBefore: e.notBefore, moved: e.batch != nil})
	}
	return out, lost, nil
}

// restore puts the unsettled messages recovered at open back in the book:
// in the offset lists, and ready for redelivery, or on the wheel until
// the time a Nack or a DeliverAt gave them (notBefore, against wall, the
// clock's unix ns now). REQUIRES: the book unused yet.
func (s *ackBook) restore(leases []recovered, wall int64) {
	for _, l := range leases {
		if l.moved {
			s.moved.push(l.lease)
		} else {
			s.byOffset.push(l.lease)
		}
		if l.notBefore > wall {
			l.state, l.due = leaseDelayed, s.g.clock.tickAfter(l.notBefore, 0)
			s.wheel.add(l.lease)
			if l.attempt == 0 {
				s.parked.Add(1) // a delayed message (park)
			} else {
				s.delayed.Add(1)
			}
		} else {
			l.state = leaseReady
			s.ready.push(l.lease)
			s.readyLen.Add(1)
		}
	}
}

// recordMessage returns the message a record read back holds, sharing its
// bytes (which the reader gave to the caller to keep).
func recordMessage(r *codec.Record) Message {
	m := Message{Key: owned(r.Key), Value: owned(r.Value)}
	hs := withoutID(r.Headers)
	if r.ExpiresAt != 0 {
		m.ExpiresAt = time.Unix(0, r.ExpiresAt)
	}
	if len(hs) > 0 {
		m.Headers = make([]Header, len(hs))
		for i, h := range hs {
			m.Headers[i] = Header{Key: unsafe.String(unsafe.SliceData(h.Key), len(h.Key)), Value: owned(h.Value)}
		}
	}
	return m
}

// closeDurable closes a Persistent shard without dropping anything: what
// the ring and the receivers' buffers hold is in the log past the cursor,
// and unsettled deliveries are in the journal, which gets a final
// checkpoint. Everything is synced. REQUIRES: the queue is closed, its
// goroutines are done.
func (s *qshard) closeDurable() error {
	d := s.d
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	d.appendMu.Lock() // no append is under way
	defer d.appendMu.Unlock()
	clear(s.local[:])
	s.lo, s.hi = 0, 0
	s.carry, s.carryNext, s.carryHdrs, s.carryHdrNext = nil, 0, nil, 0
	if d.reader != nil {
		_ = d.reader.Close()
		d.reader = nil
	}
	var errs []error
	s.leaseMu.Lock()
	if s.q.storageErr() == nil {
		var cp checkpoint
		s.snapshot(&cp)
		errs = append(errs, s.j.writeGeneration(&cp))
	}
	s.leaseMu.Unlock()
	if s.q.storageErr() == nil {
		errs = append(errs, d.log.Sync())
	}
	errs = append(errs, d.cursor.sync(), d.journal.close(), d.cursor.close(), d.log.Close())
	return errors.Join(errs...)
}

// logRecovery logs what the open found (EventRecovered): at Warn if it
// lost or quarantined anything.
func (q *Queue) logRecovery() {
	r := q.recovery
	level := slog.LevelInfo
	if r.Lost > 0 || r.Quarantined > 0 {
		level = slog.LevelWarn
	}
	q.event(level, EventRecovered, slog.String("dir", q.opts.Dir),
		slog.Uint64("messages", r.Messages), slog.Uint64("redelivered", r.Redelivered),
		slog.Uint64("skipped", r.Skipped), slog.Uint64("lost", r.Lost),
		slog.Int64("truncated_bytes", r.TruncatedBytes), slog.Int("quarantined", r.Quarantined),
		slog.Int("segments", r.Segments), slog.Int("scanned", r.Scanned), slog.Duration("took", r.Took))
}

// reparkDelayed adds to unsettled the delayed messages (records with a
// DeliverAt) at offsets in [from, to) that the journal neither settled nor
// lists: messages a receiver parked (ackBook.park) after the journal's
// last checkpoint, whose record of it a crash may have lost while the
// cursor, past them, survived. They wait for their DeliverAt again: a
// delayed message is never taken for delivered, nor delivered early,
// because its park was not on disk. (One parked and then delivered whose
// settle was lost comes again: at least once.)
func reparkDelayed(log *mmap.Log, unsettled map[uint64]*journalEntry, settled map[uint64]bool, from, to uint64) error {
	return scanRecords(log, from, to, func(off uint64, r *codec.Record) {
		if at := r.DeliverAt; at != 0 && !settled[off] && unsettled[off] == nil {
			unsettled[off] = &journalEntry{attempts: 0, notBefore: at}
		}
	})
}
