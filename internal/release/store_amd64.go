//go:build amd64 && !race

package release

import "sync/atomic"

// Store writes v to *p with release ordering (see the package doc).
//
//go:noescape
func Store(p *atomic.Uint64, v uint64)
