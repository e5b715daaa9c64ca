//go:build !linux

package mmap

import (
	"errors"
	"os"
)

// allocate reserves the blocks of [off, off+n) for f where the system can
// (Linux's fallocate); here it extends the file sparsely.
func allocate(f *os.File, off, n int64) error { return extend(f, off, n) }

// datasync makes f durable: os.File.Sync (on macOS an F_FULLFSYNC).
func datasync(f *os.File) error { return f.Sync() }

// grow is unsupported here: appends use WriteAt.
func grow(f *os.File, size int64) error { return errors.ErrUnsupported }

func prefault(b []byte, advice uintptr) {}

const (
	madvPopulateRead  = 0
	madvPopulateWrite = 0
)
