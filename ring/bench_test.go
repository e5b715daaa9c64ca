package ring

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/spillway-io/spillway/internal/benchenv"
)

// The benchmarks run each ring next to a buffered channel of the same
// capacity, in the same process, moving b.N uint64 items end to end: ns/op is
// nanoseconds per item. Sub-benchmark names carry impl=ring or impl=chan so
// that benchstat -col /impl prints the comparison. Run with GOMAXPROCS=2:
//
//	go test -run '^$' -bench . -cpu 2 -count 6 ./ring | benchstat -col /impl -
//
// Every benchmark that crosses cores also reports steal%, the share of CPU
// time the hypervisor took while it ran (package benchenv): on a shared VM
// it moves these figures by more than the code does.
const benchCap = 4096

var benchCtx = context.Background()

func BenchmarkSPSC(b *testing.B) {
	b.Run("impl=ring", func(b *testing.B) {
		r := NewSPSC[uint64](benchCap)
		runPair(b, func() {
			for i := range b.N {
				if failed(b, r.Push(benchCtx, uint64(i))) {
					return
				}
			}
		}, func() {
			for range b.N {
				if _, err := r.Pop(benchCtx); failed(b, err) {
					return
				}
			}
		})
	})
	b.Run("impl=chan", func(b *testing.B) { benchChanSPSC(b) })
}

func BenchmarkSPSCBatch(b *testing.B) {
	for _, size := range []int{32, 64} {
		b.Run("batch="+itoa(size)+"/impl=ring", func(b *testing.B) {
			r := NewSPSC[uint64](benchCap)
			runPair(b, func() {
				buf := make([]uint64, size)
				for i := 0; i < b.N; i += size {
					n := min(size, b.N-i)
					for j := range n {
						buf[j] = uint64(i + j)
					}
					if _, err := r.PushBatchWait(benchCtx, buf[:n]); failed(b, err) {
						return
					}
				}
			}, func() {
				dst := make([]uint64, size)
				for got := 0; got < b.N; {
					n, err := r.PopBatchWait(benchCtx, dst)
					if failed(b, err) {
						return
					}
					got += n
				}
			})
		})
		b.Run("batch="+itoa(size)+"/impl=chan", func(b *testing.B) { benchChanSPSC(b) })
	}
}

func benchChanSPSC(b *testing.B) {
	ch := make(chan uint64, benchCap)
	runPair(b, func() {
		for i := range b.N {
			ch <- uint64(i)
		}
	}, func() {
		for range b.N {
			<-ch
		}
	})
}

func BenchmarkMPSC(b *testing.B) {
	const producers = 2
	b.Run("impl=ring", func(b *testing.B) {
		r := NewMPSC[uint64](benchCap)
		runMany(b, producers, 1, func(p, n int) {
			for i := range n {
				if failed(b, r.Push(benchCtx, uint64(i))) {
					return
				}
			}
		}, func(c, n int) {
			for range n {
				if _, err := r.Pop(benchCtx); failed(b, err) {
					return
				}
			}
		})
	})
	b.Run("impl=chan", func(b *testing.B) { benchChanMany(b, producers, 1) })
}

// BenchmarkMPSCBatch moves the Queue's ring entry (48 bytes holding three
// pointers) through an MPSC ring in batches of 64, next to a channel of the
// same entries: the ring-level share of the Queue's batch path.
func BenchmarkMPSCBatch(b *testing.B) {
	type entry struct { // the layout of the Queue's: three pointers and their lengths
		_      *byte // key
		_      int
		value  *byte
		valLen int
		_      *int // headers
		_      int
	}
	values := make([]byte, 1<<16)
	pair := func(b *testing.B, produce, consume func()) {
		runPair(b, produce, consume)
		b.SetBytes(int64(unsafe.Sizeof(entry{})))
	}
	b.Run("entry=48B/impl=ring", func(b *testing.B) {
		r := NewMPSC[entry](benchCap)
		pair(b, func() {
			buf := make([]entry, 64)
			for i := 0; i < b.N; i += len(buf) {
				n := min(len(buf), b.N-i)
				for j := range n { // inline: a closure here costs more than the ring
					buf[j] = entry{value: &values[(i+j)&(len(values)-1)], valLen: 128}
				}
				if _, err := r.PushBatchWait(benchCtx, buf[:n]); failed(b, err) {
					return
				}
			}
		}, func() {
			dst := make([]entry, 64)
			for got := 0; got < b.N; {
				n, err := r.PopBatchWait(benchCtx, dst)
				if failed(b, err) {
					return
				}
				got += n
			}
		})
	})
	b.Run("entry=48B/impl=chan", func(b *testing.B) {
		ch := make(chan entry, benchCap)
		pair(b, func() {
			for i := range b.N {
				ch <- entry{value: &values[i&(len(values)-1)], valLen: 128}
			}
		}, func() {
			for range b.N {
				<-ch
			}
		})
	})
}

