//go:build !linux || !amd64 || !gc || race || spillway_atomic

package release

// No asymmetric fence here: StoreLight stays sequentially consistent, so
// Heavy is never called with asymmetric set.
func heavy() bool { return true }
