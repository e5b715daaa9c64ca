package codec

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/spillway-io/spillway/internal/eventgen"
	"github.com/spillway-io/spillway/internal/race"
)

// TestRoundTrip encodes random batches with every codec, decodes them and
// compares, then re-encodes what was decoded and requires identical bytes.
func TestRoundTrip(t *testing.T) {
	rng := newRand(t)
	g := eventgen.New(rng.Uint64())
	for _, c := range compressions {
		t.Run(c.String(), func(t *testing.T) {
			enc, dec := newCodecs(t, c, Limits{})
			var b Batch
			var buf []byte
			for round := range 60 {
				recs := randomRecords(rng, g, rng.IntN(80))
				first := rng.Uint64()
				var err error
				buf, err = enc.AppendBatch(buf[:0], first, recs)
				if err != nil {
					t.Fatal(err)
				}
				n, err := dec.Decode(buf, &b)
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if n != len(buf) || b.Header.FirstOffset != first || int(b.Header.Count) != len(recs) {
					t.Fatalf("round %d: n=%d of %d, header %+v", round, n, len(buf), b.Header)
				}
				if err := recordsEqual(b.Records, recs); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				again, err := enc.AppendBatch(nil, first, b.Records)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(again, buf) {
					t.Fatalf("round %d: re-encoding the decoded batch changed its bytes", round)
				}
			}
		})
	}
}

// TestConcatenatedBatches decodes a stream of batches back to back, ended
// by a zero-filled tail, as a segment file holds them.
func TestConcatenatedBatches(t *testing.T) {
	rng := newRand(t)
	g := eventgen.New(rng.Uint64())
	enc, dec := newCodecs(t, Zstd, Limits{})
	var stream []byte
	var want [][]Record
	offset := uint64(0)
	for range 20 {
		recs := randomRecords(rng, g, 1+rng.IntN(20))
		var err error
		if stream, err = enc.AppendBatch(stream, offset, recs); err != nil {
			t.Fatal(err)
		}
		want = append(want, recs)
		offset += uint64(len(recs))
	}
	stream = append(stream, make([]byte, 4096)...) // preallocated space
	var b Batch
	offset = 0
	for i := 0; ; i++ {
		n, err := dec.Decode(stream, &b)
		if errors.Is(err, io.EOF) {
			if i != len(want) {
				t.Fatalf("EOF after %d batches, want %d", i, len(want))
			}
			break
		}
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if b.Header.FirstOffset != offset {
			t.Fatalf("batch %d starts at offset %d, want %d", i, b.Header.FirstOffset, offset)
		}
		if err := recordsEqual(b.Records, want[i]); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		offset += uint64(b.Header.Count)
		stream = stream[n:]
	}
}

// TestEmptyBatch: a batch of no records is legal and tiny.
func TestEmptyBatch(t *testing.T) {
	for _, c := range compressions {
		enc, dec := newCodecs(t, c, Limits{})
		buf, err := enc.AppendBatch(nil, 7, nil)
		if err != nil {
			t.Fatal(err)
		}
		var b Batch
		if n, err := dec.Decode(buf, &b); err != nil || n != HeaderSize || len(b.Records) != 0 || b.Header.FirstOffset != 7 {
			t.Fatalf("%v: Decode = %d, %v, %d records", c, n, err, len(b.Records))
		}
	}
}

// TestIncompressibleStoredRaw: a batch that does not shrink is stored with
// codec None, whatever the encoder's codec.
func TestIncompressibleStoredRaw(t *testing.T) {
	rng := newRand(t)
	noise := make([]byte, 4096)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	for _, c := range []Compression{Zstd, S2} {
		enc, dec := newCodecs(t, c, Limits{})
		buf, err := enc.AppendBatch(nil, 0, []Record{{Value: noise}})
		if err != nil {
			t.Fatal(err)
		}
		var b Batch
		if _, err := dec.Decode(buf, &b); err != nil {
			t.Fatal(err)
		}
		if b.Header.Compression != None || !bytes.Equal(b.Records[0].Value, noise) {
			t.Fatalf("%v: stored as %v", c, b.Header.Compression)
		}
	}
}

