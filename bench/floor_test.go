package bench

import (
	"runtime"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/cpu"

	spillway "github.com/spillway-io/spillway"
)

// floorEntry is the Queue's ring slot (spillway's entry): the message's
// three slices as pointer and length, 48 bytes.
type floorEntry struct {
	key     *byte
	keyLen  int
	value   *byte
	valLen  int
	headers *spillway.Header
	hdrLen  int
}

// floorRing is the least a ring can do and still hand messages from one
// goroutine to another safely: one producer, one consumer, no shards, no
// claims, no waits, only the two indices, each on its own cache line and
// each cached by the other side. It is the floor under BenchmarkQueue's
// batch mode, not a queue anyone should use.
//
// Invariants: only the producer writes tail and the free slots, from tail
// up to head+len(buf); only the consumer writes head and the published
// slots, from head up to tail. The producer fills slots, then publishes
// them with one store of tail (a release); the consumer reads them after
// loading tail (an acquire), zeroes them (so the ring does not keep
// messages alive for the collector) and hands them back with one store of
// head.
type floorRing struct {
	_    cpu.CacheLinePad
	head atomic.Uint64
	_    cpu.CacheLinePad
	tail atomic.Uint64
	_    cpu.CacheLinePad
	buf  []floorEntry
}

// floorWait spins on load until it returns something other than old,
// yielding the processor now and then so that the other side runs even
// with one P. It burns a core while it waits: fine for a floor, which only
// ever runs with the other side busy. (Looking less often, with a few
// hundred turns of an empty loop between looks, measured no faster.)
func floorWait(load func() uint64, old uint64) uint64 {
	for spins := 1; ; spins++ {
		if v := load(); v != old {
			return v
		}
		if spins%1024 == 0 {
			runtime.Gosched()
		}
	}
}

// handoffFloor moves b.N messages through a floorRing of capacity size in
// batches of 64, both sides doing what BenchmarkQueue's batch mode does
// with them: the producer fills a []spillway.Message batch and copies it
// into the slots; the consumer fills a []spillway.Delivery from them. The
// difference from Spillway's figure is what shards, waits and the MPSC
// claim cost; the difference from the channel's is what the hardware
// allows.
func handoffFloor(b *testing.B, size int, msgs [][]byte) {
	r := &floorRing{buf: make([]floorEntry, size)}
	mask := uint64(size - 1)
	pair(b, func() {
		batch := make([]spillway.Message, 64)
		var head, tail uint64 // head: the consumer's, as last seen
		for i := 0; i < b.N; i += len(batch) {
			n := min(len(batch), b.N-i)
			for j := range n {
				batch[j] = spillway.Message{Value: msgs[(i+j)%msgPool]}
			}
			for tail+uint64(n)-head > uint64(size) {
				head = floorWait(r.head.Load, head)
			}
			for j := range batch[:n] {
				m := &batch[j]
				e := &r.buf[(tail+uint64(j))&mask]
				e.key, e.keyLen = unsafe.SliceData(m.Key), len(m.Key)
				e.value, e.valLen = unsafe.SliceData(m.Value), len(m.Value)
				e.headers, e.hdrLen = unsafe.SliceData(m.Headers), len(m.Headers)
			}
			tail += uint64(n)
			r.tail.Store(tail)
		}
	}, func() {
		dst := make([]spillway.Delivery, 64)
		var head, tail uint64 // tail: the producer's, as last seen
		for got := 0; got < b.N; {
			if head == tail {
				tail = floorWait(r.tail.Load, tail)
			}
			n := min(len(dst), int(tail-head))
			for j := range dst[:n] {
				e := &r.buf[(head+uint64(j))&mask]
				dst[j] = spillway.Delivery{
					Message: spillway.Message{
						Key:     unsafe.Slice(e.key, e.keyLen),
						Value:   unsafe.Slice(e.value, e.valLen),
						Headers: unsafe.Slice(e.headers, e.hdrLen),
					},
					Offset:  head + uint64(j),
					Attempt: 1,
				}
				*e = floorEntry{}
			}
			head += uint64(n)
			r.head.Store(head)
			got += n
		}
	})
}
