package mmap

import (
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unsafe"
)

// MemFS is an FS in memory that remembers what was made durable, so that
// tests can simulate a power loss: CrashClone returns the file system as a
// disk would hold it after the machine lost power, holding what was synced
// and, at random, some of what was not. It is the crash model of pebble's
// vfs.NewCrashableMem, extended to writable mappings.
//
// What it models:
//   - A file's content is its page cache. WriteAt, Truncate and Grow change
//     it, and so do stores through a mapping: Map and MapWritable hand out
//     the file's own memory (which never moves once mapped), as a shared
//     mapping of the page cache would.
//   - File.Sync copies the page cache to the file's durable content, size
//     included (fdatasync).
//   - Creating, renaming and removing a file change the directory at once;
//     the change is durable after SyncDir of the directory. A power loss
//     keeps a prefix of the changes not yet synced, in the order they were
//     made, as a file system that journals its metadata does (ext4, XFS):
//     a file renamed into place after another never survives without it.
//   - Directories themselves are durable once made (MkdirAll), and locks do
//     not survive a crash.
//
// Safe for concurrent use. Sync and CrashClone read a file's memory while
// other goroutines may store into its mappings, as a kernel's write-back
// does: what they capture of a page being stored into is torn, as it may be
// on a disk.
type MemFS struct {
	mu      sync.Mutex
	dirs    map[string]bool
	live    map[string]*memInode // path -> file, as the process sees it
	durable map[string]*memInode // path -> file, as the disk holds it
	pending []dirOp              // directory changes not yet durable, oldest first
	locks   map[string]bool
}

// dirOp is a change of directory entries: each path of set points to its
// file afterwards, nil for a removal (a rename sets two).
type dirOp struct {
	set map[string]*memInode
}

// change records a directory change in live and in pending. REQUIRES: m.mu.
func (m *MemFS) change(set map[string]*memInode) {
	for p, n := range set {
		if n == nil {
			delete(m.live, p)
		} else {
			m.live[p] = n
		}
	}
	m.pending = append(m.pending, dirOp{set})
}

// memInode is one file. data is the page cache: its length is the file's
// size, its capacity fixed once a mapping exists (appends within it never
// move it). synced is the durable content. Guarded by mu.
type memInode struct {
	mu     sync.Mutex
	data   []byte
	mapped int // mappings not yet unmapped
	synced []byte
}

var _ FS = (*MemFS)(nil)

// NewMemFS returns an empty MemFS.
func NewMemFS() *MemFS {
	return &MemFS{dirs: map[string]bool{"/": true, ".": true}, live: map[string]*memInode{}, durable: map[string]*memInode{}, locks: map[string]bool{}}
}

// CrashOptions shape a simulated power loss.
type CrashOptions struct {
	// KeepUnsynced is the probability with which each unsynced 4 KiB page
	// of a file's data, and each unsynced change of a file's size,
	// survives, and with which each unsynced directory change survives
	// given that the one before it did: 0 keeps only what was synced, 1
	// everything (which is what a kill -9 keeps).
	KeepUnsynced float64
	// Rand draws the pages kept; it must be set when KeepUnsynced is
	// strictly between 0 and 1.
	Rand *rand.Rand
}

