package mmap

import (
	"io"
	"os"
	"strings"
	"sync"
)

// Op names a file-system operation for FaultFS.
type Op int

// The operations FaultFS can fail.
const (
	OpOpen Op = iota
	OpWrite
	OpSync
	OpAllocate
	OpTruncate
	OpRemove
	OpRename
	OpSyncDir
	OpMap
	numOps
)

// Fault describes failures for FaultFS to inject.
type Fault struct {
	Op    Op
	Path  string // fail only files whose name contains this; "" matches all
	Err   error  // the error to return
	After int    // let this many matching calls succeed first
	Times int    // fail this many matching calls, then stop; 0 means forever
	// Short, for OpWrite: write this many bytes of the buffer before failing,
	// as a device that fills up in the middle of a write does.
	Short int
}

// FaultFS wraps an FS and fails the operations its faults describe: EIO on
// sync, ENOSPC on allocate or write, short writes, and so on. It is safe for
// concurrent use.
type FaultFS struct {
	FS
	mu     sync.Mutex
	faults []*faultState
	calls  [numOps]int
}

// faultState is an installed Fault and how many of its calls it has seen and
// failed. Guarded by FaultFS.mu.
type faultState struct {
	Fault
	seen, failed int
}

// NewFaultFS returns a FaultFS over inner (OSFS if nil) with no faults.
func NewFaultFS(inner FS) *FaultFS {
	if inner == nil {
		inner = OSFS{}
	}
	return &FaultFS{FS: inner}
}

// Inject adds a fault.
func (f *FaultFS) Inject(fault Fault) {
	f.mu.Lock()
	f.faults = append(f.faults, &faultState{Fault: fault})
	f.mu.Unlock()
}

// Reset removes every fault.
func (f *FaultFS) Reset() {
	f.mu.Lock()
	f.faults = nil
	f.mu.Unlock()
}

// Calls returns how many times op was called.
func (f *FaultFS) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// check records a call and returns the fault to inject, if any.
func (f *FaultFS) check(op Op, name string) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	for _, s := range f.faults {
		if s.Op != op || s.Path != "" && !strings.Contains(name, s.Path) {
			continue
		}
		s.seen++
		if s.seen <= s.After || s.Times > 0 && s.failed >= s.Times {
			continue
		}
		s.failed++
		fault := s.Fault
		return &fault
	}
	return nil
}

func (f *FaultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if ft := f.check(OpOpen, name); ft != nil {
		return nil, ft.Err
	}
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

func (f *FaultFS) Remove(name string) error {
	if ft := f.check(OpRemove, name); ft != nil {
		return ft.Err
	}
	return f.FS.Remove(name)
}

func (f *FaultFS) Rename(oldname, newname string) error {
	if ft := f.check(OpRename, newname); ft != nil {
		return ft.Err
	}
	return f.FS.Rename(oldname, newname)
}

func (f *FaultFS) SyncDir(dir string) error {
	if ft := f.check(OpSyncDir, dir); ft != nil {
		return ft.Err
	}
	return f.FS.SyncDir(dir)
}

func (f *FaultFS) Lock(name string) (io.Closer, error) { return f.FS.Lock(name) }

// faultFile is a File of a FaultFS: its calls consult the FaultFS first.
type faultFile struct {
	File
	fs *FaultFS
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if ft := f.fs.check(OpWrite, f.Name()); ft != nil {
		n := 0
		if ft.Short > 0 {
			n, _ = f.File.WriteAt(p[:min(ft.Short, len(p))], off)
		}
		return n, ft.Err
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Sync() error {
	if ft := f.fs.check(OpSync, f.Name()); ft != nil {
		return ft.Err
	}
	return f.File.Sync()
}

func (f *faultFile) Allocate(off, n int64) error {
	if ft := f.fs.check(OpAllocate, f.Name()); ft != nil {
		return ft.Err
	}
	return f.File.Allocate(off, n)
}

// Grow fails as an OpAllocate fault says.
func (f *faultFile) Grow(size int64) error {
	if ft := f.fs.check(OpAllocate, f.Name()); ft != nil {
		return ft.Err
	}
	return f.File.Grow(size)
}

func (f *faultFile) Truncate(size int64) error {
	if ft := f.fs.check(OpTruncate, f.Name()); ft != nil {
		return ft.Err
	}
	return f.File.Truncate(size)
}

func (f *faultFile) Map(size int) ([]byte, error) {
	if ft := f.fs.check(OpMap, f.Name()); ft != nil {
		return nil, ft.Err
	}
	return f.File.Map(size)
}

func (f *faultFile) MapWritable(size int) ([]byte, error) {
	if ft := f.fs.check(OpMap, f.Name()); ft != nil {
		return nil, ft.Err
	}
	return f.File.MapWritable(size)
}
