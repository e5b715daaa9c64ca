package mmap

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/spillway-io/spillway/codec"
)

// Writer appends records to a Log in batches, compressing them off the
// caller's goroutine: the caller only encodes its records into the current
// batch (one copy of their bytes), or, with WriteDeferred, not even that:
// it hands over a batch of references that a worker encodes. Full batches
// are compressed by worker goroutines in parallel (one per P by default)
// and appended to the log in the order they were filled. Compression, not
// the disk, sets the pace of a spill, and this spreads it over every core.
//
// Who may call what: Write, WriteDeferred, Flush and Close from one
// goroutine at a time.
type Writer struct {
	// Invariants: jobs move free → filling (the caller's cur) → submitted,
	// where each submitted job is sent once to workers (any order) and once to
	// the committer (in submission order). A job with a src (WriteDeferred)
	// has its raw filled by its worker, before compressing. The committer
	// appends a job after its worker signals done, then returns it to free.
	// The pool of jobs is fixed, which bounds memory and makes Write wait when
	// compression falls behind. The first error stops appends and is returned
	// from then on.

	l       *Log
	enc     *codec.Encoder
	target  int
	cur     *job
	next    uint64 // predicted offset of the next submitted batch
	free    chan *job
	work    chan *job
	commits chan *job
	stallc  chan struct{} // capacity 1: the committer has stalled on a full disk
	err     error         // first failure other than a full disk; guarded by mu
	mu      sync.Mutex
	hasErr  atomic.Bool // err is set: lets Write skip mu while all is well
	wg      sync.WaitGroup
	closed  bool

	// Batches that did not fit on disk (ErrDiskFull), oldest first, kept
	// for a retry: a full disk loses nothing. Owned by the committer.
	stalled []*job
	full    atomic.Bool // len(stalled) > 0
	lost    atomic.Uint64
}

// job is one batch in the Writer's pipeline (see Writer's invariants).
type job struct {
	raw   codec.RawBatch // records as the caller wrote them, encoded, not compressed
	src   Deferred       // records the worker encodes into raw first (WriteDeferred)
	first uint64         // the offset the batch will most likely get
	out   []byte         // the compressed batch (sealed, with a Keyring)
	plain []byte         // the compressed batch before sealing, with a Keyring
	err   error
	done  chan struct{} // capacity 1: the worker's signal
	flush chan struct{} // set on markers, which carry no records: retry stalled batches, then close
}

// WriterOptions configure a Writer.
type WriterOptions struct {
	// BatchBytes is the size of record bytes at which a batch is cut.
	// Default 256 KiB.
	BatchBytes int
	// Workers is the number of compressing goroutines. Default GOMAXPROCS.
	Workers int
	// Encoder compresses the batches. Default: the log's encoder.
	Encoder *codec.Encoder
}

// NewWriter starts a Writer on l; Close it to stop its goroutines.
func (l *Log) NewWriter(opts WriterOptions) *Writer {
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = 256 << 10
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Encoder == nil {
		opts.Encoder = l.enc
	}
	depth := 2*opts.Workers + 1
	w := &Writer{
		l:       l,
		next:    l.NextOffset(),
		enc:     opts.Encoder,
		target:  opts.BatchBytes,
		free:    make(chan *job, depth),
		work:    make(chan *job, depth),
		commits: make(chan *job, depth+1),
		stallc:  make(chan struct{}, 1),
	}
	for range depth {
		w.free <- &job{done: make(chan struct{}, 1)}
	}
	for range opts.Workers {
		w.wg.Add(1)
		go w.compress()
	}
	w.wg.Add(1)
	go w.commit()
	return w
}