// TestEncodeLimits: the encoder refuses batches its decoder would refuse,
// and leaves dst as it was.
func TestEncodeLimits(t *testing.T) {
	limits := Limits{MaxBatchBytes: 1000, MaxRawBytes: 2000, MaxRecords: 10}
	enc, dec := newCodecs(t, None, limits)
	prefix := []byte("keep")
	for name, recs := range map[string][]Record{
		"records": make([]Record, 11),
		"raw":     {{Value: make([]byte, 2001)}},
		"stored":  {{Value: make([]byte, 1500)}},
	} {
		out, err := enc.AppendBatch(prefix, 0, recs)
		if !errors.Is(err, ErrTooLarge) || !bytes.Equal(out, prefix) {
			t.Errorf("%s: AppendBatch = %q, %v; want dst unchanged and ErrTooLarge", name, out, err)
		}
	}
	ok, err := enc.AppendBatch(nil, 0, make([]Record, 10))
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	if _, err := dec.Decode(ok, &b); err != nil {
		t.Fatalf("a batch at the limits does not decode: %v", err)
	}
}

// TestClosed: use after Close gets ErrClosed, and Close is idempotent.
func TestClosed(t *testing.T) {
	enc, dec := newCodecs(t, Zstd, Limits{})
	buf, err := enc.AppendBatch(nil, 0, []Record{{Value: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	closeOK(t, enc)
	closeOK(t, dec)
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := enc.AppendBatch(nil, 0, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("AppendBatch after Close = %v", err)
	}
	var b Batch
	if _, err := dec.Decode(buf, &b); !errors.Is(err, ErrClosed) {
		t.Fatalf("Decode after Close = %v", err)
	}
}

// TestSteadyStateAllocs: with a warmed Batch and a dst with room, encoding
// and decoding allocate nothing.
func TestSteadyStateAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector makes sync.Pool drop items and allocate; make test runs this without -race")
	}
	rng := newRand(t)
	recs := randomRecords(rng, eventgen.New(1), 64)
	for _, c := range compressions {
		enc, dec := newCodecs(t, c, Limits{})
		// Warm every pooled zstd state: the encoder and the decoder keep
		// one per P (GOMAXPROCS when they were made), each set up at its
		// first use, and the pools hand them out in turn.
		var buf []byte
		var b Batch
		for range 2 * runtime.GOMAXPROCS(0) {
			var err error
			if buf, err = enc.AppendBatch(buf[:0], 0, recs); err != nil {
				t.Fatal(err)
			}
			if _, err := dec.Decode(buf, &b); err != nil {
				t.Fatal(err)
			}
		}
		encAllocs := testing.AllocsPerRun(50, func() {
			var err error
			if buf, err = enc.AppendBatch(buf[:0], 0, recs); err != nil {
				t.Fatal(err)
			}
		})
		decAllocs := testing.AllocsPerRun(50, func() {
			if _, err := dec.Decode(buf, &b); err != nil {
				t.Fatal(err)
			}
		})
		if encAllocs != 0 || decAllocs != 0 {
			t.Errorf("%v: %v allocs per encode, %v per decode; want 0", c, encAllocs, decAllocs)
		}
	}
}

// TestRestamp moves a batch to another first offset: it still verifies, its
// records keep their contents, and PeekHeader reads the new offset.
func TestRestamp(t *testing.T) {
	rng := newRand(t)
	enc, dec := newCodecs(t, Zstd, Limits{})
	buf, err := enc.AppendBatch(nil, 0, randomRecords(rng, eventgen.New(2), 10))
	if err != nil {
		t.Fatal(err)
	}
	var before Batch
	if _, err := dec.Decode(bytes.Clone(buf), &before); err != nil {
		t.Fatal(err)
	}
	if err := Restamp(buf, 12345); err != nil {
		t.Fatal(err)
	}
	if h, err := PeekHeader(buf); err != nil || h.FirstOffset != 12345 {
		t.Fatalf("PeekHeader = %+v, %v", h, err)
	}
	var after Batch
	if _, err := dec.Decode(buf, &after); err != nil || after.Header.FirstOffset != 12345 {
		t.Fatalf("Decode after Restamp = %+v, %v", after.Header, err)
	}
	if err := recordsEqual(after.Records, before.Records); err != nil {
		t.Fatal(err)
	}
	if err := Restamp(buf[:HeaderSize+1], 1); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Restamp of a cut batch = %v", err)
	}
	if err := Restamp(make([]byte, 100), 1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Restamp of zeros = %v", err)
	}
}

