package ring

import "errors"

// ErrClosed is returned by blocking pushes after Close, and by blocking pops
// once a closed ring has been drained.
var ErrClosed = errors.New("spillway/ring: closed")
