package spillway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"

	"github.com/spillway-io/spillway/codec"
	"github.com/spillway-io/spillway/mmap"
)

// A Persistent shard's state journal keeps what must survive the process
// besides the messages (the log) and how far receivers got (the cursor):
// under ManualAck, which delivered messages were settled (acked,
// terminated, dead-lettered), how many attempts the unsettled ones used and
// when a nacked one may come back, and the bytes of unsettled messages whose
// segment was deleted (moved; see Queue's housekeeping). Memory and disk
// for it are O(messages in flight), not O(backlog).
//
// It is a sequence of generations, state-%016d.jnl, each preallocated and
// mapped writable, with records stored into the mapping:
//
//	file:    offset size field
//	              0    4 magic       "SPWJ"
//	              4    1 version     1
//	              5    3 reserved    0
//	              8    8 generation
//	             16    8 size        bytes reserved for the file
//	             24   32 reserved    0
//	             56    8 checksum    xxhash64 of bytes [0, 56)
//	             64      records, then zeros
//
//	record:  offset size field
//	              0    4 crc         CRC-32C (Castagnoli) of bytes [4, 8+len)
//	              4    1 kind
//	              5    3 len         payload bytes, little-endian
//	              8  len payload, then zeros to a multiple of 8
//
// Eight zero bytes where a record would start end the journal. A record
// is stored payload first and crc last: one cut short by a crash fails
// its crc, and it and everything after it are ignored (a torn tail).
//
// Each generation starts with a checkpoint, the whole state when it was
// written; the records after it are changes since. When a generation fills
// up, the next one is written whole (checkpoint included), synced, and only
// then is the old one removed; at open, the newest generation whose
// checkpoint is complete is the journal. The records (payloads
// little-endian):
//
//	1 checkpoint  delivered u64, count u64, manual u8, 7 zero bytes: the
//	              cursor, and how many unsettled messages follow in kind 2
//	              and kind 5 records; manual says deliveries are leased
//	              (ManualAck), so those at or after delivered and not
//	              settled by a later record are unsettled
//	2 entries     n × (offset u64, attempts u32, 0 u32, notBefore i64)
//	3 settle      offset u64
//	4 attempt     offset u64, attempts u32, 0 u32, notBefore i64: an
//	              unsettled message's attempts so far, and the time
//	              (unix ns, 0: none) before which it is not redelivered
//	5 moved       the same as attempt, then the message as a codec batch
//	              of one record (codec.AppendPlain) at that offset
const (
	journalPrefix  = "state-"
	journalSuffix  = ".jnl"
	journalMagic   = "SPWJ"
	journalVersion = 1
	journalHeader  = 64
	// journalMinSize is a generation's reservation at least; a new one
	// reserves four times its checkpoint, so that writing checkpoints
	// costs O(1) per record however many messages are in flight.
	journalMinSize = 4 << 20

	kindCheckpoint = 1
	kindEntries    = 2
	kindSettle     = 3
	kindAttempt    = 4
	kindMoved      = 5

	entrySize = 24
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func journalName(gen uint64) string {
	return fmt.Sprintf("%s%016d%s", journalPrefix, gen, journalSuffix)
}

func parseJournalName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, journalPrefix)
	if !ok {
		return 0, false
	}
	digits, ok = strings.CutSuffix(digits, journalSuffix)
	if !ok || len(digits) != 16 {
		return 0, false
	}
	gen, err := strconv.ParseUint(digits, 10, 64)
	return gen, err == nil
}

// appendJournalRecord appends a record of kind with payload to dst.
func appendJournalRecord(dst []byte, kind byte, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, 8)...)
	dst = append(dst, payload...)
	for len(dst)%8 != 0 {
		dst = append(dst, 0)
	}
	putJournalHead(dst[start:], kind, payload)
	return dst
}

// putJournalHead writes the kind, length and crc of a record whose payload
// is already in rec[8:].
func putJournalHead(rec []byte, kind byte, payload []byte) {
	binary.LittleEndian.PutUint32(rec[4:], uint32(kind)|uint32(len(payload))<<8)
	binary.LittleEndian.PutUint32(rec[0:], crc32.Update(0, castagnoli, rec[4:8+len(payload)]))
}

func journalRecordSize(payload int) int { return 8 + (payload+7)&^7 }

