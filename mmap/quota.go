package mmap

import "sync/atomic"

// Quota bounds the bytes reserved by the segment files of several logs
// together (Options.Quota); a log's own Options.MaxBytes applies as well.
// Segments are charged when created and credited when retired or closed.
// Safe for concurrent use.
type Quota struct {
	max  int64
	used atomic.Int64
}

// NewQuota returns a quota of max bytes.
func NewQuota(max int64) *Quota { return &Quota{max: max} }

// Used returns the bytes currently charged.
func (q *Quota) Used() int64 { return q.used.Load() }

// reserve charges n bytes if they fit, and reports whether they did.
func (q *Quota) reserve(n int64) bool {
	for {
		u := q.used.Load()
		if u+n > q.max {
			return false
		}
		if q.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (q *Quota) release(n int64) { q.used.Add(-n) }
