package mmap

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// FS is the file-system seam of the log: everything it does to files goes
// through it, so that tests can inject faults (see FaultFS). The default is
// OSFS.
type FS interface {
	// OpenFile opens a file as os.OpenFile does.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Remove(name string) error
	Rename(oldname, newname string) error
	// ReadDir returns the names of the entries of dir.
	ReadDir(dir string) ([]string, error)
	MkdirAll(dir string, perm os.FileMode) error
	// SyncDir makes the directory's entries (creations, renames, removals)
	// durable.
	SyncDir(dir string) error
	// Lock takes an exclusive, non-blocking lock on name (created if needed)
	// and returns what releases it. A lock held elsewhere is ErrLocked.
	Lock(name string) (io.Closer, error)
}

// File is an open file of an FS.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
	Name() string
	// Size returns the file's length.
	Size() (int64, error)
	// Allocate reserves [off, off+n) on the device (fallocate) without
	// changing the file's size; a full device fails here, not later.
	Allocate(off, n int64) error
	Truncate(size int64) error
	// Grow makes the file size bytes long with every block of it reserved
	// (fallocate that moves the end of the file), so that stores through a
	// writable mapping of [0, size) never meet a full device. Where blocks
	// cannot be reserved it fails with an error matching
	// errors.ErrUnsupported and leaves the file as it was.
	Grow(size int64) error
	// Sync makes the file's data durable (fdatasync), including what was
	// stored through a writable mapping.
	Sync() error
	// Map maps the first size bytes read-only and shared, so that the
	// mapping sees what WriteAt writes. size may exceed the file's size;
	// pages past its end must not be touched.
	Map(size int) ([]byte, error)
	// MapWritable maps the first size bytes, which the file must hold,
	// read-write and shared: stores into the mapping reach the page cache
	// as WriteAt does, and survive the process.
	MapWritable(size int) ([]byte, error)
	Unmap(b []byte) error
}

// prefaulter is implemented by files whose writable mappings are worth
// faulting in ahead of the stores (real mappings, not memory).
type prefaulter interface {
	// Prefault populates b's page tables for writing, best effort.
	Prefault(b []byte)
	// PrefaultRead populates b's page tables for reading, best effort.
	PrefaultRead(b []byte)
}

// OSFS is the operating system's file system.
type OSFS struct{}

var _ FS = OSFS{}

func (OSFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (OSFS) Remove(name string) error                 { return os.Remove(name) }
func (OSFS) Rename(oldname, newname string) error     { return os.Rename(oldname, newname) }
func (OSFS) MkdirAll(dir string, p os.FileMode) error { return os.MkdirAll(dir, p) }

func (OSFS) ReadDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (OSFS) Lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, filepath.Dir(name))
		}
		return nil, err
	}
	return f, nil // closing the file releases the lock
}

// osFile is a File of OSFS.
type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (f osFile) Allocate(off, n int64) error { return allocate(f.File, off, n) }

func (f osFile) Sync() error { return datasync(f.File) }

func (f osFile) Map(size int) ([]byte, error) {
	return unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
}

func (f osFile) MapWritable(size int) ([]byte, error) {
	return unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

func (f osFile) Unmap(b []byte) error { return unix.Munmap(b) }

func (f osFile) Grow(size int64) error { return grow(f.File, size) }

func (f osFile) Prefault(b []byte) { prefault(b, madvPopulateWrite) }

func (f osFile) PrefaultRead(b []byte) { prefault(b, madvPopulateRead) }

// extend grows f sparsely to hold [off, off+n), where blocks cannot be
// reserved. Appends use pwrite, so a full device still surfaces as a write
// error and never as a fault in a mapping.
func extend(f *os.File, off, n int64) error {
	if fi, err := f.Stat(); err != nil || fi.Size() >= off+n {
		return err
	}
	return f.Truncate(off + n)
}