// journal is a shard's state journal, open for appending.
//
// Records are appended under the owner's lock (the shard's leaseMu), which
// also guards end. mu guards the file against sync and the move to a new
// generation at once. dirty says records were stored since the last sync.
type journal struct {
	fsys mmap.FS
	dir  string
	// snapshot writes the owner's whole state as a checkpoint: called
	// under the owner's lock when a generation fills up.
	snapshot func(cp *checkpoint)
	minSize  int64 // a generation's least reservation: journalMinSize, or less in tests
	// keys, if set, seal the messages moved into the journal (kind 5) for
	// context, as the logs' batches are.
	keys    *codec.Keyring
	context []byte

	mu    sync.Mutex
	gen   uint64
	path  string
	f     mmap.File
	m     []byte // writable mapping of the whole file
	end   int    // where the next record goes; guarded by the owner's lock
	dirty atomic.Bool
	// failed is the first failure to write a generation: sticky.
	failed error
}

// checkpoint gathers a generation's checkpoint records.
type checkpoint struct {
	delivered uint64
	manual    bool
	count     uint64
	entries   []byte // kind 2 payload: entries, not yet framed
	moved     []byte // kind 5 records, framed
}

// add records an unsettled message.
func (cp *checkpoint) add(off uint64, attempts uint32, notBefore int64) {
	cp.entries = appendEntry(cp.entries, off, attempts, notBefore)
	cp.count++
}

// addMoved records an unsettled message whose bytes the journal keeps
// (batch: codec.AppendPlain of it at offset off).
func (cp *checkpoint) addMoved(off uint64, attempts uint32, notBefore int64, batch []byte) {
	p := appendEntry(make([]byte, 0, entrySize+len(batch)), off, attempts, notBefore)
	cp.moved = appendJournalRecord(cp.moved, kindMoved, append(p, batch...))
	cp.count++
}

func appendEntry(b []byte, off uint64, attempts uint32, notBefore int64) []byte {
	b = binary.LittleEndian.AppendUint64(b, off)
	b = binary.LittleEndian.AppendUint32(b, attempts)
	b = binary.LittleEndian.AppendUint32(b, 0)
	return binary.LittleEndian.AppendUint64(b, uint64(notBefore))
}

// records frames the checkpoint as records.
func (cp *checkpoint) records() []byte {
	var head [24]byte
	binary.LittleEndian.PutUint64(head[0:], cp.delivered)
	binary.LittleEndian.PutUint64(head[8:], cp.count)
	if cp.manual {
		head[16] = 1
	}
	out := appendJournalRecord(nil, kindCheckpoint, head[:])
	const perRecord = (1<<24 - 1) / entrySize * entrySize
	for e := cp.entries; len(e) > 0; {
		n := min(len(e), perRecord)
		out = appendJournalRecord(out, kindEntries, e[:n])
		e = e[n:]
	}
	return append(out, cp.moved...)
}

// put appends a record. REQUIRES: the owner's lock.
func (j *journal) put(kind byte, payload []byte) error {
	if j.failed != nil {
		return j.failed
	}
	n := journalRecordSize(len(payload))
	if j.end+n > len(j.m) {
		if err := j.rotate(); err != nil {
			return err
		}
		if j.end+n > len(j.m) {
			return fmt.Errorf("%w: a journal record of %d bytes does not fit in %s", ErrStorage, n, j.path)
		}
	}
	rec := j.m[j.end : j.end+n]
	copy(rec[8:], payload)
	putJournalHead(rec, kind, payload)
	j.end += n
	if !j.dirty.Load() {
		j.dirty.Store(true)
	}
	return nil
}

// settle records that the message at off was settled.
func (j *journal) settle(off uint64) error {
	var p [8]byte
	binary.LittleEndian.PutUint64(p[:], off)
	return j.put(kindSettle, p[:])
}

// attempt records an unsettled message's attempts and its notBefore.
func (j *journal) attempt(off uint64, attempts uint32, notBefore int64) error {
	var p [entrySize]byte
	appendEntry(p[:0], off, attempts, notBefore)
	return j.put(kindAttempt, p[:])
}

// moved records an unsettled message with its bytes (batch).
func (j *journal) moved(off uint64, attempts uint32, notBefore int64, batch []byte) error {
	p := appendEntry(make([]byte, 0, entrySize+len(batch)), off, attempts, notBefore)
	return j.put(kindMoved, append(p, batch...))
}

// rotate writes the next generation from the owner's snapshot and moves to
// it. REQUIRES: the owner's lock.
func (j *journal) rotate() error {
	var cp checkpoint
	j.snapshot(&cp)
	return j.writeGeneration(&cp)
}

