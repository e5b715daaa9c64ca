package spillway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/mmap"
)

// InspectDir reads what a Queue's or Topic's directory holds without
// opening it: it never takes the directory's lock and never writes, so it
// works on a directory another process has open (whose active segments may
// then show a tail being written as a torn one). With opts.Verify it checks
// every batch's checksum, sealed segments included (see mmap.Scan).
//
// It fails only when the directory cannot be read; what is wrong inside
// (a damaged manifest, cursor or journal, problems in a log) is in the
// report.
func InspectDir(dir string, opts InspectOptions) (*DirReport, error) {
	fsys := opts.fs
	if fsys == nil {
		fsys = mmap.OSFS{}
	}
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	rep := &DirReport{Dir: dir, fs: fsys}
	if e := opts.Encryption; e != nil {
		if rep.keys, err = codec.NewKeyring(e.Keys, e.Current); err != nil {
			return nil, fmt.Errorf("%w: Encryption: %w", ErrInvalidOptions, err)
		}
	}
	switch m, err := readManifest(fsys, dir); {
	case errors.Is(err, errNoManifest):
	case err != nil:
		rep.ManifestErr = err
	default:
		rep.Manifest = true
		rep.Format, rep.Kind, rep.Shards, rep.Priorities = m.Format, m.Kind, m.Shards, m.levels()
		rep.id, rep.Sealed = m.ID, m.Sealed
		for id := range m.Keys {
			n, _ := strconv.ParseUint(id, 10, 32)
			rep.ManifestKeyIDs = append(rep.ManifestKeyIDs, uint32(n))
		}
		slices.Sort(rep.ManifestKeyIDs)
		rep.Durability, err = parseDurability(m.Durability)
		rep.ManifestErr = errors.Join(rep.ManifestErr, err)
		rep.Compression, err = parseCompression(m.Compression)
		rep.ManifestErr = errors.Join(rep.ManifestErr, err)
		if m.Sync != "" {
			rep.Sync, err = parseSyncPolicy(m.Sync)
			rep.ManifestErr = errors.Join(rep.ManifestErr, err)
		}
	}
	for _, name := range names {
		var lr LogDirReport
		switch {
		case name == lockName, name == manifestName:
			continue
		case isSpillName(name):
			lr = LogDirReport{Name: name, Shard: spillShard(name), Spill: true}
		case isShardDirName(name):
			lr = LogDirReport{Name: name, Shard: spillShard(name)}
		default:
			rep.Others = append(rep.Others, name)
			continue
		}
		path := filepath.Join(dir, name)
		so := rep.ScanOptions(name)
		so.Verify = opts.Verify
		if lr.Log, err = mmap.Scan(path, so, nil); err != nil {
			return rep, fmt.Errorf("scanning %s: %w", path, err)
		}
		for _, s := range lr.Log.Segments {
			for id := range s.KeyIDs {
				if !slices.Contains(rep.KeyIDs, id) {
					rep.KeyIDs = append(rep.KeyIDs, id)
				}
			}
		}
		if !lr.Spill && rep.Kind != "topic" {
			lr.readState(fsys, path)
		}
		rep.Logs = append(rep.Logs, lr)
	}
	for _, name := range rep.Others {
		if sub, ok := parseSubDirName(name); ok && rep.Kind == "topic" {
			rep.Subscriptions = append(rep.Subscriptions, inspectSub(fsys, filepath.Join(dir, name), sub, rep.Shards*rep.Priorities))
		}
	}
	rep.Others = slices.DeleteFunc(rep.Others, func(name string) bool {
		_, ok := parseSubDirName(name)
		return ok && rep.Kind == "topic"
	})
	slices.SortFunc(rep.Subscriptions, func(a, b SubscriptionReport) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(rep.Logs, func(a, b LogDirReport) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(rep.KeyIDs)
	return rep, nil
}

// InspectOptions says what InspectDir checks.
type InspectOptions struct {
	Verify bool // read every batch and check its checksum
	// Encryption opens the batches of an encrypted directory (for
	// ScanOptions: reading records); without it they are checked, not
	// opened.
	Encryption *Encryption
	fs         mmap.FS
}

// DirReport is what InspectDir found in a Queue's or Topic's directory.
type DirReport struct {
	Dir string
	// What the MANIFEST says, when Manifest is set. An Ephemeral directory
	// has one from its first open on; ManifestErr says why one could not
	// be read (damaged, or from a newer version).
	Manifest    bool
	Format      int
	Kind        string // "queue" or "topic"
	Durability  Durability
	Sync        SyncPolicy // Persistent only
	Compression Compression
	Shards      int
	Priorities  int // priority levels, each with Shards shard directories
	ManifestErr error

	// Encryption: Sealed says every batch is sealed (the directory was
	// created with Encryption); ManifestKeyIDs are the key ids the
	// manifest has checks for (every id it was ever opened with), KeyIDs
	// those the logs' batches are sealed with now: an id no longer among
	// them may be dropped from Options.Encryption.
	Sealed         bool
	ManifestKeyIDs []uint32
	KeyIDs         []uint32

	Logs []LogDirReport // in name order
	// Subscriptions are a Persistent topic's, in name order.
	Subscriptions []SubscriptionReport
	Others        []string // entries Spillway does not know (left alone by every open)

	fs   mmap.FS
	keys *codec.Keyring // from InspectOptions.Encryption
	id   string         // the manifest's identity
}

// SubscriptionReport is one subscription of a Persistent topic: where it
// started, and its state in each shard.
type SubscriptionReport struct {
	Name  string
	Start string // the StartAt it was created with ("earliest", "time:...", ...)
	// Complete: its creation finished (its marker file is there). The
	// next open removes an incomplete one.
	Complete bool
	Shards   []ShardState // by shard; none for an incomplete one
	Err      error        // a marker that cannot be read
}

// ScanOptions returns what mmap.Scan needs to read the log named name
// (shard-0003, spill-0003-7) of the directory: its file system, and, for
// an encrypted directory inspected with its keys, the keyring and the
// log's context. Decode with it reads the log's records.
func (r *DirReport) ScanOptions(name string) mmap.ScanOptions {
	o := mmap.ScanOptions{FS: r.fs}
	if r.keys != nil && r.id != "" {
		s := &sealing{keys: r.keys, id: r.id}
		o.Keyring, o.Context = r.keys, s.context(r.Kind, name)
	}
	return o
}

// Clean reports whether nothing InspectDir read was damaged.
func (r *DirReport) Clean() bool {
	if r.ManifestErr != nil {
		return false
	}
	for _, l := range r.Logs {
		if l.StateErr != nil || !l.Log.Clean() {
			return false
		}
	}
	for _, s := range r.Subscriptions {
		if s.Err != nil {
			return false
		}
		for _, st := range s.Shards {
			if st.StateErr != nil {
				return false
			}
		}
	}
	return true
}

// LogDirReport is one log in a directory: a Persistent shard's, or an
// Ephemeral spill (whose messages no restart keeps: the next open removes
// it).
type LogDirReport struct {
	Name  string // shard-0003, spill-0003-7 (a Queue's), spill-t0003-7 (a Topic's)
	Shard int
	Spill bool
	Log   *mmap.LogReport
	// A Persistent Queue shard's state (a topic's shards have none: their
	// subscriptions do).
	ShardState
}

// ShardState is the receivers' state in one shard of a Persistent Queue
// or of a Persistent topic's subscription: the cursor (the first offset
// never handed to a receiver) and the state journal's newest whole
// generation, with how many messages it names delivered and not settled
// (ManualAck: redelivered at the next open).
type ShardState struct {
	Cursor     uint64
	Generation uint64
	Unsettled  int
	ManualAck  bool  // the journal was written under ManualAck
	StateErr   error // a damaged or unreadable cursor or journal
}

// readState reads a shard's cursor and journal, read only.
func (lr *ShardState) readState(fsys mmap.FS, dir string) {
	cursor, err := readCursor(fsys, dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		lr.StateErr = err
	}
	lr.Cursor = cursor
	js, err := readJournal(fsys, dir)
	if err != nil {
		lr.StateErr = errors.Join(lr.StateErr, err)
		return
	}
	if js.damaged > 0 {
		lr.StateErr = errors.Join(lr.StateErr, fmt.Errorf("%w: %d generation(s) of the state journal in %s are damaged", ErrStorage, js.damaged, dir))
	}
	if !js.found {
		return
	}
	lr.Generation, lr.Unsettled, lr.ManualAck = js.gen, len(js.unsettled), js.manual
	if js.manual {
		for off := js.delivered; off < max(cursor, js.next); off++ {
			if !js.settled[off] && js.unsettled[off] == nil {
				lr.Unsettled++
			}
		}
	}
}

// inspectSub reads a Persistent topic's subscription in dir, read only.
func inspectSub(fsys mmap.FS, dir, name string, shards int) SubscriptionReport {
	sr := SubscriptionReport{Name: name}
	marker, err := readWhole(fsys, filepath.Join(dir, subMarker))
	switch {
	case isNotExist(err):
	case err != nil:
		sr.Err = err
	default:
		sr.Complete, sr.Start = true, strings.TrimSpace(string(marker))
		if _, err := parseStartAt(sr.Start); err != nil {
			sr.Err = err
		}
	}
	if !sr.Complete {
		return sr // its files may be missing or half written: the next open removes them
	}
	for i := range shards {
		var st ShardState
		st.readState(fsys, filepath.Join(dir, shardDirName(i)))
		sr.Shards = append(sr.Shards, st)
	}
	return sr
}

// readCursor reads dir's cursor file without mapping or changing it.
func readCursor(fsys mmap.FS, dir string) (uint64, error) {
	path := filepath.Join(dir, cursorName)
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }() // read only: its Close loses nothing
	b := make([]byte, cursorSlots+32)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	off, _, err := cursorValue(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return off, nil
}

// cursorValue reads a cursor file's first bytes (at least cursorSlots+32):
// the offset the valid slot with the larger offset holds (0 if both are
// torn) and the slot the next store goes to.
func cursorValue(b []byte) (off uint64, slot int, err error) {
	if string(b[:4]) != cursorMagic || b[4] != cursorVersion || xxhash.Sum64(b[:56]) != binary.LittleEndian.Uint64(b[56:]) {
		return 0, 0, fmt.Errorf("%w: not a cursor file of this version (damaged header)", ErrStorage)
	}
	for i := range 2 {
		at := cursorSlots + 16*i
		o := binary.LittleEndian.Uint64(b[at:])
		if binary.LittleEndian.Uint64(b[at+8:]) == cursorCheck(o) && o >= off {
			off, slot = o, 1-i
		}
	}
	return off, slot, nil
}

// isShardDirName reports whether name is a Persistent shard's directory.
func isShardDirName(name string) bool {
	digits, ok := strings.CutPrefix(name, "shard-")
	if !ok || len(digits) != 4 {
		return false
	}
	_, err := strconv.ParseUint(digits, 10, 16)
	return err == nil
}

// spillShard is the shard number in a spill's or a shard's directory name.
func spillShard(name string) int {
	rest := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(name, spillDirPrefix), "shard-"), "t")
	n, _ := strconv.Atoi(rest[:min(4, len(rest))]) // the name was checked: four digits
	return n
}

func parseDurability(s string) (Durability, error) {
	return parseName("durability", s, Ephemeral, Persistent)
}

func parseSyncPolicy(s string) (SyncPolicy, error) {
	return parseName("sync policy", s, SyncNever, SyncInterval, SyncAlways)
}

func parseCompression(s string) (Compression, error) {
	return parseName("compression", s, Zstd, S2, None)
}

// parseName returns the one of values whose String is s.
func parseName[T interface {
	~int
	String() string
}](what, s string, values ...T) (T, error) {
	for _, v := range values {
		if v.String() == s {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: the manifest names an unknown %s %q", ErrStorage, what, s)
}
