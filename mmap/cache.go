package mmap

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/dgryski/go-tinylfu"

	"github.com/spillway-io/spillway/codec"
)

// BatchCache holds decompressed batches for readers that lag behind the
// writer, so that several readers of the same region decompress it once.
// Admission and eviction follow TinyLFU (github.com/dgryski/go-tinylfu):
// a batch displaces another only if it is asked for more often.
//
// It is bounded in bytes: it holds at most maxBytes/maxEntryBytes batches
// and admits none whose decoded size exceeds maxEntryBytes. Cached batches
// are immutable and shared; a reader given one must not modify it. Safe for
// concurrent use.
type BatchCache struct {
	mu       sync.Mutex
	lfu      *tinylfu.T // guarded by mu
	maxEntry int
	hits     atomic.Uint64
	misses   atomic.Uint64
}

// NewBatchCache returns a cache of at most maxBytes, admitting batches of at
// most maxEntryBytes once decoded (default 1 MiB if 0).
func NewBatchCache(maxBytes int64, maxEntryBytes int) *BatchCache {
	if maxEntryBytes <= 0 {
		maxEntryBytes = 1 << 20
	}
	entries := max(1, int(maxBytes/int64(maxEntryBytes)))
	return &BatchCache{lfu: tinylfu.New(entries, 10*entries), maxEntry: maxEntryBytes}
}

// CacheStats counts lookups.
type CacheStats struct{ Hits, Misses uint64 }

// Stats returns the hit and miss counts so far.
func (c *BatchCache) Stats() CacheStats {
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load()}
}

func (c *BatchCache) get(key string) *codec.Batch {
	c.mu.Lock()
	v, ok := c.lfu.Get(key)
	c.mu.Unlock()
	if !ok {
		c.misses.Add(1)
		return nil
	}
	c.hits.Add(1)
	return v.(*codec.Batch)
}

// decodedSize estimates the memory a decoded batch holds.
func decodedSize(b *codec.Batch) int {
	return int(b.Header.RawLen) + len(b.Records)*int(unsafe.Sizeof(codec.Record{}))
}

func (c *BatchCache) add(key string, b *codec.Batch) {
	if decodedSize(b) > c.maxEntry {
		return
	}
	c.mu.Lock()
	c.lfu.Add(key, b)
	c.mu.Unlock()
}
