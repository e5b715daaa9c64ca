package codec

import (
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/spillway-io/spillway/internal/eventgen"
)

// benchRecords is one batch of realistic events: 128 JSON-like records of
// 64 B to 4 KiB with keys, a few headers and producer ids.
func benchRecords() []Record {
	g := eventgen.New(42)
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
	return recs
}

// rawOf returns the batch's record bytes before compression: the "same
// bytes" the raw-codec baselines compress.
func rawOf(b *testing.B, recs []Record) []byte {
	enc, err := NewEncoder(WithCompression(None))
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	buf, err := enc.AppendBatch(nil, 0, recs)
	if err != nil {
		b.Fatal(err)
	}
	return buf[HeaderSize:]
}

// BenchmarkEncode measures AppendBatch per codec (impl=spillway) next to the
// bare compressor on the same record bytes (impl=raw). SetBytes counts the
// uncompressed record bytes; stored% is the stored batch size relative to
// them.
func BenchmarkEncode(b *testing.B) {
	recs := benchRecords()
	raw := rawOf(b, recs)
	for _, c := range compressions {
		b.Run("codec="+c.String()+"/impl=spillway", func(b *testing.B) {
			enc, err := NewEncoder(WithCompression(c))
			if err != nil {
				b.Fatal(err)
			}
			defer enc.Close()
			buf, _ := enc.AppendBatch(nil, 0, recs)
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			for range b.N {
				buf, _ = enc.AppendBatch(buf[:0], 0, recs)
			}
			b.ReportMetric(100*float64(len(buf))/float64(len(raw)), "stored%")
		})
		b.Run("codec="+c.String()+"/impl=raw", func(b *testing.B) {
			var out []byte
			var compress func()
			switch c {
			case None:
				compress = func() { out = append(out[:0], raw...) }
			case Zstd:
				z, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false))
				defer z.Close()
				compress = func() { out = z.EncodeAll(raw, out[:0]) }
			case S2:
				out = make([]byte, s2.MaxEncodedLen(len(raw)))
				compress = func() { s2.Encode(out[:cap(out)], raw) }
			}
			compress()
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			for range b.N {
				compress()
			}
		})
	}
}

// BenchmarkDecode measures Decode per codec (impl=spillway: checksum,
// decompression and record parsing) next to the bare decompressor on the
// same compressed bytes (impl=raw).
func BenchmarkDecode(b *testing.B) {
	recs := benchRecords()
	raw := rawOf(b, recs)
	for _, c := range compressions {
		enc, err := NewEncoder(WithCompression(c))
		if err != nil {
			b.Fatal(err)
		}
		batch, _ := enc.AppendBatch(nil, 0, recs)
		enc.Close()
		b.Run("codec="+c.String()+"/impl=spillway", func(b *testing.B) {
			dec, err := NewDecoder(Limits{})
			if err != nil {
				b.Fatal(err)
			}
			defer dec.Close()
			var bt Batch
			dec.Decode(batch, &bt)
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			for range b.N {
				if _, err := dec.Decode(batch, &bt); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("codec="+c.String()+"/impl=raw", func(b *testing.B) {
			stored := batch[HeaderSize:]
			out := make([]byte, 0, len(raw))
			var decompress func()
			switch c {
			case None:
				decompress = func() { out = append(out[:0], stored...) }
			case Zstd:
				z, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0))
				defer z.Close()
				decompress = func() { out, _ = z.DecodeAll(stored, out[:0]) }
			case S2:
				decompress = func() { out, _ = s2.Decode(out[:cap(out)], stored) }
			}
			decompress()
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			for range b.N {
				decompress()
			}
		})
	}
}
