package spillway

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/mmap"
)

// A Persistent topic's subscriptions live beside its shards' logs:
//
//	sub-<name in hex>/SUBSCRIPTION   the StartAt it was created with; written last
//	sub-<name in hex>/shard-0003/cursor
//
// Each shard's cursor file (cursor.go) holds the offset of the first
// message the subscription has not been handed in that shard. Subscribe
// writes the cursors, syncs them, and only then writes SUBSCRIPTION,
// synced: a directory without it is a subscription whose creation did not
// finish, and the next open removes it. Unsubscribe removes SUBSCRIPTION
// first, durably, then the rest.
const (
	subDirPrefix   = "sub-"
	subMarker      = "SUBSCRIPTION"
	maxSubNameSize = 100 // bytes: its hex form stays far below a file name's limit
)

func subDirName(name string) string { return subDirPrefix + hex.EncodeToString([]byte(name)) }

// parseSubDirName returns the subscription name of a directory name.
func parseSubDirName(dir string) (string, bool) {
	h, ok := strings.CutPrefix(dir, subDirPrefix)
	if !ok {
		return "", false
	}
	b, err := hex.DecodeString(h)
	return string(b), err == nil
}

// checkSubName refuses names a Persistent topic cannot store.
func checkSubName(name string) error {
	if name == "" || len(name) > maxSubNameSize {
		return fmt.Errorf("%w: a Persistent topic's subscription name is 1 to %d bytes, %q is %d", ErrInvalidOptions, maxSubNameSize, name, len(name))
	}
	return nil
}

// storedSub is a subscription the directory holds.
type storedSub struct {
	name  string
	start StartAt
}

// readSubs reads the subscriptions in the topic's directory, removing
// those whose creation or deletion did not finish.
func (t *Topic) readSubs() ([]storedSub, error) {
	fsys := t.opts.fs
	names, err := fsys.ReadDir(t.opts.Dir)
	if err != nil {
		return nil, err
	}
	var out []storedSub
	for _, dn := range names {
		name, ok := parseSubDirName(dn)
		if !ok {
			continue
		}
		dir := filepath.Join(t.opts.Dir, dn)
		marker, err := readWhole(fsys, filepath.Join(dir, subMarker))
		if isNotExist(err) {
			if err := removeSubDir(fsys, dir); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: subscription %q: %w", ErrStorage, name, err)
		}
		start, err := parseStartAt(strings.TrimSpace(string(marker)))
		if err != nil {
			return nil, fmt.Errorf("%w: subscription %q in %s: %w", ErrStorage, name, dir, err)
		}
		out = append(out, storedSub{name: name, start: start})
	}
	return out, nil
}

// readWhole reads a small file whole.
func readWhole(fsys mmap.FS, path string) ([]byte, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read-only
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// createSubDir writes a new subscription's directory: its cursors at offs,
// synced, then its marker, synced.
func (t *Topic) createSubDir(name string, start StartAt, offs []uint64) error {
	fsys := t.opts.fs
	dir := filepath.Join(t.opts.Dir, subDirName(name))
	if err := removeSubDir(fsys, dir); err != nil { // what an unfinished creation left
		return err
	}
	for i, off := range offs {
		sdir := filepath.Join(dir, shardDirName(i))
		if err := fsys.MkdirAll(sdir, 0o700); err != nil {
			return err
		}
		c, _, err := openCursor(fsys, sdir)
		if err != nil {
			return err
		}
		c.store(off)
		err = errors.Join(c.sync(), c.close())
		if err != nil {
			return err
		}
	}
	if err := fsys.SyncDir(dir); err != nil {
		return err
	}
	f, err := fsys.OpenFile(filepath.Join(dir, subMarker), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.WriteAt([]byte(start.String()+"\n"), 0)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return err
	}
	if err := fsys.SyncDir(dir); err != nil {
		return err
	}
	return fsys.SyncDir(t.opts.Dir)
}

// removeSubDir deletes a subscription's directory: its marker first,
// durably (from then on it is no subscription), then the rest.
func removeSubDir(fsys mmap.FS, dir string) error {
	if err := fsys.Remove(filepath.Join(dir, subMarker)); err == nil {
		if err := fsys.SyncDir(dir); err != nil {
			return err
		}
	} else if !isNotExist(err) {
		return err
	}
	names, err := fsys.ReadDir(dir)
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if inner, err := fsys.ReadDir(p); err == nil {
			for _, f := range inner {
				if err := fsys.Remove(filepath.Join(p, f)); err != nil && !isNotExist(err) {
					return err
				}
			}
		}
		if err := fsys.Remove(p); err != nil && !isNotExist(err) {
			return err
		}
	}
	if err := fsys.Remove(dir); err != nil && !isNotExist(err) {
		return err
	}
	return nil
}

