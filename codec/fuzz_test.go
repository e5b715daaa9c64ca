package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// fuzzLimits are small so that the fuzzer reaches them.
var fuzzLimits = Limits{MaxBatchBytes: 1 << 16, MaxRawBytes: 1 << 18, MaxRecords: 1 << 10}

// FuzzDecode feeds arbitrary bytes to the decoder. When resign is set, the
// input's checksum is recomputed first, so that the fuzzer explores what
// lies behind the checksum: decompression and record parsing. Properties:
// Decode never panics and always returns; it fails only with the package's
// errors or io.EOF; it never allocates beyond the limits; and what it
// decodes re-encodes to the same record bytes.
func FuzzDecode(f *testing.F) {
	dec, err := NewDecoder(fuzzLimits)
	if err != nil {
		f.Fatal(err)
	}
	defer closeOK(f, dec)
	raw, err := NewEncoder(WithCompression(None), WithEncoderLimits(fuzzLimits))
	if err != nil {
		f.Fatal(err)
	}
	defer closeOK(f, raw)
	for _, s := range fuzzSeeds(f) {
		f.Add(s.data, s.resign)
	}
	var b Batch
	f.Fuzz(func(t *testing.T, data []byte, resign bool) {
		if resign && len(data) >= HeaderSize {
			n := min(len(data), HeaderSize+int(binary.LittleEndian.Uint32(data[offStoredLen:])))
			binary.LittleEndian.PutUint64(data[offChecksum:], checksum(data, data[HeaderSize:n]))
		}
		n, err := dec.Decode(data, &b)
		if cap(b.payload) > fuzzLimits.MaxRawBytes || cap(b.Records) > fuzzLimits.MaxRecords {
			t.Fatalf("allocated %d payload bytes and %d records beyond the limits", cap(b.payload), cap(b.Records))
		}
		if err != nil {
			if !isDecodeError(err) && !errors.Is(err, io.EOF) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if n < HeaderSize || n > len(data) || int(b.Header.Count) != len(b.Records) {
			t.Fatalf("n=%d of %d, header %+v, %d records", n, len(data), b.Header, len(b.Records))
		}
		again, err := raw.AppendBatch(nil, b.Header.FirstOffset, b.Records)
		if err != nil {
			t.Fatalf("re-encoding decoded records: %v", err)
		}
		if b.Header.Compression == None && !bytes.Equal(again, data[:n]) {
			t.Fatalf("an uncompressed batch re-encodes to other bytes")
		}
		var c Batch
		if _, err := dec.Decode(again, &c); err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if err := recordsEqual(c.Records, b.Records); err != nil {
			t.Fatalf("re-encoded batch decodes differently: %v", err)
		}
	})
}

// FuzzRoundTrip builds records from arbitrary bytes, encodes them with
// every codec and decodes them: the records must come back exactly, and
// re-encoding them must reproduce the bytes.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("k\x00v\x01"), int64(1), uint64(0))
	f.Add(bytes.Repeat([]byte("event payload "), 50), int64(-5), uint64(1<<40))
	f.Add([]byte{0xff, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9}, int64(1<<62), uint64(1))
	encs := map[Compression]*Encoder{}
	for _, c := range compressions {
		e, err := NewEncoder(WithCompression(c), WithEncoderLimits(fuzzLimits))
		if err != nil {
			f.Fatal(err)
		}
		defer closeOK(f, e)
		encs[c] = e
	}
	dec, err := NewDecoder(fuzzLimits)
	if err != nil {
		f.Fatal(err)
	}
	defer closeOK(f, dec)
	var b Batch
	f.Fuzz(func(t *testing.T, data []byte, ts int64, first uint64) {
		recs := recordsFromBytes(data, ts)
		for _, c := range compressions {
			buf, err := encs[c].AppendBatch(nil, first, recs)
			if errors.Is(err, ErrTooLarge) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := dec.Decode(buf, &b); err != nil {
				t.Fatalf("%v: %v", c, err)
			}
			if err := recordsEqual(b.Records, recs); err != nil {
				t.Fatalf("%v: %v", c, err)
			}
			again, err := encs[c].AppendBatch(nil, first, b.Records)
			if err != nil || !bytes.Equal(again, buf) {
				t.Fatalf("%v: re-encoding changed the bytes (%v)", c, err)
			}
		}
	})
}

// recordsFromBytes splits data into records: each byte of control picks
// which fields the next record has, and field bytes come from the rest.
func recordsFromBytes(data []byte, ts int64) []Record {
	var recs []Record
	take := func(n int) []byte {
		n = min(n, len(data))
		v := data[:n:n]
		data = data[n:]
		return v
	}
	for len(data) > 0 && len(recs) < 200 {
		ctl := data[0]
		data = data[1:]
		r := Record{Timestamp: ts + int64(ctl)*1e6}
		size := 1 + int(ctl>>4)*3
		r.Value = take(size)
		if ctl&1 != 0 {
			r.Key = take(1 + int(ctl>>5))
		}
		if ctl&2 != 0 {
			r.Headers = []Header{{Key: take(2), Value: take(int(ctl >> 6))}}
		}
		if ctl&4 != 0 {
			r.ProducerID, r.ProducerSeq = uint64(ctl), uint64(len(data))
		}
		if ctl&8 != 0 {
			r.Attempts = uint32(ctl)
			r.DeliverAt = ts ^ int64(len(data))<<20
			r.ExpiresAt = -ts
		}
		recs = append(recs, r)
	}
	return recs
}

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite codec/testdata/fuzz/FuzzDecode seeds")

type fuzzSeed struct {
	name   string
	data   []byte
	resign bool
}

// fuzzSeeds are the interesting starting points, also checked in under
// testdata/fuzz/FuzzDecode: valid batches of every codec, and truncated,
// bit-flipped, zero-filled and huge-length variants of them.
func fuzzSeeds(tb testing.TB) []fuzzSeed {
	var seeds []fuzzSeed
	for _, c := range compressions {
		e, err := NewEncoder(WithCompression(c), WithEncoderLimits(fuzzLimits))
		if err != nil {
			tb.Fatal(err)
		}
		valid, err := e.AppendBatch(nil, goldenFirstOffset, goldenRecords())
		closeOK(tb, e)
		if err != nil {
			tb.Fatal(err)
		}
		flipped := bytes.Clone(valid)
		flipped[len(flipped)/2] ^= 0x10
		huge := bytes.Clone(valid)
		binary.LittleEndian.PutUint32(huge[offRawLen:], 1<<31)
		two := append(bytes.Clone(valid), valid...)
		seeds = append(seeds,
			fuzzSeed{"valid-" + c.String(), valid, false},
			fuzzSeed{"two-" + c.String(), two, false},
			fuzzSeed{"truncated-" + c.String(), valid[:len(valid)-3], false},
			fuzzSeed{"header-only-" + c.String(), valid[:HeaderSize], true},
			fuzzSeed{"flipped-" + c.String(), flipped, false},
			fuzzSeed{"flipped-resigned-" + c.String(), flipped, true},
			fuzzSeed{"huge-raw-" + c.String(), huge, true},
		)
	}
	seeds = append(seeds,
		fuzzSeed{"zeros", make([]byte, 100), false},
		fuzzSeed{"empty", nil, false},
	)
	if *updateFuzzSeeds {
		dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		for _, s := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\n", s.data, s.resign)
			if err := os.WriteFile(filepath.Join(dir, s.name), []byte(body), 0o644); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return seeds
}
