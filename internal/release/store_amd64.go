//go:build amd64 && gc && !race && !spillway_atomic

package release

import (
	"sync/atomic"
	"unsafe"
)

// Store writes v to *p with release ordering (see the package doc): a plain
// store, inlined where it is called.
func Store(p *atomic.Uint64, v uint64) {
	*(*uint64)(unsafe.Pointer(p)) = v // atomic.Uint64's word is its only non-empty field
}
