package codec

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spillway-io/spillway/internal/eventgen"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: pick one and print it)")

func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reproduce with: go test ./codec -run '^%s$' -seed %d", t.Name(), seed)
		}
	})
	return rand.New(rand.NewPCG(seed, seed>>1))
}

var compressions = []Compression{None, Zstd, S2}

func newCodecs(t testing.TB, c Compression, limits Limits) (*Encoder, *Decoder) {
	t.Helper()
	enc, err := NewEncoder(WithCompression(c), WithEncoderLimits(limits))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewDecoder(limits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, enc); closeOK(t, dec) })
	return enc, dec
}

// randomRecords returns n records exercising every field, most of them
// absent most of the time, with realistic values.
func randomRecords(rng *rand.Rand, g *eventgen.Generator, n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		r := &recs[i]
		r.Value = g.Event(nil)
		r.Timestamp = g.Timestamp() + int64(rng.IntN(1000)) - 500
		if rng.IntN(3) > 0 {
			r.Key = g.Key(nil)
		}
		if rng.IntN(4) == 0 {
			for range 1 + rng.IntN(3) {
				r.Headers = append(r.Headers, Header{Key: []byte(fmt.Sprintf("h%d", rng.IntN(10))), Value: []byte(fmt.Sprint(rng.Uint32()))})
			}
			if rng.IntN(3) == 0 {
				r.Headers = append(r.Headers, Header{}) // empty key and value are legal
			}
		}
		if rng.IntN(4) == 0 {
			r.ProducerID, r.ProducerSeq = rng.Uint64N(1000), rng.Uint64()
		}
		if rng.IntN(4) == 0 {
			r.Attempts = uint32(1 + rng.IntN(20))
		}
		if rng.IntN(5) == 0 {
			r.DeliverAt = r.Timestamp + int64(rng.IntN(1e9))
		}
		if rng.IntN(5) == 0 {
			r.ExpiresAt = r.Timestamp + int64(rng.IntN(1e12))
		}
		if rng.IntN(50) == 0 {
			r.Value = nil
		}
		if rng.IntN(50) == 0 { // extreme times: deltas wrap around and must still round-trip
			r.Timestamp = int64(rng.Uint64())
			r.DeliverAt = int64(rng.Uint64())
		}
	}
	return recs
}

func recordsEqual(a, b []Record) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d records, want %d", len(a), len(b))
	}
	for i := range a {
		x, y := &a[i], &b[i]
		switch {
		case !bytes.Equal(x.Key, y.Key):
			return fmt.Errorf("record %d: key %q, want %q", i, x.Key, y.Key)
		case !bytes.Equal(x.Value, y.Value):
			return fmt.Errorf("record %d: value differs", i)
		case len(x.Headers) != len(y.Headers):
			return fmt.Errorf("record %d: %d headers, want %d", i, len(x.Headers), len(y.Headers))
		case x.Timestamp != y.Timestamp, x.ProducerID != y.ProducerID, x.ProducerSeq != y.ProducerSeq,
			x.Attempts != y.Attempts, x.DeliverAt != y.DeliverAt, x.ExpiresAt != y.ExpiresAt:
			return fmt.Errorf("record %d: %+v, want %+v", i, *x, *y)
		}
		for j := range x.Headers {
			if !bytes.Equal(x.Headers[j].Key, y.Headers[j].Key) || !bytes.Equal(x.Headers[j].Value, y.Headers[j].Value) {
				return fmt.Errorf("record %d header %d differs", i, j)
			}
		}
	}
	return nil
}
