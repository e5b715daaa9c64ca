package mmap

import (
	"errors"
	"os"

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
