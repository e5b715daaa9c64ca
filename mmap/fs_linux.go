package mmap

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// allocate reserves the blocks of [off, off+n) for f.
func allocate(f *os.File, off, n int64) error {
	// KEEP_SIZE reserves the blocks without moving the end of the file:
	// appends then extend the file into blocks that are already its own.
	// (Writing into the unwritten extents of a file extended by a plain
	// fallocate is several times slower on ext4.)
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return extend(f, off, n)
	}
	return err
}

// datasync makes f's data (and the metadata needed to read it) durable.
func datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// grow reserves the blocks of [0, size) for f and makes it size bytes long.
func grow(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("fallocate on %s: %w", f.Name(), errors.ErrUnsupported)
	}
	return err
}

// madvPopulateRead and madvPopulateWrite are MADV_POPULATE_READ and
// MADV_POPULATE_WRITE (Linux 5.14): fault the range in for reading (for
// writing), as loads (stores) would, in one call.
const (
	madvPopulateRead  = 22
	madvPopulateWrite = 23
)

// prefault populates the pages of b with advice (madvPopulateRead or
// madvPopulateWrite); on kernels without it, it does nothing (the loads
// and stores fault the pages in).
func prefault(b []byte, advice uintptr) {
	if len(b) == 0 {
		return
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	start := p &^ uintptr(pageSize-1)
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, start, p+uintptr(len(b))-start, advice) // an old kernel refuses it: the accesses fault the pages in
}
