package spillway

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync/atomic"

	"github.com/spillway-io/spillway/internal/invariants"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/mmap"
)

const spillDirPrefix = "spill-"

// spill is a shard's spill log while the shard is spilling: a segmented
// log in its own directory, a Writer that compresses what senders append,
// and a registered Reader (decoding ahead on every core) whose batches
// receivers take messages from, a batch at a time. It lives from the first
// message the ring could not take to the moment the last spilled message is
// read back; then its files are removed.
//
// written is guarded by the shard's spillMu, read under its recvMu; pending
// (written - read) is kept atomically for Stats.
type spill struct {
	dir     string
	fs      mmap.FS
	log     *mmap.Log
	w       *mmap.Writer
	r       *mmap.Reader
	written uint64
	read    uint64 // log offsets passed: records read back, or lost in skipped batches
	pending atomic.Int64
	// skipping: the last read met a batch that could not be decoded, and
	// the reader moved past it; a second failure in a row gives the spill
	// up. Guarded by recvMu.
	skipping bool
	recs     []codec.Record // scratch for write, kept zero; guarded by spillMu
	hdrs     []codec.Header // scratch for write; guarded by spillMu
	// quotaLogged: EventDiskFull was logged for this spill. Guarded by
	// spillMu.
	quotaLogged bool
}

func (q *Queue) openSpill(s *qshard) (*spill, error) {
	// Each spill has a directory of its own: the previous one may still be
	// closing (its files being removed) when the shard spills again.
	dir := filepath.Join(q.opts.Dir, fmt.Sprintf("%s%04d-%d", spillDirPrefix, s.idx, s.spills.Load()))
	log, _, err := mmap.Open(dir, q.dir.logOptions(mmap.Options{
		SegmentSize: q.dir.segSize,
		Encoder:     q.dir.enc,
		Quota:       q.dir.quota,
		FS:          q.opts.fs,
	}, "queue", filepath.Base(dir)))
	if err != nil {
		return nil, err
	}
	r, err := log.NewReader(0)
	if err != nil {
		_ = log.Close()
		return nil, err
	}
	r.SetReadAhead(runtime.GOMAXPROCS(0))
	// Receivers never wait for a batch being decoded (see refill): they
	// take from other shards meanwhile, or park until a batch is ready.
	r.OnDecoded(func() { q.receivers.Wake(1) })
	w := log.NewWriter(mmap.WriterOptions{BatchBytes: int(min(256<<10, q.dir.segSize/4))})
	return &spill{dir: dir, log: log, w: w, r: r, fs: q.opts.fs}, nil
}

// close stops the spill's goroutines and removes its files.
func (sp *spill) close() error {
	err := sp.w.Close()
	if errors.Is(err, mmap.ErrDiskFull) {
		err = nil // what never fitted is counted as dropped by the caller
	}
	_ = sp.r.Close()
	if cerr := sp.log.Close(); err == nil {
		err = cerr
	}
	if rerr := removeSpillDir(sp.fs, sp.dir); err == nil {
		err = rerr
	}
	return err
}

// spillOne writes e to s's spill, turning s spilling if it was not (unless
// the ring has room again). REQUIRES: not s.spillMu.
func (q *Queue) spillOne(s *qshard, e entry) error {
	_, err := q.spillMany(s, []entry{e})
	return err
}

// spillMany writes es, in order, to s's spill under one lock and one Write:
// the path of a batch sent to a spilling shard. If s is not spilling, the
// ring takes what it can first and only the rest opens a spill. It returns
// how many of es were queued (in the ring or on disk); fewer than len(es)
// only with an error. REQUIRES: not s.spillMu.
func (q *Queue) spillMany(s *qshard, es []entry) (int, error) {
	s.spillMu.Lock()
	defer s.spillMu.Unlock()
	if q.closed.Load() {
		return 0, ErrClosed
	}
	done := 0
	sp := s.spill.Load()
	if sp == nil {
		// Nobody else spills this shard (spillMu), so the ring may have
		// room again: then nothing needs the disk.
		if done = s.pushBatch(es); done == len(es) {
			return done, nil
		}
		var err error
		if sp, err = q.openSpill(s); err != nil {
			return done, fmt.Errorf("spillway: opening the spill of shard %d: %w", s.idx, err)
		}
		s.spill.Store(sp)
		s.spilling.Store(true)
		s.spills.Add(1)
		q.event(slog.LevelInfo, EventSpillStarted, slog.Int("shard", s.idx), slog.String("dir", q.opts.Dir))
	}
	n, err := sp.write(es[done:], &s.g.lat)
	sp.written += uint64(n)
	sp.pending.Add(int64(n))
	s.spilled.Add(uint64(n))
	done += n
	if err != nil {
		if errors.Is(err, mmap.ErrDiskFull) {
			if !sp.quotaLogged {
				sp.quotaLogged = true
				q.event(slog.LevelWarn, EventDiskFull, slog.Int("shard", s.idx), slog.Int64("max_disk_bytes", q.opts.MaxDiskBytes))
			}
			return done, fmt.Errorf("%w: %w", ErrDiskFull, err)
		}
		return done, err
	}
	return done, nil
}

// write hands es to the Writer (which copies their bytes), converted for
// the codec in sp.recs, and returns how many the Writer took. Those not
// timed yet are timed by their position in the spill (see
// timing.stampsAt). REQUIRES: spillMu.
func (sp *spill) write(es []entry, lat *timing) (int, error) {
	recs := growRecords(sp.recs, len(es))
	hdrs := sp.hdrs[:0]
	st := lat.stampsAt(sp.written, len(es))
	for i := range es {
		hdrs = codecRecord(&recs[i], &es[i], hdrs)
		if at := st.take(); recs[i].Timestamp == 0 {
			recs[i].Timestamp = at
		}
	}
	n, err := sp.w.Write(recs)
	clear(recs) // codecRecord wants zero records, and the scratch keeps no message alive
	clear(hdrs)
	sp.recs, sp.hdrs = recs[:0], hdrs[:0]
	return n, err
}

