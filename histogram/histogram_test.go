package histogram

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// The buckets tile [0, 2^maxBits) without gaps or overlaps, and every value
// falls in the bucket whose bounds hold it.
func TestBucketsTile(t *testing.T) {
	next := uint64(0)
	for i := range numBuckets {
		lower, width := bounds(i)
		if lower != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, lower, next)
		}
		if i >= linear && float64(width) > float64(lower)/subCount {
			t.Fatalf("bucket %d: width %d over 1/%d of %d", i, width, subCount, lower)
		}
		for _, v := range []uint64{lower, lower + width/2, lower + width - 1} {
			if b := bucketOf(v); b != i {
				t.Fatalf("value %d in bucket %d, want %d", v, b, i)
			}
		}
		next = lower + width
	}
	if next != 1<<maxBits {
		t.Fatalf("buckets end at %d, want %d", next, uint64(1)<<maxBits)
	}
	if b := bucketOf(math.MaxUint64); b != numBuckets-1 {
		t.Fatalf("the largest value in bucket %d, want the last", b)
	}
}

// exactQuantile is Quantile's definition applied to sorted samples.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// checkAccuracy records vs and compares every reported quantile with the
// exact one: within 1/128 of it, as the package promises.
func checkAccuracy(t *testing.T, name string, vs []time.Duration) {
	t.Helper()
	var h Histogram
	for _, v := range vs {
		h.Record(v)
	}
	var s Snapshot
	h.Snapshot(&s)
	sorted := slices.Clone(vs)
	slices.Sort(sorted)
	if s.Count() != uint64(len(vs)) || s.Max() != sorted[len(sorted)-1] {
		t.Fatalf("%s: count %d max %v, want %d %v", name, s.Count(), s.Max(), len(vs), sorted[len(sorted)-1])
	}
	var sum time.Duration
	for _, v := range vs {
		sum += v
	}
	if s.Sum() != sum {
		t.Fatalf("%s: sum %v, want %v", name, s.Sum(), sum)
	}
	for _, q := range []float64{0, 0.001, 0.1, 0.25, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
		got, want := s.Quantile(q), exactQuantile(sorted, q)
		if err := math.Abs(float64(got-want)) / float64(want); want != 0 && err > 1.0/128 || want == 0 && got != 0 {
			t.Fatalf("%s: q%v = %v, exact %v: relative error %.4f%%", name, q, got, want, 100*err)
		}
	}
}

func TestAccuracy(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	const n = 100_000
	dists := map[string]func() time.Duration{
		// from 100 ns to 1 h, uniform in the logarithm
		"log-uniform": func() time.Duration {
			return time.Duration(math.Exp(math.Log(100) + rng.Float64()*math.Log(3.6e12/100)))
		},
		"uniform-µs":  func() time.Duration { return time.Duration(rng.Int64N(int64(time.Millisecond))) },
		"exponential": func() time.Duration { return time.Duration(rng.ExpFloat64() * 5000) },
		"small":       func() time.Duration { return time.Duration(rng.IntN(300)) },
	}
	for name, gen := range dists {
		vs := make([]time.Duration, n)
		for i := range vs {
			vs[i] = gen()
		}
		checkAccuracy(t, name, vs)
	}
	// Adversarial: values at bucket edges (each bucket's last value, where
	// the midpoint is furthest below), a single value, and a bimodal tail.
	var edges []time.Duration
	for i := linear; i < numBuckets; i += 7 {
		lower, width := bounds(i)
		edges = append(edges, time.Duration(lower+width-1), time.Duration(lower))
	}
	checkAccuracy(t, "edges", edges)
	checkAccuracy(t, "one", []time.Duration{time.Hour})
	bimodal := make([]time.Duration, 10_000)
	for i := range bimodal {
		bimodal[i] = 200 * time.Nanosecond
		if i%1000 == 0 {
			bimodal[i] = 3 * time.Second
		}
	}
	checkAccuracy(t, "bimodal", bimodal)
}

func TestEmptyAndOutOfRange(t *testing.T) {
	var s Snapshot
	if s.Quantile(0.5) != 0 || s.Max() != 0 || s.Mean() != 0 {
		t.Fatal("an empty snapshot reports values")
	}
	var h Histogram
	h.Record(-time.Second)
	h.Record(100 * time.Hour)
	h.Snapshot(&s)
	if s.Quantile(0) != 0 || s.Max() != 100*time.Hour || s.Quantile(1) > s.Max() || s.Quantile(1) < MaxValue/2 {
		t.Fatalf("q0 %v q1 %v max %v", s.Quantile(0), s.Quantile(1), s.Max())
	}
	h.Reset()
	if h.Snapshot(&s).Count() != 0 {
		t.Fatal("Reset left counts")
	}
}

// Merging snapshots of two histograms gives what one histogram recording
// both holds.
func TestMerge(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	var a, b, both Histogram
	for range 50_000 {
		v := time.Duration(rng.Int64N(int64(time.Second)))
		if rng.IntN(3) == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
		both.Record(v)
	}
	var sa, sb, sboth Snapshot
	a.Snapshot(&sa)
	b.Snapshot(&sb)
	both.Snapshot(&sboth)
	sa.Merge(&sb)
	if sa != sboth {
		t.Fatalf("merge: count %d sum %v max %v, want %d %v %v", sa.Count(), sa.Sum(), sa.Max(), sboth.Count(), sboth.Sum(), sboth.Max())
	}
	var total uint64
	sa.Buckets(func(lower, upper time.Duration, c uint64) {
		if upper <= lower {
			t.Fatalf("bucket [%v, %v)", lower, upper)
		}
		total += c
	})
	if total != sa.Count() {
		t.Fatalf("buckets hold %d, count %d", total, sa.Count())
	}
}

// Concurrent recorders and a snapshotting reader: snapshots only grow, and
// the last one holds every value (run with -race).
func TestConcurrentRecordSnapshot(t *testing.T) {
	var h Histogram
	const writers, each = 4, 20_000
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				h.Record(time.Duration(w*each + i))
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	var prev, s Snapshot
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		h.Snapshot(&s)
		if s.Count() < prev.Count() || s.Max() < prev.Max() || s.Sum() < prev.Sum() {
			t.Fatalf("snapshot went back: count %d < %d or max %v < %v", s.Count(), prev.Count(), s.Max(), prev.Max())
		}
		prev = s
	}
	if s.Count() != writers*each || s.Max() != writers*each-1 {
		t.Fatalf("count %d max %v, want %d %v", s.Count(), s.Max(), writers*each, time.Duration(writers*each-1))
	}
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Record(time.Duration(i & 0xffff))
	}
}
