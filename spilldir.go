package spillway

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/mmap"
)

// A Queue's or Topic's directory holds:
//
//	LOCK                 held (flock) by the one open Queue or Topic; never removed
//	MANIFEST             what the directory holds (manifest.go)
//	spill-0003-7/        Ephemeral: a Queue shard's spill, one directory per spill
//	spill-t0003-7/       Ephemeral: a Topic shard's spill
//	shard-0003/          Persistent: a shard's log (package mmap) and state (journal.go)
//
// The LOCK file is never removed: a lock file unlinked after (or before)
// its lock is released lets a second opener lock a file that a third then
// replaces, and both believe they own the directory. Spill directories are
// removed only when their name and every file in them are Spillway's own.
const lockName = "LOCK"

// spillDir is what a Queue or Topic with Dir holds: the directory's lock,
// the spill encoder, the shared quota and the segment size.
type spillDir struct {
	enc     *codec.Encoder
	quota   *mmap.Quota
	segSize int64
	lock    io.Closer
	seal    *sealing // Options.Encryption, open; nil without
}

// logOptions returns what every log of the directory needs to seal and
// open its batches: kind and what name the log (its context).
func (d *spillDir) logOptions(o mmap.Options, kind, what string) mmap.Options {
	if d.seal != nil {
		o.Keyring, o.Context, o.RequireSealed = d.seal.keys, d.seal.context(kind, what), d.seal.require
	}
	return o
}

// openDir takes o.Dir for a kind ("queue" or "topic") of the given
// durability, refusing one another open Queue or Topic holds, and checks
// what its manifest says against o: a directory of the other kind, or a
// Persistent one opened Ephemeral (which would delete its messages), is
// refused. Reopening a Persistent directory with o.Shards unset
// (shardsGiven 0) takes the stored shard count into o; another count than
// the stored one is refused; so are the priority levels (prioritiesGiven). Spill files an earlier Ephemeral process left
// are removed. The manifest is (re)written when anything it records
// changed.
func openDir(o *Options, kind string, shardsGiven, prioritiesGiven int) (spillDir, error) {
	var d spillDir
	fsys := o.fs
	if err := fsys.MkdirAll(o.Dir, 0o700); err != nil {
		return d, err
	}
	lock, err := fsys.Lock(filepath.Join(o.Dir, lockName))
	if err != nil {
		if errors.Is(err, mmap.ErrLocked) {
			return d, fmt.Errorf("%w: %s is used by another open queue or topic", ErrInvalidOptions, o.Dir)
		}
		return d, err
	}
	fail := func(err error) (spillDir, error) {
		_ = lock.Close()
		return spillDir{}, err
	}
	m, err := readManifest(fsys, o.Dir)
	fresh := errors.Is(err, errNoManifest)
	if err != nil && !fresh {
		return fail(err)
	}
	if !fresh {
		if m.Kind != kind {
			return fail(fmt.Errorf("%w: %s holds a %s, not a %s", ErrInvalidOptions, o.Dir, m.Kind, kind))
		}
		if m.Durability == Persistent.String() {
			if o.Durability != Persistent {
				return fail(fmt.Errorf("%w: %s holds a persistent %s: open it with Durability Persistent (an ephemeral open would delete its messages)", ErrInvalidOptions, o.Dir, kind))
			}
			if shardsGiven == 0 {
				o.Shards = m.Shards
			} else if o.Shards != m.Shards {
				return fail(fmt.Errorf("%w: %s was created with %d shards, and %d were asked for: keys would hash to other shards (open it with Shards 0 or %d)", ErrInvalidOptions, o.Dir, m.Shards, shardsGiven, m.Shards))
			}
			if prioritiesGiven == 0 {
				o.Priorities = m.levels()
			} else if o.Priorities != m.levels() {
				return fail(fmt.Errorf("%w: %s was created with %d priority levels, and %d were asked for (open it with Priorities 0 or %d)", ErrInvalidOptions, o.Dir, m.levels(), prioritiesGiven, m.levels()))
			}
		}
	}
	if fresh || m.Durability != Persistent.String() {
		// Spill files do not outlive their queue: remove what a crashed one
		// left.
		if err := removeSpills(fsys, o.Dir); err != nil {
			return fail(err)
		}
	}
	want := newManifest(o, kind)
	var prev *manifest
	if !fresh && m.Durability == Persistent.String() {
		prev = &m // an Ephemeral directory starts afresh: nothing sealed survives
	}
	if d.seal, err = openSealing(o.Encryption, prev, &want); err != nil {
		return fail(err)
	}
	if fresh || !want.equal(m) {
		if err := writeManifest(fsys, o.Dir, want); err != nil {
			return fail(err)
		}
	}
	// Segments hold several batches, and several fit in the quota.
	d.segSize = 64 << 20
	if o.MaxDiskBytes > 0 {
		d.segSize = min(d.segSize, o.MaxDiskBytes/int64(2*o.Shards+2))
	}
	d.segSize = max(d.segSize, 2*int64(o.MaxMessageBytes)+256<<10) &^ (64<<10 - 1)
	if o.segmentSize > 0 {
		d.segSize = o.segmentSize
	}
	if o.MaxDiskBytes > 0 {
		if o.MaxDiskBytes < 2*d.segSize {
			return fail(fmt.Errorf("%w: MaxDiskBytes %d cannot hold two segments of %d bytes (MaxMessageBytes %d)",
				ErrInvalidOptions, o.MaxDiskBytes, d.segSize, o.MaxMessageBytes))
		}
		d.quota = mmap.NewQuota(o.MaxDiskBytes)
	}
	if o.Durability == Ephemeral {
		if d.enc, err = codec.NewEncoder(codec.WithCompression(o.Compression.codec())); err != nil {
			return fail(err)
		}
	}
	d.lock = lock
	return d, nil
}

