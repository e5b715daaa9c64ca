package xsync

import (
	"sync"
	"testing"
)

// BenchmarkUncontended: one goroutine taking and releasing the lock, next
// to sync.Mutex in the same run. The difference is Unlock: a plain store
// against an atomic add.
func BenchmarkUncontended(b *testing.B) {
	b.Run("lock=TryMutex", func(b *testing.B) {
		b.ReportAllocs()
		var m TryMutex
		for range b.N {
			if m.TryLock() {
				m.Unlock()
			}
		}
	})
	b.Run("lock=sync.Mutex", func(b *testing.B) {
		b.ReportAllocs()
		var m sync.Mutex
		for range b.N {
			if m.TryLock() {
				m.Unlock()
			}
		}
	})
}
