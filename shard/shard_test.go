package shard

import (
	"fmt"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestEqualKeysShareAShard and spread: every key maps to one fixed shard,
// and many keys spread evenly.
func TestEqualKeysShareAShard(t *testing.T) {
	for _, n := range []int{1, 2, 3, 8, 64} {
		counts := make([]int, n)
		for i := range 64000 {
			key := fmt.Appendf(nil, "user-%d", i)
			s := Of(key, n)
			if s < 0 || s >= n {
				t.Fatalf("Of(%q, %d) = %d", key, n, s)
			}
			if again := Of(append([]byte(nil), key...), n); again != s {
				t.Fatalf("equal keys went to shards %d and %d", s, again)
			}
			counts[s]++
		}
		for s, c := range counts {
			if want := 64000 / n; c < want*9/10 || c > want*11/10 {
				t.Fatalf("n=%d: shard %d got %d keys, want about %d", n, s, c, want)
			}
		}
	}
}

// TestKeylessSpread: keyless messages cover every shard about evenly.
func TestKeylessSpread(t *testing.T) {
	const n = 4
	var counts [n]int
	for range 40000 {
		counts[Of(nil, n)]++
	}
	for s, c := range counts {
		if c < 9000 || c > 11000 {
			t.Fatalf("shard %d got %d of 40000 keyless messages", s, c)
		}
	}
}

func BenchmarkOf(b *testing.B) {
	key := []byte("user-1234567")
	b.ReportAllocs()
	for range b.N {
		Of(key, 8)
	}
}
