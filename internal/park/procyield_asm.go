//go:build amd64 || arm64

package park

// procyield executes cycles CPU pause hints (PAUSE on amd64, YIELD on arm64),
// telling the core that this is a spin-wait loop.
//
//go:noescape
func procyield(cycles uint32)