func BenchmarkMPMC(b *testing.B) {
	const producers, consumers = 2, 2
	b.Run("impl=ring", func(b *testing.B) {
		r := NewMPMC[uint64](benchCap)
		runMany(b, producers, consumers, func(p, n int) {
			for i := range n {
				if failed(b, r.Push(benchCtx, uint64(i))) {
					return
				}
			}
		}, func(c, n int) {
			for range n {
				if _, err := r.Pop(benchCtx); failed(b, err) {
					return
				}
			}
		})
	})
	b.Run("impl=chan", func(b *testing.B) { benchChanMany(b, producers, consumers) })
}

func benchChanMany(b *testing.B, producers, consumers int) {
	ch := make(chan uint64, benchCap)
	runMany(b, producers, consumers, func(p, n int) {
		for i := range n {
			ch <- uint64(i)
		}
	}, func(c, n int) {
		for range n {
			<-ch
		}
	})
}

// BenchmarkBroadcast has one writer deliver every item to 3 readers; the
// channel baseline sends every item to 3 channels, one per reader.
func BenchmarkBroadcast(b *testing.B) {
	const readers = 3
	b.Run("readers=3/impl=ring", func(b *testing.B) {
		r := NewBroadcast[uint64](benchCap)
		rs := make([]*Reader[uint64], readers)
		for i := range rs {
			rs[i] = r.AddReader()
		}
		runMany(b, 1, readers, func(_, n int) {
			for i := range n {
				if failed(b, r.Push(benchCtx, uint64(i))) {
					return
				}
			}
		}, func(c, n int) {
			for range b.N {
				if _, err := rs[c].Pop(benchCtx); failed(b, err) {
					return
				}
			}
		})
	})
	b.Run("readers=3/impl=chan", func(b *testing.B) { benchChanFanOut(b, readers) })
}

// BenchmarkBroadcastBatch is BenchmarkBroadcast with the writer pushing
// batches of 32 and the readers taking up to 64 at a time; the channel
// baseline is the same one-item-per-send fan-out.
func BenchmarkBroadcastBatch(b *testing.B) {
	const readers = 3
	b.Run("readers=3/impl=ring", func(b *testing.B) {
		r := NewBroadcast[uint64](benchCap)
		rs := make([]*Reader[uint64], readers)
		for i := range rs {
			rs[i] = r.AddReader()
		}
		runMany(b, 1, readers, func(_, n int) {
			buf := make([]uint64, 32)
			for i := 0; i < n; i += len(buf) {
				k := min(len(buf), n-i)
				for j := range k {
					buf[j] = uint64(i + j)
				}
				if _, err := r.PushBatchWait(benchCtx, buf[:k]); failed(b, err) {
					return
				}
			}
		}, func(c, _ int) {
			dst := make([]uint64, 64)
			for got := 0; got < b.N; {
				n, err := rs[c].PopBatchWait(benchCtx, dst)
				if failed(b, err) {
					return
				}
				got += n
			}
		})
	})
	b.Run("readers=3/impl=chan", func(b *testing.B) { benchChanFanOut(b, readers) })
}

func benchChanFanOut(b *testing.B, readers int) {
	chs := make([]chan uint64, readers)
	for i := range chs {
		chs[i] = make(chan uint64, benchCap)
	}
	runMany(b, 1, readers, func(_, n int) {
		for i := range n {
			for _, ch := range chs {
				ch <- uint64(i)
			}
		}
	}, func(c, _ int) {
		for range b.N {
			<-chs[c]
		}
	})
}

// BenchmarkPingPong measures a round trip: one item there through one ring and
// back through another, so every hand-off finds the peer waiting.
func BenchmarkPingPong(b *testing.B) {
	b.Run("impl=ring", func(b *testing.B) {
		there, back := NewSPSC[uint64](1), NewSPSC[uint64](1)
		runPair(b, func() {
			for i := range b.N {
				if failed(b, there.Push(benchCtx, uint64(i))) {
					return
				}
				if _, err := back.Pop(benchCtx); failed(b, err) {
					return
				}
			}
		}, func() {
			for range b.N {
				v, err := there.Pop(benchCtx)
				if failed(b, err) {
					return
				}
				if failed(b, back.Push(benchCtx, v)) {
					return
				}
			}
		})
	})
	b.Run("impl=chan", func(b *testing.B) {
		there, back := make(chan uint64, 1), make(chan uint64, 1)
		runPair(b, func() {
			for i := range b.N {
				there <- uint64(i)
				<-back
			}
		}, func() {
			for range b.N {
				back <- <-there
			}
		})
	})
}