// openSubFiles opens a subscription's cursor files and its state journals
// (journal.go, one per shard, as a Queue shard's): the unsettled messages
// (ManualAck) come back as leases ready for redelivery, with their
// attempts, and the parked delayed ones (ackBook.park, either mode) as
// leases waiting for their DeliverAt, read from the shard's log (or from
// the journal, for those moved there). It returns, per shard, the offset
// the subscription reads on from: the first it was never handed.
func (t *Topic) openSubFiles(sub *subscription) ([]uint64, error) {
	offs := make([]uint64, len(sub.shards))
	for i, ss := range sub.shards {
		off, err := t.openSubShard(sub, ss)
		if err != nil {
			t.filesMu.Lock()
			_ = t.closeSubCursors(sub)
			t.filesMu.Unlock()
			return nil, fmt.Errorf("%w: subscription %q: %w", ErrStorage, sub.name, err)
		}
		offs[i] = off
	}
	return offs, nil
}

// openSubShard opens one shard's files of sub (see openSubFiles).
func (t *Topic) openSubShard(sub *subscription, ss *subShard) (uint64, error) {
	fsys := t.opts.fs
	dir := filepath.Join(t.opts.Dir, subDirName(sub.name), shardDirName(ss.idx))
	c, delivered, err := openCursor(fsys, dir)
	if err != nil {
		return 0, err
	}
	ss.cur = c
	ss.saved.Store(delivered)
	log := ss.ts.d.log
	js, err := readJournal(fsys, dir)
	if err != nil {
		return 0, err
	}
	t.recovery.TruncatedBytes += js.torn
	if js.damaged > 0 && !js.found && js.gen > 0 {
		// Which deliveries were settled is unknown: deliver everything
		// the log still holds again rather than lose any of it.
		sub.report(fmt.Errorf("%w: subscription %q: shard %d's state journal in %s is damaged: every message its log still holds is delivered again", ErrStorage, sub.name, ss.idx, dir))
		delivered = log.FirstOffset()
	} else if js.found {
		delivered = max(delivered, js.delivered, js.next)
	}
	unsettled := js.unsettled
	if unsettled == nil {
		unsettled = map[uint64]*journalEntry{}
	}
	if js.found {
		if err := reparkDelayed(log, unsettled, js.settled, js.delivered, delivered); err != nil {
			return 0, err
		}
	}
	if js.found && js.manual {
		for off := js.delivered; off < delivered; off++ {
			if !js.settled[off] && unsettled[off] == nil {
				unsettled[off] = &journalEntry{attempts: 1}
			}
		}
	}
	if delivered > log.NextOffset() {
		// A power loss took back the log's tail but not this state: those
		// offsets are never given to new messages.
		t.recovery.Lost += delivered - log.NextOffset()
		if err := log.SkipTo(delivered); err != nil {
			return 0, err
		}
	}
	need := delivered
	for off, e := range unsettled {
		if e.batch == nil {
			need = min(need, off)
		}
	}
	need = max(need, log.FirstOffset()) // retention took the rest (Limits): lost below
	jctx := t.dir.seal.context("topic", subDirName(sub.name)+"/"+shardDirName(ss.idx)+" journal")
	leases, lost, err := loadUnsettled(log, &ss.ackBook, unsettled, need, delivered, true, t.dir.seal.decoderOptions(jctx)...)
	if err != nil {
		return 0, err
	}
	t.recovery.Lost += lost
	t.recovery.Redelivered += uint64(len(leases))
	t.recovery.Messages += uint64(len(leases))
	ss.j = &journal{fsys: fsys, dir: dir, gen: js.gen, minSize: journalMinSize}
	if t.dir.seal != nil {
		ss.j.keys, ss.j.context = t.dir.seal.keys, jctx
	}
	ss.j.snapshot = func(cp *checkpoint) { ss.ackBook.snapshot(cp, ss.saved.Load()) }
	if t.opts.journalSize > 0 {
		ss.j.minSize = t.opts.journalSize
	}
	ss.restore(leases, t.opts.Clock.Now().UnixNano())
	c.store(delivered)
	ss.saved.Store(delivered)
	var cp checkpoint
	ss.ackBook.snapshot(&cp, delivered)
	if err := ss.j.writeGeneration(&cp); err != nil {
		return 0, err
	}
	return delivered, c.sync()
}

