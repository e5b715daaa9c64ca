package mmap

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spillway-io/spillway/codec"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChild() // the kill -9 test's child process
		return
	}
	goleak.VerifyTestMain(m)
}

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: pick one and print it)")

func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reproduce with: go test ./mmap -run '^%s$' -seed %d", t.Name(), seed)
		}
	})
	return rand.New(rand.NewPCG(seed, seed>>3))
}

const smallSegment = minSegmentSize

func open(t testing.TB, dir string, opts Options) (*Log, *Recovery) {
	t.Helper()
	if opts.SegmentSize == 0 {
		opts.SegmentSize = smallSegment
	}
	l, rec, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l, rec
}

// batchOf returns n records whose values name their index, v-<i>-, padded
// with pad bytes that do not compress.
func batchOf(start, n, pad int) []codec.Record {
	recs := make([]codec.Record, n)
	for i := range recs {
		v := fmt.Appendf(nil, "v-%d-", start+i)
		rng := rand.New(rand.NewPCG(uint64(start+i), 1))
		for range pad {
			v = append(v, 'a'+byte(rng.IntN(26)))
		}
		recs[i] = codec.Record{Value: v, Timestamp: int64(start + i)}
	}
	return recs
}

// appendBatches appends n batches of per records each (batchOf, with pad),
// the values naming offsets 0 to n*per-1.
func appendBatches(t testing.TB, l *Log, n, per, pad int) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(batchOf(i*per, per, pad)); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll reads from offset from to the end and returns the values in order
// with their offsets.
func readAll(t testing.TB, l *Log, from uint64) (offsets []uint64, values []string) {
	t.Helper()
	r, err := l.NewPeekReader(from)
	if err != nil {
		t.Fatal(err)
	}
	defer closeOK(t, r)
	for {
		first, recs, err := r.Next()
		if errors.Is(err, io.EOF) {
			return offsets, values
		}
		if err != nil {
			t.Fatal(err)
		}
		for i, rec := range recs {
			offsets = append(offsets, first+uint64(i))
			values = append(values, string(rec.Value))
		}
	}
}

// valueIndex is the index batchOf wrote into a record's value, or -1 if v
// is not such a value.
func valueIndex(v string) int {
	var i int
	if _, err := fmt.Sscanf(v, "v-%d-", &i); err != nil {
		return -1
	}
	return i
}

func noneEncoder(t testing.TB) *codec.Encoder {
	enc, err := codec.NewEncoder(codec.WithCompression(codec.None))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, enc) })
	return enc
}