// TestRawBatch: gathering records in a RawBatch and compressing them with
// AppendRaw gives the bytes AppendBatch gives.
func TestRawBatch(t *testing.T) {
	rng := newRand(t)
	recs := randomRecords(rng, eventgen.New(5), 40)
	for _, c := range compressions {
		enc, _ := newCodecs(t, c, Limits{})
		want, err := enc.AppendBatch(nil, 9, recs)
		if err != nil {
			t.Fatal(err)
		}
		var rb RawBatch
		for i := range recs {
			rb.Add(&recs[i])
		}
		got, err := enc.AppendRaw(nil, 9, &rb)
		if err != nil || !bytes.Equal(got, want) || rb.Count() != len(recs) {
			t.Fatalf("%v: AppendRaw differs from AppendBatch (%v)", c, err)
		}
		rb.Reset()
		if rb.Len() != 0 || rb.Count() != 0 {
			t.Fatal("Reset left records")
		}
	}
}

// TestDetach: after Detach, decoding the next batch into the same Batch
// leaves the records decoded before it intact; without it, they would be
// overwritten (checked too, so that the test can tell).
func TestDetach(t *testing.T) {
	rng := newRand(t)
	g := eventgen.New(rng.Uint64())
	for _, c := range []Compression{Zstd, S2} {
		t.Run(c.String(), func(t *testing.T) {
			enc, dec := newCodecs(t, c, Limits{})
			recsA := randomRecords(rng, g, 50)
			recsB := randomRecords(rng, g, 50)
			bufA, err := enc.AppendBatch(nil, 0, recsA)
			if err != nil {
				t.Fatal(err)
			}
			// B no larger than A once decoded, so that without Detach it is
			// decompressed over A's buffer rather than into a new one.
			var bufB []byte
			for {
				if bufB, err = enc.AppendBatch(bufB[:0], 50, recsB); err != nil {
					t.Fatal(err)
				}
				ha, err := PeekHeader(bufA)
				if err != nil {
					t.Fatal(err)
				}
				hb, err := PeekHeader(bufB)
				if err != nil {
					t.Fatal(err)
				}
				if hb.RawLen <= ha.RawLen {
					break
				}
				recsB = recsB[:len(recsB)-1]
			}
			for _, detach := range []bool{true, false} {
				var b Batch
				if _, err := dec.Decode(bufA, &b); err != nil {
					t.Fatal(err)
				}
				kept := append([]Record(nil), b.Records...) // the slice is reused; its bytes are the question
				if detach {
					b.Detach()
				}
				if _, err := dec.Decode(bufB, &b); err != nil {
					t.Fatal(err)
				}
				err := recordsEqual(kept, recsA)
				if detach && err != nil {
					t.Fatalf("a detached batch's records changed: %v", err)
				}
				if !detach && err == nil {
					t.Fatalf("without Detach the records survived the next Decode: the test cannot tell")
				}
				if err := recordsEqual(b.Records, recsB); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestEncoderOptions: a higher zstd level stores the same records in fewer
// bytes (an ignored level would store the same) and decodes to them; an
// encoder that compresses one batch at a time gives concurrent callers the
// same bytes each; the accessors report what was set.
func TestEncoderOptions(t *testing.T) {
	rng := newRand(t)
	g := eventgen.New(rng.Uint64())
	recs := randomRecords(rng, g, 200)
	fast, err := NewEncoder(WithCompression(Zstd))
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, fast)
	better, err := NewEncoder(WithCompression(Zstd), WithZstdLevel(zstd.SpeedBetterCompression), WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, better)
	if better.Compression() != Zstd {
		t.Fatalf("Compression = %v", better.Compression())
	}
	limits := Limits{MaxBatchBytes: 1 << 20, MaxRawBytes: 4 << 20, MaxRecords: 1000}
	dec, err := NewDecoder(limits)
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, dec)
	if dec.Limits() != limits {
		t.Fatalf("Limits = %+v, want %+v", dec.Limits(), limits)
	}
	small, err := fast.AppendBatch(nil, 1, recs)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	outs := make([][]byte, 4)
	errs := make([]error, 4)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = better.AppendBatch(nil, 1, recs)
		}()
	}
	wg.Wait()
	for i, out := range outs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(out, outs[0]) {
			t.Fatalf("call %d encoded different bytes", i)
		}
	}
	if len(outs[0]) >= len(small) { // an ignored level would store the same bytes
		t.Fatalf("SpeedBetterCompression stored %d bytes, SpeedFastest %d", len(outs[0]), len(small))
	}
	var b Batch
	if _, err := dec.Decode(outs[0], &b); err != nil {
		t.Fatal(err)
	}
	if err := recordsEqual(b.Records, recs); err != nil {
		t.Fatal(err)
	}
}
