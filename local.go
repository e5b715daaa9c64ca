package spillway

// dropFirst drops local[lo], the oldest of the messages local[lo:hi] a
// shard popped and has yet to deliver (local[0] is at position head), and
// makes room after them for one more: when they end at the buffer's end,
// it moves them to its front. It returns the new lo, hi and head.
func dropFirst[T any](local []T, lo, hi int, head uint64) (int, int, uint64) {
	var zero T
	local[lo] = zero
	lo++
	if hi == len(local) {
		n := copy(local, local[lo:hi])
		clear(local[n:hi])
		return 0, n, head + uint64(lo)
	}
	return lo, hi, head
}
