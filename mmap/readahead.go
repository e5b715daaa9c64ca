package mmap

import (
	"io"
	"runtime"
	"sync"

	"github.com/spillway-io/spillway/codec"
)

// SetReadAhead makes the reader decode up to n batches ahead of the caller,
// in parallel, on n goroutines of its own (stopped by Close). Decompression
// then uses every core while the caller consumes. It must be called before
// the first Next. With read-ahead the shared cache is not used.
func (r *Reader) SetReadAhead(n int) {
	if r.pipe == nil {
		r.ahead = max(n, 0)
	}
}

// OnDecoded sets a function that the read-ahead workers call each time they
// finish decoding a batch, on their own goroutines: a caller that got
// ErrNotReady from TryNext can park until then. It must not block, and must
// be set before the first Next or TryNext.
func (r *Reader) OnDecoded(fn func()) {
	if r.pipe == nil {
		r.decoded = fn
	}
}

// readAhead decodes batches on worker goroutines and hands them back in
// order.
//
// Invariants: slots move free → queued (planned by walk, holding a reference
// on their segment, sent to a worker) → returned by nextAhead (its records
// handed to the caller) → free again at the next call, when the reference is
// dropped. queue holds the queued slots in offset order; only the reader's
// goroutine touches it. A worker owns a slot between receiving it and
// signalling done; it calls decoded (set before the workers start, never
// changed) after signalling.
type readAhead struct {
	work    chan *slot
	decoded func() // OnDecoded's function, or nil
	wg      sync.WaitGroup
	queue   []*slot
	free    []*slot
	last    *slot // returned by the previous call: released at the next
	err     error // from walk, reported once the queue has drained
}

// slot is one batch in the read-ahead pipeline: planned by the reader's
// goroutine, decoded by one worker, which signals done (see readAhead's
// invariants for who owns it when).
type slot struct {
	seg  *segment
	at   int64
	h    codec.BatchHeader
	b    codec.Batch
	buf  []byte
	err  error
	done chan struct{} // capacity 1
}

// nextAhead returns the next batch from the pipeline; if wait is false it
// returns ErrNotReady rather than wait for the batch's decoding.
func (r *Reader) nextAhead(wait bool) (uint64, []codec.Record, error) {
	p := r.pipe
	if p == nil {
		p = &readAhead{work: make(chan *slot, r.ahead), decoded: r.decoded}
		for range r.ahead + 1 {
			p.free = append(p.free, &slot{done: make(chan struct{}, 1)})
		}
		for range r.ahead {
			p.wg.Add(1)
			go p.decode(r.l)
		}
		r.pipe = p
	}
	if p.last != nil {
		p.release(p.last)
		p.last = nil
	}
	for {
		for p.err == nil && len(p.queue) < r.ahead {
			seg, at, h, err := r.walk()
			if err != nil {
				if err != io.EOF {
					p.err = err
				}
				break
			}
			s := p.free[len(p.free)-1]
			p.free = p.free[:len(p.free)-1]
			seg.acquire()
			s.seg, s.at, s.h = seg, at, h
			p.queue = append(p.queue, s)
			p.work <- s
		}
		if len(p.queue) == 0 {
			if err := p.err; err != nil {
				p.err = nil
				return 0, nil, err
			}
			return 0, nil, io.EOF
		}
		s := p.queue[0]
		if wait {
			<-s.done
		} else {
			select {
			case <-s.done:
			default:
				return 0, nil, ErrNotReady // s stays at the head of the queue
			}
		}
		p.queue = p.queue[1:]
		if s.err != nil {
			r.pass(s.h)
			p.release(s)
			return 0, nil, s.err
		}
		if first, recs, ok := r.take(&s.b); ok {
			p.last = s
			return first, recs, nil
		}
		p.release(s)
	}
}

func (p *readAhead) decode(l *Log) {
	defer p.wg.Done()
	for s := range p.work {
		s.buf, s.err = l.decodeAt(s.seg, s.at, s.h, &s.b, s.buf)
		s.done <- struct{}{}
		if p.decoded != nil {
			p.decoded()
		}
		// The caller, if it waited for this batch, is now runnable on this
		// P; yield to it rather than start the next batch first. Workers
		// outnumber Ps (one per P per reader), so otherwise it waits in
		// the run queue while the batch it wants is ready: in a trace of
		// BenchmarkQueueSpill that wait was half the read phase.
		runtime.Gosched()
	}
}

func (p *readAhead) release(s *slot) {
	_ = s.seg.release()
	s.seg = nil
	p.free = append(p.free, s)
}

// stop ends the workers and drops every reference the pipeline holds.
func (p *readAhead) stop() {
	close(p.work)
	p.wg.Wait()
	for _, s := range p.queue {
		<-s.done
		p.release(s)
	}
	p.queue = nil
	if p.last != nil {
		p.release(p.last)
		p.last = nil
	}
}
