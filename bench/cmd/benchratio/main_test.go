package main

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/perf/benchfmt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSplitImpl(t *testing.T) {
	for _, c := range []struct{ in, name, impl string }{
		{"SPSC/impl=ring-2", "SPSC", "ring"},
		{"SPSCBatch/batch=32/impl=chan-2", "SPSCBatch/batch=32", "chan"},
		{"Broadcast/impl=ring/readers=3", "Broadcast/readers=3", "ring"},
	} {
		name, impl, ok := splitKey(benchfmt.Name(c.in), "impl")
		if !ok || name != c.name || impl != c.impl {
			t.Errorf("splitKey(%q) = %q, %q, %v", c.in, name, impl, ok)
		}
	}
	if _, _, ok := splitKey(benchfmt.Name("TryPushPop/kind=SPSC-2"), "impl"); ok {
		t.Error("a name without impl= was split")
	}
}

func TestMedian(t *testing.T) {
	if m := median([]float64{5, 1, 3}); m != 3 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
}

func TestSplitOtherKey(t *testing.T) {
	name, v, ok := splitKey(benchfmt.Name("TopicSlowSubscriber/impl=spillway-s2/subs=fast=2+slow-2"), "subs")
	if !ok || name != "TopicSlowSubscriber/impl=spillway-s2" || v != "fast=2+slow" {
		t.Fatalf("splitKey = %q, %q, %v", name, v, ok)
	}
}

func TestTable(t *testing.T) {
	in := `BenchmarkSPSC/impl=ring-2   100  10.0 ns/op  800 MB/s  2.0 steal%  0 B/op  0 allocs/op
BenchmarkSPSC/impl=ring-2   100  12.0 ns/op  800 MB/s  4.0 steal%  0 B/op  0 allocs/op
BenchmarkSPSC/impl=chan-2   100  50.0 ns/op  160 MB/s  6.0 steal%  0 B/op  0 allocs/op
BenchmarkSPSC/impl=chan-2   100  70.0 ns/op  160 MB/s  8.0 steal%  0 B/op  0 allocs/op
BenchmarkOther/impl=ring-2  100  5.0 ns/op  0 B/op  1 allocs/op
BenchmarkOther/impl=chan-2  100  20.0 ns/op  0 B/op  0 allocs/op
`
	var out strings.Builder
	if err := table(strings.NewReader(in), &out, "impl", []string{"ring", "chan"}); err != nil {
		t.Fatal(err)
	}
	want := `| benchmark | ring ns/op | chan ns/op | ring vs chan | ring allocs/op | steal% |
|---|---:|---:|---:|---:|---:|
| SPSC | 11 | 60 | **5.5×** | 0 | 5.0 |
| Other | 5 | 20 | **4.0×** | 1 | – |
`
	if out.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", out.String(), want)
	}
}