func (w *Writer) compress() {
	defer w.wg.Done()
	for j := range w.work {
		if j.src != nil {
			j.src.AppendTo(&j.raw)
			j.src = nil
		}
		if k := w.l.opts.Keyring; k != nil {
			// Sealed here, on the workers, for the offset the batch will
			// most likely get (AppendBatch seals it again if not).
			j.plain, j.err = w.enc.AppendRaw(j.plain[:0], j.first, &j.raw)
			if j.err == nil {
				j.out, j.err = k.Seal(j.out[:0], j.plain, w.l.opts.Context)
			}
		} else {
			j.out, j.err = w.enc.AppendRaw(j.out[:0], j.first, &j.raw)
		}
		j.done <- struct{}{}
	}
}

func (w *Writer) commit() {
	defer w.wg.Done()
	for j := range w.commits {
		if j.flush != nil {
			w.retry()
			close(j.flush)
			continue
		}
		<-j.done
		if j.err != nil {
			w.fatal(j.err, j)
			continue
		}
		if w.full.Load() { // keep the order: behind what is waiting
			w.stalled = append(w.stalled, j)
			continue
		}
		w.append(j)
	}
}

// append appends j to the log, or keeps it for a retry if the disk is full.
func (w *Writer) append(j *job) bool {
	if w.failed() != nil {
		w.fatal(nil, j)
		return true
	}
	_, err := w.l.AppendBatch(j.out)
	switch {
	case err == nil:
		w.recycle(j)
		return true
	case errors.Is(err, ErrDiskFull):
		w.stalled = append(w.stalled, j)
		w.full.Store(true)
		select {
		case w.stallc <- struct{}{}:
		default:
		}
		return false
	default:
		w.fatal(err, j)
		return true
	}
}

// retry appends the stalled batches, oldest first, until one still does not
// fit.
func (w *Writer) retry() {
	stalled := w.stalled
	w.stalled = nil
	w.full.Store(false)
	for i, j := range stalled {
		if !w.append(j) {
			// j went back at the end of w.stalled; keep the rest behind it.
			w.stalled = append(w.stalled, stalled[i+1:]...)
			return
		}
	}
}

// fatal records the first failure other than a full disk; j's records are
// lost, and counted.
func (w *Writer) fatal(err error, j *job) {
	w.mu.Lock()
	if w.err == nil && err != nil {
		w.err = err
		w.hasErr.Store(true)
	}
	w.mu.Unlock()
	w.lost.Add(uint64(j.raw.Count()))
	w.recycle(j)
}

func (w *Writer) recycle(j *job) {
	j.raw.Reset()
	j.err = nil
	w.free <- j
}

