package mmap

import (
	"errors"
	"fmt"
	"io"

	"github.com/spillway-io/spillway/internal/invariants"

	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/spillway-io/spillway/codec"
)

// Log is an append-only sequence of codec batches in a directory of segment
// files, with offsets assigned on append, readers that read forward from any
// retained offset, retention by consumption (and optionally by age), a disk
// quota, and the durability policies of SyncPolicy.
//
// Concurrency: every method is safe for concurrent use. Appends are
// serialized by mu; readers do not take mu except when they cross into
// another segment.
type Log struct {
	// Invariants:
	//   - segs (copy-on-write, published atomically) lists the live segments
	//     in offset order; the last one is the active segment, the only one
	//     appended to. Every other one is sealed.
	//   - next is the offset the next appended record gets; it equals the
	//     active segment's next.
	//   - The log holds one reference on each listed segment. Removing a
	//     segment from the list retires it and drops that reference.
	//   - failed, once set, never clears: no append is attempted after a write
	//     or sync failed, so no failed sync can later be reported as success.

	dir   string
	opts  Options
	fs    FS
	lock  io.Closer
	enc   *codec.Encoder
	owned bool // enc was created by the log and is closed by it
	dec   *codec.Decoder
	id    string // distinguishes this log's batches in a shared cache

	// The appender's line: mu and what only appends touch, apart from
	// next, which readers load while the appender stores it.
	_       cpu.CacheLinePad
	mu      sync.Mutex
	scratch []byte // AppendRecords' encoding when not mapped or sealed; guarded by mu
	sealed  []byte // AppendBatch's sealed copy; guarded by mu
	_       cpu.CacheLinePad
	next    atomic.Uint64
	_       cpu.CacheLinePad

	segs      atomic.Pointer[[]*segment]
	diskBytes atomic.Int64
	readers   map[*Reader]struct{} // guarded by mu
	failed    atomic.Pointer[error]
	closed    atomic.Bool
	floor     atomic.Uint64 // Trim: sealed segments wholly below it are retired
	syncs     atomic.Uint64 // fdatasync calls that succeeded

	stopSync chan struct{}
	syncDone sync.WaitGroup

	// The preparer's (prepare.go): the next segment, made ahead, and the
	// segments to seal; guarded by mu.
	prepared  *segment
	sealQueue []*segment
	prepKick  chan struct{}
	prepStop  chan struct{}
	prepDone  sync.WaitGroup
	// dirDirty: a segment was renamed into place since the directory was
	// last synced (SyncManual: Sync syncs it).
	dirDirty atomic.Bool
}

var logIDs atomic.Uint64

// Open opens the log in dir, creating the directory (0700) if needed, and
// recovers it: a torn tail is truncated, a corrupt batch in the middle is
// moved to a sidecar file and skipped, and the returned Recovery says
// exactly what was dropped. Open needs no human and never loops: every pass
// over the files moves forward. It fails with ErrLocked if another Log has
// the directory open.
func Open(dir string, opts Options) (*Log, *Recovery, error) {
	opts = opts.withDefaults()
	if opts.Limits.MaxBatchBytes == 0 {
		opts.Limits = codec.DefaultLimits()
	}
	opts.Limits.MaxBatchBytes = int(min(int64(opts.Limits.MaxBatchBytes), opts.SegmentSize-segHeaderSize))
	l := &Log{
		dir:      dir,
		opts:     opts,
		fs:       opts.FS,
		enc:      opts.Encoder,
		readers:  map[*Reader]struct{}{},
		stopSync: make(chan struct{}),
		id:       fmt.Sprintf("%d/", logIDs.Add(1)),
	}
	if err := l.fs.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	lock, err := l.fs.Lock(filepath.Join(dir, lockName))
	if err != nil {
		return nil, nil, err
	}
	l.lock = lock
	fail := func(err error) (*Log, *Recovery, error) {
		_ = l.closeFiles()
		return nil, nil, err
	}
	var decOpts []codec.DecoderOption
	if opts.Keyring != nil {
		decOpts = append(decOpts, codec.WithKeyring(opts.Keyring, opts.Context, opts.RequireSealed))
	}
	if l.dec, err = codec.NewDecoder(opts.Limits, decOpts...); err != nil {
		return fail(err)
	}
	if l.enc == nil {
		if l.enc, err = codec.NewEncoder(codec.WithEncoderLimits(opts.Limits)); err != nil {
			return fail(err)
		}
		l.owned = true
	}
	rec, err := l.recover()
	if err != nil {
		return fail(err)
	}
	if p := opts.Sync; p > 0 {
		l.syncDone.Add(1)
		go l.syncLoop(time.Duration(p))
	}
	if l.usesPreparer() {
		l.startPreparer()
	}
	return l, rec, nil
}

