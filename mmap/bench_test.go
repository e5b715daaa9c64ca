package mmap

import (
	"runtime"
	"testing"
	"time"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/internal/eventgen"
)

// benchMessages returns n realistic 128-byte events as records, stamped as a
// busy producer would stamp them.
func benchMessages(n int) []codec.Record {
	g := eventgen.New(7)
	recs := make([]codec.Record, n)
	for i := range recs {
		recs[i] = codec.Record{Value: g.EventOfSize(nil, 128), Timestamp: g.SendTime()}
	}
	return recs
}

var syncPolicies = []struct {
	name   string
	policy SyncPolicy
}{
	{"never", SyncNever},
	{"interval=100ms", SyncInterval(100 * time.Millisecond)},
	{"always", SyncAlways},
}

// BenchmarkAppendBatch measures the log alone: appending one pre-encoded
// batch (512 records of 128 bytes, zstd) per op under each sync policy.
// SetBytes counts the record bytes; batches/s is ops per second.
func BenchmarkAppendBatch(b *testing.B) {
	recs := benchMessages(512)
	enc, err := codec.NewEncoder()
	if err != nil {
		b.Fatal(err)
	}
	defer closeOK(b, enc)
	batch, err := enc.AppendBatch(nil, 0, recs)
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range syncPolicies {
		b.Run("sync="+p.name, func(b *testing.B) {
			l, _ := open(b, b.TempDir(), Options{Sync: p.policy, SegmentSize: 64 << 20})
			defer closeOK(b, l)
			b.SetBytes(int64(len(recs) * 128))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := l.AppendBatch(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
		})
	}
}

// BenchmarkReadBack measures reading a log of 128-byte records back: copy
// out of the mapping, checksum, decompression, parsing. Each op reads one
// batch of 512 records; batches/s is ops per second. The log holds 16
// different batches in turn: decoding one batch again and again would let
// the branch predictors learn it (see codec's benchBatchCount).
func BenchmarkReadBack(b *testing.B) {
	const perBatch, distinct = 512, 16
	recs := benchMessages(perBatch * distinct)
	for _, c := range []codec.Compression{codec.Zstd, codec.S2, codec.None} {
		b.Run("codec="+c.String(), func(b *testing.B) {
			enc, err := codec.NewEncoder(codec.WithCompression(c))
			if err != nil {
				b.Fatal(err)
			}
			defer closeOK(b, enc)
			l, _ := open(b, b.TempDir(), Options{Encoder: enc, SegmentSize: 64 << 20})
			defer closeOK(b, l)
			const batches = 256
			for k := range batches {
				first := k % distinct * perBatch
				if _, err := l.Append(recs[first : first+perBatch]); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(perBatch * 128)
			b.ReportAllocs()
			b.ResetTimer()
			var r *Reader
			for i := range b.N {
				if i%batches == 0 {
					if r != nil {
						closeOK(b, r)
					}
					var err error
					if r, err = l.NewPeekReader(0); err != nil {
						b.Fatal(err)
					}
				}
				if _, _, err := r.Next(); err != nil {
					b.Fatal(err)
				}
			}
			closeOK(b, r)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
		})
	}
}

// BenchmarkSpill is the spill path end to end: write N 128-byte messages
// through a Writer (batches of 256 KiB, compressed on all cores), flush,
// and read them all back with batches decoded ahead on all cores. ns/op is
// per message; stored% is the log's bytes
// on disk relative to the message bytes.
func BenchmarkSpill(b *testing.B) {
	msgs := benchMessages(1 << 14)
	for _, c := range []codec.Compression{codec.Zstd, codec.S2} {
		b.Run("codec="+c.String(), func(b *testing.B) {
			enc, err := codec.NewEncoder(codec.WithCompression(c))
			if err != nil {
				b.Fatal(err)
			}
			defer closeOK(b, enc)
			l, _ := open(b, b.TempDir(), Options{Encoder: enc, SegmentSize: 64 << 20})
			defer closeOK(b, l)
			r, err := l.NewReader(0)
			if err != nil {
				b.Fatal(err)
			}
			defer closeOK(b, r)
			r.SetReadAhead(runtime.GOMAXPROCS(0))
			w := l.NewWriter(WriterOptions{})
			b.SetBytes(128)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += len(msgs) {
				if _, err := w.Write(msgs[:min(len(msgs), b.N-i)]); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			stored := l.Stats().DataBytes
			read := 0
			for read < b.N {
				_, recs, err := r.Next()
				if err != nil {
					b.Fatal(err)
				}
				read += len(recs)
			}
			b.StopTimer()
			closeOK(b, w)
			b.ReportMetric(100*float64(stored)/float64(128*b.N), "stored%")
		})
	}
}

// BenchmarkRecovery measures Open's scan of a log after a crash: every
// batch verified. Reported as seconds per GiB of log.
func BenchmarkRecovery(b *testing.B) {
	dir := b.TempDir()
	enc, err := codec.NewEncoder(codec.WithCompression(codec.None))
	if err != nil {
		b.Fatal(err)
	}
	defer closeOK(b, enc)
	l, _ := open(b, dir, Options{Encoder: enc, SegmentSize: 64 << 20})
	recs := benchMessages(2048)
	var size int64
	for size < 256<<20 {
		if _, err := l.Append(recs); err != nil {
			b.Fatal(err)
		}
		size += 2048*128 + 2048*3 + codec.HeaderSize
	}
	closeOK(b, l)
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		l, rec, err := Open(dir, Options{SegmentSize: 64 << 20})
		if err != nil || len(rec.Dropped) != 0 {
			b.Fatal(err, rec)
		}
		closeOK(b, l)
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)/(float64(size)/(1<<30)), "s/GiB")
}