// newGeneration writes ss's whole state as a new journal generation: after
// its position moved other than by deliveries (Seek), so that a reopen
// does not take the messages it skipped for delivered and unsettled.
// REQUIRES: ss.recvMu.
func (ss *subShard) newGeneration() error {
	ss.leaseMu.Lock()
	defer ss.leaseMu.Unlock()
	var cp checkpoint
	ss.ackBook.snapshot(&cp, ss.saved.Load())
	return ss.j.writeGeneration(&cp)
}

// closeSubCursors closes a subscription's cursor files and journals, with
// a final checkpoint in each journal, synced first unless the topic's
// storage failed. REQUIRES: t.filesMu.
func (t *Topic) closeSubCursors(sub *subscription) error {
	var errs []error
	for _, ss := range sub.shards {
		if j := ss.j; j != nil {
			ss.leaseMu.Lock()
			if t.storageErr() == nil {
				var cp checkpoint
				ss.ackBook.snapshot(&cp, ss.saved.Load())
				errs = append(errs, j.writeGeneration(&cp))
			}
			ss.j = nil // later settles record nothing
			ss.leaseMu.Unlock()
			errs = append(errs, j.close())
		}
		if c := ss.cur; c != nil {
			if t.storageErr() == nil {
				errs = append(errs, c.sync())
			}
			errs = append(errs, c.close())
			ss.cur = nil
		}
	}
	return errors.Join(errs...)
}

// startOffsets resolves start into one offset per shard of a Persistent
// topic's logs.
func (t *Topic) startOffsets(start StartAt) ([]uint64, error) {
	offs := make([]uint64, len(t.shards))
	var p []uint64
	if start.kind == startPosition {
		if p = start.pos.Offsets(); len(p) != len(t.shards) {
			return nil, fmt.Errorf("%w: position %q has %d shards, the topic %d: it is another topic's", ErrInvalidOptions, start.pos, len(p), len(t.shards))
		}
	}
	for i, s := range t.shards {
		log := s.d.log
		switch start.kind {
		case startEarliest:
			offs[i] = log.FirstOffset()
		case startLatest:
			offs[i] = log.NextOffset()
		case startTime:
			off, err := log.OffsetAt(start.at.UnixNano())
			if err != nil {
				return nil, fmt.Errorf("%w: shard %d's time index: %w", ErrStorage, i, err)
			}
			offs[i] = off
		case startPosition:
			if p[i] > log.NextOffset() {
				return nil, fmt.Errorf("%w: position %q: shard %d's offset %d is past the log's end %d", ErrInvalidOptions, start.pos, i, p[i], log.NextOffset())
			}
			offs[i] = max(p[i], log.FirstOffset())
		}
	}
	return offs, nil
}

// saveCursor stores ss's position in its cursor file, if it moved: the
// first offset not handed out. REQUIRES: ss.recvMu; ss.cur set.
func (ss *subShard) saveCursor() {
	next := ss.nextPosition()
	if next != ss.saved.Load() {
		ss.cur.store(next)
		ss.saved.Store(next)
	}
}