func (l *Log) now() int64 { return l.opts.Now().UnixNano() }

func (l *Log) segments() []*segment { return *l.segs.Load() }

func (l *Log) setSegments(s []*segment) { l.segs.Store(&s) }

// FirstOffset returns the oldest retained offset.
func (l *Log) FirstOffset() uint64 {
	if s := l.segments(); len(s) > 0 {
		return s[0].base
	}
	return l.next.Load()
}

// NextOffset returns the offset the next appended record will get.
func (l *Log) NextOffset() uint64 { return l.next.Load() }

// Stats describes the log's storage.
type Stats struct {
	Segments  int
	DiskBytes int64  // bytes reserved by segment files
	DataBytes int64  // bytes of batches the retained segments hold
	First     uint64 // oldest retained offset
	Next      uint64 // next offset to be assigned
	Syncs     uint64 // fdatasync calls made on segment files
}

// Stats returns a snapshot of the log's storage.
func (l *Log) Stats() Stats {
	segs := l.segments()
	st := Stats{Segments: len(segs), DiskBytes: l.diskBytes.Load(), First: l.FirstOffset(), Next: l.NextOffset(), Syncs: l.syncs.Load()}
	for _, s := range segs {
		st.DataBytes += s.end.Load() - segHeaderSize
	}
	return st
}

// SegmentInfo describes one segment of a log.
type SegmentInfo struct {
	Name      string // file name
	Base      uint64 // offset of its first record
	Next      uint64 // offset after its last record
	Sealed    bool   // no more appends: the log moved on
	DataBytes int64  // bytes of batches it holds
	Size      int64  // bytes reserved
	LastAt    int64  // unix ns of its last append (a record's timestamp, or the clock's)
}

// Segments describes the live segments, oldest first.
func (l *Log) Segments() []SegmentInfo {
	segs := l.segments()
	out := make([]SegmentInfo, len(segs))
	for i, s := range segs {
		out[i] = SegmentInfo{Name: s.name, Base: s.base, Next: s.next.Load(), Sealed: s.sealed.Load(), DataBytes: s.end.Load() - segHeaderSize, Size: s.size, LastAt: s.lastAt.Load()}
	}
	return out
}