// refill loads the next batch of the spill into carry, for receivers to
// take from there. When the spill is drained it turns the shard back to the
// memory path and removes the spill. It reports whether carry got
// anything. REQUIRES: s.recvMu, carry empty.
//
// A batch that cannot be decoded (its bytes on disk are not what was
// written) is skipped: the reader moves past it, its records are counted
// as dropped once the next batch (or the end of the log) shows how many
// they were, and the failure goes to Options.OnError. A second failure in
// a row, which is also what a batch whose header is unreadable (the reader
// cannot find the next one) gives, abandons the spill.
func (s *qshard) refill() bool {
	if s.d != nil {
		return s.refillDurable()
	}
	for {
		sp := s.spill.Load()
		if sp == nil {
			return false
		}
		first, recs, err := sp.r.TryNext()
		if errors.Is(err, mmap.ErrNotReady) {
			return false // being decoded: the reader wakes a receiver when it is
		}
		if errors.Is(err, io.EOF) {
			// Everything appended so far has been read: either the spill is
			// drained, or the writer still holds records to flush.
			s.spillMu.Lock()
			if sp.read == sp.written {
				if invariants.Enabled && s.carryNext < len(s.carry) {
					invariants.Failf("shard %d: the spill ends with %d messages carried", s.idx, len(s.carry)-s.carryNext)
				}
				s.spill.Store(nil)
				s.spilling.Store(false)
				s.spillMu.Unlock()
				s.q.event(slog.LevelInfo, EventSpillEnded, slog.Int("shard", s.idx), slog.Uint64("spilled", sp.written))
				_ = sp.close() // read to its end: nothing to lose; files it leaves, the next open removes
				s.carry, s.carryNext, s.carryHdrs, s.carryHdrNext = nil, 0, nil, 0
				s.senders.WakeAll() // the shard takes messages into memory again
				return false
			}
			written := sp.written
			err = sp.w.Flush()
			s.spillMu.Unlock()
			flushed := err == nil
			if err == nil || errors.Is(err, mmap.ErrDiskFull) {
				first, recs, err = sp.r.TryNext()
			}
			if errors.Is(err, io.EOF) {
				if flushed && sp.skipping {
					// Everything written was appended and the reader has
					// passed it: what it did not return was in the
					// batches it skipped.
					s.dropSkipped(sp, written)
					continue
				}
				return false // stalled on a full disk: what is held cannot be read yet
			}
			if errors.Is(err, mmap.ErrNotReady) {
				return false // what the flush appended is being decoded
			}
		}
		if errors.Is(err, mmap.ErrCorrupt) && !sp.skipping {
			sp.skipping = true
			s.failure = errors.Join(s.failure, fmt.Errorf("%w: shard %d skipped a batch it could not read back (its messages are counted in Stats.Dropped): %w", ErrSpillFailed, s.idx, err))
			continue
		}
		if err != nil {
			s.abandonSpill(sp, err)
			return false
		}
		sp.skipping = false
		if first > sp.read {
			s.dropSkipped(sp, first)
		}
		sp.read += uint64(len(recs))
		sp.pending.Add(-int64(len(recs)))
		s.senders.WakeAll() // reading frees disk space, which senders waiting on a full disk need
		sp.r.Detach()       // receivers keep the records' bytes: decoded once, never copied
		s.carry, s.carryNext = recs, 0
		s.carryHdrs, s.carryHdrNext = convertHeaders(recs), 0
		if len(s.carry) > 0 {
			return true
		}
	}
}

// dropSkipped counts the records from sp.read up to offset to, which were
// in batches the reader skipped, as dropped. REQUIRES: s.recvMu.
func (s *qshard) dropSkipped(sp *spill, to uint64) {
	lost := to - sp.read
	sp.read = to
	sp.pending.Add(-int64(lost))
	s.dropped.Add(lost)
}

// abandonSpill gives up a spill that failed (a write or sync error, or
// corrupt data): what it still held is lost and counted as dropped, the
// shard goes back to memory, and the failure waits in s.failure for the
// receiver to report once it let go of recvMu. REQUIRES: s.recvMu.
func (s *qshard) abandonSpill(sp *spill, cause error) {
	s.spillMu.Lock()
	s.spill.Store(nil)
	s.spilling.Store(false)
	lost := sp.written - sp.read
	s.spillMu.Unlock()
	cerr := sp.close()
	s.dropped.Add(lost)
	s.senders.WakeAll()
	err := fmt.Errorf("%w: shard %d lost %d messages: %w", ErrSpillFailed, s.idx, lost, cause)
	s.failure = errors.Join(s.failure, err, cerr)
}

// Flush hands every message spilled so far to its shard's log: compressed
// and appended to the segment files (visible to a crash-surviving reader of
// the page cache), though not fsynced. Receivers never need it; it is for
// callers that measure or inspect the spill files. It returns the first
// write error, or ErrClosed. A Persistent queue has nothing to flush (every
// message is in its log when Send returns); Sync makes it durable.
func (q *Queue) Flush() error {
	if q.closed.Load() {
		return ErrClosed
	}
	var first error
	for _, s := range q.shards {
		s.spillMu.Lock()
		if sp := s.spill.Load(); sp != nil {
			if err := sp.w.Flush(); err != nil && first == nil {
				first = err
			}
		}
		s.spillMu.Unlock()
	}
	return first
}
