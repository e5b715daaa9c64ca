//go:build linux && amd64 && gc && !race && !spillway_atomic

package release

import "golang.org/x/sys/unix"

// membarrier(2) commands (linux/membarrier.h).
const (
	membarrierCmdPrivateExpedited         = 1 << 3
	membarrierCmdRegisterPrivateExpedited = 1 << 4
)

func init() {
	asymmetric = membarrier(membarrierCmdRegisterPrivateExpedited)
}

func heavy() bool { return membarrier(membarrierCmdPrivateExpedited) }

func membarrier(cmd uintptr) bool {
	_, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, cmd, 0, 0)
	return errno == 0
}