// BenchmarkTryPushPop is the single-goroutine cost of one push and one pop,
// the floor under every other figure.
func BenchmarkTryPushPop(b *testing.B) {
	b.Run("kind=SPSC", func(b *testing.B) { benchTry(b, NewSPSC[uint64](benchCap)) })
	b.Run("kind=MPSC", func(b *testing.B) { benchTry(b, NewMPSC[uint64](benchCap)) })
	b.Run("kind=MPMC", func(b *testing.B) { benchTry(b, NewMPMC[uint64](benchCap)) })
	b.Run("kind=chan", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(8)
		ch := make(chan uint64, benchCap)
		for i := range b.N {
			ch <- uint64(i)
			<-ch
		}
	})
}

func benchTry(b *testing.B, q queue[uint64]) {
	b.ReportAllocs()
	b.SetBytes(8)
	for i := range b.N {
		if !q.TryPush(uint64(i)) {
			b.Fatal("TryPush on an empty ring failed")
		}
		if _, ok := q.TryPop(); !ok {
			b.Fatal("TryPop found nothing after a push")
		}
	}
}

// BenchmarkIdle parks a consumer on an empty ring (or, for the baseline, a
// receive on an empty channel) and reports the process's CPU time per wall
// time while it waits, in percent of one core. Each op is one idle period of
// 10 ms followed by one item that wakes the consumer. Both waiters are
// measured over the same window, from the moment the previous item is handed
// over to the next one: it holds the consumer's receive, the ring's bounded
// spin before it parks, and the parked time. The channel figure is the floor:
// what the runtime and the benchmark itself cost while nothing happens.
func BenchmarkIdle(b *testing.B) {
	b.Run("waiter=ring", func(b *testing.B) {
		r := NewSPSC[uint64](benchCap)
		benchIdle(b, func() bool { _, err := r.Pop(benchCtx); return err == nil },
			func(v uint64) {
				if err := r.Push(benchCtx, v); err != nil {
					b.Fatal(err)
				}
			}, r.Close)
	})
	b.Run("waiter=chan", func(b *testing.B) {
		ch := make(chan uint64, benchCap)
		benchIdle(b, func() bool { _, ok := <-ch; return ok },
			func(v uint64) { ch <- v }, func() { close(ch) })
	})
}

func benchIdle(b *testing.B, wait func() bool, wake func(uint64), closeFn func()) {
	b.ReportAllocs()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for wait() {
		}
	}()
	var idleCPU, idleWall time.Duration
	b.ResetTimer()
	for i := range b.N {
		c0, w0 := cpuTime(b), time.Now()
		time.Sleep(10 * time.Millisecond) // the idle period being measured
		idleCPU += cpuTime(b) - c0
		idleWall += time.Since(w0)
		wake(uint64(i))
	}
	b.StopTimer()
	closeFn()
	<-done
	b.ReportMetric(100*float64(idleCPU)/float64(idleWall), "%cpu-idle")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runPair runs produce on a new goroutine and consume on the benchmark's,
// after the usual ReportAllocs/SetBytes/ResetTimer.
func runPair(b *testing.B, produce, consume func()) {
	defer benchenv.Steal(b)()
	b.ReportAllocs()
	b.SetBytes(8)
	b.ResetTimer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		produce()
	}()
	consume()
	<-done
}

// runMany splits b.N items between producers and consumers and runs them all
// on their own goroutines.
func runMany(b *testing.B, producers, consumers int, produce, consume func(id, n int)) {
	defer benchenv.Steal(b)()
	b.ReportAllocs()
	b.SetBytes(8)
	b.ResetTimer()
	var wg sync.WaitGroup
	share := func(total, parts, id int) int {
		n := total / parts
		if id < total%parts {
			n++
		}
		return n
	}
	for p := range producers {
		wg.Add(1)
		go func() { defer wg.Done(); produce(p, share(b.N, producers, p)) }()
	}
	for c := range consumers {
		wg.Add(1)
		go func() { defer wg.Done(); consume(c, share(b.N, consumers, c)) }()
	}
	wg.Wait()
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// BenchmarkCacheLineHop measures the machine rather than the rings: two
// goroutines take turns incrementing one padded atomic, so each op is one
// cache line moving from one core to the other and back (ns/op is a round
// trip). Every hand-off between goroutines on different cores pays this, so
// it is printed next to the ring figures to tell what machine produced them.
func BenchmarkCacheLineHop(b *testing.B) {
	if runtime.GOMAXPROCS(0) < 2 {
		b.Skip("needs two Ps")
	}
	defer benchenv.Steal(b)()
	var line struct {
		_ pad
		v atomic.Uint64
		_ pad
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(1); i < uint64(2*b.N); i += 2 {
			for line.v.Load() != i {
			}
			line.v.Store(i + 1)
		}
	}()
	for i := uint64(0); i < uint64(2*b.N); i += 2 {
		for line.v.Load() != i {
		}
		line.v.Store(i + 1)
	}
	<-done
}

// failed reports err, if any, as the benchmark's failure, from any of its
// goroutines; the caller then stops its loop.
func failed(b *testing.B, err error) bool {
	if err != nil {
		b.Error(err)
		return true
	}
	return false
}
