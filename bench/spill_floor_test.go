package bench

import (
	"encoding/binary"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/s2"

	"github.com/spillway-io/spillway/internal/benchenv"
)

// floorSinkBytes keeps the reader's loads of the messages.
var floorSinkBytes int

// spillFloorS2 is the least a spill compressed with S2 can cost on this
// machine, in BenchmarkSpill's shape (write b.N messages, then read them
// all back): the caller copies each message, after a length prefix, into
// 256 KiB batches; one goroutine per P compresses them; the compressed
// batches stay in memory (in arenas of 4 MiB: fresh memory, as the page
// cache a spill writes into is). Then one goroutine per P decompresses
// them, ahead of the reader, into recycled buffers, and the reader walks
// them message by message, in order. No file, no checksum, no format, no
// fresh memory for the read messages, no queue: what is left is copying,
// S2 and the hand-offs between goroutines. Not a spill anyone should use,
// only the floor under Spillway's.
func spillFloorS2(b *testing.B, msgs [][]byte) {
	const batchBytes = 256 << 10
	workers := runtime.GOMAXPROCS(0)
	maxLen := 0
	for _, m := range msgs {
		maxLen = max(maxLen, len(m))
	}
	bufCap := batchBytes + binary.MaxVarintLen64 + maxLen // a batch is cut once it holds batchBytes
	// Raw batches circulate through free. Each compressed batch has its
	// own index in stored, written by one worker; a batch holds at least
	// batchBytes/(maxLen+MaxVarintLen64) messages, so stored never grows.
	free := make(chan []byte, 2*workers)
	for range cap(free) {
		free <- make([]byte, 0, bufCap)
	}
	stored := make([][]byte, b.N/(batchBytes/(maxLen+binary.MaxVarintLen64))+2)
	type job struct {
		k   int
		raw []byte
	}
	b.SetBytes(128)
	b.ReportAllocs()
	defer benchenv.Steal(b)()
	b.ResetTimer()

	work := make(chan job, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each worker compresses into its own scratch and keeps the
			// result in 4 MiB arenas of its own.
			var scratch, arena []byte
			for j := range work {
				if need := s2.MaxEncodedLen(len(j.raw)); cap(scratch) < need {
					scratch = make([]byte, need)
				}
				out := s2.Encode(scratch, j.raw)
				if cap(arena)-len(arena) < len(out) {
					arena = make([]byte, 0, max(4<<20, len(out)))
				}
				start := len(arena)
				arena = append(arena, out...)
				stored[j.k] = arena[start:len(arena):len(arena)]
				free <- j.raw[:0]
			}
		}()
	}
	raw := <-free
	batches := 0
	submit := func() {
		work <- job{batches, raw}
		batches++
		raw = <-free
	}
	for i := range b.N {
		m := msgs[i%msgPool]
		raw = binary.AppendUvarint(raw, uint64(len(m)))
		raw = append(raw, m...)
		if len(raw) >= batchBytes {
			submit()
		}
	}
	if len(raw) > 0 {
		submit()
	}
	close(work)
	wg.Wait()
	written := b.Elapsed()

	// Read: batch k is decoded into a buffer from decoded and handed over
	// on ready[k%len(ready)], in order per slot; the reader takes them in
	// order and gives each buffer back when it has walked it.
	decoded := make(chan []byte, 2*workers)
	for range cap(decoded) {
		decoded <- make([]byte, 0, bufCap)
	}
	ready := make([]chan []byte, 2*workers)
	for i := range ready {
		ready[i] = make(chan []byte, 1)
	}
	next := make(chan int, len(ready))
	var rwg sync.WaitGroup
	for range workers {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for k := range next {
				n, err := s2.DecodedLen(stored[k])
				if err != nil {
					panic(err) // the floor's own data: cannot happen
				}
				buf := <-decoded
				out, err := s2.Decode(buf[:n], stored[k])
				if err != nil {
					panic(err) // the floor's own data: cannot happen
				}
				ready[k%len(ready)] <- out
			}
		}()
	}
	// Keep len(ready) batches in flight: batch k+len(ready) is queued only
	// once batch k was taken, so no two batches in flight share a slot.
	for k := range min(len(ready), batches) {
		next <- k
	}
	read, sink := 0, 0
	for k := range batches {
		buf := <-ready[k%len(ready)]
		if k+len(ready) < batches {
			next <- k + len(ready)
		}
		for off := 0; off < len(buf); read++ {
			n, w := binary.Uvarint(buf[off:])
			off += w
			if n > 0 {
				sink += int(buf[off])
			}
			off += int(n)
		}
		decoded <- buf[:0]
	}
	close(next)
	rwg.Wait()
	b.StopTimer()
	if read != b.N {
		b.Fatalf("read %d messages, wrote %d", read, b.N)
	}
	floorSinkBytes = sink
	reportPhases(b, written)
}