func (w *Writer) failed() error {
	if !w.hasErr.Load() {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Lost returns how many records were lost to failures other than a full
// disk (a write or sync error that made the log read-only).
func (w *Writer) Lost() uint64 { return w.lost.Load() }

// Stalled reports whether batches wait in memory for disk space (the next
// Write or Flush retries them). Any goroutine may call it.
func (w *Writer) Stalled() bool { return w.full.Load() }

// round sends a marker through the committer: stalled batches are retried,
// and everything submitted before it is settled when it returns.
func (w *Writer) round() {
	marker := &job{flush: make(chan struct{})}
	w.commits <- marker
	<-marker.flush
}

// Write copies recs into the current batch, submitting it for compression
// each time it reaches the target size, and returns how many records it
// took. It takes fewer than len(recs) only with an error:
//
//   - ErrDiskFull (wrapped) when the disk or quota is full and the batches
//     that did not fit have used up the writer's buffers. Nothing taken is
//     lost: the batches wait in memory and are appended as space frees up
//     (at the next Write or Flush). Write again later.
//   - the first other failure of an earlier batch (the log is read-only
//     then); its records are lost and counted by Lost.
func (w *Writer) Write(recs []codec.Record) (int, error) {
	if w.closed {
		return 0, ErrClosed
	}
	if err := w.failed(); err != nil {
		return 0, err
	}
	for i := range recs {
		if w.cur == nil {
			if err := w.acquire(); err != nil {
				return i, err
			}
		}
		w.cur.raw.Add(&recs[i])
		if w.cur.raw.Len() >= w.target || w.cur.raw.Count() >= w.l.opts.Limits.MaxRecords {
			w.submit()
		}
	}
	return len(recs), nil
}

// acquire takes a free job for w.cur, retrying stalled batches when there is
// none because they hold them all.
func (w *Writer) acquire() error {
	select {
	case w.cur = <-w.free:
		return nil
	default:
	}
	for {
		select {
		case w.cur = <-w.free:
			return nil
		case <-w.stallc:
			w.round()
			select {
			case w.cur = <-w.free:
				return nil
			default:
			}
			if w.full.Load() {
				return fmt.Errorf("%w: %d batches wait for space", ErrDiskFull, len(w.free))
			}
		}
	}
}

func (w *Writer) submit() { w.submitCount(w.cur.raw.Count()) }

// submitCount submits w.cur, which holds (or will hold, once its worker
// encoded its source) count records.
func (w *Writer) submitCount(count int) {
	j := w.cur
	w.cur = nil
	// Predict the offset, so that the log need not restamp the batch;
	// appends from elsewhere only make the prediction wrong, not the log.
	j.first = w.next
	w.next += uint64(count)
	w.work <- j
	w.commits <- j
}

// Deferred is a run of records handed to a Writer by reference
// (WriteDeferred): one of the Writer's compressing goroutines encodes them,
// so that the caller's goroutine pays for neither copying nor encoding
// their bytes, only for gathering the references.
type Deferred interface {
	// AppendTo adds the records to rb (RawBatch.Add), in order, and then
	// lets go of them: the Writer calls it once, on one of its own
	// goroutines, and holds no reference to the Deferred after it returns.
	// It must add exactly the count given to WriteDeferred, and stay
	// within the log's limits (codec.Limits), as a batch cut at the
	// Writer's BatchBytes does; a batch beyond them is lost and counted by
	// Lost, like one that failed to append.
	AppendTo(rb *codec.RawBatch)
}

// WriteDeferred submits d, count records, as a batch of its own, after
// whatever Write has gathered so far; the caller must not touch the records'
// bytes until d's AppendTo has run (messages that are immutable once sent
// need no care). It returns nil once the batch is submitted, and otherwise,
// having taken nothing, the errors Write returns (ErrDiskFull, wrapped,
// when the batches waiting for disk space use up the writer's buffers;
// submit d again later).
func (w *Writer) WriteDeferred(d Deferred, count int) error {
	if w.closed {
		return ErrClosed
	}
	if err := w.failed(); err != nil {
		return err
	}
	if w.cur != nil && w.cur.raw.Count() > 0 {
		w.submit()
	}
	if w.cur == nil {
		if err := w.acquire(); err != nil {
			return err
		}
	}
	w.cur.src = d
	w.submitCount(count)
	return nil
}

// Flush submits the current batch and waits until everything written so far
// has been appended to the log (and is visible to its readers), retrying
// batches that waited for space. It returns ErrDiskFull if some still do
// not fit, or the first other error.
func (w *Writer) Flush() error {
	if w.closed {
		return ErrClosed
	}
	if w.cur != nil && w.cur.raw.Count() > 0 {
		w.submit()
	}
	w.round()
	if err := w.failed(); err != nil {
		return err
	}
	if w.full.Load() {
		return fmt.Errorf("%w: batches wait for space", ErrDiskFull)
	}
	return nil
}

// Close flushes and stops the Writer's goroutines. It is idempotent; it
// returns the first error of any batch.
func (w *Writer) Close() error {
	if w.closed {
		return w.failed()
	}
	err := w.Flush()
	w.closed = true
	close(w.work)
	close(w.commits)
	w.wg.Wait()
	for _, j := range w.stalled { // never found space: lost, and counted
		w.lost.Add(uint64(j.raw.Count()))
	}
	w.stalled = nil
	if err != nil && !errors.Is(err, ErrClosed) {
		return err
	}
	return w.failed()
}
