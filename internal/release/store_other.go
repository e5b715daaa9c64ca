//go:build !amd64 || !gc || race || spillway_atomic

package release

import "sync/atomic"

// Store writes v to *p with (at least) release ordering: here, sync/atomic's
// sequentially consistent Store.
func Store(p *atomic.Uint64, v uint64) { p.Store(v) }