// closeDir lets go of the directory: an Ephemeral one loses its manifest
// (the spills are gone already), and the lock is released. The LOCK file
// stays (see lockName).
func (d *spillDir) closeDir(o *Options) error {
	var err error
	if o.Durability == Ephemeral {
		if rerr := o.fs.Remove(filepath.Join(o.Dir, manifestName)); rerr != nil && !isNotExist(rerr) {
			err = rerr
		}
	}
	if d.enc != nil {
		_ = d.enc.Close()
	}
	if lerr := d.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

// isSpillName reports whether name is a spill directory's: spill-NNNN-E
// (a Queue shard's) or spill-tNNNN-E (a Topic shard's).
func isSpillName(name string) bool {
	rest, ok := strings.CutPrefix(name, spillDirPrefix)
	if !ok {
		return false
	}
	rest = strings.TrimPrefix(rest, "t")
	idx, seq, ok := strings.Cut(rest, "-")
	if !ok || len(idx) != 4 {
		return false
	}
	_, err1 := strconv.ParseUint(idx, 10, 16)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}

// isLogFile reports whether name is one a spill's log (package mmap)
// creates: segments, their sidecars and temporary files, and its lock.
func isLogFile(name string) bool {
	return name == lockName || strings.HasSuffix(name, ".seg") || strings.HasSuffix(name, ".corrupt") || strings.HasSuffix(name, ".tmp")
}

// removeSpills removes the spill directories in dir that are Spillway's
// own: named as spills are, holding only a log's files. Anything else
// stays.
func removeSpills(fsys mmap.FS, dir string) error {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if isSpillName(name) {
			if err := removeSpillDir(fsys, filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeSpillDir removes a spill's directory, if every file in it is one
// its log creates; otherwise it leaves the directory as it is.
func removeSpillDir(fsys mmap.FS, dir string) error {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return err
	}
	for _, name := range names {
		if !isLogFile(name) {
			return nil // not only ours: leave it
		}
	}
	for _, name := range names {
		if err := fsys.Remove(filepath.Join(dir, name)); err != nil && !isNotExist(err) {
			return err
		}
	}
	if err := fsys.Remove(dir); err != nil && !isNotExist(err) {
		return err
	}
	return nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
