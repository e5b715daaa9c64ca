package mmap_test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/mmap"
)

// A log in a directory: append batches, read them back from any retained
// offset, reopen after a crash (here a clean close) and go on where it
// ended.
func Example() {
	dir, err := os.MkdirTemp("", "mmap-example")
	if err != nil {
		log.Fatal(err)
	}

	l, _, err := mmap.Open(dir, mmap.Options{Sync: mmap.SyncAlways})
	if err != nil {
		log.Fatal(err)
	}
	for i := range 3 {
		off, err := l.Append([]codec.Record{{Value: fmt.Appendf(nil, "batch %d, record 0", i)}, {Value: fmt.Appendf(nil, "batch %d, record 1", i)}})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("appended at", off)
	}
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}

	l, rec, err := mmap.Open(dir, mmap.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("recovered", rec.Batches, "batches, dropped", len(rec.Dropped))
	r, err := l.NewReader(2) // from the second batch's first record
	if err != nil {
		log.Fatal(err)
	}
	for {
		first, recs, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		for i, rc := range recs {
			fmt.Println(first+uint64(i), string(rc.Value))
		}
	}
	if err := r.Close(); err != nil {
		log.Fatal(err)
	}
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		log.Fatal(err)
	}
	// Output:
	// appended at 0
	// appended at 2
	// appended at 4
	// recovered 3 batches, dropped 0
	// 2 batch 1, record 0
	// 3 batch 1, record 1
	// 4 batch 2, record 0
	// 5 batch 2, record 1
}

// A Writer batches records and compresses them on every core, off the
// caller's goroutine; Flush makes what was written readable.
func ExampleLog_NewWriter() {
	dir, err := os.MkdirTemp("", "mmap-example")
	if err != nil {
		log.Fatal(err)
	}
	l, _, err := mmap.Open(dir, mmap.Options{})
	if err != nil {
		log.Fatal(err)
	}
	w := l.NewWriter(mmap.WriterOptions{BatchBytes: 64 << 10})
	recs := make([]codec.Record, 1000)
	for i := range recs {
		recs[i] = codec.Record{Value: fmt.Appendf(nil, "event %d", i)}
	}
	if _, err := w.Write(recs); err != nil {
		log.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	r, err := l.NewReader(0)
	if err != nil {
		log.Fatal(err)
	}
	n := 0
	for {
		_, got, err := r.Next()
		if err != nil {
			break // io.EOF: everything flushed has been read
		}
		n += len(got)
	}
	fmt.Println(n, "records read back")
	if err := r.Close(); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 1000 records read back
}

// events is a run of messages handed to a Writer by reference: the
// Writer's goroutine encodes them (AppendTo), so the caller only gathers
// them.
type events struct{ values [][]byte }

func (e *events) AppendTo(rb *codec.RawBatch) {
	for _, v := range e.values {
		rb.Add(&codec.Record{Value: v})
	}
	e.values = nil // the Writer keeps no reference: let go of the messages
}

// WriteDeferred hands the Writer a batch of records by reference: the
// caller's goroutine neither copies nor encodes them. The records' bytes
// must stay as they are until they are encoded.
func ExampleWriter_WriteDeferred() {
	dir, err := os.MkdirTemp("", "mmap-example")
	if err != nil {
		log.Fatal(err)
	}
	l, _, err := mmap.Open(dir, mmap.Options{})
	if err != nil {
		log.Fatal(err)
	}
	w := l.NewWriter(mmap.WriterOptions{})
	for b := range 3 {
		batch := &events{}
		for i := range 100 {
			batch.values = append(batch.values, fmt.Appendf(nil, "event %d", 100*b+i))
		}
		if err := w.WriteDeferred(batch, len(batch.values)); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	r, err := l.NewReader(0)
	if err != nil {
		log.Fatal(err)
	}
	for {
		first, recs, err := r.Next()
		if err != nil {
			break // io.EOF: everything flushed has been read
		}
		fmt.Println("batch at", first, "of", len(recs), "records, the last", string(recs[len(recs)-1].Value))
	}
	if err := r.Close(); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		log.Fatal(err)
	}
	// Output:
	// batch at 0 of 100 records, the last event 99
	// batch at 100 of 100 records, the last event 199
	// batch at 200 of 100 records, the last event 299
}

// A reader that decodes ahead on other goroutines, driven without ever
// blocking on a decode: TryNext returns ErrNotReady while the next batch is
// being decoded, and OnDecoded says when to try again. Detach lets the
// caller keep the records' bytes past the next call, without a copy.
func ExampleReader_TryNext() {
	dir, err := os.MkdirTemp("", "mmap-example")
	if err != nil {
		log.Fatal(err)
	}
	l, _, err := mmap.Open(dir, mmap.Options{})
	if err != nil {
		log.Fatal(err)
	}
	for b := range 10 {
		recs := make([]codec.Record, 100)
		for i := range recs {
			recs[i] = codec.Record{Value: fmt.Appendf(nil, "event %d", b*100+i)}
		}
		if _, err := l.Append(recs); err != nil {
			log.Fatal(err)
		}
	}
	r, err := l.NewReader(0)
	if err != nil {
		log.Fatal(err)
	}
	ready := make(chan struct{}, 1)
	r.SetReadAhead(2)
	r.OnDecoded(func() {
		select {
		case ready <- struct{}{}:
		default:
		}
	})
	var kept [][]byte
	for {
		_, recs, err := r.TryNext()
		if errors.Is(err, mmap.ErrNotReady) {
			<-ready // or do other work meanwhile
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		r.Detach() // recs' bytes are ours now: the next batch decodes elsewhere
		for _, rc := range recs {
			kept = append(kept, rc.Value)
		}
	}
	fmt.Println(len(kept), "records kept;", string(kept[0]), "...", string(kept[len(kept)-1]))
	if err := r.Close(); err != nil {
		log.Fatal(err)
	}
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 1000 records kept; event 0 ... event 999
}
