package codec

import (
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/spillway-io/spillway/internal/eventgen"
)

// benchBatchCount is how many distinct batches the codec benchmarks cycle
// through. Compressing the same batch again and again lets the CPU's branch
// predictors learn it: S2 then ran at 1.06 GB/s on the spill's 128-byte
// events, against 0.69-0.76 GB/s as soon as two batches alternate (and
// zstd and the decoders the same way), so a single repeated batch flatters
// every codec. It is not the memory: two 256 KiB blocks alternating, in
// the L2 cache together, were as slow as 256 in turn, and touching cold
// input before compressing it changed nothing.
const benchBatchCount = 8

// benchBatches returns benchBatchCount batches of realistic events, each
// 128 JSON-like records of 64 B to 4 KiB (126 KiB on average) with keys, a
// few headers and producer ids, all different (one generator runs through
// them).
func benchBatches() [][]Record {
	g := eventgen.New(42)
	out := make([][]Record, benchBatchCount)
	for k := range out {
		recs := make([]Record, 128)
		for i := range recs {
			recs[i] = Record{Key: g.Key(nil), Value: g.Event(nil), Timestamp: g.Timestamp()}
			if i%8 == 0 {
				recs[i].Headers = []Header{{Key: []byte("trace-id"), Value: []byte("4bf92f3577b34da6a3ce929d0e0e4736")}}
			}
			if i%4 == 0 {
				recs[i].ProducerID, recs[i].ProducerSeq = 3, uint64(i)
			}
		}
		out[k] = recs
	}
	return out
}

// rawOf returns each batch's record bytes before compression: the "same
// bytes" the raw-codec baselines compress, and their mean length, which the
// benchmarks give SetBytes (ns/op is per batch, throughput per record byte).
func rawOf(b *testing.B, batches [][]Record) (raws [][]byte, mean int64) {
	enc, err := NewEncoder(WithCompression(None))
	if err != nil {
		b.Fatal(err)
	}
	defer closeOK(b, enc)
	for _, recs := range batches {
		buf, err := enc.AppendBatch(nil, 0, recs)
		if err != nil {
			b.Fatal(err)
		}
		raws = append(raws, buf[HeaderSize:])
		mean += int64(len(buf) - HeaderSize)
	}
	return raws, mean / int64(len(raws))
}

// BenchmarkEncode measures AppendBatch per codec (impl=spillway) next to the
// bare compressor on the same record bytes (impl=raw), one batch per op,
// cycling through benchBatches. SetBytes counts the uncompressed record
// bytes (their mean per batch); stored% is what the stored batches take
// relative to them.
func BenchmarkEncode(b *testing.B) {
	batches := benchBatches()
	raws, mean := rawOf(b, batches)
	for _, c := range compressions {
		b.Run("codec="+c.String()+"/impl=spillway", func(b *testing.B) {
			enc, err := NewEncoder(WithCompression(c))
			if err != nil {
				b.Fatal(err)
			}
			defer closeOK(b, enc)
			stored, rawBytes := 0, 0
			var buf []byte
			for k, recs := range batches {
				if buf, err = enc.AppendBatch(buf[:0], 0, recs); err != nil {
					b.Fatal(err)
				}
				stored, rawBytes = stored+len(buf), rawBytes+len(raws[k])
			}
			b.ReportAllocs()
			b.SetBytes(mean)
			b.ResetTimer()
			for i := range b.N {
				if buf, err = enc.AppendBatch(buf[:0], 0, batches[i%len(batches)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(100*float64(stored)/float64(rawBytes), "stored%")
		})
		b.Run("codec="+c.String()+"/impl=raw", func(b *testing.B) {
			var out []byte
			var compress func(raw []byte)
			switch c {
			case None:
				compress = func(raw []byte) { out = append(out[:0], raw...) }
			case Zstd:
				z, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false))
				if err != nil {
					b.Fatal(err)
				}
				defer closeOK(b, z)
				compress = func(raw []byte) { out = z.EncodeAll(raw, out[:0]) }
			case S2:
				compress = func(raw []byte) {
					if need := s2.MaxEncodedLen(len(raw)); cap(out) < need {
						out = make([]byte, need)
					}
					s2.Encode(out[:cap(out)], raw)
				}
			}
			for _, raw := range raws {
				compress(raw)
			}
			b.ReportAllocs()
			b.SetBytes(mean)
			b.ResetTimer()
			for i := range b.N {
				compress(raws[i%len(raws)])
			}
		})
	}
}

// BenchmarkDecode measures Decode per codec (impl=spillway: checksum,
// decompression and record parsing) next to the bare decompressor on the
// same compressed bytes (impl=raw), one batch per op, cycling through
// benchBatches as BenchmarkEncode does.
func BenchmarkDecode(b *testing.B) {
	batches := benchBatches()
	raws, mean := rawOf(b, batches)
	for _, c := range compressions {
		enc, err := NewEncoder(WithCompression(c))
		if err != nil {
			b.Fatal(err)
		}
		encoded := make([][]byte, len(batches))
		for k, recs := range batches {
			if encoded[k], err = enc.AppendBatch(nil, 0, recs); err != nil {
				b.Fatal(err)
			}
		}
		closeOK(b, enc)
		b.Run("codec="+c.String()+"/impl=spillway", func(b *testing.B) {
			dec, err := NewDecoder(Limits{})
			if err != nil {
				b.Fatal(err)
			}
			defer closeOK(b, dec)
			var bt Batch
			for _, batch := range encoded {
				if _, err := dec.Decode(batch, &bt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.SetBytes(mean)
			b.ResetTimer()
			for i := range b.N {
				if _, err := dec.Decode(encoded[i%len(encoded)], &bt); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("codec="+c.String()+"/impl=raw", func(b *testing.B) {
			out := make([]byte, 0, 2*mean)
			var decompress func(stored []byte, rawLen int)
			switch c {
			case None:
				decompress = func(stored []byte, _ int) { out = append(out[:0], stored...) }
			case Zstd:
				z, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0))
				if err != nil {
					b.Fatal(err)
				}
				defer z.Close()
				decompress = func(stored []byte, _ int) {
					if out, err = z.DecodeAll(stored, out[:0]); err != nil {
						b.Fatal(err)
					}
				}
			case S2:
				decompress = func(stored []byte, rawLen int) {
					if cap(out) < rawLen {
						out = make([]byte, 0, rawLen)
					}
					var err error
					if out, err = s2.Decode(out[:rawLen], stored); err != nil {
						b.Fatal(err)
					}
				}
			}
			for k, batch := range encoded {
				decompress(batch[HeaderSize:], len(raws[k]))
			}
			b.ReportAllocs()
			b.SetBytes(mean)
			b.ResetTimer()
			for i := range b.N {
				k := i % len(encoded)
				decompress(encoded[k][HeaderSize:], len(raws[k]))
			}
		})
	}
}
