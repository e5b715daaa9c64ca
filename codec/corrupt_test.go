package codec

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/spillway-io/spillway/internal/eventgen"
)

var decodeErrors = []error{ErrCorrupt, ErrChecksum, ErrTruncated, ErrVersion, ErrTooLarge}

func isDecodeError(err error) bool {
	for _, e := range decodeErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func validBatch(t *testing.T, c Compression) ([]byte, *Decoder) {
	t.Helper()
	rng := newRand(t)
	enc, dec := newCodecs(t, c, Limits{})
	buf, err := enc.AppendBatch(nil, 1000, randomRecords(rng, eventgen.New(rng.Uint64()), 30))
	if err != nil {
		t.Fatal(err)
	}
	return buf, dec
}

// TestTruncatedEverywhere cuts a batch at every length: each prefix is
// ErrTruncated (or io.EOF for the empty one), never a panic or a success.
func TestTruncatedEverywhere(t *testing.T) {
	for _, c := range compressions {
		buf, dec := validBatch(t, c)
		var b Batch
		for n := range len(buf) {
			_, err := dec.Decode(buf[:n], &b)
			want := ErrTruncated
			if n == 0 {
				want = io.EOF
			}
			if !errors.Is(err, want) {
				t.Fatalf("%v: prefix of %d/%d bytes: %v, want %v", c, n, len(buf), err, want)
			}
		}
	}
}

// TestBitFlipsEverywhere flips every bit of a batch in turn: each result is
// a precise decode error.
func TestBitFlipsEverywhere(t *testing.T) {
	for _, c := range compressions {
		buf, dec := validBatch(t, c)
		var b Batch
		step := 1
		if testing.Short() {
			step = 7
		}
		for i := 0; i < len(buf)*8; i += step {
			buf[i/8] ^= 1 << (i % 8)
			_, err := dec.Decode(buf, &b)
			buf[i/8] ^= 1 << (i % 8)
			if !isDecodeError(err) {
				t.Fatalf("%v: bit %d flipped: %v, want a decode error", c, i, err)
			}
		}
	}
}

// TestZeroRunIsEndOfData: zero bytes where a header starts read as io.EOF,
// whatever their length; zeros inside a batch are corruption.
func TestZeroRunIsEndOfData(t *testing.T) {
	_, dec := validBatch(t, Zstd)
	var b Batch
	for _, n := range []int{0, 1, HeaderSize - 1, HeaderSize, 4096} {
		if _, err := dec.Decode(make([]byte, n), &b); !errors.Is(err, io.EOF) {
			t.Errorf("%d zero bytes: %v, want io.EOF", n, err)
		}
	}
	buf, _ := validBatch(t, Zstd)
	clear(buf[HeaderSize:])
	if _, err := dec.Decode(buf, &b); !errors.Is(err, ErrChecksum) {
		t.Errorf("zeroed payload: %v, want ErrChecksum", err)
	}
	hdr := make([]byte, HeaderSize)
	hdr[10] = 1 // zero magic but not all zero: not an end marker
	if _, err := dec.Decode(hdr, &b); !errors.Is(err, ErrCorrupt) {
		t.Errorf("zero magic with other bytes set: %v, want ErrCorrupt", err)
	}
}

// resign recomputes the checksum after a test edits a header, so that the
// check under test is the one that fires.
func resign(buf []byte) {
	binary.LittleEndian.PutUint64(buf[offChecksum:], checksum(buf, buf[HeaderSize:]))
}

// TestHeaderChecks edits one header field at a time (keeping the checksum
// valid) and expects the matching error, before any allocation for it.
func TestHeaderChecks(t *testing.T) {
	limits := Limits{MaxBatchBytes: 1 << 20, MaxRawBytes: 1 << 20, MaxRecords: 1000}
	enc, dec := newCodecs(t, Zstd, limits)
	rng := newRand(t)
	good, err := enc.AppendBatch(nil, 0, randomRecords(rng, eventgen.New(1), 20))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(b []byte)
		want error
	}{
		{"version", func(b []byte) { b[offVersion] = 3 }, ErrVersion},
		{"version 2 without the sealed flag", func(b []byte) { b[offVersion] = 2 }, ErrCorrupt},
		{"codec", func(b []byte) { b[offCodec] = 9 }, ErrCorrupt},
		{"flags", func(b []byte) { b[offFlags] = 1 }, ErrCorrupt},
		{"reserved", func(b []byte) { b[offReserved+3] = 1 }, ErrCorrupt},
		{"huge count", func(b []byte) { binary.LittleEndian.PutUint32(b[offCount:], 1<<31) }, ErrTooLarge},
		{"huge raw length", func(b []byte) { binary.LittleEndian.PutUint32(b[offRawLen:], 1<<31) }, ErrTooLarge},
		{"huge stored length", func(b []byte) { binary.LittleEndian.PutUint32(b[offStoredLen:], 1<<31) }, ErrTooLarge},
		{"stored beyond input", func(b []byte) {
			binary.LittleEndian.PutUint32(b[offStoredLen:], binary.LittleEndian.Uint32(b[offStoredLen:])+1)
		}, ErrTruncated},
		{"count beyond payload", func(b []byte) { binary.LittleEndian.PutUint32(b[offCount:], 999) }, ErrCorrupt},
		{"count too small", func(b []byte) { binary.LittleEndian.PutUint32(b[offCount:], 19) }, ErrCorrupt},
		{"raw length off by one", func(b []byte) {
			binary.LittleEndian.PutUint32(b[offRawLen:], binary.LittleEndian.Uint32(b[offRawLen:])-1)
		}, ErrCorrupt},
	}
	var b Batch
	for _, c := range cases {
		buf := append([]byte(nil), good...)
		c.edit(buf)
		resign(buf)
		if _, err := dec.Decode(buf, &b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if len(b.Records) != 0 {
			t.Errorf("%s: failed Decode left %d records", c.name, len(b.Records))
		}
	}
	if _, err := dec.Decode(good, &b); err != nil {
		t.Fatalf("the unedited batch: %v", err)
	}
}

// TestNonCanonicalRecords: record encodings the encoder never writes are
// refused, so that decoding and re-encoding cannot disagree.
func TestNonCanonicalRecords(t *testing.T) {
	_, dec := newCodecs(t, None, Limits{})
	rawBatch := func(count uint32, payload []byte) []byte {
		buf := make([]byte, HeaderSize, HeaderSize+len(payload))
		putHeader(buf, BatchHeader{Count: count, RawLen: uint32(len(payload)), StoredLen: uint32(len(payload))})
		buf = append(buf, payload...)
		resign(buf)
		return buf
	}
	var b Batch
	if _, err := dec.Decode(rawBatch(1, []byte{0, 0, 1, 'x'}), &b); err != nil || string(b.Records[0].Value) != "x" {
		t.Fatalf("the canonical record does not decode: %v", err)
	}
	for name, payload := range map[string][]byte{
		"unknown flag":        {0x80, 0, 1, 'x'},
		"empty key flagged":   {flagKey, 0, 0, 1, 'x'},
		"non-minimal varint":  {0, 0, 0x81, 0x00, 'x'},
		"zero headers":        {flagHeaders, 0, 1, 'x', 0},
		"zero producer":       {flagProducer, 0, 1, 'x', 0, 0},
		"zero attempts":       {flagAttempts, 0, 1, 'x', 0},
		"zero deliver-at":     {flagDeliverAt, 0, 1, 'x', 0},
		"first time delta":    {0, 2, 1, 'x'},
		"value past payload":  {0, 0, 5, 'x'},
		"trailing bytes":      {0, 0, 1, 'x', 0},
		"overlong uvarint":    {0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"headers past buffer": {flagHeaders, 0, 1, 'x', 3, 0, 0},
	} {
		if _, err := dec.Decode(rawBatch(1, payload), &b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

// TestDecompressionBomb: a small zstd payload that would inflate beyond the
// limits is refused by the header check, and a lying header is caught by the
// capped decoder.
func TestDecompressionBomb(t *testing.T) {
	big := make([]byte, 8<<20)
	enc, _ := newCodecs(t, Zstd, Limits{MaxRawBytes: 16 << 20})
	buf, err := enc.AppendBatch(nil, 0, []Record{{Value: big}})
	if err != nil {
		t.Fatal(err)
	}
	if len(buf) > 4096 {
		t.Fatalf("8 MiB of zeros compressed to %d bytes; the test needs a bomb", len(buf))
	}
	_, small := newCodecs(t, Zstd, Limits{MaxRawBytes: 1 << 20})
	var b Batch
	if _, err := small.Decode(buf, &b); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("bomb: %v, want ErrTooLarge", err)
	}
	// Lie about the raw length: the decoder must stop at the claimed size.
	binary.LittleEndian.PutUint32(buf[offRawLen:], 1000)
	binary.LittleEndian.PutUint32(buf[offCount:], 1)
	resign(buf)
	if _, err := small.Decode(buf, &b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("lying raw length: %v, want ErrCorrupt", err)
	}
	if cap(b.payload) > 1<<20 {
		t.Fatalf("decoder allocated %d bytes for a batch limited to 1 MiB", cap(b.payload))
	}
}