// readLog moves the next run of a Persistent topic's log into carry, or,
// at the end of what ss may read, moves ss back to the ring. It reports
// whether ss has something new to deliver, or is back in the ring.
// REQUIRES: ss.recvMu; ss reads the log.
func (ss *subShard) readLog() bool {
	s := ss.ts
	log := s.d.log
	for {
		if ss.disk == nil {
			if first := log.FirstOffset(); ss.pos < first {
				ss.trimmed.Add(first - ss.pos) // retention took them first (Limits)
				ss.pos = first
			}
			r, err := log.NewPeekReader(ss.pos)
			if err != nil {
				ss.failure = errors.Join(ss.failure, fmt.Errorf("%w: topic shard %d: reading %s at %d: %w", ErrStorage, s.idx, s.d.dir, ss.pos, err))
				return false
			}
			ss.disk, ss.diskSkipped = r, 0
		}
		limit := ^uint64(0)
		if s.t.always {
			limit = s.d.synced.Load()
		}
		first, recs, err := ss.disk.ReadRecords(ss.recs, limit, 256<<10)
		if lost := ss.disk.Skipped() - ss.diskSkipped; lost > 0 {
			ss.diskSkipped += lost
			if errors.Is(err, mmap.ErrCorrupt) {
				ss.dropped.Add(lost)
				ss.failure = errors.Join(ss.failure, fmt.Errorf("%w: topic shard %d skipped %d messages in %s it could not read back (counted in Stats.Dropped): %v", ErrSpillFailed, s.idx, lost, s.d.dir, err))
			} else {
				ss.trimmed.Add(lost) // segments retired under the reader (Limits)
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			ss.pos = ss.disk.Offset()
			if s.t.always {
				return false
			}
			joined, busy := ss.rejoinRing()
			if joined || busy {
				return joined
			}
			continue // the ring moved on meanwhile: the log has more
		case err != nil && !errors.Is(err, mmap.ErrCorrupt):
			ss.failure = errors.Join(ss.failure, fmt.Errorf("%w: topic shard %d reading %s: %w", ErrStorage, s.idx, s.d.dir, err))
			return false
		case len(recs) == 0:
			ss.pos = ss.disk.Offset()
			continue
		}
		ss.carry = logEntries(ss.carry[:0], recs)
		ss.carryDue = recordDues(ss.carryDue[:0], recs)
		ss.carryNext, ss.carryAt = 0, first
		ss.pos = first + uint64(len(recs))
		clear(recs)
		ss.recs = recs[:0]
		s.diskReads.Add(1)
		return true
	}
}

// rejoinRing moves ss, which read the log up to its end, back to the
// ring, if the ring still holds its position. busy: a publisher held the
// shard (it wakes receivers when it is done). REQUIRES: ss.recvMu; ss
// reads the log.
func (ss *subShard) rejoinRing() (joined, busy bool) {
	s := ss.ts
	if !s.pub.TryLock() {
		return false, true
	}
	defer s.pub.Unlock()
	r, in := s.ring.AddReaderAt(ss.pos)
	if !in {
		return false, false
	}
	ss.closeLogReader()
	ss.r = r
	s.rejoins.Add(1)
	return true, false
}

// closeLogReader ends ss's reading of the log. REQUIRES: ss.recvMu, and
// s.pub or ss detached.
func (ss *subShard) closeLogReader() {
	if ss.disk != nil {
		_ = ss.disk.Close()
		ss.disk = nil
	}
	if ss.spill != nil {
		ss.spill.readers--
		ss.spill = nil
	}
}

// logEntries appends recs, read from a topic's log, as entries that share
// their bytes (ReadRecords gives them to the caller to keep), each with
// its publish time.
func logEntries(dst []entry, recs []codec.Record) []entry {
	hs := convertHeaders(recs)
	for i := range recs {
		r := &recs[i]
		var headers []Header
		if n := len(r.Headers); n > 0 {
			// The ID header (a message published with an ID) stays on disk.
			if keep := len(withoutID(r.Headers)); keep > 0 {
				headers = hs[:keep:keep]
			}
			hs = hs[n:]
		}
		e := newEntry(owned(r.Key), owned(r.Value), headers)
		e.at = r.Timestamp // every one: Delivery.SentAt (take times only the sampled ones)
		e.exp = r.ExpiresAt
		dst = append(dst, e)
	}
	return dst
}

// recordDues appends the DeliverAt of each of recs (0: none) to dst, or
// nothing if none has one.
func recordDues(dst []int64, recs []codec.Record) []int64 {
	for i := range recs {
		if recs[i].DeliverAt != 0 {
			for j := range recs {
				dst = append(dst, recs[j].DeliverAt)
			}
			return dst
		}
	}
	return dst
}
