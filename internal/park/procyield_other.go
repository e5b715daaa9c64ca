//go:build !amd64 && !arm64

package park

// procyield is a plain busy loop where no pause hint is wired up.
func procyield(cycles uint32) {
	for i := uint32(0); i < cycles; i++ {
	}
}
