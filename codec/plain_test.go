package codec

import (
	"bytes"
	"testing"

	"github.com/spillway-io/spillway/internal/eventgen"
)

// TestPlainSize checks that PlainSize predicts AppendPlain's output to the
// byte, and that AppendPlain writes the same bytes as an Encoder that does
// not compress, for random records with every field.
func TestPlainSize(t *testing.T) {
	rng := newRand(t)
	g := eventgen.New(rng.Uint64())
	enc, dec := newCodecs(t, None, Limits{})
	for round := range 300 {
		recs := randomRecords(rng, g, rng.IntN(40))
		first := rng.Uint64()
		want, err := enc.AppendBatch(nil, first, recs)
		if err != nil {
			t.Fatal(err)
		}
		size := PlainSize(recs)
		// Exactly the room it needs: AppendPlain must stay in dst's array.
		buf := make([]byte, 7, 7+size)
		got, err := AppendPlain(buf, first, recs)
		if err != nil {
			t.Fatal(err)
		}
		if len(got)-7 != size {
			t.Fatalf("round %d: PlainSize %d, AppendPlain wrote %d", round, size, len(got)-7)
		}
		if &got[0] != &buf[0] {
			t.Fatalf("round %d: AppendPlain reallocated a dst with room", round)
		}
		if !bytes.Equal(got[7:], want) {
			t.Fatalf("round %d: AppendPlain differs from the Encoder's uncompressed batch", round)
		}
		var b Batch
		if _, err := dec.Decode(got[7:], &b); err != nil {
			t.Fatal(err)
		}
		if err := recordsEqual(b.Records, recs); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

func TestAppendPlainAllocs(t *testing.T) {
	recs := []Record{{Key: []byte("k"), Value: make([]byte, 128), Timestamp: 1}}
	buf := make([]byte, 0, PlainSize(recs))
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := AppendPlain(buf[:0], 5, recs); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("AppendPlain into a dst with room: %v allocs", allocs)
	}
}

func TestAppendPlainEmpty(t *testing.T) {
	got, err := AppendPlain(nil, 9, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != HeaderSize || PlainSize(nil) != HeaderSize {
		t.Fatalf("empty batch of %d bytes, PlainSize %d", len(got), PlainSize(nil))
	}
	_, dec := newCodecs(t, None, Limits{})
	var b Batch
	n, err := dec.Decode(got, &b)
	if err != nil || n != HeaderSize || b.Header.FirstOffset != 9 || len(b.Records) != 0 {
		t.Fatalf("decoded %d bytes, %+v, %d records, %v", n, b.Header, len(b.Records), err)
	}
}