// writeGeneration writes cp as the checkpoint of a new generation, makes it
// durable, moves appends to it and removes the older ones. A failure is
// sticky: the journal accepts nothing after it. REQUIRES: the owner's lock
// (or no other user yet).
func (j *journal) writeGeneration(cp *checkpoint) error {
	if j.failed != nil {
		return j.failed
	}
	recs := cp.records()
	size := max(j.minSize, int64(4*(journalHeader+len(recs))+(64<<10-1))&^(64<<10-1))
	j.mu.Lock()
	defer j.mu.Unlock()
	gen := j.gen + 1
	path := filepath.Join(j.dir, journalName(gen))
	f, m, err := createJournal(j.fsys, path, gen, size, recs)
	if err == nil {
		err = j.fsys.SyncDir(j.dir)
	}
	if err != nil {
		if f != nil {
			if m != nil {
				_ = f.Unmap(m)
			}
			_ = f.Close()
			_ = j.fsys.Remove(path)
		}
		j.failed = fmt.Errorf("%w: writing %s: %w", ErrStorage, path, err)
		return j.failed
	}
	old, oldM := j.f, j.m
	j.gen, j.path, j.f, j.m, j.end = gen, path, f, m, journalHeader+len(recs)
	j.dirty.Store(false)
	if old != nil {
		_ = old.Unmap(oldM)
		_ = old.Close()
	}
	// Older generations (the one just left, and any an interrupted open
	// left) are superseded once this one is durable. Replay takes the
	// newest whole one, and the next rotation removes what this one could
	// not.
	names, _ := j.fsys.ReadDir(j.dir)
	for _, name := range names {
		if g, ok := parseJournalName(name); ok && g < gen {
			_ = j.fsys.Remove(filepath.Join(j.dir, name))
		}
	}
	return nil
}

// createJournal creates a generation file holding recs, synced, and maps
// it writable.
func createJournal(fsys mmap.FS, path string, gen uint64, size int64, recs []byte) (mmap.File, []byte, error) {
	_ = fsys.Remove(path) // left by an interrupted attempt, never the journal
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, nil, err
	}
	if err := f.Grow(size); err != nil {
		if !errors.Is(err, errors.ErrUnsupported) {
			return f, nil, err
		}
		// No reservation here: zeros written whole allocate the blocks.
		if _, err := f.WriteAt(make([]byte, size), 0); err != nil {
			return f, nil, err
		}
	}
	hdr := make([]byte, journalHeader)
	copy(hdr, journalMagic)
	hdr[4] = journalVersion
	binary.LittleEndian.PutUint64(hdr[8:], gen)
	binary.LittleEndian.PutUint64(hdr[16:], uint64(size))
	binary.LittleEndian.PutUint64(hdr[56:], xxhash.Sum64(hdr[:56]))
	if _, err := f.WriteAt(append(hdr, recs...), 0); err != nil {
		return f, nil, err
	}
	if err := f.Sync(); err != nil {
		return f, nil, err
	}
	m, err := f.MapWritable(int(size))
	if err != nil {
		return f, nil, err
	}
	return f, m, nil
}

// sync makes the records so far durable. A failure is the caller's to make
// sticky.
func (j *journal) sync() error {
	if !j.dirty.Swap(false) {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", j.path, err)
	}
	return nil
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Unmap(j.m)
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.f, j.m = nil, nil
	return err
}

// journalState is what a journal said at open.
type journalState struct {
	found     bool   // a valid generation was found
	gen       uint64 // the newest generation seen, valid or not
	manual    bool
	delivered uint64 // the checkpoint's cursor
	// unsettled are the messages known unsettled, by offset; messages
	// delivered at or after delivered under manual, and not in settled,
	// are unsettled too.
	unsettled map[uint64]*journalEntry
	settled   map[uint64]bool // settled at or after delivered
	next      uint64          // one past the highest offset a record names
	// damaged counts generations whose checkpoint was incomplete or whose
	// header was unreadable; torn the bytes of the torn tail ignored.
	damaged int
	torn    int64
}

// journalEntry is an unsettled message the journal names.
type journalEntry struct {
	attempts  uint32
	notBefore int64
	batch     []byte // moved: the message, codec.AppendPlain at its offset
}