// Err returns the sticky error that made the log read-only, or nil.
func (l *Log) Err() error {
	if p := l.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// fail records the first write or sync failure; the log is read-only from
// then on.
func (l *Log) fail(err error) error {
	l.failed.CompareAndSwap(nil, &err)
	return fmt.Errorf("%w: %w", ErrReadOnly, *l.failed.Load())
}

func (l *Log) writable() error {
	if l.closed.Load() {
		return ErrClosed
	}
	if p := l.failed.Load(); p != nil {
		return fmt.Errorf("%w: %w", ErrReadOnly, *p)
	}
	return nil
}

// Append encodes recs as one batch with the log's encoder and appends it.
// It returns the offset of the first record; the others follow in order.
func (l *Log) Append(recs []codec.Record) (uint64, error) {
	if err := l.writable(); err != nil {
		return 0, err
	}
	batch, err := l.enc.AppendBatch(nil, 0, recs)
	if err != nil {
		return 0, err
	}
	return l.AppendBatch(batch)
}

// AppendBatch appends one encoded batch (see package codec), assigning it
// the log's next offset: unless the batch already carries that offset, it
// rewrites the batch's first offset and checksum in place. With a Keyring
// it seals the batch then (it must be a plain one). It returns the
// offset. Under SyncAlways the batch is durable when AppendBatch returns.
func (l *Log) AppendBatch(batch []byte) (uint64, error) {
	h, err := codec.PeekHeader(batch)
	if err != nil {
		return 0, err
	}
	if h.Size() != len(batch) {
		return 0, fmt.Errorf("%w: batch of %d bytes announces %d", codec.ErrCorrupt, len(batch), h.Size())
	}
	need := len(batch)
	if l.opts.Keyring != nil && !h.Sealed {
		need = codec.SealedSize(need)
	}
	if need > l.opts.Limits.MaxBatchBytes {
		return 0, fmt.Errorf("%w: %d bytes, a segment holds %d", ErrTooLarge, need, l.opts.Limits.MaxBatchBytes)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.activeFor(need)
	if err != nil {
		return 0, err
	}
	first := l.next.Load()
	k := l.opts.Keyring
	if h.Sealed && h.FirstOffset != first {
		// Sealed ahead for another offset (a Writer's guess): the offset
		// is authenticated, so it is opened, restamped and sealed again.
		if k == nil {
			return 0, fmt.Errorf("%w: a sealed batch for a log without keys", codec.ErrKey)
		}
		if l.scratch, err = k.Unseal(l.scratch[:0], batch, l.opts.Context); err != nil {
			return 0, err
		}
		batch, h.Sealed = l.scratch, false
	}
	if h.FirstOffset != first { // a writer that knew the offset saves a second checksum pass
		if err := codec.Restamp(batch, first); err != nil {
			return 0, err
		}
	}
	if k != nil && !h.Sealed {
		if l.sealed, err = k.Seal(l.sealed[:0], batch, l.opts.Context); err != nil {
			return 0, err
		}
		batch = l.sealed
	}
	end := s.end.Load()
	if _, err := s.f.WriteAt(batch, end); err != nil {
		// Bytes a failed write left past end are overwritten by the next
		// append, or cut off as a torn tail by the next Open.
		if errors.Is(err, errNoSpace) {
			return 0, fmt.Errorf("%w: writing %s: %v", ErrDiskFull, s.name, err)
		}
		return 0, l.fail(fmt.Errorf("writing %s: %w", s.name, err))
	}
	next := first + uint64(h.Count)
	if invariants.Enabled {
		checkAppend(s, first, end, int64(len(batch)))
	}
	s.next.Store(next)
	s.end.Store(end + int64(len(batch)))
	s.mark(end, h.BaseTime)
	s.lastAt.Store(l.now())
	s.dirty.Store(true)
	l.next.Store(next)
	if l.opts.Sync == SyncAlways {
		if err := l.syncNow(s); err != nil {
			return 0, err
		}
	}
	return first, nil
}

// activeFor returns the active segment, rolled to a new one if it cannot
// take size more bytes, once the log is known writable. REQUIRES: l.mu.
func (l *Log) activeFor(size int) (*segment, error) {
	if err := l.writable(); err != nil {
		return nil, err
	}
	segs := l.segments()
	if len(segs) > 0 {
		if s := segs[len(segs)-1]; !s.sealed.Load() && s.end.Load()+int64(size) <= s.size {
			return s, nil
		}
	}
	return l.roll()
}

// syncNow syncs s, the active segment, at once (SyncAlways). REQUIRES: l.mu.
func (l *Log) syncNow(s *segment) error {
	s.dirty.Store(false)
	if err := s.f.Sync(); err != nil {
		return l.fail(fmt.Errorf("syncing %s: %w", s.name, err))
	}
	l.syncs.Add(1)
	return nil
}

// AppendRecords appends recs as one uncompressed batch (codec.AppendPlain)
// and returns the offset of the first record; the others follow in order.
// With Options.Mapped the batch is encoded straight into the segment's
// writable mapping: no copy besides the encoding, no system call (except,
// once per 256 KiB, one that faults the next pages in). Under SyncAlways
// the batch is durable when AppendRecords returns.
func (l *Log) AppendRecords(recs []codec.Record) (uint64, error) {
	size := codec.PlainSize(recs)
	k := l.opts.Keyring
	if k != nil {
		size = codec.SealedSize(size)
	}
	if size > l.opts.Limits.MaxBatchBytes || len(recs) > l.opts.Limits.MaxRecords {
		return 0, fmt.Errorf("%w: %d records in %d bytes, a segment holds %d", ErrTooLarge, len(recs), size, l.opts.Limits.MaxBatchBytes)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.activeFor(size)
	if err != nil {
		return 0, err
	}
	if l.opts.Mapped && s.wdata == nil && !s.mapped {
		s.mapped = true // try once: a file system without reservations stays on WriteAt
		if err := s.makeMapped(); err != nil {
			return 0, err
		}
	}
	first := l.next.Load()
	end := s.end.Load()
	if k != nil { // sealed: encoded plain first, sealed into place
		if l.scratch, err = codec.AppendPlain(l.scratch[:0], first, recs); err != nil {
			return 0, err
		}
	}
	if s.wdata != nil {
		var encErr error // none: the size was checked above, and the segment is unchanged if not
		dst := s.wdata[end : end : end+int64(size)]
		store := func() { _, encErr = codec.AppendPlain(dst, first, recs) }
		if k != nil {
			store = func() { _, encErr = k.Seal(dst, l.scratch, l.opts.Context) }
		}
		if ferr := guard(store); ferr != nil {
			return 0, l.fail(fmt.Errorf("storing into %s at %d: %w", s.name, end, ferr))
		}
		if encErr != nil {
			return 0, encErr
		}
		s.prefaultAfter(end, end+int64(size))
	} else {
		var out []byte
		if k == nil {
			l.scratch, err = codec.AppendPlain(l.scratch[:0], first, recs)
			out = l.scratch
		} else {
			l.sealed, err = k.Seal(l.sealed[:0], l.scratch, l.opts.Context)
			out = l.sealed
		}
		if err != nil {
			return 0, err
		}
		if _, err := s.f.WriteAt(out, end); err != nil {
			if errors.Is(err, errNoSpace) {
				return 0, fmt.Errorf("%w: writing %s: %v", ErrDiskFull, s.name, err)
			}
			return 0, l.fail(fmt.Errorf("writing %s: %w", s.name, err))
		}
	}
	next := first + uint64(len(recs))
	if invariants.Enabled {
		checkAppend(s, first, end, int64(size))
	}
	s.next.Store(next)
	s.end.Store(end + int64(size))
	if len(recs) > 0 {
		s.mark(end, recs[0].Timestamp)
	}
	if n := len(recs); n > 0 && recs[n-1].Timestamp != 0 {
		s.lastAt.Store(recs[n-1].Timestamp)
	} else {
		s.stale = true // no time to go by: the seal reads the clock
	}
	if !s.dirty.Load() {
		s.dirty.Store(true)
	}
	l.next.Store(next)
	if l.opts.Sync == SyncAlways {
		if err := l.syncNow(s); err != nil {
			return 0, err
		}
	}
	return first, nil
}

// SkipTo makes the log's next offset at least off: if it is beyond the next
// offset, the active segment is sealed and the next one starts at off,
// marked as following a gap on purpose. An owner whose own records refer
// to offsets the log lost (a tail that a power loss took back) calls it so
// that those offsets are never given to new records.
func (l *Log) SkipTo(off uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	if off <= l.next.Load() {
		return nil
	}
	l.next.Store(off)
	_, err := l.rollGap(true)
	return err
}

// Trim lets the log retire every sealed segment whose records all come
// before off: its owner has settled them. Retention by registered readers
// and by age applies as well; the active segment is never retired.
func (l *Log) Trim(off uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		f := l.floor.Load()
		if off <= f || l.floor.CompareAndSwap(f, off) {
			break
		}
	}
	if !l.closed.Load() {
		l.retain()
	}
}

// usesPreparer reports whether segments are made ahead and sealed by the
// preparer: for mapped logs whose owner syncs (SyncManual) or nobody does.
func (l *Log) usesPreparer() bool {
	return l.opts.Mapped && (l.opts.Sync == SyncManual || l.opts.Sync == SyncNever)
}

// roll seals the active segment and starts a new one. REQUIRES: l.mu.
func (l *Log) roll() (*segment, error) { return l.rollGap(false) }

// rollGap is roll; gap marks the new segment as starting past the old
// one's end on purpose (SkipTo). REQUIRES: l.mu.
func (l *Log) rollGap(gap bool) (*segment, error) {
	segs := l.segments()
	durable := l.opts.Sync != SyncNever
	var old *segment
	if len(segs) > 0 {
		old = segs[len(segs)-1]
		if durable && !l.usesPreparer() && old.dirty.Swap(false) {
			if err := old.f.Sync(); err != nil {
				return nil, l.fail(fmt.Errorf("syncing %s: %w", old.name, err))
			}
			l.syncs.Add(1)
		}
	}
	if q := l.opts.MaxBytes; q > 0 && l.diskBytes.Load()+l.opts.SegmentSize > q {
		l.retain()
		if l.diskBytes.Load()+l.opts.SegmentSize > q {
			return nil, fmt.Errorf("%w: quota of %d bytes, %d in use, a segment needs %d", ErrDiskFull, q, l.diskBytes.Load(), l.opts.SegmentSize)
		}
	}
	h := segHeader{base: l.next.Load(), created: l.now(), size: l.opts.SegmentSize}
	if gap {
		h.flags |= segGap
	}
	// A prepared segment is charged to the quota already; its directory
	// entry is synced by the next Sync (SyncManual), before anything in it
	// counts as durable.
	prepared := l.prepared != nil
	var s *segment
	var err error
	if prepared {
		if s, err = l.takePrepared(h); err != nil {
			return nil, fmt.Errorf("renaming the prepared segment: %w", err)
		}
	} else {
		if q := l.opts.Quota; q != nil && !q.reserve(l.opts.SegmentSize) {
			l.retain()
			if !q.reserve(l.opts.SegmentSize) {
				return nil, fmt.Errorf("%w: shared quota of %d bytes, %d in use, a segment needs %d", ErrDiskFull, q.max, q.Used(), l.opts.SegmentSize)
			}
		}
		s, err = createSegment(l.fs, l.dir, h, durable, l.opts.Mapped)
		if err == nil {
			l.kickPreparer() // the next one, made ahead
		}
	}
	if !prepared && err != nil {
		if q := l.opts.Quota; q != nil {
			q.release(l.opts.SegmentSize)
		}
		if se := (*syncError)(nil); errors.As(err, &se) {
			return nil, l.fail(fmt.Errorf("creating a segment: %w", err))
		}
		if errors.Is(err, ErrDiskFull) {
			return nil, err
		}
		return nil, fmt.Errorf("creating a segment: %w", err)
	}
	s.indexed = true // new and empty: its appends record every time mark
	if !durable && !prepared {
		l.dirDirty.Store(true) // for Sync, which makes everything so far durable
	}
	if durable && !prepared {
		if err := l.fs.SyncDir(l.dir); err != nil {
			s.retired.Store(true)
			_ = s.release()
			if q := l.opts.Quota; q != nil {
				q.release(l.opts.SegmentSize)
			}
			return nil, l.fail(fmt.Errorf("syncing %s: %w", l.dir, err))
		}
	}
	l.diskBytes.Add(s.size)
	// retain may have retired segments above: build on the list as it is
	// now, or the retired ones would come back (and be retired, and their
	// room released, twice).
	segs = l.segments()
	next := append(slices.Clip(segs), s)
	l.setSegments(next)
	// Readers learn that a segment is done only after its successor is
	// listed, so one that sees sealed finds where to go on.
	if old != nil && !old.retired.Load() {
		if old.stale {
			old.lastAt.Store(l.now())
		}
		old.sealed.Store(true)
		// The seal lets Open trust the segment without scanning it. Its
		// data is synced first (under a syncing policy), so a seal on disk
		// never vouches for batches that are not.
		if l.usesPreparer() {
			l.queueSeal(old)
		} else {
			if err := old.seal(); err != nil {
				return nil, l.fail(fmt.Errorf("sealing %s: %w", old.name, err))
			}
			if durable {
				if err := old.f.Sync(); err != nil {
					return nil, l.fail(fmt.Errorf("syncing %s: %w", old.name, err))
				}
				l.syncs.Add(1)
			}
		}
	}
	l.retain()
	return s, nil
}

// retain retires sealed segments that every registered reader has passed,
// and, with MaxAge, those whose last append is too old. It never retires the
// active segment, which remembers the next offset. REQUIRES: l.mu.
func (l *Log) retain() {
	segs := l.segments()
	if len(segs) <= 1 {
		return
	}
	low := uint64(0)
	if len(l.readers) > 0 {
		low = ^uint64(0)
		for r := range l.readers {
			low = min(low, r.pos.Load())
		}
	}
	var cutoff int64
	if l.opts.MaxAge > 0 {
		cutoff = l.now() - int64(l.opts.MaxAge)
	}
	floor := l.floor.Load()
	n := 0
	for _, s := range segs[:len(segs)-1] {
		consumed := len(l.readers) > 0 && s.next.Load() <= low
		expired := cutoff != 0 && s.lastAt.Load() < cutoff
		trimmed := floor > 0 && s.next.Load() <= floor
		if !consumed && !expired && !trimmed {
			break
		}
		n++
	}
	if n == 0 {
		return
	}
	l.setSegments(slices.Clone(segs[n:]))
	for _, s := range segs[:n] {
		s.retired.Store(true)
		l.diskBytes.Add(-s.size)
		if q := l.opts.Quota; q != nil {
			q.release(s.size)
		}
		_ = s.release()
	}
}

// Dirty reports whether something was appended since the last sync.
func (l *Log) Dirty() bool {
	for _, s := range l.segments() {
		if s.dirty.Load() {
			return true
		}
	}
	return false
}

// Sync makes everything appended so far durable. It returns the sticky
// error if an earlier write or sync failed.
func (l *Log) Sync() error {
	if l.closed.Load() {
		return ErrClosed
	}
	return l.syncDirty()
}

func (l *Log) syncDirty() error {
	if p := l.failed.Load(); p != nil {
		return fmt.Errorf("%w: %w", ErrReadOnly, *p)
	}
	if l.dirDirty.Swap(false) {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return l.fail(fmt.Errorf("syncing %s: %w", l.dir, err))
		}
	}
	l.mu.Lock()
	var dirty []*segment
	for _, s := range l.segments() {
		if s.dirty.Swap(false) {
			s.acquire()
			dirty = append(dirty, s)
		}
	}
	l.mu.Unlock()
	var first error
	for _, s := range dirty {
		if first == nil {
			if err := s.f.Sync(); err != nil {
				first = l.fail(fmt.Errorf("syncing %s: %w", s.name, err))
			} else {
				l.syncs.Add(1)
			}
		}
		_ = s.release()
	}
	return first
}

func (l *Log) syncLoop(every time.Duration) {
	defer l.syncDone.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stopSync:
			return
		case <-t.C:
			_ = l.syncDirty() // a failure is sticky and reported by the next append
		}
	}
}

