package spillway

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/spillway-io/spillway/internal/invariants"

	"github.com/cespare/xxhash/v2"

	"github.com/spillway-io/spillway/mmap"
)

// A Persistent shard's cursor file says how far receivers got: the offset
// of the first message never handed to a receiver. It is 4 KiB, mapped
// writable, and rewritten in place after every receive, with two stores:
//
//	offset size field
//	     0    4 magic     "SPWC"
//	     4    1 version   1
//	     5   51 reserved  0
//	    56    8 checksum  xxhash64 of bytes [0, 56)
//	    64   16 slot 0    offset u64, check u64
//	    80   16 slot 1    offset u64, check u64
//
// Writes alternate between the slots, the offset first, then its check
// (cursorCheck). A crash between the two stores leaves that slot's check
// wrong; the other slot holds the value before. The valid slot with the
// larger offset is the cursor.
const (
	cursorName    = "cursor"
	cursorMagic   = "SPWC"
	cursorVersion = 1
	cursorSize    = 4096
	cursorSlots   = 64
)

func cursorCheck(off uint64) uint64 {
	return bits.RotateLeft64(off*0x9E3779B97F4A7C15, 31) ^ 0xC2B2AE3D27D4EB4F
}

// cursorFile is a shard's cursor file, open.
//
// store is called by the shard's receiver (under recvMu) only; Sync by
// anyone (the file system orders it with the stores). dirty says a store
// came since the last sync.
type cursorFile struct {
	path  string
	f     mmap.File
	m     []byte // writable mapping of the whole file
	slot  int    // the slot the next store goes to; guarded by recvMu
	dirty atomic.Bool
}

// openCursor opens (or creates) dir's cursor file and returns it with the
// offset it holds (0 for a new one, or one whose slots are both torn).
func openCursor(fsys mmap.FS, dir string) (*cursorFile, uint64, error) {
	path := filepath.Join(dir, cursorName)
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, err
	}
	c := &cursorFile{path: path, f: f}
	size, err := f.Size()
	if err == nil && size < cursorSize {
		err = c.create(fsys, dir)
	}
	if err == nil {
		c.m, err = f.MapWritable(cursorSize)
	}
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	off, slot, err := cursorValue(c.m)
	if err != nil {
		_ = c.close() // the error says what is wrong
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	c.slot = slot
	return c, off, nil
}

// create writes a new cursor file whole (so that its blocks are allocated
// before any store through the mapping), durably.
func (c *cursorFile) create(fsys mmap.FS, dir string) error {
	hdr := make([]byte, cursorSize)
	copy(hdr, cursorMagic)
	hdr[4] = cursorVersion
	binary.LittleEndian.PutUint64(hdr[56:], xxhash.Sum64(hdr[:56]))
	if _, err := c.f.WriteAt(hdr, 0); err != nil {
		return err
	}
	if err := c.f.Sync(); err != nil {
		return err
	}
	return fsys.SyncDir(dir)
}

// store records off. REQUIRES: the shard's recvMu.
func (c *cursorFile) store(off uint64) {
	if invariants.Enabled {
		if prev := binary.LittleEndian.Uint64(c.m[cursorSlots+16*(c.slot^1):]); off < prev {
			invariants.Failf("cursor moves back from %d to %d", prev, off)
		}
	}
	at := cursorSlots + 16*c.slot
	binary.LittleEndian.PutUint64(c.m[at:], off)
	binary.LittleEndian.PutUint64(c.m[at+8:], cursorCheck(off))
	c.slot ^= 1
	if !c.dirty.Load() {
		c.dirty.Store(true)
	}
}

// sync makes the stores so far durable, if there were any since the last.
func (c *cursorFile) sync() error {
	if !c.dirty.Swap(false) {
		return nil
	}
	if err := c.f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", c.path, err)
	}
	return nil
}

func (c *cursorFile) close() error {
	var err error
	if c.m != nil {
		err = c.f.Unmap(c.m)
		c.m = nil
	}
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// rewind records off even if it is below the cursor (a Seek back): both
// slots get it, the one store would not write first. A crash in between
// leaves the old cursor (the larger valid slot). REQUIRES: the shard's
// recvMu.
func (c *cursorFile) rewind(off uint64) {
	for range 2 {
		at := cursorSlots + 16*c.slot
		binary.LittleEndian.PutUint64(c.m[at:], off)
		binary.LittleEndian.PutUint64(c.m[at+8:], cursorCheck(off))
		c.slot ^= 1
	}
	c.dirty.Store(true)
}
