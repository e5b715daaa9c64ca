package main

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSplitImpl(t *testing.T) {
	for _, c := range []struct{ in, name, impl string }{
		{"BenchmarkSPSC/impl=ring-2", "SPSC", "ring"},
		{"BenchmarkSPSCBatch/batch=32/impl=chan-2", "SPSCBatch/batch=32", "chan"},
		{"BenchmarkBroadcast/impl=ring/readers=3", "Broadcast/readers=3", "ring"},
	} {
		name, impl, ok := splitKey(c.in, "impl")
		if !ok || name != c.name || impl != c.impl {
			t.Errorf("splitKey(%q) = %q, %q, %v", c.in, name, impl, ok)
		}
	}
	if _, _, ok := splitKey("BenchmarkTryPushPop/kind=SPSC-2", "impl"); ok {
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
	name, v, ok := splitKey("BenchmarkTopicSlowSubscriber/impl=spillway-s2/subs=fast=2+slow-2", "subs")
	if !ok || name != "TopicSlowSubscriber/impl=spillway-s2" || v != "fast=2+slow" {
		t.Fatalf("splitKey = %q, %q, %v", name, v, ok)
	}
}
