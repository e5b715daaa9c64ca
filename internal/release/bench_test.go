package release

import (
	"sync/atomic"
	"testing"
)

// sink keeps the stores observable.
var sink atomic.Uint64

// BenchmarkStore: a release store against sync/atomic's Store (an XCHG on
// amd64), each after a plain store it publishes, in the same run.
func BenchmarkStore(b *testing.B) {
	var data [8]uint64
	b.Run("store=release", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			data[i&7] = uint64(i)
			Store(&sink, uint64(i))
		}
	})
	b.Run("store=atomic", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			data[i&7] = uint64(i)
			sink.Store(uint64(i))
		}
	})
}
