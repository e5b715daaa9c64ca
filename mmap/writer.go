package mmap

import (
	"errors"
	"runtime"
	"sync"

	"github.com/spillway-io/spillway/codec"
)

// Writer appends records to a Log in batches, compressing them off the
// caller's goroutine: the caller only encodes its records into the current
// batch (one copy of their bytes); full batches are compressed by worker
// goroutines in parallel (one per P by default) and appended to the log in
// the order they were filled.
// Compression, not the disk, sets the pace of a spill, and this spreads it
// over every core.
//
// Who may call what: Write, Flush and Close from one goroutine at a time.
//
// Invariants: jobs move free → filling (the caller's cur) → submitted,
// where each submitted job is sent once to workers (any order) and once to
// the committer (in submission order). The committer appends a job after
// its worker signals done, then returns it to free. The pool of jobs is
// fixed, which bounds memory and makes Write wait when compression falls
// behind. The first error stops appends and is returned from then on.
type Writer struct {
	l       *Log
	enc     *codec.Encoder
	target  int
	cur     *job
	next    uint64 // predicted offset of the next submitted batch
	free    chan *job
	work    chan *job
	commits chan *job
	err     error // first failure; guarded by mu
	mu      sync.Mutex
	wg      sync.WaitGroup
	closed  bool
}

type job struct {
	raw   codec.RawBatch // records as the caller wrote them, encoded, not compressed
	first uint64         // the offset the batch will most likely get
	out   []byte         // the compressed batch
	err   error
	done  chan struct{} // capacity 1: the worker's signal
	flush chan struct{} // set on flush markers, which carry no records
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
		j.out, j.err = w.enc.AppendRaw(j.out[:0], j.first, &j.raw)
		j.done <- struct{}{}
	}
}

func (w *Writer) commit() {
	defer w.wg.Done()
	for j := range w.commits {
		if j.flush != nil {
			close(j.flush)
			continue
		}
		<-j.done
		err := j.err
		if err == nil && w.failed() == nil {
			_, err = w.l.AppendBatch(j.out)
		}
		if err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
		}
		j.raw.Reset()
		j.err = nil
		w.free <- j
	}
}

func (w *Writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Write copies recs into the current batch, submitting it for compression
// each time it reaches the target size. It returns the first error of an
// earlier batch, if any: from then on nothing more is appended.
func (w *Writer) Write(recs []codec.Record) error {
	if w.closed {
		return ErrClosed
	}
	if err := w.failed(); err != nil {
		return err
	}
	for i := range recs {
		if w.cur == nil {
			w.cur = <-w.free
		}
		w.cur.raw.Add(&recs[i])
		if w.cur.raw.Len() >= w.target || w.cur.raw.Count() >= w.l.opts.Limits.MaxRecords {
			w.submit()
		}
	}
	return nil
}

func (w *Writer) submit() {
	j := w.cur
	w.cur = nil
	// Predict the offset, so that the log need not restamp the batch;
	// appends from elsewhere only make the prediction wrong, not the log.
	j.first = w.next
	w.next += uint64(j.raw.Count())
	w.work <- j
	w.commits <- j
}

// Flush submits the current batch and waits until everything written so far
// has been appended to the log (and is visible to its readers). It returns
// the first error, if any.
func (w *Writer) Flush() error {
	if w.closed {
		return ErrClosed
	}
	if w.cur != nil && w.cur.raw.Count() > 0 {
		w.submit()
	}
	marker := &job{flush: make(chan struct{})}
	w.commits <- marker
	<-marker.flush
	return w.failed()
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
	if err != nil && !errors.Is(err, ErrClosed) {
		return err
	}
	return w.failed()
}