// CrashClone returns a new MemFS holding what fs would hold after a power
// loss now. fs itself is unchanged and can go on being used, by goroutines
// that have yet to notice the "crash".
func (m *MemFS) CrashClone(o CrashOptions) *MemFS {
	keep := func() bool {
		switch {
		case o.KeepUnsynced <= 0:
			return false
		case o.KeepUnsynced >= 1:
			return true
		}
		return o.Rand.Float64() < o.KeepUnsynced
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := NewMemFS()
	for d := range m.dirs {
		c.dirs[d] = true
	}
	clones := map[*memInode]*memInode{}
	clone := func(n *memInode) *memInode {
		if cn, ok := clones[n]; ok {
			return cn
		}
		cn := n.crashed(keep)
		clones[n] = cn
		return cn
	}
	// The durable entries, then a prefix of the pending changes.
	entries := maps.Clone(m.durable)
	for _, op := range m.pending {
		if !keep() {
			break
		}
		for _, p := range slices.Sorted(maps.Keys(op.set)) {
			if n := op.set[p]; n == nil {
				delete(entries, p)
			} else {
				entries[p] = n
			}
		}
	}
	for _, p := range slices.Sorted(maps.Keys(entries)) { // a fixed order: a seeded Rand repeats the crash
		cn := clone(entries[p])
		c.live[p], c.durable[p] = cn, cn
	}
	return c
}

// crashed returns the file as a disk would hold it: the synced content, and
// each page that differs from it, and the size, kept when keep says so.
func (n *memInode) crashed(keep func() bool) *memInode {
	n.mu.Lock()
	defer n.mu.Unlock()
	live := snapshot(n.data)
	out := slices.Clone(n.synced)
	size := len(out)
	if len(live) != size && keep() {
		size = len(live)
	}
	if size > len(out) {
		out = append(out, make([]byte, size-len(out))...)
	}
	out = out[:size]
	for p := 0; p < size; p += memPage {
		end := min(p+memPage, size)
		var want []byte
		if p < len(live) {
			want = live[p:min(end, len(live))]
		}
		if !equalPage(out[p:end], want) && keep() {
			clear(out[p:end])
			copy(out[p:end], want)
		}
	}
	return &memInode{data: out, synced: slices.Clone(out)}
}

const memPage = 4096

func equalPage(a, b []byte) bool {
	if len(b) < len(a) {
		return string(a[:len(b)]) == string(b) && allZero(a[len(b):])
	}
	return string(a) == string(b)
}

// snapshot copies b, which mappings may be storing into meanwhile: what it
// reads of a word being stored is torn, as a page written back then is.
func snapshot(b []byte) []byte {
	out := make([]byte, len(b))
	copyNoRace(out, b)
	return out
}

func (m *MemFS) clean(name string) string { return filepath.Clean(name) }

// OpenFile supports O_CREATE, O_EXCL, O_TRUNC and O_RDWR/O_RDONLY.
func (m *MemFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	name = m.clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirs[filepath.Dir(name)] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	n := m.live[name]
	switch {
	case n != nil && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case n == nil && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case n == nil:
		n = &memInode{}
		m.change(map[string]*memInode{name: n})
	}
	if flag&os.O_TRUNC != 0 {
		n.mu.Lock()
		if n.mapped > 0 {
			n.mu.Unlock()
			return nil, fmt.Errorf("memfs: truncating mapped %s", name)
		}
		n.data = n.data[:0]
		n.mu.Unlock()
	}
	return &memFile{n: n, name: name}, nil
}

// Remove removes a file, or an empty directory.
func (m *MemFS) Remove(name string) error {
	name = m.clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirs[name] {
		for p := range m.live {
			if filepath.Dir(p) == name {
				return &fs.PathError{Op: "remove", Path: name, Err: fmt.Errorf("directory not empty")}
			}
		}
		for d := range m.dirs {
			if d != name && filepath.Dir(d) == name {
				return &fs.PathError{Op: "remove", Path: name, Err: fmt.Errorf("directory not empty")}
			}
		}
		delete(m.dirs, name)
		return nil
	}
	if m.live[name] == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	m.change(map[string]*memInode{name: nil})
	return nil
}

func (m *MemFS) Rename(oldname, newname string) error {
	oldname, newname = m.clean(oldname), m.clean(newname)
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.live[oldname]
	if n == nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	m.change(map[string]*memInode{oldname: nil, newname: n})
	return nil
}

func (m *MemFS) ReadDir(dir string) ([]string, error) {
	dir = m.clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirs[dir] {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	var names []string
	for p := range m.live {
		if filepath.Dir(p) == dir {
			names = append(names, filepath.Base(p))
		}
	}
	for d := range m.dirs {
		if d != dir && filepath.Dir(d) == dir {
			names = append(names, filepath.Base(d))
		}
	}
	slices.Sort(names)
	return names, nil
}

func (m *MemFS) MkdirAll(dir string, perm os.FileMode) error {
	dir = m.clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := dir; !m.dirs[d]; d = filepath.Dir(d) {
		if m.live[d] != nil {
			return &fs.PathError{Op: "mkdir", Path: d, Err: fs.ErrExist}
		}
		m.dirs[d] = true
	}
	return nil
}

// SyncDir makes the directory's entries durable as they are now: the
// pending changes up to the last one that touched it (a journal commits
// what came before, too).
func (m *MemFS) SyncDir(dir string) error {
	dir = m.clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	last := -1
	for i, op := range m.pending {
		for p := range op.set {
			if filepath.Dir(p) == dir {
				last = i
			}
		}
	}
	for _, op := range m.pending[:last+1] {
		for p, n := range op.set {
			if n == nil {
				delete(m.durable, p)
			} else {
				m.durable[p] = n
			}
		}
	}
	m.pending = slices.Delete(m.pending, 0, last+1)
	return nil
}

// Lock takes name's lock within this MemFS.
func (m *MemFS) Lock(name string) (io.Closer, error) {
	name = m.clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks[name] {
		return nil, fmt.Errorf("%w: %s", ErrLocked, filepath.Dir(name))
	}
	if m.live[name] == nil {
		m.change(map[string]*memInode{name: {}})
	}
	m.locks[name] = true
	return closerFunc(func() error {
		m.mu.Lock()
		delete(m.locks, name)
		m.mu.Unlock()
		return nil
	}), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// Files returns the paths of the files the process sees, sorted.
func (m *MemFS) Files() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	paths := make([]string, 0, len(m.live))
	for p := range m.live {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return paths
}

// ReadFile returns a copy of a file's content as the process sees it.
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	n := m.live[m.clean(name)]
	m.mu.Unlock()
	if n == nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return snapshot(n.data), nil
}

// WriteFile replaces a file's content, durably: for tests that damage what
// is on the "disk".
func (m *MemFS) WriteFile(name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.live[m.clean(name)]
	if n == nil {
		return &fs.PathError{Op: "write", Path: name, Err: fs.ErrNotExist}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mapped > 0 {
		return fmt.Errorf("memfs: rewriting mapped %s", name)
	}
	n.data = slices.Clone(data)
	n.synced = slices.Clone(data)
	return nil
}

// memFile is an open file of a MemFS.
type memFile struct {
	n    *memInode
	name string
}

func (f *memFile) Name() string { return f.name }
func (f *memFile) Close() error { return nil }

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copyNoRace(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if err := f.n.resize(max(int64(len(f.n.data)), off+int64(len(p)))); err != nil {
		return 0, err
	}
	return copyNoRace(f.n.data[off:], p), nil
}

// copyNoRace copies between a file's memory and a caller's buffer: the
// file's memory may be mapped, and stored into elsewhere, meanwhile, as a
// kernel's page cache is while it writes pages back. It copies word by
// word in a function the race detector does not instrument (the builtin
// copy reports to it from inside the runtime).
//
//go:norace
//go:nocheckptr
func copyNoRace(dst, src []byte) int {
	n := min(len(dst), len(src))
	i := 0
	if n >= 8 {
		d, s := unsafe.Pointer(unsafe.SliceData(dst)), unsafe.Pointer(unsafe.SliceData(src))
		for ; i+8 <= n; i += 8 {
			*(*uint64)(unsafe.Add(d, i)) = *(*uint64)(unsafe.Add(s, i))
		}
	}
	for ; i < n; i++ {
		dst[i] = src[i]
	}
	return n
}

// resize sets the file's size, keeping its memory where it is if a mapping
// holds it. REQUIRES: n.mu.
func (n *memInode) resize(size int64) error {
	switch {
	case size <= int64(cap(n.data)):
		old := len(n.data)
		n.data = n.data[:size]
		if int(size) > old {
			clear(n.data[old:])
		}
	case n.mapped > 0:
		return fmt.Errorf("memfs: growing a mapped file past its mapping (%d > %d)", size, cap(n.data))
	default:
		grown := make([]byte, size, max(size, int64(2*cap(n.data))))
		copy(grown, n.data)
		n.data = grown
	}
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	return int64(len(f.n.data)), nil
}

// Allocate reserves memory for [off, off+n) without changing the size.
func (f *memFile) Allocate(off, n int64) error {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	return f.n.reserve(off + n)
}

// reserve makes room for size bytes without changing the file's size.
// REQUIRES: n.mu.
func (n *memInode) reserve(size int64) error {
	if size <= int64(cap(n.data)) {
		return nil
	}
	if n.mapped > 0 {
		return fmt.Errorf("memfs: reserving past the mapping of a mapped file")
	}
	grown := make([]byte, len(n.data), size)
	copy(grown, n.data)
	n.data = grown
	return nil
}

func (f *memFile) Grow(size int64) error {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if err := f.n.reserve(size); err != nil {
		return err
	}
	if size > int64(len(f.n.data)) {
		return f.n.resize(size)
	}
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	return f.n.resize(size)
}

func (f *memFile) Sync() error {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	f.n.synced = snapshot(f.n.data)
	return nil
}

// Map returns the file's memory: size bytes of it, which it reserves first
// (pages past the file's size must not be touched, as with a real mapping).
func (f *memFile) Map(size int) ([]byte, error) {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if err := f.n.reserve(int64(size)); err != nil {
		return nil, err
	}
	f.n.mapped++
	return f.n.data[:size:size], nil
}

func (f *memFile) MapWritable(size int) ([]byte, error) {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if int64(size) > int64(len(f.n.data)) {
		return nil, fmt.Errorf("memfs: mapping %d bytes of a %d-byte file writable", size, len(f.n.data))
	}
	f.n.mapped++
	return f.n.data[:size:size], nil
}

func (f *memFile) Unmap(b []byte) error {
	f.n.mu.Lock()
	f.n.mapped--
	f.n.mu.Unlock()
	return nil
}

// String describes the files, for test failures.
func (m *MemFS) String() string {
	var b strings.Builder
	for _, p := range m.Files() {
		data, _ := m.ReadFile(p)
		fmt.Fprintf(&b, "%s (%d bytes)\n", p, len(data))
	}
	return b.String()
}