// Close syncs (unless the policy is SyncNever), stops the log's goroutine,
// releases the segments and the directory lock. It is idempotent. Readers
// should be closed first; a reader used afterwards gets ErrClosed, and its
// segment stays mapped until it is closed.
func (l *Log) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	close(l.stopSync)
	l.syncDone.Wait()
	l.stopPreparer()
	var err error
	if l.opts.Sync != SyncNever && l.failed.Load() == nil {
		err = l.syncDirty()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if cerr := l.closeFiles(); err == nil {
		err = cerr
	}
	return err
}

// closeFiles drops the log's references, the codecs and the lock.
func (l *Log) closeFiles() error {
	var err error
	if p := l.segs.Load(); p != nil {
		for _, s := range *p {
			if q := l.opts.Quota; q != nil {
				q.release(s.size)
			}
			if rerr := s.release(); err == nil {
				err = rerr
			}
		}
		l.setSegments(nil)
	}
	if l.owned && l.enc != nil {
		_ = l.enc.Close()
	}
	if l.dec != nil {
		_ = l.dec.Close()
	}
	if l.lock != nil {
		if lerr := l.lock.Close(); err == nil {
			err = lerr
		}
	}
	return err
}

// checkAppend fails, in builds with the invariants tag, unless a batch of
// size bytes from offset first, written at end of s, follows what s holds
// and fits in it. REQUIRES: l.mu.
func checkAppend(s *segment, first uint64, end, size int64) {
	if s.next.Load() != first {
		invariants.Failf("mmap: %s: a batch at offset %d after offset %d", s.name, first, s.next.Load())
	}
	if end < segHeaderSize || end+size > s.size {
		invariants.Failf("mmap: %s: a batch of %d bytes at %d in a segment of %d", s.name, size, end, s.size)
	}
}

// lockName is the file a log's directory is locked with (flock), held by
// the one open Log.
const lockName = "LOCK"
