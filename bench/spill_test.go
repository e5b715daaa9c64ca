package bench

import (
	"runtime"
	"testing"
	"time"

	"github.com/grandecola/bigqueue"
	diskqueue "github.com/nsqio/go-diskqueue"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/internal/benchenv"
	"github.com/spillway-io/spillway/internal/eventgen"
	"github.com/spillway-io/spillway/mmap"
)

// messages returns n realistic 128-byte events, and the times a busy
// producer would have stamped them with.
func messages(n int) ([][]byte, []int64) {
	g := eventgen.New(7)
	out := make([][]byte, n)
	times := make([]int64, n)
	for i := range out {
		out[i] = g.EventOfSize(nil, 128)
		times[i] = g.SendTime()
	}
	return out, times
}

const msgPool = 1 << 14 // distinct messages, cycled through

// BenchmarkSpill writes b.N 128-byte messages to disk and reads them all
// back, in that order, through each implementation. ns/op is per message;
// stored% is what the files hold relative to the message bytes (Spillway
// only: the peers store messages uncompressed).
func BenchmarkSpill(b *testing.B) {
	msgs, times := messages(msgPool)
	for _, c := range []codec.Compression{codec.Zstd, codec.S2} {
		b.Run("impl="+c.String(), func(b *testing.B) { spillSpillway(b, msgs, times, c, nil) })
	}
	// Sealed: every batch encrypted with AES-256-GCM after compression
	// (Options.Encryption); against the same codec unsealed above.
	keys, err := codec.NewKeyring(map[uint32][]byte{1: make([]byte, 32)}, 1)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []codec.Compression{codec.Zstd, codec.S2} {
		b.Run("impl="+c.String()+"+aes", func(b *testing.B) { spillSpillway(b, msgs, times, c, keys) })
	}
	b.Run("impl=s2-floor", func(b *testing.B) { spillFloorS2(b, msgs) })
	b.Run("impl=bigqueue", func(b *testing.B) {
		q, err := bigqueue.NewMmapQueue(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		defer closeOK(b, q)
		b.SetBytes(128)
		b.ReportAllocs()
		defer benchenv.Steal(b)()
		b.ResetTimer()
		for i := range b.N {
			if err := q.Enqueue(msgs[i%msgPool]); err != nil {
				b.Fatal(err)
			}
		}
		written := b.Elapsed()
		for range b.N {
			if _, err := q.Dequeue(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		reportPhases(b, written)
	})
	b.Run("impl=diskqueue", func(b *testing.B) {
		// NSQ's defaults: 100 MiB files, sync every 2500 messages or 2 s.
		q := diskqueue.New("bench", b.TempDir(), 100<<20, 0, 1<<20, 2500, 2*time.Second,
			func(diskqueue.LogLevel, string, ...interface{}) {})
		defer closeOK(b, q)
		b.SetBytes(128)
		b.ReportAllocs()
		defer benchenv.Steal(b)()
		b.ResetTimer()
		for i := range b.N {
			if err := q.Put(msgs[i%msgPool]); err != nil {
				b.Fatal(err)
			}
		}
		for range b.N {
			<-q.ReadChan()
		}
	})
}

func spillSpillway(b *testing.B, msgs [][]byte, times []int64, c codec.Compression, keys *codec.Keyring) {
	enc, err := codec.NewEncoder(codec.WithCompression(c))
	if err != nil {
		b.Fatal(err)
	}
	defer closeOK(b, enc)
	l, _, err := mmap.Open(b.TempDir(), mmap.Options{Encoder: enc, Keyring: keys, Context: []byte("spill-0000-0")})
	if err != nil {
		b.Fatal(err)
	}
	defer closeOK(b, l)
	r, err := l.NewReader(0)
	if err != nil {
		b.Fatal(err)
	}
	defer closeOK(b, r)
	r.SetReadAhead(runtime.GOMAXPROCS(0))
	w := l.NewWriter(mmap.WriterOptions{})
	recs := make([]codec.Record, 256)
	b.SetBytes(128)
	b.ReportAllocs()
	defer benchenv.Steal(b)()
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(len(recs), b.N-i)
		for j := range n {
			k := (i + j) % msgPool
			recs[j] = codec.Record{Value: msgs[k], Timestamp: times[k] + int64(i/msgPool)*int64(time.Second)}
		}
		if _, err := w.Write(recs[:n]); err != nil {
			b.Fatal(err)
		}
		i += n
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	stored := l.Stats().DataBytes
	written := b.Elapsed()
	for read := 0; read < b.N; {
		_, got, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		read += len(got)
	}
	b.StopTimer()
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(100*float64(stored)/float64(128*b.N), "stored%")
	reportPhases(b, written)
}