// readJournal reads dir's state journal: the newest generation whose
// checkpoint is complete, and the records after it up to a torn tail.
func readJournal(fsys mmap.FS, dir string) (journalState, error) {
	st := journalState{unsettled: map[uint64]*journalEntry{}, settled: map[uint64]bool{}}
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return st, err
	}
	var gens []uint64
	for _, name := range names {
		if g, ok := parseJournalName(name); ok {
			gens = append(gens, g)
		}
	}
	slices.Sort(gens)
	if len(gens) > 0 {
		st.gen = gens[len(gens)-1]
	}
	for i := len(gens) - 1; i >= 0; i-- {
		path := filepath.Join(dir, journalName(gens[i]))
		data, err := readFileAll(fsys, path)
		if err != nil {
			return st, fmt.Errorf("%w: reading %s: %w", ErrStorage, path, err)
		}
		try := journalState{unsettled: map[uint64]*journalEntry{}, settled: map[uint64]bool{}, gen: st.gen}
		if try.replay(data, gens[i]) {
			try.damaged, try.found = st.damaged, true
			return try, nil
		}
		st.damaged++
	}
	return st, nil
}

// replay reads one generation into st; it reports whether its header and
// checkpoint were whole.
func (st *journalState) replay(data []byte, gen uint64) bool {
	if len(data) < journalHeader || string(data[:4]) != journalMagic || data[4] != journalVersion ||
		xxhash.Sum64(data[:56]) != binary.LittleEndian.Uint64(data[56:]) || binary.LittleEndian.Uint64(data[8:]) != gen {
		return false
	}
	pos := journalHeader
	var want, have uint64
	checkpointed := false
	for pos+8 <= len(data) {
		head := data[pos : pos+8]
		if binary.LittleEndian.Uint64(head) == 0 {
			break // the end
		}
		word := binary.LittleEndian.Uint32(head[4:])
		kind, n := byte(word), int(word>>8)
		if pos+8+n > len(data) || crc32.Update(0, castagnoli, data[pos+4:pos+8+n]) != binary.LittleEndian.Uint32(head) {
			st.torn = int64(len(data) - pos)
			break
		}
		p := data[pos+8 : pos+8+n]
		pos += journalRecordSize(n)
		if !checkpointed {
			if kind != kindCheckpoint || n != 24 {
				return false
			}
			st.delivered = binary.LittleEndian.Uint64(p)
			want = binary.LittleEndian.Uint64(p[8:])
			st.manual = p[16] == 1
			st.next = st.delivered
			checkpointed = true
			continue
		}
		inCheckpoint := have < want
		switch {
		case kind == kindEntries && inCheckpoint && n%entrySize == 0:
			for ; len(p) > 0; p = p[entrySize:] {
				st.addEntry(p, nil)
				have++
			}
		case kind == kindMoved && n > entrySize:
			st.addEntry(p, p[entrySize:])
			if inCheckpoint {
				have++
			}
		case kind == kindSettle && n == 8 && !inCheckpoint:
			off := binary.LittleEndian.Uint64(p)
			delete(st.unsettled, off)
			if off >= st.delivered {
				// Delivered after the checkpoint: without this, the
				// range after it would count it unsettled.
				st.settled[off] = true
			}
			st.next = max(st.next, off+1)
		case kind == kindAttempt && n == entrySize && !inCheckpoint:
			st.addEntry(p, nil)
		default:
			if inCheckpoint {
				return false
			}
			// A record this version does not know, in the changes: the
			// rest cannot be trusted to mean what it says.
			st.torn = int64(len(data) - pos)
			return true
		}
	}
	return checkpointed && have == want
}

// addEntry records the unsettled message an entry payload names.
func (st *journalState) addEntry(p []byte, batch []byte) {
	off := binary.LittleEndian.Uint64(p)
	e := st.unsettled[off]
	if e == nil {
		e = &journalEntry{}
		st.unsettled[off] = e
	}
	e.attempts = binary.LittleEndian.Uint32(p[8:])
	e.notBefore = int64(binary.LittleEndian.Uint64(p[16:]))
	if batch != nil {
		e.batch = slices.Clone(batch)
	}
	delete(st.settled, off)
	st.next = max(st.next, off+1)
}

// readFileAll reads a whole file.
func readFileAll(fsys mmap.FS, path string) ([]byte, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read only: its Close loses nothing
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	if size > 0 {
		if _, err := f.ReadAt(b, 0); err != nil {
			return nil, err
		}
	}
	return b, nil
}
