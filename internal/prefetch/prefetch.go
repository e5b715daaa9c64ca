package prefetch

// Distance is how many items ahead of the current one to touch: far enough
// for the misses to be served by the time the item is copied, near enough
// that what was touched is still cached.
const Distance = 6

// Touch loads the first and last bytes of b (two cache lines for a message
// of 128 bytes) and returns their sum, which the caller keeps (adds up and
// stores in a field), so that the compiler cannot drop the loads.
func Touch(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0] + b[len(b)-1]
}
